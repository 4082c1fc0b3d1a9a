"""Seeded splits of a dataset by image, stratified by label so every split keeps the class mix."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from .types import Dataset



def _split_names(count: int) -> tuple[str, ...]:
    return {1: ("train",), 2: ("train", "val"), 3: ("train", "val", "test")}.get(
        count, tuple(f"part{i}" for i in range(count)))


def _allocate(n: int, fractions: Sequence[float]) -> list[int]:
    """Integer counts summing to n, proportional to fractions (largest remainder)."""
    exact = [n * f for f in fractions]
    counts = [int(np.floor(x)) for x in exact]
    order = sorted(range(len(fractions)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    return counts


def assign_splits(images: Sequence[str], fractions: Sequence[float], names: Sequence[str],
                  seed: int = 0, labels: Sequence[str | None] | None = None) -> dict[str, str]:
    """A seeded split of distinct image keys: ``{image: split name}``, stratified by ``labels``.

    The result depends only on the set of images (not their order), the fractions and the seed.
    """
    if len(fractions) != len(names):
        raise ValueError("fractions and names must have the same length")
    if any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise ValueError(f"fractions must be non-negative with a positive sum, got {fractions}")
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
        for _, _, image in keyed[start:start + count]:
            result[image] = name
        start += count
    return result


def split_dataset(dataset: Dataset, fractions: Sequence[float] | dict = (0.8, 0.2),
                  names: Sequence[str] | None = None, seed: int = 0, stratify: bool = True) -> Dataset:
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
        raise ValueError(f"{len(fractions)} fractions but {len(names)} names")
    images = [s.image for s in dataset]
    labels = [s.label for s in dataset] if stratify and dataset.labels else None
    mapping = assign_splits(images, fractions, names, seed, labels)
    return Dataset([replace(s, split=mapping[s.image]) for s in dataset], dataset.name, dataset.skipped)
