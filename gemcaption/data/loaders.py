"""The dataset formats and their loaders behind one entry point, ``load_dataset(spec)``, which
returns a :class:`Dataset` of :class:`Sample` (one per image). It reads:

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

The formats are the entries of :data:`DATASET_FORMATS` (a :class:`~gemcaption.registry.Registry`),
each a function ``open(argument, split, seed) -> Dataset``; an unknown ``FORMAT:`` prefix raises
:class:`~gemcaption.errors.UnknownNameError` listing them. A new format is one function registered there.

A bare path is also accepted: a folder holding a Flickr8k caption file is read as Flickr8k, another
folder as class folders, a ``.csv`` file as a manifest (or as Flickr8k if named ``captions.txt``).
``split=None`` or ``"all"`` returns every split.

Manifests are checked before any row is used: bytes that are not UTF-8, a NUL byte, a field over
:data:`MAX_FIELD` characters or a row the CSV reader cannot parse refuse the whole file with a
:class:`~gemcaption.errors.DatasetError` ``"FILE, row N: what is wrong"``. Image paths are resolved
relative to the data set's folder (the manifest's folder, or the folder given) and, unless
``allow_outside=True`` (``--allow-outside`` on the command line), must stay inside it after symlinks
are followed: ``..``, absolute paths and symlinks leading out are refused, naming the row.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable
from pathlib import Path

from ..errors import DatasetError, UnknownNameError
from ..persistence import PathLike
from ..registry import Registry
from .demo_set import make_demo_set
from .gemstones import describe_gemstone
from .images import IMAGE_EXTENSIONS, has_image_extension
from .manifest_checks import MAX_FIELD, Boundary, parse_csv, read_manifest_text
from .splits import assign_splits, split_dataset
from .types import Dataset, DatasetWarning, Sample

# Dataset, DatasetWarning, Sample, split_dataset and IMAGE_EXTENSIONS live in types, splits and images;
# they are re-exported because callers have always imported them from here.
__all__ = [
    "DATASET_FORMATS",
    "IMAGE_EXTENSIONS",
    "Dataset",
    "DatasetWarning",
    "Sample",
    "dataset_spec_forms",
    "MAX_FIELD",
    "load_csv",
    "load_dataset",
    "load_flickr8k",
    "load_folder",
    "split_dataset",
]

SPLIT_FOLDER_NAMES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "dev": "dev",
    "test": "test",
    "testing": "test",
}
FLICKR_CAPTION_FILES = ("Flickr8k.token.txt", "captions.txt")
FLICKR_IMAGE_FOLDERS = ("Images", "Flicker8k_Dataset", "Flickr8k_Dataset", "images")


# ---------------------------------------------------------------------------------------------
# helpers


def _warn_skipped(what: str, examples: list[str], count: int) -> None:
    if count:
        shown = "; ".join(examples[:5]) + (" ..." if count > 5 else "")
        warnings.warn(f"{what}: skipped {count}: {shown}", DatasetWarning, stacklevel=3)


def _is_image_file(path: Path) -> bool:
    return path.is_file() and has_image_extension(path) and not path.name.startswith(".")


def _filter_split(dataset: Dataset, split: str | None) -> Dataset:
    if split is None or split == "all":
        return dataset
    return dataset.split(split)


class _FileIndex:
    """Which file names exist in a folder, listed once (fast for thousands of rows)."""

    def __init__(self) -> None:
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
    text = read_manifest_text(caption_file)
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), "")
    rows: list[tuple[int, str, str]] = []
    if "\t" in first and "#" in first.split("\t", 1)[0]:  # Flickr8k.token.txt
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            if len(line) > MAX_FIELD:
                raise DatasetError(
                    f"{caption_file}, row {number}: a line of {len(line):,} characters (limit {MAX_FIELD:,})"
                )
            key, _, caption = line.partition("\t")
            image = key.rsplit("#", 1)[0] if "#" in key else key
            rows.append((number, image.strip(), caption.strip()))
        return rows
    parsed = parse_csv(caption_file, text)
    header = [h.strip().lower() for h in parsed[0][1]] if parsed else []
    if header[:2] != ["image", "caption"]:
        raise DatasetError(
            f"{caption_file}: expected a token file or a CSV with header 'image,caption', got {header[:2]}"
        )
    for number, row in parsed[1:]:
        if not row or not any(cell.strip() for cell in row):
            continue
        image = row[0].strip()
        caption = ",".join(row[1:]).strip()  # an unquoted comma inside a caption
        rows.append((number, image, caption))
    return rows


def _find_flickr_image_folder(caption_file: Path, root: Path, names: list[str], boundary: Boundary) -> Path:
    candidates = []
    for base in dict.fromkeys([root, caption_file.parent, caption_file.parent.parent]):
        candidates += [base / f for f in FLICKR_IMAGE_FOLDERS] + [base]
    existing = [c for c in dict.fromkeys(candidates) if c.is_dir() and boundary.contains(c)]
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
                lines = read_manifest_text(path).split()
                lists[split] = {line.strip() for line in lines if line.strip()}
                break
    return lists


def load_flickr8k(path: PathLike, split: str | None = None, seed: int = 0, *, allow_outside: bool = False) -> Dataset:
    """Flickr8k from a token file or Kaggle ``captions.txt`` (file or folder ``path``); see module doc.

    Images must stay inside ``path`` (or the caption file's folder) unless ``allow_outside``.
    """
    path = Path(path)
    caption_file = _find_flickr_caption_file(path)
    root = path if path.is_dir() else caption_file.parent
    boundary = Boundary(root, allow_outside)
    rows = _read_flickr_rows(caption_file)
    names = list(dict.fromkeys(image for _, image, _ in rows if image))
    folder = _find_flickr_image_folder(caption_file, root, names, boundary)
    checked: set[str] = set()
    for number, image, _ in rows:
        if image and image not in checked:
            boundary.check(folder / image, f"{caption_file}, row {number}", image)
            checked.add(image)
    files = _FileIndex()
    captions: dict[str, list[str]] = {}
    bad_rows, examples = 0, []
    for number, image, caption in rows:
        problem = (
            "no image name"
            if not image
            else "empty caption"
            if not caption
            else None
            if files.exists(folder / image)
            else f"missing image {image}"
        )
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
        split_of = {image: next((s for s, members in lists.items() if image in members), rest) for image in captions}
    else:
        split_of = assign_splits(list(captions), (0.75, 0.125, 0.125), ("train", "dev", "test"), seed)
    samples = [Sample(str(folder / image), tuple(texts), None, split_of[image]) for image, texts in captions.items()]
    return _filter_split(Dataset(samples, "flickr8k", bad_rows), split)


# ---------------------------------------------------------------------------------------------
# class folders


def _class_folders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def load_folder(
    path: PathLike,
    split: str | None = None,
    describe: Callable[[str], str] | None = None,
    *,
    allow_outside: bool = False,
) -> Dataset:
    """Class folders ``PATH/<split>/<Class>/*`` or ``PATH/<Class>/*``; captions from ``describe(label)``.

    ``describe`` defaults to :func:`gemcaption.data.gemstones.describe_gemstone`. A file or folder
    that is a symlink leading out of ``PATH`` is refused unless ``allow_outside``.
    """
    describe = describe or describe_gemstone
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    boundary = Boundary(root, allow_outside)
    top = _class_folders(root)
    split_level = (
        bool(top) and all(p.name.lower() in SPLIT_FOLDER_NAMES for p in top) and any(_class_folders(p) for p in top)
    )
    layout = [(SPLIT_FOLDER_NAMES[p.name.lower()], p) for p in top] if split_level else [("train", root)]
    samples, captions_of = [], {}
    for split_name, split_folder in layout:
        for class_folder in _class_folders(split_folder):
            label = class_folder.name
            if label not in captions_of:
                captions_of[label] = (describe(label),)
            for file in sorted(class_folder.iterdir()):
                if _is_image_file(file):
                    boundary.check(file, str(root), str(file.relative_to(root)))
                    samples.append(Sample(str(file), captions_of[label], label, split_name))
    if not samples:
        raise DatasetError(
            f"{root}: no images in class folders (expected {root}/<Class>/*.jpg or {root}/<split>/<Class>/*.jpg)"
        )
    return _filter_split(Dataset(samples, root.name or "folder"), split)


# ---------------------------------------------------------------------------------------------
# CSV manifest


def _resolve_image(value: str, base: Path, files: _FileIndex, boundary: Boundary, where: str) -> Path | None:
    """The image file ``value`` names (relative to ``base``, then ``base/images``); None when missing.

    A path leading outside ``boundary`` raises DatasetError whether or not the file exists."""
    candidate = Path(value).expanduser()
    if candidate.is_absolute():
        boundary.check(candidate, where, value)
        return candidate if candidate.is_file() else None
    found = None
    for folder in (base, base / "images"):
        path = folder / candidate
        if found is None and files.exists(path):
            found = path
    boundary.check(found or base / candidate, where, value)
    return found


def _cell(row: list[str], column: dict[str, int], name: str) -> str | None:
    """The stripped value of column ``name`` in ``row``; None when the CSV has no such column or the row is short."""
    index = column.get(name)
    return row[index].strip() if index is not None and index < len(row) else None


def load_csv(path: PathLike, split: str | None = None, *, allow_outside: bool = False) -> Dataset:
    """A CSV manifest ``image,caption[,label][,split]``; see the module docstring.

    Image paths must stay inside the CSV's folder unless ``allow_outside``."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such CSV file")
    parsed = parse_csv(path, read_manifest_text(path))
    header = [h.strip().lower() for h in parsed[0][1]] if parsed else []
    missing = [c for c in ("image", "caption") if c not in header]
    if missing:
        raise DatasetError(f"{path}: header lacks column(s) {missing} (got {header})")
    column: dict[str, int] = {
        name: header.index(name) for name in ("image", "caption", "label", "split") if name in header
    }
    rows = parsed[1:]
    base, files = path.parent, _FileIndex()
    boundary = Boundary(base, allow_outside)
    grouped: dict[str, dict] = {}
    bad, examples = 0, []
    for number, row in rows:
        if not any(cell.strip() for cell in row):
            continue

        image, caption = _cell(row, column, "image"), _cell(row, column, "caption")
        problem = None
        if len(row) < len(header) and (image is None or caption is None):
            problem = "missing columns"
        elif not image:
            problem = "empty image"
        elif not caption:
            problem = "empty caption"
        else:
            resolved = _resolve_image(image, base, files, boundary, f"{path}, row {number}")
            if resolved is None:
                problem = f"missing image {image}"
            elif not has_image_extension(resolved):
                problem = f"not an image file name: {image}"
        if problem:
            bad += 1
            examples.append(f"line {number}: {problem}")
            continue
        entry = grouped.setdefault(str(resolved), {"captions": [], "label": None, "split": None})
        entry["captions"].append(caption)
        entry["label"] = entry["label"] or _cell(row, column, "label") or None
        entry["split"] = entry["split"] or _cell(row, column, "split") or None
    _warn_skipped(str(path), examples, bad)
    if not grouped:
        raise DatasetError(f"{path}: no usable rows")
    samples = [Sample(image, tuple(e["captions"]), e["label"], e["split"] or "train") for image, e in grouped.items()]
    return _filter_split(Dataset(samples, path.parent.name or path.stem, bad), split)


# ---------------------------------------------------------------------------------------------
# entry point


def _guess_format(path: Path) -> str:
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
    raise DatasetError(f"cannot tell what kind of dataset {path} is; use {dataset_spec_forms()}")


def _open_demo(argument: str, split: str | None, seed: int) -> Dataset:
    kwargs: dict = {"seed": seed}
    if argument:
        try:
            kwargs["n_images"] = int(argument)
        except ValueError:
            raise DatasetError(f"demo:N expects a number of images, got {argument!r}") from None
    return _filter_split(make_demo_set(**kwargs), split)


def _path_argument(name: str, argument: str) -> Path:
    if not argument.strip():
        raise DatasetError(f"{name}:PATH needs a path after the colon")
    return Path(argument.strip()).expanduser()


# An opener is called ``open(argument, split, seed)``; one that reads image paths also takes the
# keyword ``allow_outside``, passed only when the caller allows paths outside the data set's folder.
DatasetOpener = Callable[..., Dataset]
DATASET_FORMATS: Registry[DatasetOpener] = Registry("dataset format")
DATASET_FORMATS.register(
    "flickr8k",
    lambda arg, split, seed, allow_outside=False: load_flickr8k(
        _path_argument("flickr8k", arg), split, seed, allow_outside=allow_outside
    ),
)
DATASET_FORMATS.register(
    "folder",
    lambda arg, split, seed, allow_outside=False: load_folder(
        _path_argument("folder", arg), split, allow_outside=allow_outside
    ),
)
DATASET_FORMATS.register(
    "csv",
    lambda arg, split, seed, allow_outside=False: load_csv(
        _path_argument("csv", arg), split, allow_outside=allow_outside
    ),
)
DATASET_FORMATS.register("demo", _open_demo)

# Formats usable without ``:ARGUMENT``.
_BARE_FORMATS = ("demo",)
_FORMAT_PREFIX = re.compile(r"^([A-Za-z][\w-]+):(.*)$", re.DOTALL)  # two letters at least: C:\ is a path


def dataset_spec_forms() -> str:
    """The spec forms :func:`load_dataset` takes, read from the registry (for messages and CLI help):
    ``"flickr8k:PATH, folder:PATH, csv:PATH or demo"``."""
    forms = [name if name in _BARE_FORMATS else f"{name}:PATH" for name in DATASET_FORMATS.names()]
    return ", ".join(forms[:-1]) + " or " + forms[-1]


def _open(opener: DatasetOpener, argument: str, split: str | None, seed: int, allow_outside: bool) -> Dataset:
    return opener(argument, split, seed, allow_outside=True) if allow_outside else opener(argument, split, seed)


def load_dataset(
    spec: str | PathLike | Dataset, split: str | None = None, seed: int = 0, *, allow_outside: bool = False
) -> Dataset:
    """Load ``"flickr8k:PATH"``, ``"folder:PATH"``, ``"csv:PATH"``, ``"demo"`` / ``"demo:N"`` or a bare path.

    A :class:`Dataset` is returned as is (filtered by ``split``). ``split=None`` or ``"all"``
    returns every split; ``seed`` drives the seeded splits when a dataset has no split lists.
    An unknown ``FORMAT:`` prefix raises :class:`UnknownNameError` listing :data:`DATASET_FORMATS`.
    Image paths outside the data set's folder are refused unless ``allow_outside``.
    """
    if isinstance(spec, Dataset):
        return _filter_split(spec, split)
    text = str(spec).strip()
    prefixed = _FORMAT_PREFIX.match(text)
    if prefixed and prefixed.group(1) in DATASET_FORMATS:
        return _open(DATASET_FORMATS.get(prefixed.group(1)), prefixed.group(2), split, seed, allow_outside)
    if text in DATASET_FORMATS and DATASET_FORMATS.canonical(text) in _BARE_FORMATS:
        return DATASET_FORMATS.get(text)("", split, seed)
    path = Path(text).expanduser()
    if path.exists():
        return _open(DATASET_FORMATS.get(_guess_format(path)), str(path), split, seed, allow_outside)
    if prefixed:
        raise UnknownNameError("dataset format", prefixed.group(1), DATASET_FORMATS.names())
    raise DatasetError(f"unknown dataset {text!r}: no such file or folder; expected {dataset_spec_forms()}")
