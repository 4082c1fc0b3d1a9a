"""Caption decoders, chosen by name from :data:`DECODERS`. Each is a Keras model with the same interface:

- ``call((features, tokens))``: features (B, G, C), tokens (B, K, T) -> logits (B, K, T, vocab);
  all K captions of an image share one encoding of it, so a batch is one optimizer step.
- ``hidden_states((features, tokens))`` -> (B*K, T, dim); training computes the output layer only
  where the target is a real token (see :mod:`gemcaption.captioning.decoders.base`).
- ``start(features) -> state`` and ``step(token, state, position) -> (logits, state)`` for
  incremental generation (every state tensor has the batch on axis 0, so beams can reorder it).

Decoders are registered lazily (``"module:Class"``), so this package imports no Keras by itself.
To add one: subclass :class:`~gemcaption.captioning.decoders.base.CaptionDecoder` in
``decoders/<name>.py`` (registered as Keras-serializable, package ``"gemcaption"``) and register it below.
"""

from __future__ import annotations

import inspect
from typing import Any

from ...registry import Registry

DECODERS: Registry[Any] = Registry("decoder")
DECODERS.register("transformer", "gemcaption.captioning.decoders.transformer:TransformerDecoder")
DECODERS.register("lstm", "gemcaption.captioning.decoders.lstm:LSTMDecoder")
DECODERS.register("attention_lstm", "gemcaption.captioning.decoders.attention_lstm:AttentionLSTMDecoder")

# DecoderConfig fields that only some decoders use (the LSTMs have no attention heads or layers).
OPTIONAL_SETTINGS = ("num_heads", "num_layers")


def decoder_class(name: str):
    """The Keras model class registered under ``name``; UnknownNameError listing the choices otherwise."""
    return DECODERS.get(name)


def build_decoder(name: str, **config):
    """A decoder by name (``transformer``, ``lstm`` or ``attention_lstm``) with the given hyper-parameters; settings
    in :data:`OPTIONAL_SETTINGS` that the decoder does not take are left out."""
    cls = decoder_class(name)
    accepted = inspect.signature(cls.__init__).parameters
    config = {k: v for k, v in config.items() if k in accepted or k not in OPTIONAL_SETTINGS}
    return cls(**config)


__all__ = ["DECODERS", "OPTIONAL_SETTINGS", "build_decoder", "decoder_class"]
