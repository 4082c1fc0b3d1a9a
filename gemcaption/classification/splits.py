"""Seeded stratified splits and removal of duplicate photos (so none leak across a split)."""
from __future__ import annotations

import numpy as np


def stratified_split(labels, fraction: float, seed: int = 0):
    """Indices (kept, held_out) with about ``fraction`` of every class held out."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    held = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        rng.shuffle(members)
        count = int(round(len(members) * fraction))
        if len(members) >= 2:
            count = min(max(count, 1), len(members) - 1)
        else:
            count = 0
        held.extend(members[:count].tolist())
    held_set = set(held)
    kept = [i for i in range(len(labels)) if i not in held_set]
    return kept, sorted(held)


def find_duplicates(images) -> tuple[list[int], list[list[int]]]:
    """Indices to keep (the first of each group of byte-identical images) and the groups of
    duplicates (lists of indices, each of two or more images), by :func:`content_hash`."""
    from ..data.images import content_hash

    first: dict[str, int] = {}
    groups: dict[str, list[int]] = {}
    keep = []
    for i, image in enumerate(images):
        digest = content_hash(image)
        if digest in first:
            groups.setdefault(digest, [first[digest]]).append(i)
        else:
            first[digest] = i
            keep.append(i)
    return keep, list(groups.values())
