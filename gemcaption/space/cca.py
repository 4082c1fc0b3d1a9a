"""Regularised CCA between text vectors and image features: the classic cross-modal baseline.

``fit(text, image)`` on paired rows centres both views, whitens them with ridge-regularised
covariances (``C + reg * trace(C)/d * I``, inverse square roots by eigen-decomposition), and takes
the SVD of the whitened cross-covariance. Both views are projected on the top ``dim`` canonical
directions, each scaled by its canonical correlation to the power ``power`` (Klein et al. 2015 use
such an eigenvalue weighting), and L2-normalised, so cosine = dot product. NumPy only: scikit-learn's
iterative CCA is too slow at Flickr8k sizes.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError


def _inverse_sqrt(cov: np.ndarray, reg: float) -> np.ndarray:
    d = cov.shape[0]
    cov = cov + reg * np.trace(cov) / d * np.eye(d)
    values, vectors = np.linalg.eigh(cov)
    return (vectors / np.sqrt(np.maximum(values, 1e-12))) @ vectors.T


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


class RegularizedCCA:
    """Canonical correlation analysis of two paired views with ridge regularisation."""

    def __init__(self, dim: int = 128, reg: float = 0.1, power: float = 4.0):
        if dim < 1 or reg < 0:
            raise ConfigError(f"CCA needs dim >= 1 and reg >= 0, got {dim!r} and {reg!r}")
        self.dim, self.reg, self.power = int(dim), float(reg), float(power)
        self.fitted = False

    def fit(self, text: np.ndarray, image: np.ndarray) -> RegularizedCCA:
        """Fit on paired rows ``text[i]`` <-> ``image[i]``."""
        x, y = np.asarray(text, np.float64), np.asarray(image, np.float64)
        if len(x) != len(y) or len(x) < 2:
            raise ConfigError(f"CCA needs the same number (>= 2) of rows in both views, got {len(x)} and {len(y)}")
        self.mean_x, self.mean_y = x.mean(axis=0), y.mean(axis=0)
        x, y = x - self.mean_x, y - self.mean_y
        n = len(x) - 1
        wx, wy = _inverse_sqrt(x.T @ x / n, self.reg), _inverse_sqrt(y.T @ y / n, self.reg)
        u, s, vt = np.linalg.svd(wx @ (x.T @ y / n) @ wy, full_matrices=False)
        k = min(self.dim, len(s))
        weights = s[:k] ** self.power
        self.proj_x = wx @ u[:, :k] * weights
        self.proj_y = wy @ vt[:k].T * weights
        self.correlations = s[:k]
        self.fitted = True
        return self

    def transform_text(self, text: np.ndarray) -> np.ndarray:
        return _unit((np.asarray(text, np.float64) - self.mean_x) @ self.proj_x)

    def transform_image(self, image: np.ndarray) -> np.ndarray:
        return _unit((np.asarray(image, np.float64) - self.mean_y) @ self.proj_y)
