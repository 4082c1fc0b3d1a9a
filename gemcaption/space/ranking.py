"""The rank of each query's own item among a gallery, by cosine score, for the space's model
selection (dev recall while it trains, the fusion weights chosen after).

The scores are computed :data:`BLOCK_SCORES` at a time (a block of queries against the whole
gallery), so memory stays flat however large the validation split: 50,000 dev captions against
10,000 dev images would otherwise be a 2 GB score matrix.
"""

from __future__ import annotations

import numpy as np

BLOCK_SCORES = 2**22
"""Query-gallery scores per block: 16 MiB of float32."""


def own_ranks(queries: np.ndarray, gallery: np.ndarray, owners: np.ndarray) -> np.ndarray:
    """1 + the number of gallery items scored above ``gallery[owners[i]]`` for query ``i`` (ties
    count in the query's favour), int64 (Q,). ``queries`` (Q, D) and ``gallery`` (N, D)."""
    queries, gallery = np.asarray(queries, np.float32), np.asarray(gallery, np.float32)
    owners = np.asarray(owners, np.int64)
    ranks = np.empty(len(queries), np.int64)
    block = max(1, BLOCK_SCORES // max(1, len(gallery)))
    for start in range(0, len(queries), block):
        scores = queries[start : start + block] @ gallery.T
        own = scores[np.arange(len(scores)), owners[start : start + block]]
        ranks[start : start + len(scores)] = 1 + (scores > own[:, None]).sum(axis=1)
    return ranks
