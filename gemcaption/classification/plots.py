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
