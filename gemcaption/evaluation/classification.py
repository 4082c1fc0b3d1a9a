"""Classification metrics, a plain-text report, and a confusion-matrix PNG (:mod:`gemcaption.plotting`)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from ..errors import EvaluationError
from ..persistence import PathLike
from ..plotting import pyplot, save_png
from ._checks import check_same_length


def _plain(value):
    """numpy scalar -> Python scalar, so that the metrics are JSON-able."""
    return value.item() if isinstance(value, np.generic) else value


def classification_metrics(
    y_true: Sequence[Hashable], y_pred: Sequence[Hashable], labels: Sequence[Hashable] | None = None
) -> dict:
    """Accuracy, macro precision/recall/F1, weighted F1, per-class figures and the confusion matrix.

    Also ``chance_accuracy`` (1 / number of labels) and ``majority_accuracy`` (share of the commonest
    true class), to print beside the accuracy.

    ``labels`` fixes the class order (default: sorted union of true and predicted labels); every label
    of ``y_true`` and ``y_pred`` must be in it. Macro averages run over all of ``labels``, including
    classes absent from ``y_true``. A precision or recall whose denominator is 0 counts as 0.
    The confusion matrix is a list of lists, rows = true class, columns = predicted class.
    """
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

    y_true, y_pred = [_plain(y) for y in y_true], [_plain(y) for y in y_pred]
    check_same_length("y_true", y_true, "y_pred", y_pred)
    if not y_true:
        raise EvaluationError("no predictions to score")
    if labels is None:
        labels = sorted(set(y_true) | set(y_pred))  # type: ignore[type-var]  # labels of one sortable type
    labels = [_plain(label) for label in labels]
    unknown = (set(y_true) | set(y_pred)) - set(labels)
    if unknown:
        raise EvaluationError(f"labels not in the label list: {sorted(map(str, unknown))[:10]}")
    if len(set(labels)) != len(labels):
        raise EvaluationError("labels contains duplicates")
    # sklearn needs one type; map labels to their positions.
    index = {label: i for i, label in enumerate(labels)}
    t = np.array([index[y] for y in y_true])
    p = np.array([index[y] for y in y_pred])
    positions = list(range(len(labels)))
    precision, recall, f1, support = precision_recall_fscore_support(
        t, p, labels=positions, average=None, zero_division=0
    )
    return {
        "accuracy": float(np.mean(t == p)),
        "macro_precision": float(np.mean(precision)),
        "macro_recall": float(np.mean(recall)),
        "macro_f1": float(np.mean(f1)),
        "weighted_f1": float(f1_score(t, p, labels=positions, average="weighted", zero_division=0)),
        "chance_accuracy": 1.0 / len(labels),  # uniform random guess among the listed labels
        "majority_accuracy": float(np.max(support) / len(t)),  # always predicting the commonest true class
        "n_samples": len(t),
        "labels": labels,
        "per_class": [
            {"label": label, "precision": float(pr), "recall": float(rc), "f1": float(f), "support": int(s)}
            for label, pr, rc, f, s in zip(labels, precision, recall, f1, support)
        ],
        "confusion_matrix": confusion_matrix(t, p, labels=positions).tolist(),
    }


def format_report(metrics: dict, digits: int = 3) -> str:
    """Plain-text table of per-class precision/recall/F1/support, then the averages and accuracy."""
    rows = metrics["per_class"]
    width = max([len(str(r["label"])) for r in rows] + [len("weighted avg")])
    head = f"{'':<{width}}  {'precision':>9}  {'recall':>9}  {'f1':>9}  {'support':>7}"
    lines = [head, ""]
    for r in rows:
        lines.append(
            f"{str(r['label']):<{width}}  {r['precision']:>9.{digits}f}  {r['recall']:>9.{digits}f}"
            f"  {r['f1']:>9.{digits}f}  {r['support']:>7d}"
        )
    total = metrics["n_samples"]
    lines += [
        "",
        f"{'accuracy':<{width}}  {'':>9}  {'':>9}  {metrics['accuracy']:>9.{digits}f}  {total:>7d}",
        f"{'macro avg':<{width}}  {metrics['macro_precision']:>9.{digits}f}"
        f"  {metrics['macro_recall']:>9.{digits}f}  {metrics['macro_f1']:>9.{digits}f}  {total:>7d}",
        f"{'weighted avg':<{width}}  {'':>9}  {'':>9}  {metrics['weighted_f1']:>9.{digits}f}  {total:>7d}",
    ]
    if "chance_accuracy" in metrics:
        lines.append(
            f"(chance accuracy {metrics['chance_accuracy']:.{digits}f} uniform, "
            f"{metrics['majority_accuracy']:.{digits}f} majority class)"
        )
    return "\n".join(lines)


def save_confusion_matrix_png(
    matrix: ArrayLike, labels: Sequence[Hashable], path: PathLike, normalize: bool = True, title: str | None = None
) -> Path:
    """Write the confusion matrix (rows = true) as a PNG; with ``normalize`` each row sums to 1.

    The figure grows with the number of classes and the fonts shrink, so 68 classes stay readable;
    cell values are printed only up to 25 classes. Drawn off-screen by :func:`gemcaption.plotting.pyplot`,
    written atomically.
    """
    grid = np.asarray(matrix, dtype=np.float64)
    n = len(labels)
    if grid.shape != (n, n):
        raise EvaluationError(f"confusion matrix has shape {grid.shape}, expected ({n}, {n})")
    if normalize:
        sums = grid.sum(axis=1, keepdims=True)
        grid = np.divide(grid, sums, out=np.zeros_like(grid), where=sums > 0)
    side = max(5.0, 0.2 * n + 3.0)
    font = 9 if n <= 25 else 6 if n <= 50 else 5
    figure = pyplot().figure(figsize=(side, side * 0.92), dpi=110 if n <= 25 else 150)
    axes = figure.add_subplot()
    image = axes.imshow(grid, cmap="Blues", vmin=0, vmax=1 if normalize else None, interpolation="nearest")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.02)
    names = [str(label) for label in labels]
    axes.set_xticks(range(n), names, rotation=90, fontsize=font)
    axes.set_yticks(range(n), names, fontsize=font)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title or ("confusion matrix (rows normalised)" if normalize else "confusion matrix"))
    if n <= 25:
        threshold = grid.max() / 2 if grid.size else 0
        for i in range(n):
            for j in range(n):
                text = f"{grid[i, j]:.2f}" if normalize else f"{int(grid[i, j])}"
                axes.text(
                    j,
                    i,
                    text,
                    ha="center",
                    va="center",
                    fontsize=font - 1,
                    color="white" if grid[i, j] > threshold else "black",
                )
    figure.tight_layout()
    return save_png(figure, path)


def reliability_bins(probabilities: ArrayLike, y_true: Sequence[int], bins: int = 15) -> list[dict]:
    """Equal-width confidence bins of the top-class probability: for each non-empty bin its
    ``lower``/``upper`` edges, ``count``, mean ``confidence`` and ``accuracy`` (``y_true`` = class indices)."""
    p = np.asarray(probabilities, np.float64)
    y = np.asarray(y_true)
    if p.ndim != 2 or len(p) != len(y):
        raise EvaluationError(f"need (N, K) probabilities and N labels, got {p.shape} and {y.shape}")
    if len(y) == 0:
        raise EvaluationError("no predictions to score")
    if bins < 1:
        raise EvaluationError(f"bins must be at least 1, got {bins}")
    confidence = p.max(axis=1)
    correct = p.argmax(axis=1) == y
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    out = []
    for b in range(bins):
        mask = which == b
        if mask.any():
            out.append(
                {
                    "lower": float(edges[b]),
                    "upper": float(edges[b + 1]),
                    "count": int(mask.sum()),
                    "confidence": float(confidence[mask].mean()),
                    "accuracy": float(correct[mask].mean()),
                }
            )
    return out


def expected_calibration_error(probabilities: ArrayLike, y_true: Sequence[int], bins: int = 15) -> float:
    """ECE: the count-weighted mean gap |accuracy - confidence| over equal-width confidence bins
    (Guo et al. 2017; 15 bins by default). 0 for a perfectly calibrated classifier."""
    rows = reliability_bins(probabilities, y_true, bins)
    total = sum(r["count"] for r in rows)
    return float(sum(r["count"] * abs(r["accuracy"] - r["confidence"]) for r in rows) / total)
