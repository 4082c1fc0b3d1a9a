"""Ranks of each query's own item, computed a block at a time, equal the ranks from the full score matrix."""

import numpy as np

from gemcaption.space import ranking
from gemcaption.space.fusion import _mean_average_precision, _recall_sum


def dense_ranks(queries, gallery, owners):
    scores = queries @ gallery.T
    own = scores[np.arange(len(owners)), owners]
    return 1 + (scores > own[:, None]).sum(axis=1)


def test_blocked_ranks_equal_the_dense_ranks_and_count_ties_for_the_query(monkeypatch):
    rng = np.random.default_rng(0)
    gallery = rng.normal(size=(37, 8)).astype(np.float32)
    gallery[5] = gallery[4]  # a tie: a query owned by 4 or 5 is not pushed down by its twin
    owners = rng.integers(0, 37, size=101)
    owners[:3] = [4, 5, 4]
    queries = gallery[owners] + 0.5 * rng.normal(size=(101, 8)).astype(np.float32)
    expected = dense_ranks(queries, gallery, owners)
    monkeypatch.setattr(ranking, "BLOCK_SCORES", 37 * 7)  # blocks of 7 queries, the last one short
    got = ranking.own_ranks(queries, gallery, owners)
    np.testing.assert_array_equal(got, expected)
    assert got.min() == 1 and got.max() > 1
    assert _recall_sum(queries, gallery, owners) == sum(np.mean(expected <= k) for k in (1, 5, 10))
    square = queries[:37]
    assert _mean_average_precision(square, gallery) == np.mean(1.0 / dense_ranks(square, gallery, np.arange(37)))
