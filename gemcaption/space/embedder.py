"""The learned space as a caption embedder of :mod:`gemcaption.retrieval.embedders` (kind ``caption_space``).

:class:`SpaceEmbedder` wraps a :class:`~.space.CaptionSpace` and a :class:`~.fusion.Fusion`, so a
:class:`~gemcaption.retrieval.retriever.Retriever` can use the space: captions (generated and
reference) go through the text encoder as with any embedder; :meth:`gallery` fuses an image's
generated-caption vector, the mean of its reference-caption vectors and its image projection with
the weights of the fusion (by default the ones chosen on validation when the space was trained,
``space.fusion``), :meth:`image_query` an image query's generated-caption vector with its
projection. It is already trained, so :meth:`fit` changes nothing. Saved like the other embedders
(manifest + the space's files, the fusion in the manifest), loaded with ``safe_mode``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .fusion import Fusion
from .space import CaptionSpace

# for a space trained without a validation split to choose on (see gemcaption.space.fusion.choose_fusion)
DEFAULT_FUSION = Fusion(image=1.0, generated=0.5, reference=0.5, query_generated=0.25)


class SpaceEmbedder:
    """Text vectors from the space's text encoder; image vectors fused with the image projection."""

    kind = "caption_space"

    def __init__(self, space: CaptionSpace, fusion: Fusion | None = None):
        self.space = space
        self.fusion = fusion or space.fusion or DEFAULT_FUSION
        self.fitted = True

    @property
    def dim(self) -> int:
        return self.space.dim

    def fit(self, texts) -> SpaceEmbedder:
        """Nothing to learn: the space was trained with the captioner."""
        return self

    def transform(self, texts) -> np.ndarray:
        """Unit vectors of ``texts`` (zeros for a text with no known word)."""
        return self.space.embed_texts(list(texts))

    def known_words(self, text: str) -> int:
        return self.space.known_words(text)

    def projections(self, captioner, sources) -> np.ndarray:
        """Image projections of ``sources`` (features from ``captioner``, i.e. its feature cache)."""
        if self.space.config.image_pooling == "mean" or not hasattr(captioner, "encode"):
            features = np.asarray(captioner.image_features(sources), np.float32)
        else:
            features, _ = captioner.encode(sources)
        return self.space.embed_images(features)

    def projections_of_grids(self, grids) -> np.ndarray:
        """Image projections of encoder feature grids (N, G, C) already computed, e.g. by the
        captioner while captioning the same images."""
        return self.space.embed_images(np.asarray(grids, np.float32))  # pooled there as the space pools

    def gallery(self, caption_groups, projections: np.ndarray) -> np.ndarray:
        """Index vectors, unit length: one per image from its group of captions (the generated one
        first, then its reference captions, possibly none) and its image projection."""
        groups = [list(group) for group in caption_groups]
        generated = self.transform([group[0] if group else "" for group in groups])
        references = np.zeros_like(generated)
        flat = [text for group in groups for text in group[1:]]
        if flat:
            owners = np.array([row for row, group in enumerate(groups) for _ in group[1:]])
            np.add.at(references, owners, self.transform(flat))
        return self.fusion.gallery(projections, generated, references)

    def image_query(self, caption_vectors: np.ndarray, projections: np.ndarray) -> np.ndarray:
        """Image query vectors: projection + generated-caption vector, unit length."""
        return self.fusion.image_query(projections, caption_vectors)

    def get_config(self) -> dict:
        config = self.space.get_config()
        config.update(kind=self.kind, dim=self.dim, fitted=True, fusion=self.fusion.get_config())
        return config

    def write_files(self, directory: Path) -> None:
        self.space.write_files(directory)

    def save(self, directory) -> Path:
        from ..retrieval.embedders import save_embedder

        return save_embedder(self, directory)

    @classmethod
    def from_files(cls, directory: Path, config: dict, terms=None) -> SpaceEmbedder:
        fusion = Fusion(**config.get("fusion", {}))
        return cls(CaptionSpace.from_files(Path(directory), config), fusion)
