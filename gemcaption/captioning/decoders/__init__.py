"""Caption decoders, chosen by name. Each is a Keras model with the same interface:

- ``call((features, tokens))``: features (B, G, C), tokens (B, K, T) -> logits (B, K, T, vocab);
  all K captions of an image share one encoding of it, so a batch is one optimizer step.
- ``hidden_states((features, tokens))`` -> (B*K, T, dim); training computes the output layer only
  where the target is a real token (see :mod:`gemcaption.captioning.decoders.base`).
- ``start(features) -> state`` and ``step(token, state, position) -> (logits, state)`` for
  incremental generation (every state tensor has the batch on axis 0, so beams can reorder it).
"""
from .lstm import LSTMDecoder
from .transformer import TransformerDecoder

DECODERS = {"transformer": TransformerDecoder, "lstm": LSTMDecoder}


def build_decoder(name: str, **config):
    """A decoder by name (``transformer`` or ``lstm``) with the given hyper-parameters."""
    try:
        cls = DECODERS[name]
    except KeyError:
        raise ValueError(f"unknown decoder {name!r}; choose one of: {', '.join(DECODERS)}") from None
    if cls is LSTMDecoder:
        config = {k: v for k, v in config.items() if k not in ("num_heads", "num_layers")}
    return cls(**config)
