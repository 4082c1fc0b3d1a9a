"""Greedy search: the most likely next token of every sequence, one position at a time."""

from __future__ import annotations

import numpy as np

from .base import Sampler, Search, SpecialIds


class GreedySampler(Sampler):
    """Picks the highest-scoring token at every step; a sequence stops at its end token and is
    padded after it. Fast and deterministic; :class:`~.beam.BeamSampler` looks further ahead."""

    name = "greedy"

    def begin(self, inputs: int, steps: int, ids: SpecialIds, vocab_size: int) -> Search:
        return _GreedySearch(inputs, steps, ids)


class _GreedySearch(Search):
    def __init__(self, inputs: int, steps: int, ids: SpecialIds):
        self.ids = ids
        self.out = np.full((inputs, steps), ids.pad, np.int32)
        self.finished = np.zeros(inputs, bool)

    def advance(self, scores: np.ndarray, position: int) -> tuple[np.ndarray, None]:
        token = np.argmax(scores, axis=-1).astype(np.int32)
        token[self.finished] = self.ids.pad
        self.out[:, position] = token
        self.finished |= token == self.ids.end
        self.done = bool(self.finished.all())
        return token, None

    def result(self) -> np.ndarray:
        return self.out
