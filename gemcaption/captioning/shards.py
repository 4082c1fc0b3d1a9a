"""Feature shards: one dataset's encoder features consolidated into float16 ``.npy`` files that
training reads a batch of rows at a time, so memory does not grow with the number of images.

:meth:`FeatureShards.build` takes an ordered list of images and an encoder: images missing from the
per-image cache (:mod:`.features`) are encoded first, in chunks; the grids are then copied, one shard
(at most :data:`ROWS_PER_SHARD` rows) at a time, into ``shard-K.npy`` files of shape (rows, G, C)
float16 with a ``shards.json`` manifest (row count, grid shape, the images' content digests in
order). The folder lives under the feature cache, at ``<encoder cache>/shards/<hash of the
digests>``, is written atomically and is reused by every later run over the same images (a
different order or subset is another set of shards). A damaged or incomplete set is rebuilt.

The files are plain ``.npy`` (memory-mappable by ``np.load(mmap_mode="r")``); :meth:`FeatureShards.rows`
reads the rows it is asked for with ``os.pread`` instead of a memory map, so the pages it read are
page cache, not the process's resident memory: a training epoch over 100,000 images keeps only the
current batches in RAM. :mod:`.streaming` turns shards into a ``tf.data`` pipeline.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..persistence import atomic_directory, read_json, write_json

ROWS_PER_SHARD = 4096
"""Rows (images) per shard file: 4096 Lite0 grids (49 x 1280 float16) are 490 MiB."""
ENCODE_CHUNK = 256
"""Images encoded at a time when filling the per-image cache before consolidation."""
MANIFEST = "shards.json"
FORMAT = "gemcaption-feature-shards"


def _data_offset(path: Path) -> tuple[int, tuple[int, ...]]:
    """Byte offset of the array data in a float16 C-order ``.npy`` file, and its shape."""
    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
        if fortran or dtype != np.float16:
            raise ValueError(f"{path.name}: expected a C-order float16 array, got {dtype}")
        return handle.tell(), tuple(shape)


class FeatureShards:
    """Read-only feature grids of one dataset: row ``i`` is image ``i`` of the list it was built from.

    Behaves like a read-only (N, G, C) float32 array for ``len()`` and slicing (``shards[a:b]``,
    ``shards[[i, j]]``), so code written for in-memory grids (e.g. :meth:`Captioner.caption_features`)
    reads it in batches unchanged."""

    def __init__(self, directory):
        self.directory = Path(directory)
        try:
            manifest = read_json(self.directory / MANIFEST)
            if manifest.get("format") != FORMAT:
                raise ValueError("not a feature-shards manifest")
            self.grid_shape = (int(manifest["grid"][0]), int(manifest["grid"][1]))
            self.digests: list[str] = [str(d) for d in manifest["digests"]]
            self._files: list[tuple[int, int, int]] = []  # (file descriptor, data offset, rows)
            total = 0
            for name in manifest["files"]:
                offset, shape = _data_offset(self.directory / name)
                if shape[1:] != self.grid_shape:
                    raise ValueError(f"{name}: grid {shape[1:]} instead of {self.grid_shape}")
                fd = os.open(self.directory / name, os.O_RDONLY)
                self._files.append((fd, offset, shape[0]))
                total += shape[0]
                if os.fstat(fd).st_size < offset + shape[0] * self.row_bytes:
                    raise ValueError(f"{name}: truncated")
            if total != len(self.digests):
                raise ValueError(f"{total} rows for {len(self.digests)} images")
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            self.close()
            raise ModelError(f"damaged feature shards {self.directory}: {exc}") from None
        self._starts = np.cumsum([0] + [rows for _, _, rows in self._files])

    @property
    def row_bytes(self) -> int:
        return self.grid_shape[0] * self.grid_shape[1] * 2

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self), *self.grid_shape)

    def __len__(self) -> int:
        return len(self.digests)

    def close(self) -> None:
        for fd, _, _ in getattr(self, "_files", []):
            os.close(fd)
        self._files = []

    def __del__(self):  # the descriptors go with the object
        self.close()

    def __getitem__(self, item) -> np.ndarray:
        if isinstance(item, slice):
            return self.rows(range(*item.indices(len(self))))
        return self.rows(np.atleast_1d(np.asarray(item, np.int64)))

    def rows(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Float32 grids (len(indices), G, C) of the given rows, in the given order."""
        indices = np.asarray(indices, np.int64).reshape(-1)
        if len(indices) and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"row out of range 0..{len(self) - 1}")
        out = np.empty((len(indices), *self.grid_shape), np.float32)
        shard_of = np.searchsorted(self._starts, indices, side="right") - 1
        for position, (row, shard) in enumerate(zip(indices.tolist(), shard_of.tolist())):
            fd, offset, _ = self._files[shard]
            local = row - int(self._starts[shard])
            raw = os.pread(fd, self.row_bytes, offset + local * self.row_bytes)
            out[position] = np.frombuffer(raw, np.float16).reshape(self.grid_shape)
        return out

    def pooled(self, chunk: int = 128) -> np.ndarray:
        """Mean over the grid of every row, (N, C) float32, read ``chunk`` rows at a time (128 Lite0
        grids are 32 MB as float32, 1024 were 257 MB: a step up in the peak memory of ``gemcaption train``)."""
        out = np.empty((len(self), self.grid_shape[1]), np.float32)
        for start in range(0, len(self), chunk):
            out[start : start + chunk] = self.rows(range(start, min(start + chunk, len(self)))).mean(axis=1)
        return out

    @classmethod
    def build(
        cls, encoder, images, *, cache=None, progress: bool = True, rows_per_shard: int = ROWS_PER_SHARD
    ) -> tuple[FeatureShards, list[int]]:
        """Shards of the readable ``images`` (paths, arrays...) with ``encoder``; returns them and
        the indices of the images kept (unreadable ones are skipped with a warning, as by
        :func:`~.features.extract_features`). ``cache``: the :class:`~.features.FeatureCache` (default:
        the encoder's disk cache) the grids are read from and the shards stored beside."""
        from ..data.images import content_hash
        from .features import FeatureCache, encoder_key, extract_features

        store = cache if isinstance(cache, FeatureCache) else FeatureCache(encoder)
        images = list(images)
        digests: dict[int, str] = {}
        for i, image in enumerate(images):
            with contextlib.suppress(Exception):  # unreadable: extract_features reports it below
                digests[i] = content_hash(image)
        missing = [i for i in range(len(images)) if i not in digests or not store._path(digests[i]).exists()]
        for start in range(0, len(missing), ENCODE_CHUNK):  # fill the per-image cache, a chunk at a time
            chunk = missing[start : start + ENCODE_CHUNK]
            extract_features(encoder, [images[i] for i in chunk], cache=store, progress=progress)
        kept = [i for i in range(len(images)) if i in digests and store._path(digests[i]).exists()]
        ordered = [digests[i] for i in kept]
        key = hashlib.sha256(json.dumps([encoder_key(encoder), ordered]).encode()).hexdigest()[:24]
        directory = store.directory / "shards" / key
        if (directory / MANIFEST).exists():
            try:
                return cls(directory), kept
            except ModelError:
                pass  # damaged: rebuilt below
        _write_shards(directory, store, ordered, rows_per_shard)
        return cls(directory), kept


def _write_shards(directory: Path, store, digests: list[str], rows_per_shard: int) -> None:
    """Write the shards row by row with plain file writes (no memory map: the process never holds
    more than one grid), atomically as one directory."""
    first = store.get(digests[0]) if digests else None
    grid = tuple(first.shape) if first is not None else (0, 0)
    with atomic_directory(directory, what="feature shards") as staged:
        files = []
        for number, start in enumerate(range(0, len(digests), rows_per_shard)):
            part = digests[start : start + rows_per_shard]
            name = f"shard-{number:05d}.npy"
            with open(staged / name, "wb") as handle:
                header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float16)), "fortran_order": False}
                np.lib.format.write_array_header_2_0(handle, {**header, "shape": (len(part), *grid)})
                for digest in part:
                    values = store.get(digest)
                    if values is None or tuple(values.shape) != grid:
                        raise ModelError(f"feature cache entry {digest} is missing or has another shape")
                    handle.write(np.ascontiguousarray(values, np.float16).tobytes())
            files.append(name)
        write_json(staged / MANIFEST, {"format": FORMAT, "grid": list(grid), "digests": digests, "files": files})


__all__ = ["ROWS_PER_SHARD", "FeatureShards"]
