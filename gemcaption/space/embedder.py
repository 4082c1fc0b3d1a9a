"""The learned space as a caption embedder of :mod:`gemcaption.retrieval.embedders` (kind ``caption_space``).

:class:`SpaceEmbedder` wraps a :class:`~.space.CaptionSpace` and a :class:`~.fusion.Fusion`, so a
:class:`~gemcaption.retrieval.retriever.Retriever` can use the space: captions (generated and
reference) go through the text encoder as with any embedder; :meth:`gallery` fuses an image's
caption vector with its image projection, :meth:`image_query` an image query's generated-caption
vector with its projection. It is already trained, so :meth:`fit` changes nothing. Saved like the
other embedders (manifest + the space's files), loaded with ``safe_mode``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .fusion import Fusion, unit
from .space import CaptionSpace

# not yet chosen on dev (no Flickr8k captioner was available to the benchmark): equal image and caption weights
DEFAULT_FUSION = Fusion(image=1.0, generated=0.5, reference=0.5, query_generated=0.0)


class SpaceEmbedder:
    """Text vectors from the space's text encoder; image vectors fused with the image projection."""

    kind = "caption_space"

    def __init__(self, space: CaptionSpace, fusion: Fusion | None = None):
        self.space = space
        self.fusion = fusion or DEFAULT_FUSION
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

    def gallery(self, caption_vectors: np.ndarray, projections: np.ndarray) -> np.ndarray:
        """Index vectors: image projection + (generated and reference) caption vector, unit length."""
        weight = max(self.fusion.generated, self.fusion.reference)
        return unit(self.fusion.image * unit(projections) + weight * unit(caption_vectors))

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
