"""EfficientNetB0 from ``keras.applications`` (no top) with explicit, reported weight resolution."""

from __future__ import annotations

import uuid

from ...errors import WeightsError
from .base import Encoder
from .weights import fetch_keras_imagenet_weights, file_fingerprint

NOTOP_FILENAME = "efficientnetb0_notop.h5"


def _notop_hash() -> str | None:
    try:  # Keras keeps the published file hashes next to the architecture
        from keras.src.applications.efficientnet import WEIGHTS_HASHES

        return WEIGHTS_HASHES["b0"][1]
    except (ImportError, KeyError, IndexError):
        return None


def build_efficientnetb0(image_size: int, weights, trainable: bool = False) -> Encoder:
    """EfficientNetB0 encoder. ``weights``: "imagenet" (Keras download/cache), None (random) or a Path.

    The Keras model rescales raw 0..255 RGB itself and outputs the (N, h, w, 1280) top activation.
    """
    import keras

    model = keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=(image_size, image_size, 3))
    if weights == "imagenet":
        path = fetch_keras_imagenet_weights(NOTOP_FILENAME, _notop_hash())
        _load(model, path)
        source, weights_id = f"efficientnetb0: ImageNet weights (Keras download, {path})", "imagenet-keras"
    elif weights is None:
        source, weights_id = "efficientnetb0: random weights (not pretrained)", f"random-{uuid.uuid4().hex}"
    else:
        _load(model, weights)
        source = f"efficientnetb0: local weights file {weights}"
        weights_id = f"file-{file_fingerprint(weights)}"
    model.trainable = bool(trainable)
    return Encoder("efficientnetb0", model, image_size, source, weights_id)


def _load(model, path) -> None:
    try:
        model.load_weights(str(path))
    except Exception as exc:
        raise WeightsError(f"could not load EfficientNetB0 weights from {path}: {exc}") from exc
