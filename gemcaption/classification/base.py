"""What every gemstone classifier model shares: the array interface, label checks, model files.

A model takes uint8 RGB images of its own ``image_size`` (N, S, S, 3) and integer labels 0..K-1:
``fit(images, labels, num_classes, validation=None)``, ``predict_proba(images) -> (N, K)``,
``get_config()`` (constructor arguments), ``saved_state()`` (what else the manifest keeps, e.g.
``num_classes``), ``write_files(directory)``, ``save(directory)`` and ``load(directory)``.
:class:`~gemcaption.classification.GemClassifier` turns file names and class names into those arrays.

Every model directory is written through :func:`save_model_dir` (or :func:`write_model_dir` inside
a classifier being saved): atomically, with a ``manifest.json`` (format
``gemcaption-classifier-model``, version 2, ``kind`` = the model class's kind, ``config`` =
``{"constructor": get_config(), "num_classes": K, ...}``) and the checksums of the model's files.
:func:`read_model_file` also reads the previous layout (a ``model.json``, format version 1) so old
directories keep loading.

Nothing loaded runs code: model files are JSON, ``.npz`` read with ``allow_pickle=False`` (see
:mod:`.forest` and :mod:`.svm_arrays`) and Keras files read by :func:`read_keras_file`
(``safe_mode=True``, every failure a :class:`ModelError`). The one exception is the pickled
``estimator.joblib`` of directories saved by earlier releases (RF and SVM): it is refused unless
the caller trusts it, with ``trust=True`` (:func:`load_model_dir`, ``DescriptorClassifier.load``),
``with trusted_loading():`` around any load, or ``gemcaption classify predict --trust``.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..captioning.saving import read_keras_file
from ..errors import DatasetError, ImageError, ModelError, UnknownNameError
from ..persistence import has_manifest, read_json, read_manifest, resolve_directory, save_directory, write_manifest
from .kinds import MODEL_CLASSES

__all__ = ["read_keras_file", "trusted_loading", "trusting", "load_model_dir", "read_model_file"]

_TRUST: contextvars.ContextVar[bool] = contextvars.ContextVar("gemcaption_trust_pickles", default=False)


@contextlib.contextmanager
def trusted_loading(trust: bool = True) -> Iterator[None]:
    """Within the block, loads accept the pickled ``estimator.joblib`` of earlier releases
    (pickle runs code: only for directories you made yourself). ``trust=False`` changes nothing."""
    token = _TRUST.set(bool(trust) or _TRUST.get())
    try:
        yield
    finally:
        _TRUST.reset(token)


def trusting(trust: bool | None = None) -> bool:
    """Whether a load may read a pickle: ``trust`` when given, else the enclosing :func:`trusted_loading`."""
    return _TRUST.get() if trust is None else bool(trust)


MODEL_FORMAT = "gemcaption-classifier-model"
MODEL_FORMAT_VERSION = 2
LEGACY_MODEL_FILE = "model.json"  # format version 1
MODEL_KINDS = MODEL_CLASSES  # the name this registry had (a dict filled by decorators)


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


def _manifest_config(model) -> dict:
    return {"constructor": model.get_config(), **model.saved_state()}


def save_model_dir(model, directory) -> Path:
    """Atomically write ``model`` to ``directory``: its files (``model.write_files(staging)``),
    then the manifest (``model.kind``, ``{"constructor": get_config(), **saved_state()}``, checksums),
    then the swap into place, so a crash leaves the previous model loadable. Every model's
    ``save`` is this."""
    return save_directory(
        directory, MODEL_FORMAT, MODEL_FORMAT_VERSION, model.kind, _manifest_config(model), model.write_files
    )


def write_model_dir(model, directory) -> Path:
    """``model``'s files and manifest in a new ``directory`` inside a directory being saved
    atomically (a :class:`GemClassifier`'s staging directory): no second swap."""
    directory = Path(directory)
    directory.mkdir(parents=True)
    model.write_files(directory)
    write_manifest(directory, MODEL_FORMAT, MODEL_FORMAT_VERSION, model.kind, _manifest_config(model))
    return directory


class SavedModel:
    """What every model class shares for saving: :meth:`save` through :func:`save_model_dir` and the
    ``num_classes`` the manifest keeps. A model class sets ``kind`` and defines ``get_config()``,
    ``write_files(directory)`` and ``load(directory)``; it is untrained while ``num_classes`` is None."""

    kind = ""
    num_classes: int | None

    def saved_state(self) -> dict:
        """What the manifest keeps beside the constructor arguments."""
        return {"num_classes": self.num_classes}

    def save(self, directory) -> Path:
        """The manifest and the model's files, written atomically to ``directory``."""
        if self.num_classes is None:
            raise ModelError(f"nothing to save: the {self.kind} model is not trained yet")
        return save_model_dir(self, directory)

    def config(self) -> dict:
        """The name :meth:`get_config` had."""
        return self.get_config()  # type: ignore[attr-defined]


def read_model_file(directory) -> dict:
    """``{"kind", "config" (constructor arguments), **extra}`` of a model directory, from its
    manifest (checksums verified) or a version-1 ``model.json``; ModelError when missing or broken."""
    path = resolve_directory(directory, must_exist=False)
    if has_manifest(path):
        manifest = read_manifest(path, MODEL_FORMAT, (MODEL_FORMAT_VERSION,))
        extra = {key: value for key, value in manifest.config.items() if key != "constructor"}
        constructor = manifest.config.get("constructor") or {}
        if not isinstance(constructor, dict):
            raise ModelError(f"damaged: {path / 'manifest.json'} (the constructor config is not an object)")
        payload = {"kind": manifest.kind, "config": dict(constructor), **extra}
    elif (path / LEGACY_MODEL_FILE).is_file():
        payload = read_json(path / LEGACY_MODEL_FILE)
        if not isinstance(payload, dict) or not isinstance(payload.get("config"), dict):
            raise ModelError(f"damaged: {path / LEGACY_MODEL_FILE} (no model config)")
    else:
        raise ModelError(f"{directory}: not a gemcaption classifier directory (no manifest.json)")
    try:
        MODEL_CLASSES.canonical(str(payload.get("kind")))
    except UnknownNameError as exc:
        raise ModelError(f"{directory}: {exc}") from None
    return payload


def load_model_dir(directory, trust: bool = False):
    """Load whichever model kind ``directory`` holds; ``trust=True`` also reads the pickled
    ``estimator.joblib`` of earlier releases (see the module docstring)."""
    payload = read_model_file(directory)
    with trusted_loading(trust):
        return MODEL_CLASSES.get(payload["kind"]).load(directory)


def saved_num_classes(payload: dict, directory) -> int:
    """The ``num_classes`` a model file records, checked (an int >= 2); ModelError otherwise."""
    value = payload.get("num_classes")
    if not isinstance(value, int) or isinstance(value, bool) or value < 2:
        raise ModelError(f"damaged: {Path(directory) / 'manifest.json'} (num_classes is {value!r})")
    return value


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
        if not isinstance(config.get(key), list) or not all(isinstance(item, str) for item in config[key]):
            raise ModelError(f"damaged: {Path(directory) / 'manifest.json'} ({key} is not a list of names)")
        config[key] = tuple(config[key])
    if encoder is not None:
        config["encoder"] = encoder
    return payload, config
