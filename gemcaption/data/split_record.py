"""The record of the split a model was trained with: ``training-split.json`` in the model directory.

``gemcaption train`` writes it (atomically) after saving the model: which images it trained on and
which it held out for early stopping, so that ``gemcaption evaluate --split val`` scores exactly
those held-out images later, also on a dataset that has no split of its own (a CSV catalogue
without a ``split`` column). Images are stored as absolute paths; the file is plain JSON
(nothing in it is executed)::

    {"format": "gemcaption-training-split", "format_version": 1, "data": "csv:catalogue.csv",
     "seed": 0, "limit": null, "validation": "held out", "splits": {"train": [...], "val": [...]}}
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from ..errors import DatasetError, ModelError
from ..persistence import PathLike, read_json, write_json
from .types import Dataset

SPLIT_FILE = "training-split.json"
FORMAT = "gemcaption-training-split"
FORMAT_VERSION = 1
UNUSED = "unused"
"""The split of the images a model's record does not mention (neither trained on nor held out)."""


def _key(image: str) -> str:
    return os.path.abspath(image)


def save_training_split(
    model_dir: PathLike, parts: dict[str, Dataset], *, data: str, seed: int, limit: int | None, validation: str
) -> Path:
    """Write :data:`SPLIT_FILE` into ``model_dir``: the images of each part (``{"train": ..., "val": ...}``)."""
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "data": data,
        "seed": seed,
        "limit": limit,
        "validation": validation,
        "splits": {name: [_key(s.image) for s in part] for name, part in parts.items()},
    }
    return write_json(Path(model_dir) / SPLIT_FILE, payload)


def read_training_split(model_dir: PathLike) -> dict[str, list[str]] | None:
    """``{split: [absolute image path, ...]}`` of the model's record, or None when it has none."""
    path = Path(model_dir) / SPLIT_FILE
    if not path.is_file():
        return None
    payload = read_json(path)
    splits = payload.get("splits") if isinstance(payload, dict) else None
    if not isinstance(splits, dict) or payload.get("format") != FORMAT:
        raise ModelError(f"damaged: {path} (not a {FORMAT} file)")
    if not all(isinstance(v, list) and all(isinstance(i, str) for i in v) for v in splits.values()):
        raise ModelError(f"damaged: {path} (not a {FORMAT} file)")
    if payload.get("format_version") != FORMAT_VERSION:
        raise ModelError(f"{path}: format version {payload.get('format_version')!r} is not supported")
    return {str(name): list(images) for name, images in splits.items()}


def apply_training_split(dataset: Dataset, record: dict[str, list[str]], where: str = "the model") -> Dataset:
    """``dataset`` with each image in the split the record gives it (:data:`UNUSED` for the others).
    DatasetError when no image of the dataset is in the record (another dataset, or moved files)."""
    split_of = {image: name for name, images in record.items() for image in images}
    samples = [replace(s, split=split_of.get(_key(s.image), UNUSED)) for s in dataset]
    if all(s.split == UNUSED for s in samples):
        raise DatasetError(
            f"none of the {len(dataset)} images of dataset {dataset.name!r} is in the split {where} was "
            "trained with (another dataset, or the images moved)"
        )
    return Dataset(samples, dataset.name, dataset.skipped)
