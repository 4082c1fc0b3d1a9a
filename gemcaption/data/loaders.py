"""Captioned image sets in one structure: :class:`Dataset` of :class:`Sample` (one per image).

``load_dataset(spec)`` reads:

* ``flickr8k:PATH``: Flickr8k, either ``Flickr8k.token.txt`` (``name.jpg#N<TAB>caption``) or the
  Kaggle ``captions.txt`` CSV (``image,caption``). PATH is that file or a folder holding it. Images
  are looked for in ``Images/``, ``Flicker8k_Dataset/``, ``Flickr8k_Dataset/`` or next to the file.
  Splits come from ``Flickr_8k.{train,dev,test}Images.txt`` when present (an image in no list is
  "test" when there is no test list, else "unlisted"); otherwise a seeded 75/12.5/12.5 split *by
  image* into train/dev/test. Rows naming a missing image are skipped with a warning and counted.
* ``folder:PATH``: class folders ``PATH/<split>/<Class>/*.jpg`` or ``PATH/<Class>/*.jpg`` (as in the
  Kaggle gemstones set). The label is the folder name; the caption is
  :func:`gemcaption.data.gemstones.describe_gemstone` of it. Without a split level every sample is in
  "train": use :func:`split_dataset` to split.
* ``csv:PATH``: a manifest with header ``image,caption[,label][,split]`` (other columns ignored),
  any number of rows per image. Relative image paths resolve against the CSV's folder, then its
  ``images/`` subfolder. Bad rows (missing fields, empty caption, missing image) are skipped with a
  warning and counted. Without a split column every sample is in "train".
* ``demo`` (or ``demo:N`` for N images): the synthetic jewellery set of :mod:`gemcaption.data.demo_set`.

A bare path is also accepted: a folder holding a Flickr8k caption file is read as Flickr8k, another
folder as class folders, a ``.csv`` file as a manifest (or as Flickr8k if named ``captions.txt``).
``split=None`` or ``"all"`` returns every split.
"""
from __future__ import annotations

import csv
import os
import warnings
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..errors import DatasetError
from .demo_set import make_demo_set
from .splits import assign_splits, split_dataset
from .types import SPLIT_ORDER, Dataset, DatasetWarning, Sample

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
SPLIT_FOLDER_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val",
                      "validation": "val", "dev": "dev", "test": "test", "testing": "test"}
FLICKR_CAPTION_FILES = ("Flickr8k.token.txt", "captions.txt")
FLICKR_IMAGE_FOLDERS = ("Images", "Flicker8k_Dataset", "Flickr8k_Dataset", "images")


# ---------------------------------------------------------------------------------------------
# helpers


def _warn_skipped(what: str, examples: list[str], count: int) -> None:
    if count:
        shown = "; ".join(examples[:5]) + (" ..." if count > 5 else "")
        warnings.warn(f"{what}: skipped {count}: {shown}", DatasetWarning, stacklevel=3)


def _is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _filter_split(dataset: Dataset, split: str | None) -> Dataset:
    if split is None or split == "all":
        return dataset
    return dataset.split(split)


class _FileIndex:
    """Which file names exist in a folder, listed once (fast for thousands of rows)."""

    def __init__(self):
        self._listings: dict[Path, set[str]] = {}

    def exists(self, path: Path) -> bool:
        folder = path.parent
        if folder not in self._listings:
            try:
                self._listings[folder] = {e.name for e in os.scandir(folder) if e.is_file()}
            except OSError:
                self._listings[folder] = set()
        return path.name in self._listings[folder]


# ---------------------------------------------------------------------------------------------
# Flickr8k


def _find_flickr_caption_file(path: Path) -> Path:
    if path.is_file():
        return path
    if not path.is_dir():
        raise DatasetError(f"{path}: no such file or folder")
    for folder in [path] + sorted(p for p in path.iterdir() if p.is_dir()):
        for name in FLICKR_CAPTION_FILES:
            if (folder / name).is_file():
                return folder / name
    raise DatasetError(f"{path}: no Flickr8k caption file ({' or '.join(FLICKR_CAPTION_FILES)}) found")


def _read_flickr_rows(caption_file: Path) -> list[tuple[int, str, str]]:
    """(line number, image name, caption) from either layout; malformed lines get image ''."""
    with open(caption_file, encoding="utf-8-sig", newline="") as handle:
        text = handle.read()
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), "")
    rows: list[tuple[int, str, str]] = []
    if "\t" in first and "#" in first.split("\t", 1)[0]:  # Flickr8k.token.txt
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            key, _, caption = line.partition("\t")
            image = key.rsplit("#", 1)[0] if "#" in key else key
            rows.append((number, image.strip(), caption.strip()))
        return rows
    reader = csv.reader(lines)
    header = [h.strip().lower() for h in next(reader, [])]
    if header[:2] != ["image", "caption"]:
        raise DatasetError(f"{caption_file}: expected a token file or a CSV with header 'image,caption', "
                           f"got {header[:2]}")
    for number, row in enumerate(reader, 2):
        if not row or not any(cell.strip() for cell in row):
            continue
        image = row[0].strip()
        caption = ",".join(row[1:]).strip()  # an unquoted comma inside a caption
        rows.append((number, image, caption))
    return rows


def _find_flickr_image_folder(caption_file: Path, root: Path, names: list[str]) -> Path:
    candidates = []
    for base in dict.fromkeys([root, caption_file.parent, caption_file.parent.parent]):
        candidates += [base / f for f in FLICKR_IMAGE_FOLDERS] + [base]
    existing = [c for c in dict.fromkeys(candidates) if c.is_dir()]
    probes = names[:50]
    best, best_hits = None, 0
    for folder in existing:
        hits = sum((folder / n).is_file() for n in probes)
        if hits > best_hits:
            best, best_hits = folder, hits
    if best is None:
        raise DatasetError(f"{caption_file}: none of its images found in {[str(c) for c in existing]}")
    return best


def _read_split_lists(folders: list[Path]) -> dict[str, set[str]]:
    lists: dict[str, set[str]] = {}
    for split, stem in (("train", "train"), ("dev", "dev"), ("test", "test")):
        for folder in folders:
            path = folder / f"Flickr_8k.{stem}Images.txt"
            if path.is_file():
                lines = path.read_text(encoding="utf-8-sig").split()
                lists[split] = {line.strip() for line in lines if line.strip()}
                break
    return lists


def load_flickr8k(path, split: str | None = None, seed: int = 0) -> Dataset:
    """Flickr8k from a token file or Kaggle ``captions.txt`` (file or folder ``path``); see module doc."""
    path = Path(path)
    caption_file = _find_flickr_caption_file(path)
    root = path if path.is_dir() else caption_file.parent
    rows = _read_flickr_rows(caption_file)
    names = list(dict.fromkeys(image for _, image, _ in rows if image))
    folder = _find_flickr_image_folder(caption_file, root, names)
    files = _FileIndex()
    captions: dict[str, list[str]] = {}
    bad_rows, examples = 0, []
    for number, image, caption in rows:
        problem = ("no image name" if not image else "empty caption" if not caption
                   else None if files.exists(folder / image) else f"missing image {image}")
        if problem:
            bad_rows += 1
            examples.append(f"line {number}: {problem}")
            continue
        captions.setdefault(image, []).append(caption)
    _warn_skipped(f"{caption_file}", examples, bad_rows)
    if not captions:
        raise DatasetError(f"{caption_file}: no usable rows")
    lists = _read_split_lists(list(dict.fromkeys([caption_file.parent, root, folder.parent])))
    if lists:
        rest = "test" if "test" not in lists else "unlisted"
        split_of = {image: next((s for s, members in lists.items() if image in members), rest)
                    for image in captions}
    else:
        split_of = assign_splits(list(captions), (0.75, 0.125, 0.125), ("train", "dev", "test"), seed)
    samples = [Sample(str(folder / image), tuple(texts), None, split_of[image])
               for image, texts in captions.items()]
    return _filter_split(Dataset(samples, "flickr8k", bad_rows), split)


# ---------------------------------------------------------------------------------------------
# class folders


def _class_folders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def load_folder(path, split: str | None = None, describe=None) -> Dataset:
    """Class folders ``PATH/<split>/<Class>/*`` or ``PATH/<Class>/*``; captions from ``describe(label)``.

    ``describe`` defaults to :func:`gemcaption.data.gemstones.describe_gemstone`.
    """
    if describe is None:
        from .gemstones import describe_gemstone as describe
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    top = _class_folders(root)
    split_level = bool(top) and all(p.name.lower() in SPLIT_FOLDER_NAMES for p in top) and any(
        _class_folders(p) for p in top)
    layout = [(SPLIT_FOLDER_NAMES[p.name.lower()], p) for p in top] if split_level else [("train", root)]
    samples, captions_of = [], {}
    for split_name, split_folder in layout:
        for class_folder in _class_folders(split_folder):
            label = class_folder.name
            if label not in captions_of:
                captions_of[label] = (describe(label),)
            for file in sorted(class_folder.iterdir()):
                if _is_image_file(file):
                    samples.append(Sample(str(file), captions_of[label], label, split_name))
    if not samples:
        raise DatasetError(f"{root}: no images in class folders (expected {root}/<Class>/*.jpg "
                           f"or {root}/<split>/<Class>/*.jpg)")
    return _filter_split(Dataset(samples, root.name or "folder"), split)


# ---------------------------------------------------------------------------------------------
# CSV manifest


def _resolve_image(value: str, base: Path, files: _FileIndex) -> Path | None:
    candidate = Path(value).expanduser()
    if candidate.is_absolute():
        return candidate if candidate.is_file() else None
    for folder in (base, base / "images"):
        path = folder / candidate
        if files.exists(path):
            return path
    return None


def load_csv(path, split: str | None = None) -> Dataset:
    """A CSV manifest ``image,caption[,label][,split]``; see the module docstring."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such CSV file")
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = [h.strip().lower() for h in next(reader, [])]
        missing = [c for c in ("image", "caption") if c not in header]
        if missing:
            raise DatasetError(f"{path}: header lacks column(s) {missing} (got {header})")
        column = {name: header.index(name) for name in ("image", "caption", "label", "split") if name in header}
        rows = list(enumerate(reader, 2))
    base, files = path.parent, _FileIndex()
    grouped: dict[str, dict] = {}
    bad, examples = 0, []
    for number, row in rows:
        if not any(cell.strip() for cell in row):
            continue

        def cell(name):
            index = column.get(name)
            return row[index].strip() if index is not None and index < len(row) else None

        image, caption = cell("image"), cell("caption")
        problem = None
        if len(row) < len(header) and (image is None or caption is None):
            problem = "missing columns"
        elif not image:
            problem = "empty image"
        elif not caption:
            problem = "empty caption"
        else:
            resolved = _resolve_image(image, base, files)
            if resolved is None:
                problem = f"missing image {image}"
        if problem:
            bad += 1
            examples.append(f"line {number}: {problem}")
            continue
        entry = grouped.setdefault(str(resolved), {"captions": [], "label": None, "split": None})
        entry["captions"].append(caption)
        entry["label"] = entry["label"] or cell("label") or None
        entry["split"] = entry["split"] or cell("split") or None
    _warn_skipped(str(path), examples, bad)
    if not grouped:
        raise DatasetError(f"{path}: no usable rows")
    samples = [Sample(image, tuple(e["captions"]), e["label"], e["split"] or "train")
               for image, e in grouped.items()]
    return _filter_split(Dataset(samples, path.parent.name or path.stem, bad), split)


# ---------------------------------------------------------------------------------------------
# entry point


def _guess_kind(path: Path) -> str:
    if path.is_dir():
        try:
            _find_flickr_caption_file(path)
            return "flickr8k"
        except DatasetError:
            return "folder"
    if path.name in FLICKR_CAPTION_FILES:
        return "flickr8k"
    if path.suffix.lower() == ".csv":
        return "csv"
    raise DatasetError(f"cannot tell what kind of dataset {path} is; use flickr8k:, folder:, csv: or demo")


def load_dataset(spec, split: str | None = None, seed: int = 0) -> Dataset:
    """Load ``"flickr8k:PATH"``, ``"folder:PATH"``, ``"csv:PATH"``, ``"demo"`` / ``"demo:N"``.

    A :class:`Dataset` is returned as is (filtered by ``split``). ``split=None`` or ``"all"``
    returns every split; ``seed`` drives the seeded splits when a dataset has no split lists.
    """
    if isinstance(spec, Dataset):
        return _filter_split(spec, split)
    text = str(spec).strip()
    kind, sep, rest = text.partition(":")
    kind = kind.lower()
    if kind == "demo":
        kwargs = {"seed": seed}
        if rest:
            try:
                kwargs["n_images"] = int(rest)
            except ValueError:
                raise DatasetError(f"demo:N expects a number of images, got {rest!r}") from None
        return _filter_split(make_demo_set(**kwargs), split)
    if sep and kind in ("flickr8k", "folder", "csv"):
        path = Path(rest).expanduser()
    else:
        path = Path(text).expanduser()
        if not path.exists():
            raise DatasetError(f"unknown dataset {text!r}: expected flickr8k:PATH, folder:PATH, "
                               f"csv:PATH or demo")
        kind = _guess_kind(path)
    if kind == "flickr8k":
        return load_flickr8k(path, split, seed)
    if kind == "folder":
        return load_folder(path, split)
    return load_csv(path, split)
