"""Bring an index in line with a folder of images, and find indexed images by path.

:func:`sync_folder` (``Retriever.sync``, ``gemcaption index sync IDX DIR``) compares the image files
below a folder with the index's records whose path lies below it:

* a file whose size and modification time equal its record's is **unchanged** and is not read;
* a file whose size or time differ is hashed: the same content hash is still unchanged (its new
  stamp is kept), another one makes it **changed** (its old record goes, the new content is added);
* a record whose file is gone is **removed**, unless a new or changed file has its exact content:
  then the record is **moved** to that path (no captioning, same id);
* a file not indexed yet is **added**; one whose content is already indexed under another path
  that still exists is a **duplicate** (the index holds each content once) and is left as it is.

Records saved before sizes and times were kept (older indexes) have no stamp: their files are
hashed once, and the stamp is stored from then on. Only new and changed files are decoded and
captioned. Records outside the folder (and images added from memory) are never touched.
Problem files are listed in :attr:`SyncReport.failed` and the rest is synced: a file that cannot
be read at all keeps its record; a changed file that no longer decodes loses it.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from ..data.images import SkippedImageWarning
from ..errors import ConfigError, ImageError
from .metadata import Record, file_stamp


@dataclass
class SyncReport:
    """What :func:`sync_folder` did, as lists of file paths (``unchanged`` is a count)."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    moved: list[tuple[str, str]] = field(default_factory=list)  # (old path, new path)
    duplicates: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, why)
    unchanged: int = 0
    captioned: int = 0  # images decoded and captioned

    def summary(self) -> str:
        """One line: ``added N, changed N, removed N, moved N, unchanged N, duplicates N, failed N``."""
        counts = {
            "added": len(self.added),
            "changed": len(self.changed),
            "removed": len(self.removed),
            "moved": len(self.moved),
            "unchanged": self.unchanged,
            "duplicates": len(self.duplicates),
            "failed": len(self.failed),
        }
        return ", ".join(f"{name} {count}" for name, count in counts.items())


def normal_path(path) -> str:
    """``path`` absolute and normalised (``..`` and doubled separators resolved, symlinks kept)."""
    return os.path.abspath(os.fspath(path))


def records_below(retriever, folder) -> list[Record]:
    """The retriever's records whose image path is ``folder`` itself or lies below it, by id."""
    root = normal_path(folder)
    prefix = root.rstrip(os.sep) + os.sep
    found = []
    for item_id in sorted(retriever.metadata.records):
        record = retriever.metadata.records[item_id]
        if record.image is not None:
            path = normal_path(record.image)
            if path == root or path.startswith(prefix):
                found.append(record)
    return found


def ids_for_paths(retriever, paths) -> tuple[list[int], list[str]]:
    """(ids, unknown): the ids of the images indexed at ``paths`` (a folder stands for every image
    indexed below it), and the paths with no indexed image."""
    ids: list[int] = []
    unknown: list[str] = []
    for path in paths:
        matched = [r.id for r in records_below(retriever, path)]
        if matched:
            ids += matched
        else:
            unknown.append(str(path))
    return ids, unknown


def _hash(path: str) -> str:
    from ..data.images import content_hash

    return content_hash(path)


def sync_folder(retriever, folder, *, progress: bool | None = None) -> SyncReport:
    """Bring ``retriever`` in line with the image files below ``folder`` (see the module doc);
    changes the retriever in memory (save it, or use ``Retriever.edit``) and returns a report.
    ``progress`` (default: the retriever's setting) shows a bar on stderr while files are checked."""
    from tqdm.auto import tqdm

    from ..data.images import find_image_files

    if not Path(folder).is_dir():
        raise ConfigError(f"{folder}: not a folder")
    show = retriever.progress if progress is None else progress
    report = SyncReport()
    indexed: dict[str, Record] = {}  # path -> its newest record
    releasable: dict[int, Record] = {}  # records of changed or vanished files, free to move or drop
    for below in records_below(retriever, folder):
        path = normal_path(cast(str, below.image))
        if path in indexed:  # an older record of the same path (added again after a change): stale
            releasable[indexed[path].id] = indexed[path]
        indexed[path] = below
    files = [normal_path(p) for p in find_image_files(normal_path(folder))]
    candidates: dict[str, tuple[str, tuple]] = {}  # path -> (content hash, stamp) of new or changed files
    for path in tqdm(files, desc="Checking", unit="file", disable=not show, leave=False):
        record = indexed.get(path)
        stamp = file_stamp(path)
        if record is not None and stamp[0] is not None and stamp == (record.size, record.mtime_ns):
            report.unchanged += 1
            continue
        try:
            digest = _hash(path)
        except ImageError as exc:
            report.failed.append((path, str(exc)))
            continue
        if record is not None and digest == record.content_hash:
            report.unchanged += 1
            retriever.metadata.replace(dataclasses.replace(record, image=path, size=stamp[0], mtime_ns=stamp[1]))
            continue
        if record is not None:
            releasable[record.id] = record
        candidates[path] = (digest, stamp)
    present = set(files)
    for path, record in indexed.items():
        if path not in present:
            releasable[record.id] = record
    to_add = _move_known_contents(retriever, indexed, candidates, releasable, report)
    _remove_released(retriever, releasable, present, report)
    _add_new(retriever, to_add, indexed, report)
    return report


def _move_known_contents(retriever, indexed, candidates, releasable, report) -> list[str]:
    """Point released records at new or changed files holding their exact content; the paths still
    to caption are returned. A file whose content another present file holds is a duplicate."""
    to_add = []
    for path, (digest, stamp) in candidates.items():
        owner = retriever.metadata.by_hash.get(digest)
        if owner is None:
            to_add.append(path)
            continue
        if owner not in releasable:
            report.duplicates.append(path)
            continue
        old = releasable.pop(owner)
        retriever.metadata.replace(dataclasses.replace(old, image=path, size=stamp[0], mtime_ns=stamp[1]))
        if path in indexed:
            report.changed.append(path)
        else:
            report.moved.append((normal_path(old.image), path))
    return to_add


def _remove_released(retriever, releasable, present, report) -> None:
    """Drop the records left released; a vanished file's is reported removed (a changed file's
    record is replaced by the new content, reported when that is added)."""
    retriever.remove(list(releasable))
    report.removed += [normal_path(r.image) for r in releasable.values() if normal_path(r.image) not in present]


def _add_new(retriever, paths: list[str], indexed, report) -> None:
    if not paths:
        return
    with warnings.catch_warnings(record=True) as caught:  # the failures are reported, not warned
        warnings.simplefilter("always")
        ids = retriever.add(paths)
    reasons = {}
    for warning in caught:
        text = str(warning.message)
        path = next((p for p in paths if text.startswith(f"skipping {p}: ")), None)
        if path is not None:
            reasons[path] = text.removeprefix(f"skipping {path}: ")
        elif not issubclass(warning.category, SkippedImageWarning):  # those are in the report too
            warnings.warn(warning.message, warning.category, stacklevel=2)
    for path, item_id in zip(paths, ids):
        if item_id is None:
            report.failed.append((path, reasons.get(path, "not a readable image")))
        elif normal_path(retriever.get(item_id).image or "") != path:
            report.duplicates.append(path)
        else:
            (report.changed if path in indexed else report.added).append(path)
            report.captioned += 1
