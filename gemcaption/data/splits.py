"""Seeded splits by image, stratified by label so every split keeps the class mix, and the removal
of byte-identical duplicate photos (so none leak across a split).

* :func:`assign_splits` / :func:`split_dataset`: any number of named splits of a :class:`Dataset`;
* :func:`stratified_split`: row indices (kept, held out) of a label array, as the classifiers and the
  gemstone benchmark hold out their validation and test rows (its output must never change);
* :func:`find_duplicates`: the first of each group of identical images and the groups.

scikit-learn's StratifiedShuffleSplit / train_test_split cannot replace these: they refuse a class of one
image (ours keep it in train) and give other indices for the same seed (they also hold out 0 of a small class).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from ..errors import ConfigError
from .images import content_hash
from .types import Dataset


def _split_names(count: int) -> tuple[str, ...]:
    return {1: ("train",), 2: ("train", "val"), 3: ("train", "val", "test")}.get(
        count, tuple(f"part{i}" for i in range(count))
    )


def _allocate(n: int, fractions: Sequence[float]) -> list[int]:
    """Integer counts summing to n, proportional to fractions (largest remainder)."""
    exact = [n * f for f in fractions]
    counts = [int(np.floor(x)) for x in exact]
    order = sorted(range(len(fractions)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    return counts


def assign_splits(
    images: Sequence[str],
    fractions: Sequence[float],
    names: Sequence[str],
    seed: int = 0,
    labels: Sequence[str | None] | None = None,
) -> dict[str, str]:
    """A seeded split of distinct image keys: ``{image: split name}``, stratified by ``labels``.

    The result depends only on the set of images (not their order), the fractions and the seed.
    """
    if len(fractions) != len(names):
        raise ConfigError("fractions and names must have the same length")
    if any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise ConfigError(f"fractions must be non-negative with a positive sum, got {fractions}")
    total = float(sum(fractions))
    fractions = [f / total for f in fractions]
    label_of = dict(zip(images, labels)) if labels is not None else {}
    groups: dict[str, list[str]] = defaultdict(list)
    for image in sorted(set(images)):
        groups[str(label_of.get(image))].append(image)
    rng = np.random.default_rng(seed)
    # Each image gets its relative rank within its label (shuffled); cutting the global order of
    # those ranks gives exact overall proportions and near-exact proportions within every label.
    keyed = []
    for key in sorted(groups):
        members = groups[key]
        for rank, j in enumerate(rng.permutation(len(members))):
            keyed.append(((rank + 0.5) / len(members), rng.random(), members[j]))
    keyed.sort()
    result: dict[str, str] = {}
    start = 0
    for name, count in zip(names, _allocate(len(keyed), fractions)):
        for _, _, image in keyed[start : start + count]:
            result[image] = name
        start += count
    return result


def split_dataset(
    dataset: Dataset,
    fractions: Sequence[float] | dict = (0.8, 0.2),
    names: Sequence[str] | None = None,
    seed: int = 0,
    stratify: bool = True,
) -> Dataset:
    """Re-split ``dataset`` by image with a seeded shuffle; returns a new Dataset.

    ``fractions`` is a sequence (names default to train/val or train/val/test) or a mapping
    ``{"train": 0.7, "val": 0.15, "test": 0.15}``. With ``stratify`` and labels present, each
    label is split separately so every split keeps the class proportions. All captions of an
    image always stay together (a sample is one image).
    """
    if isinstance(fractions, dict):
        names, fractions = list(fractions), list(fractions.values())
    fractions = list(fractions)
    names = list(names) if names is not None else list(_split_names(len(fractions)))
    if len(names) != len(fractions):
        raise ConfigError(f"{len(fractions)} fractions but {len(names)} names")
    images = [s.image for s in dataset]
    labels = [s.label for s in dataset] if stratify and dataset.labels else None
    mapping = assign_splits(images, fractions, names, seed, labels)
    return Dataset([replace(s, split=mapping[s.image]) for s in dataset], dataset.name, dataset.skipped)


def stratified_split(labels: Sequence, fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """Indices ``(kept, held_out)`` with about ``fraction`` of every class held out (sorted lists).

    A class of two or more images gives at least one and keeps at least one; a class of one image
    is always kept. Classes are visited in sorted order, each shuffled by one seeded generator.
    """
    rng = np.random.default_rng(seed)
    label_array = np.asarray(labels)
    held: list[int] = []
    for label in np.unique(label_array):
        members = np.flatnonzero(label_array == label)
        rng.shuffle(members)
        count = int(round(len(members) * fraction))
        count = min(max(count, 1), len(members) - 1) if len(members) >= 2 else 0
        held.extend(members[:count].tolist())
    held_set = set(held)
    kept = [i for i in range(len(label_array)) if i not in held_set]
    return kept, sorted(held)


def find_duplicates(images: Sequence) -> tuple[list[int], list[list[int]]]:
    """Indices to keep (the first of each group of byte-identical images) and the groups of
    duplicates (lists of indices, each of two or more images), by :func:`~gemcaption.data.images.content_hash`."""
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


def hold_out(dataset: Dataset, fraction: float = 0.1, seed: int = 0, name: str = "val") -> Dataset:
    """``dataset`` with about ``fraction`` of its images (at least one when it has two or more) moved
    to split ``name`` and the rest in "train": the seeded split of :func:`assign_splits`, stratified
    by label when there are labels."""
    images = [s.image for s in dataset]
    distinct = len(set(images))
    if distinct < 2:
        return Dataset([replace(s, split="train") for s in dataset], dataset.name, dataset.skipped)
    share = max(fraction, 1.0 / distinct)
    labels = [s.label for s in dataset] if dataset.labels else None
    mapping = assign_splits(images, [1.0 - share, share], ["train", name], seed, labels)
    return Dataset([replace(s, split=mapping[s.image]) for s in dataset], dataset.name, dataset.skipped)


def limit_dataset(dataset: Dataset, count: int | None, seed: int = 0) -> Dataset:
    """``count`` images of ``dataset`` picked at random with ``seed`` (every split keeps about its
    share: the choice is stratified by split), in their original order; all of it when ``count``
    is None or not smaller than the dataset."""
    if count is None or count >= len(dataset):
        return dataset
    if count < 1:
        raise ConfigError(f"a limit must be at least 1 image, got {count}")
    mapping = assign_splits(
        [s.image for s in dataset], [count, len(dataset) - count], ["kept", "left"], seed, [s.split for s in dataset]
    )
    return Dataset([s for s in dataset if mapping[s.image] == "kept"], dataset.name, dataset.skipped)
