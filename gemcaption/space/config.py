"""The settings of a caption-embedding space (:class:`SpaceConfig`), stated once.

Like the captioner's configurations (:mod:`gemcaption.captioning.config`): a frozen dataclass that
checks its values, ``get_config()`` / ``from_config()``; importing it imports no TensorFlow. The
defaults are the best variant of ``benchmarks/retrieval_quality.py`` on Flickr8k dev.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..captioning.config import DECAYS, _Config, _integer, _number
from ..errors import ConfigError

TEXT_ENCODERS = ("mean", "gru", "transformer")
POOLINGS = ("mean", "attention")


@dataclass(frozen=True)
class SpaceConfig(_Config):
    """A caption-embedding space and how it is trained (defaults: the best Flickr8k dev variant).$

    Model: ``text_encoder`` ("mean" pooled word embeddings, "gru" bidirectional, or a one-layer
    "transformer"), ``word_dim`` word embeddings, ``image_pooling`` over the feature grid ("mean" or
    learned "attention"), an MLP of ``hidden_dim`` to the ``dim``-dimensional space, ``seq_len``
    tokens per caption, words seen ``min_count`` times. Loss: symmetric InfoNCE at temperature
    ``temperature`` (learned when ``learn_temperature``), plus ``hard_negative_weight`` times the
    max-violation hinge (margin ``margin``) of the hardest in-batch negatives. Training: AdamW with
    the project's warm-up schedule, early stopping on dev text->image R@1+R@5+R@10 after
    ``patience`` epochs without improvement (best weights restored).
    """

    text_encoder: str = "mean"
    image_pooling: str = "mean"
    dim: int = 256
    word_dim: int = 300
    hidden_dim: int = 1024
    seq_len: int = 32
    vocab_size: int = 10_000
    min_count: int = 3
    dropout: float = 0.3
    temperature: float = 0.07
    learn_temperature: bool = False
    hard_negative_weight: float = 0.5
    margin: float = 0.2
    epochs: int = 15
    batch_size: int = 256
    learning_rate: float = 1e-3
    weight_decay: float = 0.05
    warmup_fraction: float = 0.1
    decay: str = "cosine"
    patience: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.text_encoder not in TEXT_ENCODERS:
            raise ConfigError(
                f"SpaceConfig.text_encoder must be one of {', '.join(TEXT_ENCODERS)}, got {self.text_encoder!r}"
            )
        if self.image_pooling not in POOLINGS:
            raise ConfigError(
                f"SpaceConfig.image_pooling must be one of {', '.join(POOLINGS)}, got {self.image_pooling!r}"
            )
        if self.decay not in DECAYS:
            raise ConfigError(f"SpaceConfig.decay must be one of {', '.join(DECAYS)}, got {self.decay!r}")
        for name, low in (
            ("dim", 2),
            ("word_dim", 2),
            ("hidden_dim", 1),
            ("seq_len", 2),
            ("vocab_size", 5),
            ("min_count", 1),
            ("epochs", 1),
            ("batch_size", 2),
            ("patience", 0),
            ("seed", 0),
        ):
            self._set(name, _integer("SpaceConfig", name, getattr(self, name), low))
        self._set("dropout", _number("SpaceConfig", "dropout", self.dropout, 0.0, 0.9))
        self._set("temperature", _number("SpaceConfig", "temperature", self.temperature, 0.0, 1.0, low_open=True))
        self._set(
            "hard_negative_weight", _number("SpaceConfig", "hard_negative_weight", self.hard_negative_weight, 0.0)
        )
        self._set("margin", _number("SpaceConfig", "margin", self.margin, 0.0, 2.0))
        self._set("learning_rate", _number("SpaceConfig", "learning_rate", self.learning_rate, 0.0, low_open=True))
        self._set("weight_decay", _number("SpaceConfig", "weight_decay", self.weight_decay, 0.0))
        self._set("warmup_fraction", _number("SpaceConfig", "warmup_fraction", self.warmup_fraction, 0.0, 1.0))
        if not isinstance(self.learn_temperature, bool):
            raise ConfigError(f"SpaceConfig.learn_temperature must be true or false, got {self.learn_temperature!r}")


SMALL_DATA_PAIRS = 5_000


def default_space_config(pairs: int) -> SpaceConfig:
    """``SpaceConfig()`` for ``pairs`` (image, caption) training pairs; below :data:`SMALL_DATA_PAIRS`
    (a catalogue of a few hundred photos, which batches of 256 would give a handful of optimizer
    steps) batches of 64, up to 40 epochs and patience 8, the catalogue setting of
    ``benchmarks/retrieval_quality.py``."""
    if pairs < SMALL_DATA_PAIRS:
        return SpaceConfig(batch_size=64, epochs=40, patience=8)
    return SpaceConfig()


__all__ = ["POOLINGS", "SMALL_DATA_PAIRS", "TEXT_ENCODERS", "SpaceConfig", "default_space_config"]
