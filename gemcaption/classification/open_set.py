"""Open-set recognition: tell a photo of a known stone from a photo of something else.

A *score* says how much an image looks like one of the known classes (higher = more known):

* ``max_probability`` - the largest calibrated class probability (model-agnostic);
* ``class_mean_cosine`` - the largest cosine similarity between the image's feature vector and the
  class means of the training features (after removing the overall mean), see :class:`ClassMeans`.

The threshold is chosen on known validation images only: the ``(1 - accept)`` quantile of their
scores, so that a share ``accept`` (default 95 %) of known stones is accepted; an image scoring
below it is flagged ``unknown``. :func:`auroc` measures how well a score separates known from
unknown images.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError, EvaluationError

SCORES = ("max_probability", "class_mean_cosine")
DEFAULT_ACCEPT = 0.95


def max_probability(probabilities) -> np.ndarray:
    """The top-class probability of each row."""
    p = np.asarray(probabilities, np.float64)
    if p.ndim != 2:
        raise EvaluationError(f"probabilities must be (N, K), got shape {p.shape}")
    return p.max(axis=1)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class ClassMeans:
    """Class means of centred, L2-normalised feature vectors; ``score`` is the best cosine to a mean."""

    def __init__(self, center: np.ndarray | None = None, means: np.ndarray | None = None):
        self.center = center
        self.means = means

    def fit(self, features, labels) -> ClassMeans:
        x = np.asarray(features, np.float64)
        y = np.asarray(labels, np.int64)
        if x.ndim != 2 or len(x) != len(y) or len(x) == 0:
            raise EvaluationError(f"need (N, D) features and N labels, got {x.shape} and {y.shape}")
        self.center = x.mean(axis=0)
        z = _unit(x - self.center)
        self.means = _unit(np.stack([z[y == k].mean(axis=0) for k in np.unique(y)]))
        return self

    def score(self, features) -> np.ndarray:
        if self.means is None or self.center is None:
            raise EvaluationError("ClassMeans is not fitted")
        z = _unit(np.asarray(features, np.float64) - self.center)
        return (z @ self.means.T).max(axis=1)

    def arrays(self) -> dict:
        return {"center": self.center, "means": self.means}


def choose_threshold(known_scores, accept: float = DEFAULT_ACCEPT) -> float:
    """The score above which a share ``accept`` of the known validation images lie."""
    if not 0 < accept <= 1:
        raise ConfigError(f"accept must be in (0, 1], got {accept}")
    scores = np.asarray(known_scores, np.float64)
    if scores.size == 0:
        raise EvaluationError("no known validation scores to choose a threshold from")
    return float(np.quantile(scores, 1.0 - accept))


def auroc(known_scores, unknown_scores) -> float:
    """Area under the ROC curve of known (positive) against unknown (negative) images; 1 = perfect."""
    from sklearn.metrics import roc_auc_score

    known, unknown = np.asarray(known_scores, np.float64), np.asarray(unknown_scores, np.float64)
    if known.size == 0 or unknown.size == 0:
        raise EvaluationError("need both known and unknown scores")
    truth = np.concatenate([np.ones(known.size), np.zeros(unknown.size)])
    return float(roc_auc_score(truth, np.concatenate([known, unknown])))


class OpenSetRule:
    """A score name and a threshold: ``is_unknown(scores)`` is ``scores < threshold``."""

    def __init__(self, score: str = "max_probability", threshold: float = 0.0, accept: float = DEFAULT_ACCEPT):
        if score not in SCORES:
            raise ConfigError(f"unknown open-set score {score!r}; choose from {list(SCORES)}")
        self.score = score
        self.threshold = float(threshold)
        self.accept = float(accept)

    def fit(self, known_validation_scores) -> OpenSetRule:
        self.threshold = choose_threshold(known_validation_scores, self.accept)
        return self

    def is_unknown(self, scores) -> np.ndarray:
        return np.asarray(scores, np.float64) < self.threshold

    def get_config(self) -> dict:
        return {"score": self.score, "threshold": self.threshold, "accept": self.accept}

    @classmethod
    def from_config(cls, config: dict | None) -> OpenSetRule | None:
        """From :meth:`get_config`'s dict; ``None`` (saved before open-set support) gives ``None``."""
        if not config:
            return None
        return cls(str(config["score"]), float(config["threshold"]), float(config.get("accept", DEFAULT_ACCEPT)))
