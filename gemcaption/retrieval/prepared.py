"""Images captioned and embedded but not yet indexed: :class:`PreparedImages`, what
:meth:`Retriever.prepare <gemcaption.retrieval.retriever.Retriever.prepare>` returns and
:meth:`Retriever.insert <gemcaption.retrieval.retriever.Retriever.insert>` takes. Splitting
``Retriever.add`` so lets worker processes do the captioning and a driver the indexing
(:mod:`gemcaption.distributed`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class PreparedImages:
    """Per input: ``items[i]`` (source, reference captions, label), ``digests[i]`` (content hash,
    None when unreadable) and ``stamps[i]`` (size, mtime_ns). ``new`` lists, in input order, the
    positions of the images to index (the first input of each content hash not indexed yet whose
    caption could be generated), with their generated ``captions``, their ``vectors`` (None while
    the embedder is not fitted) and their raw visual ``features`` (only with a hybrid weight)."""

    items: list[tuple]
    digests: list[str | None]
    stamps: list[tuple[int | None, int | None]]
    new: list[int]
    captions: list[str]
    vectors: np.ndarray | None = field(default=None)
    features: np.ndarray | None = field(default=None)

    def caption_groups(self, use_references: bool) -> list[list[str]]:
        """The captions embedded for each new image: the generated one, then (if asked) the references."""
        return [
            [caption] + (list(self.items[pos][1]) if use_references else [])
            for pos, caption in zip(self.new, self.captions)
        ]

    def subset(self, keep: list[int]) -> PreparedImages:
        """The same inputs with only the new images at indices ``keep`` of :attr:`new`."""
        rows = np.asarray(keep, np.int64)
        return PreparedImages(
            self.items,
            self.digests,
            self.stamps,
            [self.new[i] for i in keep],
            [self.captions[i] for i in keep],
            None if self.vectors is None else self.vectors[rows],
            None if self.features is None else self.features[rows],
        )
