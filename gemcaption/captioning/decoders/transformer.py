"""Transformer caption decoder (the seed's model 1).

A small Transformer encoder block runs over the image feature grid; the decoder has causal
self-attention over the caption, cross-attention to the image and a feed-forward block.
Generation is incremental: each new token attends to cached keys and values of the prefix.
"""

import keras
from keras import ops

from .attention import CachedAttention
from .base import CaptionDecoder


@keras.saving.register_keras_serializable(package="gemcaption")
class TransformerDecoder(CaptionDecoder):
    def __init__(
        self, vocab_size, seq_len=25, embed_dim=512, ff_dim=512, num_heads=2, num_layers=1, dropout=0.1, **kwargs
    ):
        super().__init__(**kwargs)
        self.vocab_size, self.seq_len = int(vocab_size), int(seq_len)
        self.embed_dim, self.ff_dim = int(embed_dim), int(ff_dim)
        self.num_heads, self.num_layers, self.dropout_rate = int(num_heads), int(num_layers), float(dropout)
        head_dim = max(1, self.embed_dim // self.num_heads)
        # image side: project the grid, then one self-attention block
        self.image_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="image_norm")
        self.image_proj = keras.layers.Dense(self.embed_dim, activation="relu", name="image_proj")
        self.image_attention = CachedAttention(1, self.embed_dim, name="image_attention")
        self.image_out_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="image_out_norm")
        # text side
        self.token_embedding = keras.layers.Embedding(self.vocab_size, self.embed_dim, name="token_embedding")
        self.position_embedding = keras.layers.Embedding(self.seq_len, self.embed_dim, name="position_embedding")
        self.self_attention = [
            CachedAttention(self.num_heads, head_dim, name=f"self_attention_{i}") for i in range(self.num_layers)
        ]
        self.cross_attention = [
            CachedAttention(self.num_heads, head_dim, name=f"cross_attention_{i}") for i in range(self.num_layers)
        ]
        self.norms = [
            [keras.layers.LayerNormalization(epsilon=1e-5, name=f"norm_{i}_{j}") for j in range(3)]
            for i in range(self.num_layers)
        ]
        self.ffn_in = [
            keras.layers.Dense(self.ff_dim, activation="relu", name=f"ffn_in_{i}") for i in range(self.num_layers)
        ]
        self.ffn_out = [keras.layers.Dense(self.embed_dim, name=f"ffn_out_{i}") for i in range(self.num_layers)]
        self.dropout = keras.layers.Dropout(self.dropout_rate)
        self.output_dense = keras.layers.Dense(self.vocab_size, name="logits")

    # -- shared pieces ---------------------------------------------------------------------------
    def encode(self, features, training=False):
        """(B, G, C) feature grid -> (B, G, embed_dim) image memory."""
        x = self.image_proj(self.image_norm(features))
        return self.image_out_norm(x + self.image_attention(x))

    def _embed(self, tokens, positions):
        x = self.token_embedding(tokens) * ops.sqrt(ops.cast(self.embed_dim, "float32"))
        return x + self.position_embedding(positions)

    def _feed_forward(self, i, x, training):
        return self.norms[i][2](x + self.dropout(self.ffn_out[i](self.ffn_in[i](x)), training=training))

    # -- training: whole sequences --------------------------------------------------------------
    def packed_hidden_states(self, inputs, keep, training=False):
        """Hidden states (N, embed_dim) of the token positions ``keep`` (indices into the flattened
        (B, K, T) tokens). Attention weights use the full layout; every projection, the
        feed-forward block and the norms run only on the N kept tokens."""
        features, tokens = inputs
        b, k, t = ops.shape(tokens)[0], ops.shape(tokens)[1], ops.shape(tokens)[2]
        memory = self.encode(features, training)
        x = self._embed(ops.take(ops.reshape(tokens, (-1,)), keep), keep % t)
        x = self.dropout(x, training=training)
        for i in range(self.num_layers):
            x = self.norms[i][0](x + self.self_attention[i].call_packed(x, keep, b * k, t))
            # the K captions of an image query its memory together: its keys and values are projected once
            attended = self.cross_attention[i].call_packed(x, keep, b, k * t, memory=memory)
            x = self.norms[i][1](x + self.dropout(attended, training=training))
            x = self._feed_forward(i, x, training)
        return x

    def hidden_states(self, inputs, training=False):
        """``(features (B, G, C), tokens (B, K, T))`` -> (B*K, T, embed_dim)."""
        tokens = inputs[1]
        b, k, t = ops.shape(tokens)[0], ops.shape(tokens)[1], ops.shape(tokens)[2]
        every = ops.arange(b * k * t)
        return ops.reshape(self.packed_hidden_states(inputs, every, training), (b * k, t, self.embed_dim))

    # -- generation: one token at a time ------------------------------------------------------
    def start(self, features):
        """Decoding state for a batch of feature grids: cross-attention K/V and empty self caches."""
        memory = self.encode(features)
        b = ops.shape(memory)[0]
        state = {}
        for i in range(self.num_layers):
            state[f"cross_k{i}"], state[f"cross_v{i}"] = self.cross_attention[i].project_kv(memory)
            head_dim = self.self_attention[i].key_dim
            empty = ops.zeros((b, self.num_heads, self.seq_len, head_dim), "float32")
            state[f"self_k{i}"], state[f"self_v{i}"] = empty, empty
        return state

    def step(self, token, state, position):
        """Logits (B, vocab) for the token after ``token`` (B,) at ``position``, and the new state."""
        x = self._embed(token[:, None], ops.reshape(position, (1, 1)))
        state = dict(state)
        for i in range(self.num_layers):
            attended, state[f"self_k{i}"], state[f"self_v{i}"] = self.self_attention[i].step(
                x, state[f"self_k{i}"], state[f"self_v{i}"], position
            )
            x = self.norms[i][0](x + attended)
            crossed = self.cross_attention[i].attend_cached(x, state[f"cross_k{i}"], state[f"cross_v{i}"])
            x = self.norms[i][1](x + crossed)
            x = self._feed_forward(i, x, False)
        return self.output_dense(x)[:, 0, :], state

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "seq_len": self.seq_len,
            "embed_dim": self.embed_dim,
            "ff_dim": self.ff_dim,
            "num_heads": self.num_heads,
            "num_layers": self.num_layers,
            "dropout": self.dropout_rate,
        }
