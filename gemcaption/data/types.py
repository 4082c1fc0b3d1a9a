"""The data types every loader returns: :class:`Dataset` of :class:`Sample`, one per image.

Nothing here imports a loader, so loaders, the demo set and the rest of gemcaption can all
depend on these types without cycles.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import DatasetError

SPLIT_ORDER = ("train", "val", "dev", "validation", "test")


class DatasetWarning(UserWarning):
    """Rows or files of a dataset were skipped (the message says how many and gives examples)."""


@dataclass(frozen=True)
class Sample:
    """One image with all its captions, an optional class label and the split it belongs to."""

    image: str
    captions: tuple[str, ...]
    label: str | None = None
    split: str = "train"


class Dataset:
    """An ordered collection of :class:`Sample`, one per image.

    ``skipped`` counts the rows or files that were left out while loading.
    """

    def __init__(self, samples: Iterable[Sample], name: str = "dataset", skipped: int = 0):
        self.name = name
        self.samples: list[Sample] = list(samples)
        self.skipped = int(skipped)

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self):
        return iter(self.samples)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Dataset(self.samples[index], self.name)
        return self.samples[index]

    def __repr__(self) -> str:
        counts = ", ".join(f"{s}={sum(1 for x in self.samples if x.split == s)}" for s in self.splits)
        return f"Dataset({self.name!r}, {len(self)} images, {self.caption_count} captions; {counts})"

    @property
    def splits(self) -> list[str]:
        """Distinct split names, train/val/dev/test first, then the others alphabetically."""
        present = {s.split for s in self.samples}
        known = [s for s in SPLIT_ORDER if s in present]
        return known + sorted(present - set(known))

    def split(self, name: str | None) -> Dataset:
        """The samples of split ``name``; ``None`` or ``"all"`` gives the whole dataset."""
        if name is None or name == "all":
            return self
        if name not in {s.split for s in self.samples}:
            raise DatasetError(f"dataset {self.name!r} has no split {name!r} (splits: {self.splits})")
        return Dataset([s for s in self.samples if s.split == name], f"{self.name}:{name}")

    @property
    def labels(self) -> list[str]:
        """Sorted distinct labels (samples without a label are not counted)."""
        return sorted({s.label for s in self.samples if s.label is not None})

    @property
    def images(self) -> list[str]:
        return [s.image for s in self.samples]

    @property
    def captions(self) -> list[tuple[str, ...]]:
        return [s.captions for s in self.samples]

    @property
    def caption_count(self) -> int:
        return sum(len(s.captions) for s in self.samples)
