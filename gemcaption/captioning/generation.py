"""Batched caption generation: greedy search and beam search over a decoder's ``step``.

Both decode a whole batch together, keep each decoder's incremental state (key/value caches
for the Transformer, the LSTM state) and stop each sequence at its own end token; the loop
ends when every sequence in the batch has ended or the length limit is reached.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf
from keras import ops


class Generator:
    """Decodes feature grids to token ids with one compiled ``step`` per decoder."""

    def __init__(self, decoder, start_id: int, end_id: int, pad_id: int = 0):
        self.decoder = decoder
        self.start_id, self.end_id, self.pad_id = start_id, end_id, pad_id
        self.max_steps = decoder.seq_len - 1
        self._start = tf.function(decoder.start, reduce_retracing=True)
        self._step = tf.function(decoder.step, reduce_retracing=True)

    def greedy(self, features: np.ndarray) -> np.ndarray:
        """Most likely next token at every step: ids (B, max_steps), padded after the end token."""
        batch = features.shape[0]
        state = self._start(tf.convert_to_tensor(features, tf.float32))
        token = np.full(batch, self.start_id, np.int32)
        out = np.full((batch, self.max_steps), self.pad_id, np.int32)
        finished = np.zeros(batch, bool)
        for position in range(self.max_steps):
            logits, state = self._step(tf.constant(token), state, tf.constant(position, tf.int32))
            token = np.argmax(logits.numpy(), axis=-1).astype(np.int32)
            token[finished] = self.pad_id
            out[:, position] = token
            finished |= token == self.end_id
            if finished.all():
                break
        return out

    def beam(self, features: np.ndarray, width: int, length_penalty: float = 0.7) -> np.ndarray:
        """Beam search of ``width`` beams per image; the best beam by length-normalised log-prob.

        Normalisation follows ``((5 + length) / 6) ** length_penalty``; 0 ranks by raw log-prob.
        """
        batch, vocab = features.shape[0], self.decoder.vocab_size
        repeated = np.repeat(features, width, axis=0)
        state = self._start(tf.convert_to_tensor(repeated, tf.float32))
        scores = np.full((batch, width), -np.inf)
        scores[:, 0] = 0.0  # all beams start identical: expand only the first
        seqs = np.full((batch, width, self.max_steps), self.pad_id, np.int32)
        lengths = np.zeros((batch, width), np.int32)
        finished = np.zeros((batch, width), bool)
        token = np.full(batch * width, self.start_id, np.int32)
        rows = np.arange(batch)[:, None]
        for position in range(self.max_steps):
            logits, state = self._step(tf.constant(token), state, tf.constant(position, tf.int32))
            logp = _log_softmax(logits.numpy().astype(np.float64)).reshape(batch, width, vocab)
            logp[finished] = -np.inf
            logp[finished, self.end_id] = 0.0  # an ended beam carries its score unchanged
            candidates = (scores[:, :, None] + logp).reshape(batch, width * vocab)
            top = np.argsort(-candidates, axis=1, kind="stable")[:, :width]
            beam_idx, token_2d = top // vocab, (top % vocab).astype(np.int32)
            scores = np.take_along_axis(candidates, top, axis=1)
            seqs, lengths = seqs[rows, beam_idx], lengths[rows, beam_idx]
            was_finished = finished[rows, beam_idx]
            seqs[:, :, position] = np.where(was_finished, self.pad_id, token_2d)
            lengths += ~was_finished
            finished = was_finished | (token_2d == self.end_id)
            flat = (rows * width + beam_idx).reshape(-1)
            state = {k: ops.take(v, flat, axis=0) for k, v in state.items()}
            token = token_2d.reshape(-1)
            if finished.all():
                break
        normalised = scores / (((5.0 + lengths) / 6.0) ** length_penalty)
        best = np.argmax(normalised, axis=1)
        return seqs[np.arange(batch), best]


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))
