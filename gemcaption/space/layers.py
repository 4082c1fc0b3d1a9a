"""The Keras parts of the space: text encoders, the image projection and the dual model holding both.

All are registered as Keras-serializable in the package ``gemcaption`` (names ``gemcaption>...``)
with ``get_config``, so a saved ``space.keras`` loads with ``safe_mode=True`` and runs no code.
Token id 0 is padding and is masked out of every pooling.
"""

from __future__ import annotations

import math

import keras
from keras import ops


def _masked_mean(x, mask):
    """Mean of ``x`` (B, T, D) over the positions where ``mask`` (B, T) is true."""
    weights = ops.cast(mask, x.dtype)[..., None]
    return ops.sum(x * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0)


@keras.saving.register_keras_serializable(package="gemcaption")
class TextEncoder(keras.layers.Layer):
    """Tokens (B, T) -> vectors (B, dim), L2-normalised. ``kind``: "mean", "gru" or "transformer"."""

    def __init__(self, vocab_size, word_dim, dim, kind="mean", seq_len=32, dropout=0.1, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.word_dim, self.dim, self.kind = int(vocab_size), int(word_dim), int(dim), kind
        self.seq_len, self.dropout = int(seq_len), float(dropout)
        self.embedding = keras.layers.Embedding(self.vocab_size, self.word_dim, name="word_embedding")
        self.drop = keras.layers.Dropout(self.dropout)
        if kind == "gru":
            self.rnn = keras.layers.Bidirectional(keras.layers.GRU(self.word_dim // 2, return_sequences=True))
        elif kind == "transformer":
            self.positions = keras.layers.Embedding(self.seq_len, self.word_dim, name="position_embedding")
            self.attention = keras.layers.MultiHeadAttention(num_heads=4, key_dim=max(1, self.word_dim // 4))
            self.norm1 = keras.layers.LayerNormalization()
            self.norm2 = keras.layers.LayerNormalization()
            self.ff1 = keras.layers.Dense(self.word_dim * 2, activation="gelu")
            self.ff2 = keras.layers.Dense(self.word_dim)
        self.out = keras.layers.Dense(self.dim, name="text_projection")

    def build(self, input_shape):
        """Build every sublayer for tokens of ``input_shape`` (B, T): a loaded ``space.keras`` is then
        complete before its weights are read (no "unbuilt state" warning)."""
        batch, steps = input_shape[0], input_shape[1]
        words = (batch, steps, self.word_dim)
        self.embedding.build(input_shape)
        if self.kind == "gru":
            self.rnn.build(words)
        elif self.kind == "transformer":
            self.positions.build((steps,))
            self.attention.build(words, words)
            self.norm1.build(words)
            self.norm2.build(words)
            self.ff1.build(words)
            self.ff2.build((batch, steps, self.word_dim * 2))
        self.out.build((batch, self.word_dim))
        self.built = True

    def call(self, tokens, training=False):
        mask = ops.not_equal(tokens, 0)
        x = self.embedding(tokens)
        if self.kind == "gru":
            x = self.rnn(self.drop(x, training=training), mask=mask, training=training)
        elif self.kind == "transformer":
            steps = ops.shape(tokens)[1]
            x = x + self.positions(ops.arange(steps))[None]
            attend = ops.logical_and(mask[:, None, :], mask[:, :, None])
            h = self.attention(x, x, attention_mask=attend, training=training)
            x = self.norm1(x + self.drop(h, training=training))
            x = self.norm2(x + self.drop(self.ff2(self.ff1(x)), training=training))
        x = _masked_mean(x, mask)
        x = self.out(self.drop(x, training=training))
        return x / ops.maximum(ops.norm(x, axis=-1, keepdims=True), 1e-12)

    def get_config(self):
        config = super().get_config()
        config.update(
            vocab_size=self.vocab_size,
            word_dim=self.word_dim,
            dim=self.dim,
            kind=self.kind,
            seq_len=self.seq_len,
            dropout=self.dropout,
        )
        return config


@keras.saving.register_keras_serializable(package="gemcaption")
class ImageProjection(keras.layers.Layer):
    """A feature grid (B, G, C) -> vectors (B, dim), L2-normalised: pooled ("mean" or learned
    "attention" over the G cells), layer-normalised, then linear + residual MLP to ``dim``."""

    def __init__(self, dim, hidden_dim=1024, pooling="mean", dropout=0.1, **kwargs):
        super().__init__(**kwargs)
        self.dim, self.hidden_dim, self.pooling, self.dropout = int(dim), int(hidden_dim), pooling, float(dropout)
        if pooling == "attention":
            self.score_hidden = keras.layers.Dense(64, activation="tanh")
            self.score = keras.layers.Dense(1)
        self.norm = keras.layers.LayerNormalization()
        self.linear = keras.layers.Dense(self.dim)
        self.hidden = keras.layers.Dense(self.hidden_dim, activation="gelu")
        self.drop = keras.layers.Dropout(self.dropout)
        self.residual = keras.layers.Dense(self.dim)

    def build(self, input_shape):
        """Build every sublayer for grids of ``input_shape`` (B, G, C) (see :meth:`TextEncoder.build`)."""
        batch, channels = input_shape[0], input_shape[-1]
        if self.pooling == "attention":
            self.score_hidden.build(input_shape)
            self.score.build((*input_shape[:-1], 64))
        for layer in (self.norm, self.linear, self.hidden):
            layer.build((batch, channels))
        self.residual.build((batch, self.hidden_dim))
        self.built = True

    def call(self, grid, training=False):
        if self.pooling == "attention":
            weights = ops.softmax(self.score(self.score_hidden(grid)), axis=1)  # (B, G, 1)
            pooled = ops.sum(weights * grid, axis=1)
        else:
            pooled = ops.mean(grid, axis=1)
        x = self.norm(pooled)
        x = self.linear(x) + self.residual(self.drop(self.hidden(x), training=training))
        return x / ops.maximum(ops.norm(x, axis=-1, keepdims=True), 1e-12)

    def get_config(self):
        config = super().get_config()
        config.update(dim=self.dim, hidden_dim=self.hidden_dim, pooling=self.pooling, dropout=self.dropout)
        return config


@keras.saving.register_keras_serializable(package="gemcaption")
class DualEncoder(keras.Model):
    """The text encoder, the image projection and the (log) logit scale of the contrastive loss."""

    def __init__(self, text, image, temperature=0.05, learn_temperature=True, **kwargs):
        super().__init__(**kwargs)
        self.text = text if isinstance(text, TextEncoder) else keras.saving.deserialize_keras_object(text)
        self.image = image if isinstance(image, ImageProjection) else keras.saving.deserialize_keras_object(image)
        self.temperature, self.learn_temperature = float(temperature), bool(learn_temperature)
        self.log_scale = self.add_weight(
            name="log_scale",
            shape=(),
            initializer=keras.initializers.Constant(math.log(1.0 / self.temperature)),
            trainable=self.learn_temperature,
        )

    def scale(self):
        """exp(log_scale), capped at 100 (temperature >= 0.01)."""
        return ops.exp(ops.minimum(self.log_scale, math.log(100.0)))

    def call(self, inputs, training=False):
        tokens, grid = inputs
        return self.text(tokens, training=training), self.image(grid, training=training)

    def get_config(self):
        return {
            "text": keras.saving.serialize_keras_object(self.text),
            "image": keras.saving.serialize_keras_object(self.image),
            "temperature": self.temperature,
            "learn_temperature": self.learn_temperature,
            "name": self.name,
        }
