"""Beam search: keep the ``width`` most likely partial captions of each image at every step.

All beams of an image start identical, so only the first is expanded at the first step. An
ended beam carries its score unchanged and keeps its place among the candidates. The winner
is the beam with the best length-normalised log-probability, ``score / ((5 + L) / 6) **
length_penalty`` (L = tokens including the end token): 0 ranks by raw log-probability, which
favours short captions; larger values favour longer ones.
"""

from __future__ import annotations

import numpy as np

from .base import Sampler, Search, SpecialIds, real_number, whole_number

DEFAULT_WIDTH = 3
DEFAULT_LENGTH_PENALTY = 0.7


class BeamSampler(Sampler):
    """Beam search of ``width`` beams per image (see the module doc for the ranking)."""

    name = "beam"

    def __init__(
        self,
        width: int = DEFAULT_WIDTH,
        length_penalty: float = DEFAULT_LENGTH_PENALTY,
        min_length: int = 1,
        max_length: int | None = None,
    ):
        super().__init__(max_length=max_length, min_length=min_length)
        self.width = whole_number("width", width, minimum=1)
        self.length_penalty = real_number("length_penalty", length_penalty, minimum=0.0)

    def begin(self, inputs: int, steps: int, ids: SpecialIds, vocab_size: int) -> Search:
        return _BeamSearch(inputs, steps, ids, vocab_size, self.width, self.length_penalty)

    def get_config(self) -> dict:
        return {"width": self.width, "length_penalty": self.length_penalty, **super().get_config()}


class _BeamSearch(Search):
    def __init__(self, inputs: int, steps: int, ids: SpecialIds, vocab_size: int, width: int, length_penalty: float):
        self.ids, self.vocab, self.width, self.length_penalty = ids, vocab_size, width, length_penalty
        self.rows_per_input = width
        self.scores_ = np.full((inputs, width), -np.inf)
        self.scores_[:, 0] = 0.0  # all beams start identical: expand only the first
        self.seqs = np.full((inputs, width, steps), ids.pad, np.int32)
        self.lengths = np.zeros((inputs, width), np.int32)
        self.finished = np.zeros((inputs, width), bool)
        self.inputs = np.arange(inputs)[:, None]

    def scores(self, logits: np.ndarray) -> np.ndarray:
        x = logits.astype(np.float64)
        x = x - x.max(axis=-1, keepdims=True)
        return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))

    def advance(self, scores: np.ndarray, position: int) -> tuple[np.ndarray, np.ndarray]:
        inputs, width, vocab = len(self.inputs), self.width, self.vocab
        logp = scores.reshape(inputs, width, vocab)
        logp[self.finished] = -np.inf
        logp[self.finished, self.ids.end] = 0.0  # an ended beam carries its score unchanged
        candidates = (self.scores_[:, :, None] + logp).reshape(inputs, width * vocab)
        top = np.argsort(-candidates, axis=1, kind="stable")[:, :width]
        beam, token = top // vocab, (top % vocab).astype(np.int32)
        self.scores_ = np.take_along_axis(candidates, top, axis=1)
        self.seqs, self.lengths = self.seqs[self.inputs, beam], self.lengths[self.inputs, beam]
        was_finished = self.finished[self.inputs, beam]
        self.seqs[:, :, position] = np.where(was_finished, self.ids.pad, token)
        self.lengths += ~was_finished
        self.finished = was_finished | (token == self.ids.end)
        self.done = bool(self.finished.all())
        return token.reshape(-1), (self.inputs * width + beam).reshape(-1)

    def result(self) -> np.ndarray:
        normalised = self.scores_ / (((5.0 + self.lengths) / 6.0) ** self.length_penalty)
        best = np.argmax(normalised, axis=1)
        return self.seqs[np.arange(len(self.inputs)), best]
