"""Encoder features with a disk cache: with a frozen encoder the CNN runs once per image, ever.

Features are stored per image under ``cache_dir("features", <encoder key>)`` as float16 ``.npy``
files named by the image's content hash, where the encoder key is a hash of
``encoder.config()`` (encoder name, image size, weights identity). Training epochs, validation,
captioning and indexing all read the same files. Training with image augmentation cannot use the
cache (every epoch sees different pixels), so the captioner bypasses it then.

Inside ``with memory_features():`` (what the web server wraps each upload in) nothing is written to
disk: features are kept in a small in-memory LRU (:class:`MemoryFeatureCache`) instead, so an
upload captioned and then featurised is encoded once and never leaves a file behind. The setting
is a context variable: it holds for the current thread (or task) only.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

import numpy as np

from ..data.images import content_hash, load_images
from ..persistence import cache_dir


def encoder_key(encoder) -> str:
    """A short stable key for an encoder configuration (name, image size, weights identity)."""
    blob = json.dumps(encoder.config(), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


class FeatureCache:
    """Per-image feature files for one encoder configuration."""

    def __init__(self, encoder, root: str | os.PathLike | None = None):
        self.encoder = encoder
        base = Path(root) if root is not None else cache_dir("features")
        self.directory = base / encoder_key(encoder)
        self.directory.mkdir(parents=True, exist_ok=True)

    def _path(self, digest: str) -> Path:
        return self.directory / digest[:2] / f"{digest}.npy"

    def get(self, digest: str) -> np.ndarray | None:
        path = self._path(digest)
        try:
            return np.load(path)
        except (FileNotFoundError, ValueError, OSError):
            return None  # absent, or a partial file from a crash: recompute

    def put(self, digest: str, features: np.ndarray) -> None:
        path = self._path(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            np.save(handle, features.astype(np.float16))
        os.replace(tmp, path)  # atomic: a crash never leaves a half-written entry


class MemoryFeatureCache:
    """A bounded, thread-safe in-memory stand-in for :class:`FeatureCache` (least recently used out)."""

    def __init__(self, max_items: int = 64):
        if max_items < 1:
            raise ValueError("max_items must be positive")
        self.max_items = int(max_items)
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, digest: str) -> np.ndarray | None:
        with self._lock:
            found = self._items.get(digest)
            if found is not None:
                self._items.move_to_end(digest)
            return found

    def put(self, digest: str, features: np.ndarray) -> None:
        with self._lock:
            self._items[digest] = features.astype(np.float16)
            self._items.move_to_end(digest)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)


_MEMORY_ONLY: ContextVar[MemoryFeatureCache | None] = ContextVar("gemcaption_memory_features", default=None)


@contextmanager
def memory_features(cache: MemoryFeatureCache | None = None) -> Iterator[MemoryFeatureCache]:
    """Within this block, :func:`extract_features` writes no file: it uses ``cache`` (default: a new
    :class:`MemoryFeatureCache`) in place of the disk cache. Calls with ``cache=False`` stay uncached."""
    store = cache if cache is not None else MemoryFeatureCache()
    token = _MEMORY_ONLY.set(store)
    try:
        yield store
    finally:
        _MEMORY_ONLY.reset(token)


def extract_features(
    encoder, images, *, cache: bool | FeatureCache = True, batch_size: int = 32, progress: bool = True
) -> tuple[np.ndarray, list[int]]:
    """Feature grids for ``images`` (paths, PIL images, arrays or bytes).

    Returns ``(features, kept)``: float32 of shape ``(len(kept), grid, channels)`` and the indices
    of the images that could be read; unreadable images are skipped with a warning each.
    """
    from tqdm.auto import tqdm

    images = list(images)
    store: FeatureCache | MemoryFeatureCache | None
    memory = _MEMORY_ONLY.get()
    if memory is not None and cache is not False:
        store = memory  # uploads: never touch the disk cache
    else:
        store = cache if isinstance(cache, FeatureCache) else (FeatureCache(encoder) if cache else None)
    results: dict[int, np.ndarray] = {}
    missing: list[int] = []
    digests: dict[int, str] = {}
    for i, image in enumerate(images):
        if store is None:
            missing.append(i)
            continue
        try:
            digests[i] = content_hash(image)
        except Exception:  # unreadable: let load_images report it once, below
            missing.append(i)
            continue
        found = store.get(digests[i])
        if found is None:
            missing.append(i)
        else:
            results[i] = found
    if missing:
        bar = tqdm(total=len(missing), desc=f"Encoding images ({encoder.name})", unit="img", disable=not progress)
        for start in range(0, len(missing), batch_size):
            chunk = missing[start : start + batch_size]
            pixels, kept = load_images([images[i] for i in chunk], encoder.image_size)
            if kept:
                grids = encoder.features(pixels, batch_size=batch_size)
                for row, local in enumerate(kept):
                    index = chunk[local]
                    # With a cache, a fresh grid goes through the cache's float16 too, so an image gives
                    # the same features (and a seeded fit the same weights) whether or not it was cached.
                    results[index] = grids[row] if store is None else grids[row].astype(np.float16)
                    if store is not None and index in digests:
                        store.put(digests[index], grids[row])
            bar.update(len(chunk))
        bar.close()
    kept_all = sorted(results)
    if not kept_all:
        return np.zeros((0, 0, 0), np.float32), []
    return np.stack([results[i].astype(np.float32) for i in kept_all]), kept_all


def pooled_features(encoder, images, **kwargs) -> tuple[np.ndarray, list[int]]:
    """Mean over the feature grid: ``(len(kept), channels)`` float32, and the kept indices."""
    grids, kept = extract_features(encoder, images, **kwargs)
    if not kept:
        return np.zeros((0, 0), np.float32), kept
    return grids.mean(axis=1), kept
