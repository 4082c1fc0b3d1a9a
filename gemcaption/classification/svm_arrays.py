"""A fitted SVM as plain arrays and JSON numbers, so the ``svm`` classifier is saved without pickle.

:func:`svm_arrays` takes a fitted ``make_pipeline(StandardScaler(), SVC(probability=True))`` apart
into NumPy arrays (one ``.npz``, loaded with ``allow_pickle=False``) and a small JSON-able dict of
kernel parameters (kept in the model's manifest). :class:`SVMArrays` answers ``predict_proba``
from them the way libsvm does, written out here in NumPy rather than calling scikit-learn's
private libsvm bindings:

1. standardise the features as the scaler does (float32 input in float32, as in scikit-learn);
2. one decision value per class pair ``i < j``: the kernel against the support vectors of both
   classes weighted by their dual coefficients, plus the pair's intercept;
3. Platt's sigmoid ``1 / (1 + exp(A f + B))`` of each value, clipped to ``[1e-7, 1 - 1e-7]``;
4. pairwise coupling (Wu, Lin and Weng 2004, method 2) into one probability per class, iterated
   until every row is within ``0.005 / K`` of the fixed point (at most ``max(100, K)`` rounds),
   for two classes too (scikit-learn's libsvm does; this is measured against it in the tests).
"""

from __future__ import annotations

import numpy as np

from ..errors import ModelError

ARRAY_NAMES = ("mean", "scale", "support_vectors", "dual_coef", "intercept", "n_support", "prob_a", "prob_b", "classes")
KERNELS = ("rbf", "linear", "poly", "sigmoid")
MIN_PROBABILITY = 1e-7


def svm_arrays(pipeline) -> tuple[dict[str, np.ndarray], dict]:
    """``(arrays, params)`` of a fitted scaler + ``SVC(probability=True)`` pipeline (or of an
    :class:`SVMArrays`); :class:`ModelError` for anything else (e.g. a calibrated SVM)."""
    if isinstance(pipeline, SVMArrays):
        return dict(pipeline.arrays), dict(pipeline.params)
    try:
        scaler, svc = pipeline[0], pipeline[-1]
        probability_a, probability_b = svc._probA, svc._probB
        arrays = {
            "mean": np.asarray(scaler.mean_, np.float64),
            "scale": np.asarray(scaler.scale_, np.float64),
            "support_vectors": np.asarray(svc.support_vectors_, np.float64),
            "dual_coef": np.asarray(svc._dual_coef_, np.float64),  # libsvm's sign convention
            "intercept": np.asarray(svc._intercept_, np.float64),
            "n_support": np.asarray(svc._n_support, np.int64),
            "prob_a": np.asarray(probability_a, np.float64),
            "prob_b": np.asarray(probability_b, np.float64),
            "classes": np.asarray(svc.classes_).astype(np.int64),
        }
        params = {
            "kernel": str(svc.kernel),
            "gamma": float(svc._gamma),
            "degree": int(svc.degree),
            "coef0": float(svc.coef0),
        }
    except (AttributeError, TypeError, IndexError, KeyError) as exc:
        raise ModelError(f"this SVM cannot be saved as arrays ({exc.__class__.__name__}: {exc})") from None
    if arrays["prob_a"].size == 0:
        raise ModelError("this SVM has no probability model (fit it with probability=True)")
    return arrays, params


class SVMArrays:
    """``predict_proba`` of an SVM pipeline from the arrays and parameters of :func:`svm_arrays`.
    Every shape and parameter is checked here: a damaged file gives :class:`ModelError`."""

    def __init__(self, arrays: dict[str, np.ndarray], params: dict):
        missing = [name for name in ARRAY_NAMES if name not in arrays]
        if missing:
            raise ModelError(f"the SVM arrays lack {', '.join(missing)}")
        self.arrays = {name: np.asarray(arrays[name]) for name in ARRAY_NAMES}
        self.params = self._checked_params(params)
        self._check_shapes()
        self.classes_ = self.arrays["classes"]

    @staticmethod
    def _checked_params(params) -> dict:
        if not isinstance(params, dict) or params.get("kernel") not in KERNELS:
            raise ModelError(f"the SVM parameters name no supported kernel ({KERNELS})")
        try:
            checked = {
                "kernel": params["kernel"],
                "gamma": float(params["gamma"]),
                "degree": int(params["degree"]),
                "coef0": float(params["coef0"]),
            }
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"the SVM parameters are incomplete ({exc.__class__.__name__}: {exc})") from None
        if not all(np.isfinite([checked["gamma"], checked["coef0"]])):
            raise ModelError("the SVM parameters are not finite")
        return checked

    def _check_shapes(self) -> None:
        a = self.arrays
        k = len(a["classes"])
        pairs = k * (k - 1) // 2
        for name in ARRAY_NAMES:
            if a[name].dtype.kind not in "fiu":
                raise ModelError(f"the SVM array {name} holds {a[name].dtype}, not numbers")
        sv = a["support_vectors"]
        problems = []
        if k < 2 or a["classes"].ndim != 1:
            problems.append("fewer than two classes")
        elif sv.ndim != 2 or a["mean"].shape != (sv.shape[1],) or a["scale"].shape != (sv.shape[1],):
            problems.append("support vectors and scaler disagree")
        elif a["n_support"].shape != (k,) or a["n_support"].min() < 0 or a["n_support"].sum() != len(sv):
            problems.append("support vector counts disagree")
        elif a["dual_coef"].shape != (k - 1, len(sv)):
            problems.append("dual coefficients have the wrong shape")
        elif any(a[name].shape != (pairs,) for name in ("intercept", "prob_a", "prob_b")):
            problems.append("pairwise parameters have the wrong length")
        elif not all(np.isfinite(a[name]).all() for name in ARRAY_NAMES) or (a["scale"] == 0).any():
            problems.append("non-finite or zero values")
        if problems:
            raise ModelError(f"the SVM arrays are inconsistent: {problems[0]}")

    def _standardised(self, x) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != len(self.arrays["mean"]):
            raise ModelError(f"the SVM expects {len(self.arrays['mean'])} features per row, got shape {x.shape}")
        if x.dtype == np.float32:  # StandardScaler works in float32 on float32 input
            mean, scale = self.arrays["mean"].astype(np.float32), self.arrays["scale"].astype(np.float32)
            return ((x - mean) / scale).astype(np.float64)
        return (x.astype(np.float64) - self.arrays["mean"]) / self.arrays["scale"]

    def _kernel(self, z: np.ndarray) -> np.ndarray:
        sv, p = self.arrays["support_vectors"], self.params
        if p["kernel"] == "rbf":
            rows = [np.exp(-p["gamma"] * ((sv - row) ** 2).sum(axis=1)) for row in z]
            return np.array(rows).reshape(len(z), len(sv))
        dot = z @ sv.T
        if p["kernel"] == "linear":
            return dot
        if p["kernel"] == "poly":
            return (p["gamma"] * dot + p["coef0"]) ** p["degree"]
        return np.tanh(p["gamma"] * dot + p["coef0"])

    def decision_values(self, x) -> np.ndarray:
        """libsvm's one-vs-one decision values ``(N, K(K-1)/2)``, pairs ``(0,1), (0,2), ..., (K-2,K-1)``."""
        kernel = self._kernel(self._standardised(x))
        coef, counts = self.arrays["dual_coef"], self.arrays["n_support"]
        starts = np.concatenate([[0], np.cumsum(counts)])
        k = len(counts)
        values, pair = [], 0
        for i in range(k):
            for j in range(i + 1, k):
                si, sj = slice(starts[i], starts[i + 1]), slice(starts[j], starts[j + 1])
                value = kernel[:, si] @ coef[j - 1, si] + kernel[:, sj] @ coef[i, sj]
                values.append(value + self.arrays["intercept"][pair])
                pair += 1
        return np.stack(values, axis=1)

    def predict_proba(self, x) -> np.ndarray:
        """Class probabilities ``(N, len(classes_))`` as libsvm's ``predict_probability`` gives them."""
        f = self.decision_values(x)
        fab = f * self.arrays["prob_a"] + self.arrays["prob_b"]
        with np.errstate(over="ignore"):
            sigmoid = np.where(fab >= 0, np.exp(-np.abs(fab)) / (1 + np.exp(-np.abs(fab))), 1 / (1 + np.exp(fab)))
        pairwise = np.clip(sigmoid, MIN_PROBABILITY, 1 - MIN_PROBABILITY)
        k = len(self.classes_)
        r = np.zeros((len(f), k, k))
        pair = 0
        for i in range(k):
            for j in range(i + 1, k):
                r[:, i, j], r[:, j, i] = pairwise[:, pair], 1 - pairwise[:, pair]
                pair += 1
        return couple_pairwise(r)


def couple_pairwise(r: np.ndarray) -> np.ndarray:
    """Class probabilities ``(N, K)`` from pairwise ones ``r[n, i, j] = P(i | i or j)`` by the
    fixed-point iteration of Wu, Lin and Weng (2004, method 2), one row at a time as libsvm does."""
    n, k = r.shape[:2]
    q = -r.transpose(0, 2, 1) * r  # off-diagonal: -r[j, i] r[i, j]
    diagonal = (r.transpose(0, 2, 1) ** 2).sum(axis=2) - np.einsum("nii->ni", r) ** 2
    q[:, np.arange(k), np.arange(k)] = diagonal
    p = np.full((n, k), 1.0 / k)
    eps = 0.005 / k
    active = np.ones(n, bool)
    for _ in range(max(100, k)):
        qp = np.einsum("ntj,nj->nt", q, p)
        pqp = (p * qp).sum(axis=1)
        active &= np.abs(qp - pqp[:, None]).max(axis=1) >= eps
        if not active.any():
            break
        rows = np.flatnonzero(active)
        qa, pa, qpa, pqpa = q[rows], p[rows], qp[rows], pqp[rows]
        for t in range(k):
            qtt = qa[:, t, t]
            diff = (pqpa - qpa[:, t]) / qtt
            pa[:, t] += diff
            pqpa = (pqpa + diff * (diff * qtt + 2 * qpa[:, t])) / (1 + diff) / (1 + diff)
            qpa = (qpa + diff[:, None] * qa[:, t, :]) / (1 + diff)[:, None]
            pa /= (1 + diff)[:, None]
        p[rows] = pa
    return p
