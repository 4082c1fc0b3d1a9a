"""How caption and image vectors of the space are combined into one vector per image, and the weights chosen on dev.

A gallery image is ``w_image * projection + w_generated * embed(generated caption) +
w_reference * mean embed(reference captions)``, L2-normalised; an image query is
``projection + q_generated * embed(generated caption)``. Missing parts (no reference captions, no
captioner) count as zero vectors. :func:`choose_weights` grid-searches the weights on a dev split.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), float32."""
    x = np.asarray(x, np.float32)
    return (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


@dataclass(frozen=True)
class Fusion:
    """Weights of the parts of a gallery vector and of an image query vector."""

    image: float = 1.0
    generated: float = 0.0
    reference: float = 0.0
    query_generated: float = 0.0

    def gallery(self, projection, generated=None, reference=None) -> np.ndarray:
        out = self.image * unit(projection)
        if generated is not None and self.generated:
            out = out + self.generated * unit(generated)
        if reference is not None and self.reference:
            out = out + self.reference * unit(reference)
        return unit(out)

    def image_query(self, projection, generated=None) -> np.ndarray:
        out = unit(projection)
        if generated is not None and self.query_generated:
            out = out + self.query_generated * unit(generated)
        return unit(out)

    def get_config(self) -> dict:
        return asdict(self)


def choose_weights(score: Callable[[Fusion], float], grid: Sequence[Fusion]) -> tuple[Fusion, float]:
    """The fusion of ``grid`` with the highest ``score`` (first one on ties), and that score."""
    best, best_score = grid[0], -np.inf
    for fusion in grid:
        value = float(score(fusion))
        if value > best_score:
            best, best_score = fusion, value
    return best, best_score
