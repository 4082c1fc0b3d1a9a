"""How caption and image vectors of the space are combined into one vector per image, and the weights chosen on dev.

A gallery image is ``w_image * projection + w_generated * embed(generated caption) +
w_reference * mean embed(reference captions)``, L2-normalised; an image query is
``projection + q_generated * embed(generated caption)``. Missing parts (no reference captions, no
captioner) count as zero vectors. :func:`choose_weights` grid-searches the weights on a dev split;
:func:`choose_fusion` does it for a trained space on a validation split (what ``Captioner.fit`` saves
with the space).

How :func:`choose_fusion` scores, so that the reference captions of an image are never its own
queries: each validation image's reference captions are split in two, the first ``n // 2`` go into
its gallery vector (as an index's reference captions would) and the others are the text queries.
The gallery weights (``generated``, ``reference``; ``image`` stays 1) maximise text -> image
R@1 + R@5 + R@10 of those queries; the image-query weight ``query_generated`` maximises
image -> caption mAP (an image query against the mean of every image's query captions: does the
query find images that show what it shows). Ties keep the first (smallest) weights of the grid.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from .ranking import own_ranks


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

    @classmethod
    def from_config(cls, config) -> Fusion:
        """The fusion of :meth:`get_config`; :class:`~gemcaption.errors.ModelError` for anything else."""
        from ..errors import ModelError

        names = set(cls.__dataclass_fields__)
        if not isinstance(config, dict) or not set(config) <= names:
            raise ModelError(f"fusion weights must be an object with keys among {sorted(names)}, got {config!r}")
        values = {}
        for key, value in config.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
                raise ModelError(f"fusion weight {key} must be a number >= 0, got {value!r}")
            values[key] = float(value)
        return cls(**values)


GALLERY_WEIGHTS = (0.0, 0.25, 0.5, 1.0)
QUERY_WEIGHTS = (0.0, 0.25, 0.5, 1.0)
MIN_IMAGES = 5  # fewer validation images with captions: the default fusion is kept


def _recall_sum(queries: np.ndarray, gallery: np.ndarray, owners: np.ndarray) -> float:
    """R@1 + R@5 + R@10 of ``queries`` whose relevant gallery item is ``owners[row]``."""
    ranks = own_ranks(queries, gallery, owners)
    return float(sum(np.mean(ranks <= k) for k in (1, 5, 10)))


def _mean_average_precision(queries: np.ndarray, gallery: np.ndarray) -> float:
    """mAP of query i retrieving gallery item i (one relevant item: 1 / its rank)."""
    return float(np.mean(1.0 / own_ranks(queries, gallery, np.arange(len(queries)))))


def choose_fusion(embed_texts, projections, generated: Sequence[str], references: Sequence[Sequence[str]]):
    """The :class:`Fusion` chosen on a validation split (see the module doc) and how it scored.

    ``embed_texts`` maps a list of texts to unit vectors (a space's text encoder); ``projections``
    are the images' unit projections, ``generated`` their generated captions and ``references`` their
    reference captions. Returns ``(fusion, report)``; with fewer than :data:`MIN_IMAGES` usable
    images the fusion is None and the report says why."""
    keep = [i for i, refs in enumerate(references) if len(refs) >= 2]
    if len(keep) < MIN_IMAGES:
        return None, {"chosen_on": None, "reason": f"{len(keep)} validation images with 2 or more captions"}
    projections = unit(np.asarray(projections, np.float32)[keep])
    gen = embed_texts([generated[i] for i in keep])
    gallery_refs, queries, owners = [], [], []
    for row, i in enumerate(keep):
        refs = list(references[i])
        half = len(refs) // 2
        gallery_refs.append(unit(embed_texts(refs[:half]).mean(axis=0, keepdims=True))[0])
        queries.extend(refs[half:])
        owners.extend([row] * (len(refs) - half))
    refs_vectors, query_vectors, owners_array = np.stack(gallery_refs), embed_texts(queries), np.asarray(owners)
    best_gallery, t2i = choose_weights(
        lambda f: _recall_sum(query_vectors, f.gallery(projections, gen, refs_vectors), owners_array),
        [Fusion(1.0, g, r, 0.0) for g in GALLERY_WEIGHTS for r in GALLERY_WEIGHTS],
    )
    sums = np.zeros_like(projections)
    np.add.at(sums, owners_array, query_vectors)
    described = unit(sums)
    best_query, i2t = choose_weights(
        lambda f: _mean_average_precision(f.image_query(projections, gen), described),
        [Fusion(query_generated=q) for q in QUERY_WEIGHTS],
    )
    fusion = Fusion(1.0, best_gallery.generated, best_gallery.reference, best_query.query_generated)
    report = {
        "chosen_on": "validation",
        "images": len(keep),
        "queries": len(queries),
        "t2i_r1_r5_r10_sum": round(t2i, 4),
        "i2t_map": round(i2t, 4),
    }
    return fusion, report


def choose_weights(score: Callable[[Fusion], float], grid: Sequence[Fusion]) -> tuple[Fusion, float]:
    """The fusion of ``grid`` with the highest ``score`` (first one on ties), and that score."""
    best, best_score = grid[0], -np.inf
    for fusion in grid:
        value = float(score(fusion))
        if value > best_score:
            best, best_score = fusion, value
    return best, best_score
