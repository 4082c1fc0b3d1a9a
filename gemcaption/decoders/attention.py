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

    def _attend(self, q, k, v, mask):
        # q (B,H,Tq,D), k/v (B,H,Tk,D), mask broadcastable to (B,1|H,Tq,Tk), True = may attend
        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) / (self.key_dim ** 0.5)
        if mask is not None:
            scores = ops.where(mask, scores, ops.full_like(scores, -1e9))
        weights = ops.softmax(scores, axis=-1)
        out = ops.matmul(weights, v)  # (B,H,Tq,D)
        b, tq = ops.shape(out)[0], ops.shape(out)[2]
        out = ops.reshape(ops.transpose(out, (0, 2, 1, 3)), (b, tq, self.num_heads * self.key_dim))
        return self.output_dense(out)

    def project_kv(self, value):
        """Keys and values of a fixed memory, each (B, H, T, D)."""
        return self._split(self.key_dense(value)), self._split(self.value_dense(value))

    def call(self, query, value=None, mask=None, causal=False):
        value = query if value is None else value
        q = self._split(self.query_dense(query))
        k, v = self.project_kv(value)
        if causal:
            tq, tk = ops.shape(query)[1], ops.shape(value)[1]
            causal_mask = ops.arange(tk)[None, :] <= ops.arange(tq)[:, None]
            causal_mask = causal_mask[None, None, :, :]
            mask = causal_mask if mask is None else ops.logical_and(mask, causal_mask)
        return self._attend(q, k, v, mask)

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
