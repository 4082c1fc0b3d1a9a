"""Confidence calibration of a classifier's probabilities: temperature scaling.

A model's probabilities ``p`` are turned into calibrated ones ``softmax(log(p) / T)``; the single
temperature ``T`` is fitted by minimising the negative log-likelihood on a validation part of the
training data (never on the held-out split). ``T > 1`` softens over-confident models, ``T < 1``
sharpens under-confident ones; the ranking of the classes (so the accuracy) never changes.
The expected calibration error before and after is :func:`gemcaption.evaluation.classification.
expected_calibration_error`.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError, EvaluationError

EPSILON = 1e-12
BOUNDS = (0.02, 50.0)


def _log_probabilities(probabilities) -> np.ndarray:
    p = np.asarray(probabilities, np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise EvaluationError(f"probabilities must be (N, K) with K >= 2, got shape {p.shape}")
    return np.log(np.clip(p, EPSILON, 1.0))


def apply_temperature(probabilities, temperature: float) -> np.ndarray:
    """``softmax(log(p) / temperature)`` row by row (temperature 1 returns ``p`` renormalised)."""
    if not temperature > 0:
        raise ConfigError(f"temperature must be positive, got {temperature}")
    z = _log_probabilities(probabilities) / float(temperature)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def negative_log_likelihood(probabilities, labels) -> float:
    """Mean ``-log p[label]`` (clipped at 1e-12)."""
    p = np.asarray(probabilities, np.float64)
    y = np.asarray(labels, np.int64)
    if len(y) != len(p):
        raise EvaluationError(f"{len(p)} probability rows but {len(y)} labels")
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], EPSILON, 1.0))))


def fit_temperature(probabilities, labels) -> float:
    """The temperature minimising the validation negative log-likelihood (bounded search over log T)."""
    from scipy.optimize import minimize_scalar

    log_p = _log_probabilities(probabilities)
    y = np.asarray(labels, np.int64)
    if len(y) != len(log_p) or len(y) == 0:
        raise EvaluationError(f"need one label per probability row: {len(log_p)} rows, {len(y)} labels")
    if y.min() < 0 or y.max() >= log_p.shape[1]:
        raise EvaluationError(f"labels must lie in 0..{log_p.shape[1] - 1}")
    rows = np.arange(len(y))

    def nll(log_t: float) -> float:
        z = log_p / np.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[rows, y]))

    found = minimize_scalar(nll, bounds=tuple(np.log(BOUNDS)), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(found.x))


class TemperatureScaling:
    """One fitted temperature: ``fit(validation probabilities, labels)``, then ``transform(p)``."""

    def __init__(self, temperature: float = 1.0):
        if not temperature > 0:
            raise ConfigError(f"temperature must be positive, got {temperature}")
        self.temperature = float(temperature)

    def fit(self, probabilities, labels) -> TemperatureScaling:
        self.temperature = fit_temperature(probabilities, labels)
        return self

    def transform(self, probabilities) -> np.ndarray:
        return apply_temperature(probabilities, self.temperature)

    def get_config(self) -> dict:
        return {"method": "temperature", "temperature": self.temperature}

    @classmethod
    def from_config(cls, config: dict | None) -> TemperatureScaling:
        """From :meth:`get_config`'s dict; ``None`` (a classifier saved before calibration) is T = 1."""
        if not config:
            return cls(1.0)
        if config.get("method", "temperature") != "temperature":
            raise ConfigError(f"unknown calibration method {config.get('method')!r}")
        return cls(float(config["temperature"]))

    def __repr__(self) -> str:
        return f"TemperatureScaling(temperature={self.temperature:.4g})"
