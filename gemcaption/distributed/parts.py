"""The result of one shard in the work folder, as plain files (no pickle).

``NAME.json`` holds, per input of the shard, its content hash (null when unreadable) and file stamp
(size, mtime_ns), and the shard-local positions of the new images with their generated captions;
``NAME.vectors.npy`` (float32, one row per new image, absent while the embedder is not fitted) and
``NAME.features.npy`` (float32 visual features, with a hybrid weight only) hold the arrays. Each file
is written atomically and the JSON last, so a shard is complete exactly when its JSON is there."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..persistence import atomic_write_bytes, damaged, read_json, reading, write_json
from ..retrieval.prepared import PreparedImages

PART_VERSION = 1


def _array_file(folder: Path, name: str, kind: str) -> Path:
    return folder / f"{name}.{kind}.npy"


def _save_array(path: Path, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array, np.float32), allow_pickle=False)
    atomic_write_bytes(path, buffer.getvalue())


def write_part(folder: Path, name: str, prepared: PreparedImages) -> Path:
    """Write the shard ``name``'s prepared images into ``folder``; returns the JSON file."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {"vectors": prepared.vectors, "features": prepared.features}
    for kind, array in arrays.items():
        if array is not None:
            _save_array(_array_file(folder, name, kind), array)
    payload = {
        "version": PART_VERSION,
        "digests": prepared.digests,
        "stamps": [list(stamp) for stamp in prepared.stamps],
        "new": prepared.new,
        "captions": prepared.captions,
        "arrays": sorted(kind for kind, array in arrays.items() if array is not None),
    }
    return write_json(folder / f"{name}.json", payload)


def is_complete(folder: Path, name: str) -> bool:
    return (folder / f"{name}.json").is_file()


def read_part(folder: Path, name: str, items: list[tuple]) -> PreparedImages:
    """The shard ``name`` written by :func:`write_part`, for its inputs ``items``; ModelError if damaged."""
    where = folder / f"{name}.json"
    payload = read_json(where)
    try:
        digests, stamps, new, captions = payload["digests"], payload["stamps"], payload["new"], payload["captions"]
        ok = payload["version"] == PART_VERSION and len(digests) == len(stamps) == len(items)
        ok = ok and len(new) == len(captions) and all(0 <= int(p) < len(items) for p in new)
        kinds = list(payload["arrays"])
    except (KeyError, TypeError, ValueError):
        raise damaged(where, "not a shard result") from None
    if not ok:
        raise damaged(where, f"does not describe these {len(items)} images")
    arrays: dict[str, np.ndarray | None] = {"vectors": None, "features": None}
    for kind in kinds:
        path = _array_file(folder, name, kind)
        with reading(path):
            array = np.load(path, allow_pickle=False)
        if array.ndim != 2 or len(array) != len(new) or array.dtype != np.float32:
            raise damaged(path, f"{array.dtype} {array.shape} for {len(new)} images")
        arrays[kind] = array
    return PreparedImages(
        items,
        [str(d) if d is not None else None for d in digests],
        [(s[0], s[1]) for s in stamps],
        [int(p) for p in new],
        [str(c) for c in captions],
        arrays["vectors"],
        arrays["features"],
    )


def merge_parts(parts: list[PreparedImages], items: list[tuple]) -> PreparedImages:
    """One PreparedImages for all ``items`` from the shards' ``parts`` (in order), keeping, as one
    ``Retriever.prepare`` over all of them would, only the first input of each content hash."""
    digests = [d for part in parts for d in part.digests]
    stamps = [s for part in parts for s in part.stamps]
    first: dict[str, int] = {}
    for pos, digest in enumerate(digests):
        if digest is not None:
            first.setdefault(digest, pos)
    new, captions, rows = [], [], []
    offset, row = 0, 0
    for part in parts:
        for pos, caption in zip(part.new, part.captions):
            if first.get(part.digests[pos] or "") == offset + pos:
                new.append(offset + pos)
                captions.append(caption)
                rows.append(row)
            row += 1
        offset += len(part.items)
    if len(digests) != len(items):
        raise ModelError("the shard results do not cover the image list")

    def stacked(kind: str) -> np.ndarray | None:
        arrays = [getattr(part, kind) for part in parts if part.new]
        if not arrays or any(a is None for a in arrays):
            return None
        return np.concatenate(arrays)[np.asarray(rows, np.int64)]

    return PreparedImages(items, digests, stamps, new, captions, stacked("vectors"), stacked("features"))
