"""Pictures of a trained classifier: VAE reconstructions, the latent space, the confusion matrix."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..plotting import pyplot, save_png


def save_reconstruction_grid(originals, reconstructions, path, columns: int = 8, dpi: int = 80) -> Path:
    """Two rows per block: original photos above their reconstructions. uint8 (N, S, S, 3) each."""
    originals, reconstructions = np.asarray(originals), np.asarray(reconstructions)
    if originals.shape != reconstructions.shape or originals.ndim != 4:
        raise ConfigError("originals and reconstructions must be image batches of the same shape")
    count = len(originals)
    columns = max(1, min(columns, count))
    blocks = -(-count // columns)
    plt = pyplot()
    fig, axes = plt.subplots(2 * blocks, columns, figsize=(1.3 * columns, 2.6 * blocks), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i in range(count):
        row, col = divmod(i, columns)
        axes[2 * row, col].imshow(originals[i])
        axes[2 * row + 1, col].imshow(reconstructions[i])
    axes[0, 0].set_title("photo", fontsize=7, loc="left")
    axes[1, 0].set_title("VAE", fontsize=7, loc="left")
    fig.tight_layout(pad=0.2)
    return save_png(fig, path, dpi=dpi)


def project_2d(vectors, method: str = "pca", seed: int = 0) -> np.ndarray:
    """2-D projection of (N, D) vectors with scikit-learn's PCA or t-SNE."""
    vectors = np.asarray(vectors, np.float64)
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(vectors)
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(max(2, min(30, (len(vectors) - 1) // 3)))
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(vectors)
    raise ConfigError(f"method must be 'pca' or 'tsne', got {method!r}")


def save_latent_projection(
    vectors, labels, path, method: str = "pca", title: str | None = None, dpi: int = 80, seed: int = 0
) -> Path:
    """Scatter plot of the 2-D projection of latent vectors, coloured by class."""
    points = project_2d(vectors, method, seed)
    labels = np.asarray([str(label) for label in labels])
    classes = sorted(set(labels))
    plt = pyplot()
    cmap = plt.get_cmap("gist_ncar" if len(classes) > 20 else "tab20")
    fig, ax = plt.subplots(figsize=(7, 6))
    for i, label in enumerate(classes):
        mask = labels == label
        ax.scatter(
            points[mask, 0],
            points[mask, 1],
            s=9,
            color=cmap(i / max(1, len(classes))),
            label=label,
            alpha=0.8,
            linewidths=0,
        )
    if len(classes) <= 20:
        ax.legend(fontsize=6, markerscale=1.5, loc="best")
    ax.set_title(title or f"Latent means ({method.upper()}), {len(classes)} classes", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    return save_png(fig, path, dpi=dpi)


def save_confusion_matrix(matrix, labels, path) -> Path:
    """The confusion matrix PNG, drawn by :mod:`gemcaption.evaluation.classification`."""
    from ..evaluation.classification import save_confusion_matrix_png

    save_confusion_matrix_png(np.asarray(matrix), list(labels), str(path))
    return Path(path)


def save_reliability_diagram(curves: dict, path, title: str = "reliability diagram", dpi: int = 100) -> Path:
    """Accuracy against confidence per bin for one or more probability sets.

    ``curves`` maps a legend name (e.g. ``"before (ECE 0.12)"``) to the bins of
    :func:`gemcaption.evaluation.classification.reliability_bins`; the diagonal is perfect calibration.
    """
    if not curves:
        raise ConfigError("no reliability curves to draw")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect")
    for name, bins in curves.items():
        ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], marker="o", markersize=3, label=name)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top-class probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return save_png(fig, path, dpi=dpi)


def save_score_histograms(groups: dict, threshold: float | None, path, title: str = "", dpi: int = 100) -> Path:
    """Overlaid histograms of an open-set score per image group (``{"known": scores, ...}``), with the threshold."""
    if not groups:
        raise ConfigError("no score groups to draw")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    values = np.concatenate([np.asarray(v, np.float64) for v in groups.values()])
    edges = np.linspace(values.min(), values.max(), 41)
    for name, scores in groups.items():
        ax.hist(np.asarray(scores, np.float64), bins=edges, alpha=0.5, density=True, label=f"{name} ({len(scores)})")
    if threshold is not None:
        ax.axvline(threshold, color="black", linestyle="--", linewidth=1, label="threshold")
    ax.set_xlabel("score (higher = more like a known stone)")
    ax.set_ylabel("density")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_png(fig, path, dpi=dpi)
