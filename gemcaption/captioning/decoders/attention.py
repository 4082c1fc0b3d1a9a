"""Multi-head attention that can decode incrementally with a key/value cache.

Training calls :meth:`CachedAttention.call` on whole sequences. Generation calls
:meth:`project_kv` once for a fixed memory (cross-attention) or :meth:`step` per new token
(causal self-attention), which appends the token's key and value to a preallocated cache
instead of re-running the whole prefix.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="gemcaption")
class CachedAttention(keras.layers.Layer):
    def __init__(self, num_heads, key_dim, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.key_dim = int(key_dim)

    def build(self, query_shape, value_shape=None):
        model_dim = query_shape[-1]
        value_dim = (value_shape or query_shape)[-1]
        inner = self.num_heads * self.key_dim
        self.query_dense = keras.layers.Dense(inner, name="query")
        self.key_dense = keras.layers.Dense(inner, name="key")
        self.value_dense = keras.layers.Dense(inner, name="value")
        self.output_dense = keras.layers.Dense(model_dim, name="output")
        self.query_dense.build(query_shape)
        self.key_dense.build((None, None, value_dim))
        self.value_dense.build((None, None, value_dim))
        self.output_dense.build((None, None, inner))

    def _split(self, x):  # (B, T, H*D) -> (B, H, T, D)
        b, t = ops.shape(x)[0], ops.shape(x)[1]
        return ops.transpose(ops.reshape(x, (b, t, self.num_heads, self.key_dim)), (0, 2, 1, 3))

    def _mix(self, q, k, v, mask):
        # q (B,H,Tq,D), k/v (B,H,Tk,D), mask broadcastable to (B,1|H,Tq,Tk), True = may attend
        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) / (self.key_dim**0.5)
        if mask is not None:
            scores = ops.where(mask, scores, ops.full_like(scores, -1e9))
        out = ops.matmul(ops.softmax(scores, axis=-1), v)  # (B,H,Tq,D)
        b, tq = ops.shape(out)[0], ops.shape(out)[2]
        return ops.reshape(ops.transpose(out, (0, 2, 1, 3)), (b, tq, self.num_heads * self.key_dim))

    def _attend(self, q, k, v, mask):
        return self.output_dense(self._mix(q, k, v, mask))

    @staticmethod
    def _causal_mask(tq, tk):
        return (ops.arange(tk)[None, :] <= ops.arange(tq)[:, None])[None, None, :, :]

    def project_kv(self, value):
        """Keys and values of a fixed memory, each (B, H, T, D)."""
        return self._split(self.key_dense(value)), self._split(self.value_dense(value))

    def call(self, query, value=None, mask=None, causal=False):
        value = query if value is None else value
        q = self._split(self.query_dense(query))
        k, v = self.project_kv(value)
        if causal:
            causal_mask = self._causal_mask(ops.shape(query)[1], ops.shape(value)[1])
            mask = causal_mask if mask is None else ops.logical_and(mask, causal_mask)
        return self._attend(q, k, v, mask)

    def call_packed(self, query, keep, rows, length, memory=None):
        """Attention for tokens stored packed, without spending projections on padding.

        ``query`` (N, dim) holds the positions ``keep`` (N,) of a flattened (rows, length) layout.
        Without ``memory`` this is causal self-attention among those tokens (padding must come
        after each row's tokens); with ``memory`` (rows, G, dim) it is cross-attention to it.
        The projections run on the N tokens; only the attention weights use the full layout.
        Returns (N, dim).
        """
        if not self.built:  # called directly, not through __call__, which would build it
            self.build((None, None, query.shape[-1]), None if memory is None else tuple(memory.shape))
        index = ops.expand_dims(keep, 1)

        def unpacked(x):  # (N, C) -> (rows, length, C), zeros at padding
            return ops.reshape(ops.scatter(index, x, (rows * length, ops.shape(x)[-1])), (rows, length, -1))

        q = self._split(unpacked(self.query_dense(query)))
        if memory is None:
            k, v = self._split(unpacked(self.key_dense(query))), self._split(unpacked(self.value_dense(query)))
            mask = self._causal_mask(length, length)
        else:
            (k, v), mask = self.project_kv(memory), None
        mixed = ops.reshape(self._mix(q, k, v, mask), (rows * length, self.num_heads * self.key_dim))
        return self.output_dense(ops.take(mixed, keep, axis=0))

    def attend_cached(self, query, keys, values, mask=None):
        """Attention of ``query`` (B, 1, dim) over precomputed ``keys``/``values``."""
        return self._attend(self._split(self.query_dense(query)), keys, values, mask)

    def step(self, query, cache_k, cache_v, position):
        """Causal self-attention for one new token at ``position``.

        ``query`` is (B, 1, dim); ``cache_k``/``cache_v`` are (B, H, T_max, D). Returns the output
        and the caches with this token's key and value written at ``position``.
        """
        k, v = self.project_kv(query)
        t_max = ops.shape(cache_k)[2]
        at = ops.reshape(ops.arange(t_max) == position, (1, 1, t_max, 1))
        cache_k = ops.where(at, k, cache_k)
        cache_v = ops.where(at, v, cache_v)
        mask = ops.reshape(ops.arange(t_max) <= position, (1, 1, 1, t_max))
        return self.attend_cached(query, cache_k, cache_v, mask), cache_k, cache_v

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "key_dim": self.key_dim}
