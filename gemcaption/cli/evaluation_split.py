"""Which images ``gemcaption evaluate --split NAME`` scores.

The dataset's own split NAME when it has one; otherwise the split of that name in the record
``gemcaption train`` saved in the model directory (:mod:`gemcaption.data.split_record`), so
``--split val`` scores exactly the images training held out for early stopping, also on a CSV
catalogue without a ``split`` column. Neither: one error line naming the splits that exist and how
to get the one asked for. ``--limit N`` keeps N images of the split, picked at random with seed 0.
"""

from __future__ import annotations

from pathlib import Path

from ..data.split_record import SPLIT_FILE, apply_training_split, read_training_split
from ..data.splits import limit_dataset
from ..data.types import Dataset
from ..errors import DatasetError

LIMIT_SEED = 0


def split_to_evaluate(dataset: Dataset, split: str, model_dir, limit: int | None = None, data: str = "") -> Dataset:
    """``dataset`` with split ``split`` present (module doc); DatasetError when it cannot be."""
    if split not in dataset.splits:
        record = read_training_split(model_dir) if Path(model_dir).is_dir() else None
        if record is None or split not in record:
            raise DatasetError(_missing_split(dataset, split, record, data or dataset.name, model_dir))
        dataset = apply_training_split(dataset, record, where=f"model {model_dir}")
        if split not in dataset.splits:
            raise DatasetError(
                f"none of the images the model {model_dir} used as {split!r} is in dataset {data or dataset.name!r}"
            )
    if limit is None:
        return dataset
    kept = {s.image for s in limit_dataset(dataset.split(split), limit, LIMIT_SEED)}
    return Dataset([s for s in dataset if s.split != split or s.image in kept], dataset.name, dataset.skipped)


def _missing_split(dataset: Dataset, split: str, record: dict | None, data: str, model_dir) -> str:
    has = f"dataset {data!r} has no split {split!r} (its splits: {', '.join(dataset.splits) or 'none'}"
    if record is not None:
        return has + f"; the model's saved training split has: {', '.join(record)}); use --split with one of those"
    return (
        has + f"; model {model_dir} has no {SPLIT_FILE}); use --split with one of those, add a 'split' column "
        "to the CSV (or split folders), or retrain with 'gemcaption train': it saves the images it held out, "
        "which --split val then scores"
    )
