"""The output layer's cross-entropy computed a chunk of tokens at a time, so the vocabulary-sized
logits of a whole batch never exist at once.

A training step's packed tokens times the vocabulary are one float32 logits tensor (an estimate for
Flickr8k at batch 64: about 4,000 tokens x 8,000 words, 130 MB); the softmax and its gradient are as
large again, and they came and went on every step on top of everything else.
:func:`output_cross_entropy` instead walks the tokens in chunks of :data:`CHUNK_TOKENS` in a
``tf.while_loop`` that runs one chunk at a time. With ``gradients_now=True`` (training) each chunk's
gradient with respect to the hidden states, the kernel and the bias is accumulated in the same pass
(the loss is a sum, so its gradient is these times the incoming scalar): the step does no more
arithmetic than the dense layer's own forward and backward. Otherwise (validation) nothing is
accumulated and a gradient, if one is ever asked for, recomputes the chunks.

The loss is the sum over tokens of ``(1 - e) * CE + e * mean over the vocabulary of -log p``, i.e.
the cross-entropy against ``(1 - e) * one-hot + e / vocab`` (label smoothing ``e``), equal to the
dense computation to float32 rounding (tests/captioning/test_decoders.py).
"""

from __future__ import annotations

CHUNK_TOKENS = 512
"""Tokens per chunk: 512 x an 8,000-word vocabulary is 16 MB of logits."""


def output_cross_entropy(hidden, kernel, bias, targets, *, smoothing=0.0, gradients_now=False, chunk=CHUNK_TOKENS):
    """``(sum of the smoothed cross-entropy, number of argmax hits)`` of ``hidden`` (N, D) through the
    output layer ``hidden @ kernel + bias`` (kernel (D, V)) against ``targets`` (N,) int32.
    Differentiable with respect to ``hidden``, ``kernel`` and ``bias``; the hit count is not."""
    import tensorflow as tf

    smoothing = float(smoothing)
    chunk = int(chunk)
    targets = tf.cast(targets, tf.int32)

    def chunks(hidden, kernel, bias, with_gradients):
        n = tf.shape(hidden)[0]
        vocab = tf.shape(kernel)[1]
        steps = tf.maximum((n + chunk - 1) // chunk, 1)  # one (empty) chunk when there are no tokens

        def body(i, loss, hits, d_kernel, d_bias, d_hidden):
            start = i * chunk
            end = tf.minimum(start + chunk, n)
            h, t = hidden[start:end], targets[start:end]
            logits = tf.matmul(h, kernel) + bias
            norm = tf.reduce_logsumexp(logits, axis=-1)
            loss += tf.reduce_sum(norm - tf.gather(logits, t, batch_dims=1)) * (1.0 - smoothing)
            if smoothing:
                loss += tf.reduce_sum(norm - tf.reduce_mean(logits, axis=-1)) * smoothing
            hits += tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), t), tf.float32))
            if with_gradients:
                # d loss / d logits = softmax - ((1 - e) * one-hot + e / V)
                grad = tf.exp(logits - norm[:, None]) - (1.0 - smoothing) * tf.one_hot(t, vocab, dtype=logits.dtype)
                if smoothing:
                    grad -= smoothing / tf.cast(vocab, logits.dtype)
                d_kernel += tf.matmul(h, grad, transpose_a=True)
                d_bias += tf.reduce_sum(grad, axis=0)
                d_hidden = d_hidden.write(i, tf.matmul(grad, kernel, transpose_b=True))
            return i + 1, loss, hits, d_kernel, d_bias, d_hidden

        zero = tf.zeros((), hidden.dtype)
        d_hidden = tf.TensorArray(hidden.dtype, size=steps, infer_shape=False, element_shape=[None, hidden.shape[-1]])
        start = (0, zero, zero, tf.zeros_like(kernel) if with_gradients else zero)
        start += (tf.zeros_like(bias) if with_gradients else zero, d_hidden)
        _, loss, hits, d_kernel, d_bias, d_hidden = tf.while_loop(
            lambda i, *_: i < steps, body, start, parallel_iterations=1
        )
        if not with_gradients:
            return loss, hits, None
        return loss, hits, (d_hidden.concat(), d_kernel, d_bias)

    @tf.custom_gradient
    def loss_and_hits(hidden, kernel, bias):
        loss, hits, gradients = chunks(hidden, kernel, bias, gradients_now)

        def backward(upstream_loss, upstream_hits):
            del upstream_hits  # the hit count is a step function: no gradient
            d_hidden, d_kernel, d_bias = gradients if gradients is not None else chunks(hidden, kernel, bias, True)[2]
            return upstream_loss * d_hidden, upstream_loss * d_kernel, upstream_loss * d_bias

        return (loss, tf.stop_gradient(hits)), backward

    return loss_and_hits(tf.convert_to_tensor(hidden), tf.convert_to_tensor(kernel), tf.convert_to_tensor(bias))


__all__ = ["CHUNK_TOKENS", "output_cross_entropy"]
