"""Ranking metrics for retrieval: R@k, mAP, MRR, median rank, precision@k, and their chance levels.

Conventions (also written down in docs/evaluation.md):

* ``scores`` is a (Q, G) similarity matrix, higher is better.
* Ties are broken by gallery index: among equal scores the lower column comes first (stable sort).
* Excluded entries (``exclude`` mask, or the mask of a ``numpy.ma.MaskedArray`` relevance matrix) are
  removed from that query's ranking: they are not relevant, take no rank, and do not count in the
  gallery size ``n`` used by the chance levels.
* Queries with no relevant item are skipped and counted in ``n_skipped``.
* Chance levels are exact expectations under a uniformly random ranking of the ``n`` ranked items of
  each query, averaged over the evaluated queries (see :func:`chance_levels_one_query`); the chance
  median rank is the median of the pooled first-rank distribution (see :func:`_chance_median_rank`).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from ..errors import EvaluationError
from ._checks import check_same_length

DEFAULT_KS = (1, 5, 10)
DEFAULT_PRECISION_KS = (10,)


def _codes(values: Sequence[Hashable], table: dict) -> np.ndarray:
    """Integer code of each value; unseen values get new codes added to ``table``."""
    out = np.empty(len(values), dtype=np.int64)
    for i, value in enumerate(values):
        out[i] = table.setdefault(value, len(table))
    return out


def same_item_relevance(query_ids: Sequence[Hashable], gallery_ids: Sequence[Hashable]) -> np.ndarray:
    """(Q, G) boolean matrix: ``query_ids[q] == gallery_ids[g]`` (ids: any hashable, e.g. image names)."""
    table: dict = {}
    q = _codes(list(query_ids), table)
    g = _codes(list(gallery_ids), table)
    return q[:, None] == g[None, :]


def same_label_relevance(
    query_labels: Sequence[Hashable], gallery_labels: Sequence[Hashable], exclude_self: bool = True
) -> np.ndarray:
    """(Q, G) relevance: same label. With ``exclude_self`` (leave-one-out) query i *is* gallery item i.

    With ``exclude_self=True`` the query and gallery lists must be the same items in the same order;
    the result is then a ``numpy.ma.MaskedArray`` whose mask marks the diagonal (each query itself), and
    :func:`retrieval_metrics` removes masked entries from the ranking. Otherwise a plain bool array.
    """
    relevant = same_item_relevance(query_labels, gallery_labels)
    if not exclude_self:
        return relevant
    if len(query_labels) != len(gallery_labels):
        raise EvaluationError(
            "exclude_self needs the queries to be the gallery: "
            f"{len(query_labels)} queries vs {len(gallery_labels)} gallery items"
        )
    mask = np.eye(len(query_labels), dtype=bool)
    return np.ma.MaskedArray(relevant & ~mask, mask=mask)


def aggregate_max(
    scores: np.ndarray, gallery_item_ids: Sequence[Hashable], return_items: bool = False
) -> np.ndarray | tuple[np.ndarray, list]:
    """Collapse several gallery vectors per item into one column: score of an item = max over its vectors.

    ``gallery_item_ids[g]`` names the item of column g (e.g. the image of each of 5 reference captions).
    Columns of the result follow the order of first appearance of each id. Returns the (Q, n_items)
    matrix, or ``(matrix, item_ids)`` with ``return_items=True``.
    """
    scores = _as_score_matrix(scores)
    check_same_length("scores columns", scores.T, "gallery_item_ids", gallery_item_ids)
    table: dict = {}
    codes = _codes(list(gallery_item_ids), table)
    order = np.argsort(codes, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(codes[order]) != 0]) if len(order) else np.array([], int)
    if scores.shape[1] == 0:
        merged = np.zeros((scores.shape[0], 0), dtype=scores.dtype)
    else:
        merged = np.maximum.reduceat(scores[:, order], starts, axis=1)
    return (merged, list(table)) if return_items else merged


def _as_score_matrix(scores) -> np.ndarray:
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise EvaluationError(f"scores must be a (queries, gallery) matrix, got shape {scores.shape}")
    if not np.issubdtype(scores.dtype, np.number) or np.issubdtype(scores.dtype, np.complexfloating):
        raise EvaluationError(f"scores must be real numbers, got dtype {scores.dtype}")
    if not np.issubdtype(scores.dtype, np.floating):
        scores = scores.astype(np.float64)  # so that negation cannot wrap around
    if np.isnan(scores).any():
        raise EvaluationError("scores contain NaN")
    return scores


def _split_relevance(relevant, exclude):
    """Return (relevant bool array, exclude bool array or None) from the accepted input forms."""
    if isinstance(relevant, np.ma.MaskedArray):
        mask = np.ma.getmaskarray(relevant)
        exclude = mask if exclude is None else (np.asarray(exclude, dtype=bool) | mask)
        relevant = relevant.filled(False)
    relevant = np.asarray(relevant)
    if relevant.dtype != bool:
        if not np.isin(relevant, (0, 1)).all():
            raise EvaluationError("relevant must be a boolean (or 0/1) matrix")
        relevant = relevant.astype(bool)
    if exclude is not None:
        exclude = np.asarray(exclude, dtype=bool)
    return relevant, exclude


def _first_rank_survival(n: int, n_rel: int) -> np.ndarray:
    """P(first relevant rank > r) for r = 0..n, with ``n_rel`` relevant among ``n`` in random order.

    P(> r) = C(n-R, r) / C(n, r) = prod_{i<r} (n-R-i) / (n-i).
    """
    i = np.arange(n, dtype=np.float64)
    ratios = np.clip((n - n_rel - i) / (n - i), 0.0, 1.0)
    return np.concatenate(([1.0], np.cumprod(ratios)))


def chance_levels_one_query(
    n: int, n_rel: int, ks: Sequence[int] = DEFAULT_KS, precision_ks: Sequence[int] = DEFAULT_PRECISION_KS
) -> dict:
    """Exact expected metrics for one query whose ``n_rel`` relevant items sit among ``n`` ranked items,
    under a uniformly random ranking.

    * R@k:  1 - C(n-R, k) / C(n, k)                (probability that the top k hold a relevant item)
    * P@k:  min(k, n) * R / (n * k)                (expected relevant items in the top k, over k)
    * AP:   (H_n + (R-1)/(n-1) * (n - H_n)) / n    (H_n = 1 + 1/2 + ... + 1/n; equals 1 when n = 1)
    * RR:   sum_r P(first relevant at rank r) / r,  P(first > r) = C(n-R, r) / C(n, r)
    * medr: median of the first relevant rank (smallest r with P(first <= r) >= 1/2; + 0.5 on a tie)
    """
    if not 1 <= n_rel <= n:
        raise EvaluationError(f"need 1 <= relevant ({n_rel}) <= ranked items ({n})")
    # survival[r] = P(first relevant rank > r) for r = 0..n
    survival = _first_rank_survival(n, n_rel)
    out = {}
    for k in ks:
        out[f"r{k}"] = float(1.0 - survival[min(k, n)])
    for k in precision_ks:
        out[f"p{k}"] = min(k, n) * n_rel / (n * k)
    first_rank_pmf = survival[:-1] - survival[1:]  # P(first = r), r = 1..n
    out["mrr"] = float(np.sum(first_rank_pmf / np.arange(1, n + 1)))
    harmonic = float(np.sum(1.0 / np.arange(1, n + 1)))
    extra = 0.0 if n == 1 else (n_rel - 1) / (n - 1) * (n - harmonic)
    out["map"] = (harmonic + extra) / n
    out["medr"] = _chance_median_rank(np.array([[n, n_rel]]), np.array([1]))
    return out


def _chance_median_rank(pairs: np.ndarray, counts: np.ndarray) -> float:
    """Median of the first-relevant-rank distribution under random ranking, pooled over queries.

    This is the value the median rank of a random ranker tends to as queries grow: the smallest r
    with pooled P(first <= r) >= 1/2, plus 0.5 when that probability is exactly 1/2 (so one relevant
    item among n gives (n + 1) / 2, the usual chance median rank).
    """
    longest = int(pairs[:, 0].max())
    cdf = np.zeros(longest + 1)
    for (n, n_rel), count in zip(pairs, counts):
        survival = _first_rank_survival(int(n), int(n_rel))
        padded = np.concatenate([survival, np.zeros(longest - int(n))])
        cdf += count * (1.0 - padded)
    cdf /= counts.sum()
    r = int(np.argmax(cdf >= 0.5 - 1e-12))
    return r + 0.5 if np.isclose(cdf[r], 0.5, rtol=0, atol=1e-12) else float(r)


def _chance_levels(n_ranked: np.ndarray, n_relevant: np.ndarray, ks, precision_ks) -> dict:
    """Mean over queries of the per-query chance levels; ``medr`` from :func:`_chance_median_rank`."""
    pairs, inverse, counts = np.unique(
        np.stack([n_ranked, n_relevant], axis=1), axis=0, return_inverse=True, return_counts=True
    )
    per_pair = [chance_levels_one_query(int(n), int(r), ks, precision_ks) for n, r in pairs]
    out = {}
    for key in per_pair[0]:
        if key != "medr":
            values = np.array([p[key] for p in per_pair])[inverse.reshape(-1)]
            out[f"chance_{key}"] = float(np.mean(values))
    out["chance_medr"] = _chance_median_rank(pairs, counts)
    return out


def _rank_chunk(scores: np.ndarray, relevant: np.ndarray, exclude: np.ndarray | None) -> np.ndarray:
    """Relevance flags of each query's ranking (best first); excluded items sorted last and not relevant."""
    if exclude is None:
        order = np.argsort(-scores, axis=1, kind="stable")
        return np.take_along_axis(relevant, order, axis=1)
    # lexsort: last key is primary. Excluded items go after every kept one, including kept -inf scores.
    order = np.lexsort((-scores, exclude), axis=1)
    return np.take_along_axis(relevant & ~exclude, order, axis=1)


def retrieval_metrics(
    scores: np.ndarray,
    relevant: np.ndarray,
    ks: Sequence[int] = DEFAULT_KS,
    precision_ks: Sequence[int] = DEFAULT_PRECISION_KS,
    exclude: np.ndarray | None = None,
    chunk_size: int = 512,
    progress: bool = False,
) -> dict:
    """R@k, mAP, MRR, median rank and precision@k of a (Q, G) score matrix, with chance levels.

    ``relevant`` is a (Q, G) boolean matrix (or a ``numpy.ma.MaskedArray`` whose masked entries are
    excluded, as returned by :func:`same_label_relevance`); ``exclude`` is an optional (Q, G) boolean
    mask of entries removed from each query's ranking. Ties are broken by gallery index (lower first).
    Queries with no relevant item are skipped and counted. Returns a dict with ``r{k}`` for k in ``ks``,
    ``p{k}`` for k in ``precision_ks``, ``map``, ``mrr``, ``medr`` (1-based), ``chance_<each>``,
    ``n_queries`` (evaluated), ``n_skipped`` and ``gallery_size``. Works in chunks of queries so that
    5000 x 5000 needs only a few tens of MB.
    """
    scores = _as_score_matrix(scores)
    relevant, exclude = _split_relevance(relevant, exclude)
    if relevant.shape != scores.shape:
        raise EvaluationError(f"relevant has shape {relevant.shape}, scores {scores.shape}")
    if exclude is not None and exclude.shape != scores.shape:
        raise EvaluationError(f"exclude has shape {exclude.shape}, scores {scores.shape}")
    ks, precision_ks = tuple(int(k) for k in ks), tuple(int(k) for k in precision_ks)
    if any(k < 1 for k in ks + precision_ks):
        raise EvaluationError(f"cut-offs must be >= 1, got ks={ks}, precision_ks={precision_ks}")
    n_queries, gallery = scores.shape
    first_rank, ap, n_rel_all, n_ranked_all = [], [], [], []
    hits_at: dict[int, list] = {k: [] for k in precision_ks}
    starts = range(0, n_queries, max(1, int(chunk_size)))
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="ranking", unit="chunk")
    for start in starts:
        rows = slice(start, start + max(1, int(chunk_size)))
        ex = None if exclude is None else exclude[rows]
        flags = _rank_chunk(scores[rows], relevant[rows], ex)
        n_rel = flags.sum(axis=1)
        keep = n_rel > 0
        flags, n_rel = flags[keep], n_rel[keep]
        n_ranked = np.full(len(flags), gallery) if ex is None else gallery - ex[keep].sum(axis=1)
        cum_hits = np.cumsum(flags, axis=1)
        positions = np.arange(1, gallery + 1)
        ap.append((flags * cum_hits / positions).sum(axis=1) / n_rel)
        first_rank.append(flags.argmax(axis=1) + 1)
        for k in precision_ks:
            hits_at[k].append(cum_hits[:, min(k, gallery) - 1] if gallery else np.zeros(len(flags)))
        n_rel_all.append(n_rel)
        n_ranked_all.append(n_ranked)
    first = np.concatenate(first_rank) if first_rank else np.array([], int)
    n_eval = len(first)
    if n_eval == 0:
        raise EvaluationError(f"none of the {n_queries} queries has a relevant item in the gallery")
    out = {f"r{k}": float(np.mean(first <= k)) for k in ks}
    out.update({f"p{k}": float(np.mean(np.concatenate(hits_at[k]) / k)) for k in precision_ks})
    out["map"] = float(np.mean(np.concatenate(ap)))
    out["mrr"] = float(np.mean(1.0 / first))
    out["medr"] = float(np.median(first))
    out.update(_chance_levels(np.concatenate(n_ranked_all), np.concatenate(n_rel_all), ks, precision_ks))
    out.update(n_queries=n_eval, n_skipped=n_queries - n_eval, gallery_size=gallery)
    return out


def category_retrieval_metrics(
    scores: np.ndarray,
    labels: Sequence[Hashable],
    ks: Sequence[int] = DEFAULT_KS,
    precision_ks: Sequence[int] = DEFAULT_PRECISION_KS,
    **kwargs: Any,
) -> dict:
    """Leave-one-out category retrieval: every item queries all the others; relevant = same label.

    ``scores`` is the (N, N) similarity of the items to each other (diagonal ignored).
    """
    scores = _as_score_matrix(scores)
    check_same_length("scores rows", scores, "labels", labels)
    relevant = same_label_relevance(labels, labels, exclude_self=True)
    return retrieval_metrics(scores, relevant, ks=ks, precision_ks=precision_ks, **kwargs)


_DISPLAY_NAMES = {"map": "mAP", "mrr": "MRR", "medr": "median rank"}


def format_retrieval_table(metrics: dict, title: str | None = None) -> str:
    """Plain-text table: one line per figure with its chance level beside it."""
    keys = [k for k in metrics if not k.startswith("chance_") and f"chance_{k}" in metrics]
    names = {k: _DISPLAY_NAMES.get(k, f"R@{k[1:]}" if k.startswith("r") else f"P@{k[1:]}") for k in keys}
    width = max(len(n) for n in names.values())
    lines = [title] if title else []
    lines.append(f"{'metric':<{width}}  {'value':>9}  {'chance':>9}")
    for k in keys:
        lines.append(
            f"{names[k]:<{width}}  {metrics[k]:>9.4f}  {metrics['chance_' + k]:>9.4f}"
            if k != "medr"
            else f"{names[k]:<{width}}  {metrics[k]:>9.1f}  {metrics['chance_' + k]:>9.1f}"
        )
    lines.append(
        f"({metrics['n_queries']} queries, {metrics['n_skipped']} skipped without a relevant item, "
        f"gallery of {metrics['gallery_size']})"
    )
    return "\n".join(lines)
