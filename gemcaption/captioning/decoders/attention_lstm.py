"""Attention LSTM caption decoder: soft attention over the feature grid, as in Show, Attend and Tell.

The grid (B, G, C) is projected to annotation vectors (B, G, embed_dim). Before each word, the
previous LSTM state scores every grid cell (additive attention: ``v . tanh(W_a a_i + W_h h)``),
the softmax of those scores weights the annotations into a context vector, and a sigmoid gate of
the state scales it (Xu et al. 2015, section 4.2.1). The LSTM reads the word embedding and the
gated context; the output layer sees ``tanh(L_h h + L_z z + E y)`` (the paper's deep output).
The initial state comes from the mean annotation.

Training unrolls the same step the generator uses over the caption, so the full pass and
incremental decoding compute the same numbers. The K captions of an image attend to one copy of
its annotations (no repeat over K). The paper's doubly stochastic attention penalty is not used.
"""

import keras
from keras import ops

from .base import CaptionDecoder


@keras.saving.register_keras_serializable(package="gemcaption")
class AttentionLSTMDecoder(CaptionDecoder):
    def __init__(self, vocab_size, seq_len=25, embed_dim=512, ff_dim=512, dropout=0.1, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.seq_len = int(vocab_size), int(seq_len)
        self.embed_dim, self.ff_dim, self.dropout_rate = int(embed_dim), int(ff_dim), float(dropout)
        self.image_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="image_norm")
        self.image_proj = keras.layers.Dense(self.embed_dim, activation="relu", name="image_proj")
        self.init_h = keras.layers.Dense(self.ff_dim, activation="tanh", name="init_h")
        self.init_c = keras.layers.Dense(self.ff_dim, name="init_c")
        self.attention_keys = keras.layers.Dense(self.embed_dim, name="attention_keys")
        self.attention_query = keras.layers.Dense(self.embed_dim, use_bias=False, name="attention_query")
        self.attention_score = keras.layers.Dense(1, use_bias=False, name="attention_score")
        self.context_gate = keras.layers.Dense(1, activation="sigmoid", name="context_gate")
        self.token_embedding = keras.layers.Embedding(self.vocab_size, self.embed_dim, name="token_embedding")
        self.cell = keras.layers.LSTMCell(self.ff_dim, name="lstm_cell")
        self.out_hidden = keras.layers.Dense(self.embed_dim, name="out_hidden")
        self.out_context = keras.layers.Dense(self.embed_dim, use_bias=False, name="out_context")
        self.dropout = keras.layers.Dropout(self.dropout_rate)
        self.output_dense = keras.layers.Dense(self.vocab_size, name="logits")

    # -- shared pieces ---------------------------------------------------------------------------
    def encode(self, features):
        """(B, G, C) grid -> annotations (B, G, embed_dim) and their attention keys (B, G, embed_dim)."""
        annotations = self.image_proj(self.image_norm(features))
        return annotations, self.attention_keys(annotations)

    def _initial_state(self, annotations):
        mean = ops.mean(annotations, axis=1)
        return self.init_h(mean), self.init_c(mean)

    def _context(self, h, annotations, keys):
        """Gated soft-attention context (B, K, embed_dim) for states ``h`` (B, K, ff_dim) of the K
        captions of each of B images."""
        query = self.attention_query(h)  # (B, K, A)
        scores = self.attention_score(ops.tanh(keys[:, None, :, :] + query[:, :, None, :]))[..., 0]  # (B, K, G)
        weights = ops.softmax(scores, axis=-1)
        context = ops.matmul(weights, annotations)  # (B, K, embed_dim)
        return self.context_gate(h) * context

    def _step(self, word, h, c, annotations, keys, training):
        """One word for each of the K captions of B images: ``word`` (B, K, embed_dim) and
        ``h``/``c`` (B, K, ff_dim) -> output hidden (B, K, embed_dim) and the new ``h``, ``c``."""
        b, k = ops.shape(h)[0], ops.shape(h)[1]
        context = self._context(h, annotations, keys)
        x = ops.reshape(ops.concatenate([word, context], axis=-1), (b * k, 2 * self.embed_dim))  # static width
        flat_h, (flat_h, flat_c) = self.cell(
            x, [ops.reshape(h, (b * k, self.ff_dim)), ops.reshape(c, (b * k, self.ff_dim))], training=training
        )
        h, c = ops.reshape(flat_h, (b, k, self.ff_dim)), ops.reshape(flat_c, (b, k, self.ff_dim))
        hidden = ops.tanh(self.out_hidden(self.dropout(h, training=training)) + self.out_context(context) + word)
        return self.dropout(hidden, training=training), h, c

    # -- training: whole sequences --------------------------------------------------------------
    def hidden_states(self, inputs, training=False):
        """``(features (B, G, C), tokens (B, K, T))`` -> (B*K, T, embed_dim); T must be static."""
        features, tokens = inputs
        b, k = ops.shape(tokens)[0], ops.shape(tokens)[1]
        length = tokens.shape[2]
        if length is None:
            raise ValueError("AttentionLSTMDecoder needs captions of a fixed length (static time axis)")
        annotations, keys = self.encode(features)
        h, c = self._initial_state(annotations)
        h = ops.repeat(h[:, None, :], k, axis=1)
        c = ops.repeat(c[:, None, :], k, axis=1)
        words = self.dropout(self.token_embedding(tokens), training=training)  # (B, K, T, embed_dim)
        outputs = []
        for t in range(length):
            hidden, h, c = self._step(words[:, :, t, :], h, c, annotations, keys, training)
            outputs.append(hidden)
        return ops.reshape(ops.stack(outputs, axis=2), (b * k, length, self.embed_dim))

    # -- generation: one token at a time ------------------------------------------------------
    def start(self, features):
        """Decoding state: annotations, attention keys and the initial LSTM state (batch on axis 0)."""
        annotations, keys = self.encode(features)
        h, c = self._initial_state(annotations)
        return {"annotations": annotations, "keys": keys, "h": h, "c": c}

    def step(self, token, state, position):
        """Logits (B, vocab) for the token after ``token`` (B,), and the new state."""
        word = self.token_embedding(token)[:, None, :]
        hidden, h, c = self._step(
            word, state["h"][:, None, :], state["c"][:, None, :], state["annotations"], state["keys"], False
        )
        new_state = {**state, "h": h[:, 0, :], "c": c[:, 0, :]}
        return self.output_dense(hidden[:, 0, :]), new_state

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "seq_len": self.seq_len,
            "embed_dim": self.embed_dim,
            "ff_dim": self.ff_dim,
            "dropout": self.dropout_rate,
        }
