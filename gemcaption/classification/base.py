"""What every gemstone classifier model shares: the array interface, label checks, model files.

A model takes uint8 RGB images of its own ``image_size`` (N, S, S, 3) and integer labels 0..K-1:
``fit(images, labels, num_classes, validation=None)``, ``predict_proba(images) -> (N, K)``,
``save(directory)`` and ``load(directory)``. :class:`~gemcaption.classification.GemClassifier`
turns file names and class names into those arrays.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ..errors import DatasetError, ImageError, ModelError

MODEL_FILE = "model.json"
MODEL_KINDS: dict[str, type] = {}


def register_model(kind: str):
    """Class decorator: make a model class loadable by its ``kind`` name."""
    def decorate(cls):
        cls.kind = kind
        MODEL_KINDS[kind] = cls
        return cls
    return decorate


def check_images(images, image_size: int) -> np.ndarray:
    """``images`` as uint8 (N, S, S, 3) with S = ``image_size``; raise ImageError otherwise."""
    array = np.asarray(images)
    if array.ndim != 4 or array.shape[1:] != (image_size, image_size, 3):
        raise ImageError(f"expected images of shape (N, {image_size}, {image_size}, 3), got {array.shape}")
    if len(array) == 0:
        raise ImageError("no images given")
    if array.dtype != np.uint8:
        array = np.clip(np.rint(array), 0, 255).astype(np.uint8)
    return array


def check_labels(labels, count: int, num_classes: int) -> np.ndarray:
    """Integer labels in 0..num_classes-1, one per image; at least two classes present."""
    y = np.asarray(labels)
    if y.ndim != 1 or len(y) != count:
        raise DatasetError(f"need one label per image: {count} images, labels of shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise DatasetError("labels must be integer class indices")
    if num_classes < 2:
        raise DatasetError(f"need at least 2 classes, got {num_classes}")
    if y.min() < 0 or y.max() >= num_classes:
        raise DatasetError(f"labels must lie in 0..{num_classes - 1}")
    if len(np.unique(y)) < 2:
        raise DatasetError("the training images all have the same label: need at least two classes")
    return y.astype(np.int64)


def write_model_file(directory, kind: str, config: dict, extra: dict | None = None) -> Path:
    """Write ``model.json`` (kind + constructor config) into ``directory`` (created)."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    payload = {"kind": kind, "config": config, **(extra or {})}
    (path / MODEL_FILE).write_text(json.dumps(payload, indent=2, sort_keys=True))
    return path


def read_model_file(directory) -> dict:
    """The parsed ``model.json`` of a model directory; ModelError when missing or broken."""
    path = Path(directory) / MODEL_FILE
    if not path.is_file():
        raise ModelError(f"{directory}: not a gemcaption classifier directory (no {MODEL_FILE})")
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: unreadable model description ({exc})") from exc
    if payload.get("kind") not in MODEL_KINDS:
        raise ModelError(f"{path}: unknown model kind {payload.get('kind')!r}; "
                         f"known: {sorted(MODEL_KINDS)}")
    return payload


def load_model_dir(directory):
    """Load whichever registered model kind ``directory`` holds."""
    payload = read_model_file(directory)
    return MODEL_KINDS[payload["kind"]].load(directory)


class Timer:
    """Context manager measuring wall-clock seconds into ``.seconds``."""

    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        return False


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of a 2-D float array."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def config_from_model_file(directory, encoder=None, tuple_keys=("views",)) -> tuple[dict, dict]:
    """``(payload, constructor config)`` of a saved encoder-based model; ``encoder`` overrides the saved one."""
    payload = read_model_file(directory)
    config = dict(payload["config"])
    for key in tuple_keys:
        config[key] = tuple(config[key])
    if encoder is not None:
        config["encoder"] = encoder
    return payload, config
