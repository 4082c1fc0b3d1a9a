"""Pages of search results for the web page: ``offset``/``k`` paging, the label filter, the labels
of an index, and the "no known word" check of a text query.

A page is cut from the best ``offset + k + 1`` hits of one search (the extra hit tells whether there
is a next page); ties are ordered by the index (lower id first) whatever the number asked for, so
pages never overlap or skip. With a label filter the search is widened (doubling) until enough hits
carry that label or the whole index was ranked, so the filter is exact, not a filter of one page.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

NO_KNOWN_WORD = "none of the words of this query is known to the model"

Search = Callable[[int], list]
"""``search(n) -> the best n hits, best first``."""


def result_page(search: Search, k: int, offset: int, size: int, label: str | None = None) -> tuple[list, bool]:
    """The hits ranked ``offset + 1`` to ``offset + k`` (after keeping only ``label`` if given) and
    whether more follow. ``size`` is the number of indexed images (the most a search can return)."""
    wanted = offset + k + 1
    if size < 1:
        return [], False
    fetch = min(wanted, size) if label is None else min(max(4 * wanted, 64), size)
    while True:
        hits = search(fetch)
        kept = hits if label is None else [hit for hit in hits if hit.label == label]
        if len(kept) >= wanted or fetch >= size or len(hits) < fetch:
            break
        fetch = min(2 * fetch, size)
    return kept[offset : offset + k], len(kept) > offset + k


def index_labels(retriever: Any) -> list[dict]:
    """``[{"label", "count"}]`` for every label of the indexed images, by label (empty without labels)."""
    ids = getattr(retriever, "ids", None)
    if ids is None:
        return []
    counts = Counter(retriever.get(item_id).label for item_id in (ids() if callable(ids) else ids))
    return [{"label": label, "count": counts[label]} for label in sorted(label for label in counts if label)]


def no_known_word(retriever: Any, text: str) -> bool:
    """True when the retriever can tell that no word of ``text`` is known to its embedder (the
    embedder's ``known_words`` count when it has one, as a learned caption space does)."""
    count = getattr(getattr(retriever, "embedder", None), "known_words", None)
    if callable(count):
        return count(text) == 0
    knows_words = getattr(retriever, "knows_words", None)
    return knows_words is not None and not knows_words(text)
