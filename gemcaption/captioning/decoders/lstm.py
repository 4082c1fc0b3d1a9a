"""LSTM caption decoder (the seed's model 2).

The mean-pooled image feature sets the LSTM's initial state; the LSTM reads the caption so far
and predicts the next word. Generation carries the LSTM state from token to token.
"""

import keras
from keras import ops

from .base import CaptionDecoder


@keras.saving.register_keras_serializable(package="gemcaption")
class LSTMDecoder(CaptionDecoder):
    def __init__(self, vocab_size, seq_len=25, embed_dim=512, ff_dim=512, dropout=0.1, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.seq_len = int(vocab_size), int(seq_len)
        self.embed_dim, self.ff_dim, self.dropout_rate = int(embed_dim), int(ff_dim), float(dropout)
        self.image_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="image_norm")
        self.image_proj = keras.layers.Dense(self.embed_dim, activation="relu", name="image_proj")
        self.init_h = keras.layers.Dense(self.ff_dim, activation="tanh", name="init_h")
        self.init_c = keras.layers.Dense(self.ff_dim, name="init_c")
        self.token_embedding = keras.layers.Embedding(self.vocab_size, self.embed_dim, name="token_embedding")
        self.lstm = keras.layers.LSTM(self.ff_dim, return_sequences=True, name="lstm")
        self.dropout = keras.layers.Dropout(self.dropout_rate)
        self.output_dense = keras.layers.Dense(self.vocab_size, name="logits")

    def encode(self, features, training=False):
        """(B, G, C) feature grid -> (B, embed_dim) image vector."""
        return self.image_proj(self.image_norm(ops.mean(features, axis=1)))

    def hidden_states(self, inputs, training=False):
        """``(features (B, G, C), tokens (B, K, T))`` -> (B*K, T, ff_dim)."""
        features, tokens = inputs
        b, k, t = ops.shape(tokens)[0], ops.shape(tokens)[1], ops.shape(tokens)[2]
        image = ops.repeat(self.dropout(self.encode(features), training=training), k, axis=0)
        x = self.token_embedding(ops.reshape(tokens, (b * k, t)))
        x = self.lstm(self.dropout(x, training=training), initial_state=[self.init_h(image), self.init_c(image)])
        return self.dropout(x, training=training)

    def start(self, features):
        image = self.encode(features)
        return {"h": self.init_h(image), "c": self.init_c(image)}

    def step(self, token, state, position):
        x = self.token_embedding(token)
        h, (h, c) = self.lstm.cell(x, [state["h"], state["c"]], training=False)
        return self.output_dense(h), {"h": h, "c": c}

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "seq_len": self.seq_len,
            "embed_dim": self.embed_dim,
            "ff_dim": self.ff_dim,
            "dropout": self.dropout_rate,
        }
