"""Indexes of millions of vectors built shard by shard into FAISS's on-disk inverted lists, with exact re-scoring.

This module owns embedding shards on disk and :class:`ShardedIndex`, the large-collection
counterpart of :class:`~gemcaption.retrieval.vector_index.VectorIndex` (same public surface: ``len``,
``add``, ``remove``, ``search``, ``get_config``, ``save``, ``load``, and a ``table`` for exact
re-scoring) whose memory does not grow with the whole collection:

* an **embedding shard** is two plain ``.npy`` files, ``NAME.ids.npy`` (int64) and
  ``NAME.vectors.npy`` (float32 or float16, ``(n, dim)``), written atomically without pickle by
  :func:`write_embedding_shard`; its *shard path* is ``DIRECTORY/NAME``.
* :func:`build_index_from_shards` trains an ``IVF{nlist}_HNSW32,PQ{dim/4}x4`` index (inverted file,
  4-bit product-quantizer codes of 4 dimensions each, 32 bytes a vector at 256-d; an HNSW graph over
  the centroids so assigning 10M vectors stays cheap) on a seeded sample drawn across the shards,
  fills one index per shard with only that shard in memory (FAISS labels = row numbers of the
  collection, in shard order), and merges them into one ``OnDiskInvertedLists`` file
  (``faiss.contrib.ondisk.merge_ondisk``). The vectors are also copied, as float16, into one
  memory-mapped file: the ``RERANK_FACTOR * k`` best candidates of the PQ scan are re-scored
  exactly from it (PQ codes alone rank neighbours too coarsely; see benchmarks/results/scale_index.json).
  ``nprobe`` is then tuned as VectorIndex does: the smallest power of two whose recall@10 (mean minus
  two standard errors) reaches the target on ``TUNING_QUERIES`` vectors of the collection used as
  queries (each left out of its own answer) against exact search streamed over the shards.
* Searching: the on-disk lists are copied once, when the index is opened, into FAISS's fast-scan
  layout in memory (``IndexIVFPQFastScan``: 4-bit codes scanned with SIMD; 32 bytes a vector, 0.32 GB
  for 10M), because FAISS's on-disk lists hold only its plain layout; the re-scoring vectors stay
  in the file (see :class:`_MappedRows`).
* :meth:`ShardedIndex.remove` hides ids (the on-disk files are never modified, so saves can hard-link
  them); :meth:`ShardedIndex.add` puts new vectors in a small in-memory IVF part with the same trained
  quantizer, searched beside the on-disk part.

Saved files (all immutable once written): ``sharded_trained.index`` (the empty trained index),
``sharded_base.index`` + ``sharded_base.ivfdata`` (the merged on-disk lists, read with
``IO_FLAG_ONDISK_SAME_DIR``), ``sharded_base_ids.npy`` / ``sharded_base_vectors.npy``, and, after
``add``/``remove``, ``sharded_added.index``, ``sharded_added_ids.npy``, ``sharded_added_vectors.npy``,
``sharded_hidden.npy``.
"""

from __future__ import annotations

import contextlib
import math
import mmap
import os
import shutil
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, ModelError
from ..persistence import PathLike, atomic_directory, damaged, read_manifest, reading, write_manifest

KIND = "sharded"
FORMAT = "gemcaption-sharded-index"
FORMAT_VERSION = 2  # 2: the on-disk part's FAISS labels are row numbers ("base_labels": "rows")
TARGET_RECALL = 0.95
RERANK_FACTOR = 50  # candidates re-scored per result: 10 capped recall@10 near 0.89 on 10M vectors, 50 gave 0.96
TUNING_QUERIES = 500
TRAIN_POINTS_PER_LIST = 20  # coarse k-means sample per list (FAISS's minimum advice is 39; 20 loses no recall here)
KMEANS_ITERATIONS = 10
PQ_TRAIN_POINTS = 65_536
QUANTIZER_EF = 64  # efSearch of the HNSW over the centroids when assigning vectors (and its floor when searching)
SEARCH_BLOCK = 256  # queries re-ranked at a time
EXACT_BLOCK_SCORES = 1 << 25  # query x vector scores per block of exact_top_k (128 MiB of float32)
PREFIX = "sharded_"


def _shard_files(shard: PathLike) -> tuple[Path, Path]:
    path = Path(shard)
    for suffix in (".ids.npy", ".vectors.npy"):
        if path.name.endswith(suffix):
            path = path.with_name(path.name[: -len(suffix)])
    return path.with_name(path.name + ".ids.npy"), path.with_name(path.name + ".vectors.npy")


def _write_npy_atomically(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            np.save(handle, array, allow_pickle=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _checked_pair(ids, vectors, dim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    ids, vectors = np.asarray(ids), np.asarray(vectors)
    if ids.ndim != 1 or (ids.size and ids.dtype.kind not in "iu"):
        raise ConfigError(f"ids must be a 1-d array of integers, got {ids.dtype} of shape {ids.shape}")
    if vectors.ndim != 2 or vectors.dtype not in (np.float16, np.float32, np.float64):
        raise ConfigError(f"vectors must be a 2-d float array, got {vectors.dtype} of shape {vectors.shape}")
    if len(ids) != len(vectors):
        raise ConfigError(f"need one id per vector: {len(ids)} ids, {len(vectors)} vectors")
    if dim is not None and vectors.shape[1] != dim:
        raise ConfigError(f"vectors have {vectors.shape[1]} dimensions, the index {dim}")
    if len(np.unique(ids)) != len(ids):
        raise ConfigError("vector ids must be unique")
    if not np.isfinite(vectors).all():
        raise ConfigError("vectors hold values that are not finite numbers")
    return ids.astype(np.int64), vectors


def write_embedding_shard(directory: PathLike, name: str, ids, vectors) -> Path:
    """Write ``ids`` (int64) and ``vectors`` (float16 kept, other floats as float32) as the shard
    ``directory/name`` (two ``.npy`` files, each written atomically); returns the shard path."""
    if not name or "/" in name or name.startswith("."):
        raise ConfigError(f"bad shard name {name!r}")
    ids, vectors = _checked_pair(ids, vectors)
    vectors = vectors if vectors.dtype == np.float16 else vectors.astype(np.float32)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ids_file, vectors_file = _shard_files(directory / name)
    _write_npy_atomically(vectors_file, np.ascontiguousarray(vectors))
    _write_npy_atomically(ids_file, ids)  # last: a shard with its ids file is complete
    return directory / name


def _open_npy(path: Path) -> np.ndarray:
    if not path.is_file():
        raise ModelError(f"damaged: {path} (missing)")
    with reading(path):
        return np.load(path, mmap_mode="r", allow_pickle=False)


def read_embedding_shard(shard: PathLike, *, mmap: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, vectors)`` of a shard written by :func:`write_embedding_shard` (vectors memory-mapped
    unless ``mmap=False``), checked; ``damaged: FILE`` otherwise."""
    ids_file, vectors_file = _shard_files(shard)
    ids, vectors = np.asarray(_open_npy(ids_file)), _open_npy(vectors_file)
    if ids.ndim != 1 or ids.dtype.kind not in "iu":
        raise damaged(ids_file, f"holds {ids.dtype} of shape {ids.shape}, not a list of integer ids")
    if vectors.ndim != 2 or vectors.dtype not in (np.float16, np.float32) or len(vectors) != len(ids):
        raise damaged(
            vectors_file, f"holds {vectors.dtype} of shape {vectors.shape}, expected ({len(ids)}, dim) floats"
        )
    return ids.astype(np.int64), (vectors if mmap else np.array(vectors))


def ivf_nlist(n: int) -> int:
    """The power of two nearest to ``2 * sqrt(n)``, at least 64: 8192 lists for 10M vectors."""
    return max(64, 2 ** round(math.log2(max(2 * math.sqrt(max(n, 1)), 1))))


def default_factory(n: int, dim: int) -> str:
    """``IVF{nlist}_HNSW32,PQ{dim/4}x4`` (see the module doc)."""
    if dim % 8:
        raise ConfigError(f"the sharded index needs a dimension that is a multiple of 8, got {dim}")
    return f"IVF{ivf_nlist(n)}_HNSW32,PQ{dim // 4}x4"


def _set_quantizer_ef(ivf, ef: int) -> None:
    """An HNSW coarse quantizer returns at most ``efSearch`` lists: keep it above ``nprobe``."""
    import faiss

    quantizer = faiss.downcast_index(ivf.quantizer)
    if hasattr(quantizer, "hnsw"):
        quantizer.hnsw.efSearch = int(ef)


@contextlib.contextmanager
def _faiss_chatter_to_stderr() -> Iterator[None]:
    """Send what FAISS's C++ code prints on stdout (e.g. "IO_FLAG_ONDISK_SAME_DIR: updating ...")
    to stderr: stdout is for results."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _say(progress: bool, message: str) -> None:
    if progress:
        print(f"[sharded index] {message}", file=sys.stderr, flush=True)


def _shard_sizes(shards: Sequence[Path]) -> tuple[list[int], int]:
    sizes, dim = [], None
    for shard in shards:
        ids, vectors = read_embedding_shard(shard)
        if dim is not None and vectors.shape[1] != dim:
            raise ConfigError(f"shard {shard} has {vectors.shape[1]}-d vectors, the others {dim}")
        dim = vectors.shape[1]
        sizes.append(len(ids))
    if dim is None or not sum(sizes):
        raise ConfigError("no vectors in the shards")
    return sizes, dim


def _sample(shards: Sequence[Path], sizes: list[int], count: int, rng: np.random.Generator):
    """``(ids, float32 vectors)`` of ``count`` rows drawn uniformly across the shards, in shard order."""
    total = sum(sizes)
    chosen = np.sort(rng.choice(total, min(count, total), replace=False))
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    ids_out, vectors_out = [], []
    for s, shard in enumerate(shards):
        rows = chosen[(chosen >= offsets[s]) & (chosen < offsets[s + 1])] - offsets[s]
        if len(rows):
            ids, vectors = read_embedding_shard(shard)
            ids_out.append(ids[rows])
            vectors_out.append(np.asarray(vectors[rows], np.float32))
    return np.concatenate(ids_out), np.ascontiguousarray(np.concatenate(vectors_out))


def exact_top_k(queries: np.ndarray, shards: Iterable[PathLike], k: int, exclude_ids=None) -> np.ndarray:
    """Ids of the ``k`` largest inner products with each query over all ``shards`` (streamed one at a
    time, best first); ``exclude_ids[i]`` (optional) is left out of query i's answer."""
    queries = np.ascontiguousarray(queries, np.float32)
    best_scores = np.full((len(queries), k), -np.inf, np.float32)
    best_ids = np.full((len(queries), k), -1, np.int64)
    for shard in shards:
        ids, vectors = read_embedding_shard(shard)
        step = max(1024, EXACT_BLOCK_SCORES // max(len(queries), 1))
        for start in range(0, len(ids), step):
            block = np.asarray(vectors[start : start + step], np.float32)
            scores = queries @ block.T
            block_ids = ids[start : start + step]
            if exclude_ids is not None:
                scores[np.asarray(exclude_ids)[:, None] == block_ids[None, :]] = -np.inf
            take = min(k, len(block_ids))
            part = np.argpartition(scores, scores.shape[1] - take, axis=1)[:, scores.shape[1] - take :]
            all_scores = np.concatenate([best_scores, np.take_along_axis(scores, part, axis=1)], axis=1)
            all_ids = np.concatenate([best_ids, block_ids[part]], axis=1)
            order = np.argsort(-all_scores, axis=1, kind="stable")[:, :k]
            best_scores, best_ids = np.take_along_axis(all_scores, order, 1), np.take_along_axis(all_ids, order, 1)
    return best_ids


class _MappedRows:
    """Rows of a float16 ``(n, dim)`` ``.npy`` file, read through one read-only memory map kept open,
    or, when ``bounded``, with one ``os.pread`` a row and no map at all.

    Page faults are what gathering scattered rows through a map costs (about 6 us a row on 10M
    vectors, where a fresh map per search faulted on nearly every row); a map kept open faults each
    page once, but the pages read then count in this process's resident memory (file-backed: page
    cache, shared and reclaimable) up to the file's size, as the kernel maps up to 64 KiB around
    each page read. ``bounded`` reads keep them out (about 2 us a row): for a build's tuning
    searches, whose peak memory matters more than their speed."""

    def __init__(self, path: Path, rows: int, dim: int, *, bounded: bool = False):
        header = np.load(str(path), mmap_mode="r", allow_pickle=False)
        self.offset, self.dim, self.bounded = int(header.offset), int(dim), bounded
        del header
        self.handle = open(path, "rb")  # noqa: SIM115 (lives as long as this object)
        self.array: np.ndarray | None = None
        if not bounded:
            self.map = mmap.mmap(self.handle.fileno(), 0, access=mmap.ACCESS_READ)
            self.array = np.frombuffer(self.map, np.float16, count=rows * dim, offset=self.offset).reshape(rows, dim)

    def take(self, rows: np.ndarray) -> np.ndarray:
        if self.array is not None:
            return np.take(self.array, rows, axis=0).astype(np.float32)
        out = np.empty((len(rows), self.dim), np.float32)
        size, fd = 2 * self.dim, self.handle.fileno()
        for position, row in enumerate(np.asarray(rows).tolist()):
            out[position] = np.frombuffer(os.pread(fd, size, self.offset + row * size), np.float16)
        return out


class _Part:
    """One searchable piece: a FAISS IVF index and the float16 vectors of its ids (for re-ranking),
    in memory, or in a file read through :class:`_MappedRows`. ``search_index`` is what answers
    queries: ``index`` itself, or, for 4-bit PQ codes, a fast-scan copy of its lists in memory
    (``IndexIVFPQFastScan``, SIMD scanning: about 4x fewer CPU seconds per query; ``index`` is kept,
    it owns the coarse quantizer both use)."""

    def __init__(
        self,
        index,
        ids: np.ndarray,
        vectors: np.ndarray | None,
        mapped: _MappedRows | None = None,
        labels_are_rows: bool = False,
    ):
        self.index, self.ids, self.vectors, self.mapped = index, ids, vectors, mapped
        self.labels_are_rows = labels_are_rows  # FAISS labels are row numbers (ids[row] is the id)
        self.search_index = index
        self.order = np.argsort(ids, kind="stable")
        self.sorted_ids = ids[self.order]

    def scan_fast(self) -> None:
        """Search through a fast-scan copy of the lists when the codes are 4-bit PQ."""
        import faiss

        ivf = faiss.downcast_index(self.index)  # a plain IVF-PQ index, not wrapped in a transform
        if isinstance(ivf, faiss.IndexIVFPQ) and ivf.pq.nbits == 4 and ivf.pq.M % 2 == 0:
            self.search_index = faiss.IndexIVFPQFastScan(ivf)

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """Row of each id, -1 where absent."""
        pos = np.searchsorted(self.sorted_ids, ids).clip(0, max(len(self.sorted_ids) - 1, 0))
        found = len(self.sorted_ids) > 0
        hit = (self.sorted_ids[pos] == ids) if found else np.zeros(len(ids), bool)
        return np.where(hit, self.order[pos] if found else -1, -1)

    def gather(self, rows: np.ndarray) -> np.ndarray:
        """float32 vectors of ``rows``."""
        if self.vectors is not None:
            return np.asarray(self.vectors[rows], np.float32)
        assert self.mapped is not None
        return self.mapped.take(rows)


class ShardedTable:
    """Read access to the stored vectors by id, the part of VectorTable the Retriever uses."""

    def __init__(self, owner: ShardedIndex):
        self.owner = owner

    def __len__(self) -> int:
        return len(self.owner)

    def __contains__(self, item_id) -> bool:
        return self.owner._locate(np.array([int(item_id)], np.int64))[0] is not None

    def get(self, ids) -> np.ndarray:
        """float32 vectors of ``ids`` (all present and not removed)."""
        ids = np.asarray(list(ids), np.int64)
        out = np.empty((len(ids), self.owner.dim), np.float32)
        for row, where in enumerate(self.owner._locate(ids)):
            if where is None:
                raise KeyError(int(ids[row]))
            out[row] = where[0].gather(np.array([where[1]]))[0]
        return out


class ShardedIndex:
    """An IVF-PQ index over on-disk inverted lists, with exact re-ranking (see the module doc)."""

    def __init__(self, dim: int, factory: str, search_params: str = "", rerank_factor: int = RERANK_FACTOR):
        self.dim, self.factory, self.search_params = int(dim), factory, search_params
        self.rerank_factor = int(rerank_factor)
        self.trained: Any = None  # the empty trained faiss index (template for added parts)
        self.parts: list[_Part] = []  # [on-disk base, in-memory added part]
        self.hidden: set[int] = set()
        self.table = ShardedTable(self)
        self.files: dict[str, Path] = {}  # saved file name -> where it lives now (hard-linked on save)
        self.base_labels = "ids"  # what the on-disk part's FAISS labels are: "ids", or "rows" (built since v2)

    def __len__(self) -> int:
        return sum(len(p.ids) for p in self.parts) - len(self.hidden)

    @property
    def factory_setting(self) -> str:
        return self.factory

    # -- lookup --------------------------------------------------------------------------------
    def _locate(self, ids: np.ndarray) -> list[tuple[_Part, int] | None]:
        out: list[tuple[_Part, int] | None] = [None] * len(ids)
        for part in self.parts:
            for i, row in enumerate(part.rows(ids)):
                if row >= 0 and out[i] is None and int(ids[i]) not in self.hidden:
                    out[i] = (part, int(row))
        return out

    # -- changes -------------------------------------------------------------------------------
    def add(self, vectors, ids) -> None:
        """Add ``vectors`` under ``ids`` (unique, not present yet) to the in-memory part."""
        import faiss

        ids, vectors = _checked_pair(np.asarray(ids).reshape(-1), np.asarray(vectors).reshape(-1, self.dim), self.dim)
        if not len(ids):
            return
        present = [i for i, where in zip(ids, self._locate(ids)) if where is not None]
        if present:
            raise ConfigError(f"vector ids must be unique: {int(present[0])} is already in the index")
        revived = self.hidden & set(ids.tolist())
        if any(p.rows(np.array(sorted(revived), np.int64)).max() >= 0 for p in self.parts if revived):
            raise ConfigError(f"id {min(revived)} was removed from this index and cannot be reused")
        if len(self.parts) < 2:
            index = faiss.clone_index(self.trained)
            self.parts.append(_Part(index, np.zeros(0, np.int64), np.zeros((0, self.dim), np.float16)))
            if self.search_params.startswith("nprobe="):
                self.set_nprobe(int(self.search_params.split("=", 1)[1]))
            self.files = {k: v for k, v in self.files.items() if not k.startswith(PREFIX + "added")}
        added = self.parts[1]
        added.index.add_with_ids(np.ascontiguousarray(vectors, np.float32), ids)
        self.parts[1] = _Part(
            added.index, np.concatenate([added.ids, ids]), np.concatenate([added.vectors, vectors.astype(np.float16)])
        )
        self.files = {k: v for k, v in self.files.items() if not k.startswith(PREFIX + "added")}

    def remove(self, ids) -> int:
        """Hide ``ids``; returns how many were present."""
        ids = np.asarray(list(ids), np.int64).reshape(-1)
        present = {int(i) for i, where in zip(ids, self._locate(ids)) if where is not None}
        self.hidden |= present
        if present:
            self.files.pop(PREFIX + "hidden.npy", None)
        return len(present)

    # -- search --------------------------------------------------------------------------------
    def search(self, queries, k: int) -> list[list[tuple[int, float]]]:
        """For each query row, up to ``k`` ``(id, inner product)`` pairs, best first (exact scores of
        the re-ranked candidates; ties: lower id first)."""
        queries = np.asarray(queries)
        if queries.ndim == 1:
            queries = queries[None]
        if queries.ndim != 2 or queries.shape[1] != self.dim or queries.dtype.kind != "f":
            raise ConfigError(
                f"queries must be float rows of {self.dim} values, got {queries.dtype} of shape {queries.shape}"
            )
        if int(k) < 1:
            raise ConfigError("k must be at least 1")
        queries = np.ascontiguousarray(queries, np.float32)
        results: list[list[tuple[int, float]]] = []
        for start in range(0, len(queries), SEARCH_BLOCK):
            results += self._search_block(queries[start : start + SEARCH_BLOCK], int(k))
        return results

    def _search_block(self, queries: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        fetch = k * max(self.rerank_factor, 1) + len(self.hidden)
        found_ids, found_scores = [], []
        for part in self.parts:
            if part.index.ntotal == 0:
                continue
            _, labels = part.search_index.search(queries, min(fetch, part.index.ntotal))
            if part.labels_are_rows:  # a lookup in the ids array instead of a search of the sorted ids
                rows, ids = labels, np.where(labels >= 0, part.ids[np.maximum(labels, 0)], -1)
            else:
                ids, rows = labels, part.rows(labels.reshape(-1)).reshape(labels.shape)
            if self.hidden:
                rows[np.isin(ids, np.fromiter(self.hidden, np.int64))] = -1
            vectors = part.gather(np.where(rows >= 0, rows, 0).reshape(-1)).reshape(*ids.shape, self.dim)
            scores = np.matmul(vectors, queries[:, :, None])[:, :, 0]
            scores[rows < 0] = -np.inf
            found_ids.append(np.where(rows >= 0, ids, -1))
            found_scores.append(scores)
        if not found_ids:
            return [[] for _ in queries]
        ids, scores = np.concatenate(found_ids, axis=1), np.concatenate(found_scores, axis=1)
        out = []
        for row_ids, row_scores in zip(ids, scores):
            keep = row_ids >= 0
            order = np.lexsort((row_ids[keep], -row_scores[keep]))[:k]
            out.append([(int(i), float(s)) for i, s in zip(row_ids[keep][order], row_scores[keep][order])])
        return out

    def set_nprobe(self, nprobe: int) -> None:
        import faiss

        for part in self.parts:
            for searched in {id(part.index): part.index, id(part.search_index): part.search_index}.values():
                ivf = faiss.extract_index_ivf(searched)
                ivf.nprobe = int(nprobe)
                _set_quantizer_ef(ivf, max(2 * int(nprobe), QUANTIZER_EF))
        self.search_params = f"nprobe={int(nprobe)}"

    def tune(self, queries: np.ndarray, truth: np.ndarray, target: float, k: int = 10) -> str:
        """Smallest power-of-two ``nprobe`` whose recall@k on ``queries`` (each one's own id left out,
        ``truth`` = exact top-k without it) reaches ``target`` with margin; the largest tried if none."""
        import faiss

        nlist = faiss.extract_index_ivf(self.trained).nlist
        recalls = np.zeros(len(queries))
        nprobe = 1
        while True:
            self.set_nprobe(nprobe)
            found = self.search(queries, k + 1)
            for i, (hits, row) in enumerate(zip(found, truth)):
                recalls[i] = len({h for h, _ in hits} & set(row.tolist())) / k
            if recalls.mean() - 2 * recalls.std() / np.sqrt(len(recalls)) >= target or nprobe >= nlist:
                return self.search_params
            nprobe *= 2

    # -- persistence ---------------------------------------------------------------------------
    def get_config(self) -> dict:
        """JSON-able settings, stored by the caller (the retriever's manifest)."""
        return {
            "kind": KIND,
            "dim": self.dim,
            "factory": self.factory,
            "factory_setting": self.factory,
            "search_params": self.search_params,
            "search_params_setting": self.search_params,
            "rerank_factor": self.rerank_factor,
            "size": len(self),
            "has_added_part": len(self.parts) > 1,
            "has_faiss_index": True,
            "base_labels": self.base_labels,
        }

    def save(self, directory: PathLike) -> dict:
        """Put this index's files into ``directory`` (hard links to the immutable on-disk files when
        possible, else copies; the in-memory part written anew); returns :meth:`get_config`."""
        import faiss

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if len(self.parts) > 1 and PREFIX + "added.index" not in self.files:
            tmp = directory / f".{PREFIX}added.index.{os.getpid()}.tmp"
            faiss.write_index(self.parts[1].index, str(tmp))
            os.replace(tmp, directory / (PREFIX + "added.index"))  # never through a hard link
            _write_npy_atomically(directory / (PREFIX + "added_ids.npy"), self.parts[1].ids)
            _write_npy_atomically(directory / (PREFIX + "added_vectors.npy"), np.asarray(self.parts[1].vectors))
        if self.hidden and PREFIX + "hidden.npy" not in self.files:
            _write_npy_atomically(directory / (PREFIX + "hidden.npy"), np.array(sorted(self.hidden), np.int64))
        for name, source in self.files.items():
            target = directory / name
            if target.exists() and source.exists() and target.samefile(source):
                continue
            target.unlink(missing_ok=True)
            try:
                os.link(source, target)
            except OSError:
                shutil.copyfile(source, target)
        written = {p.name: p for p in directory.iterdir() if p.name.startswith(PREFIX)}
        self.files = written
        return self.get_config()

    @classmethod
    def load(cls, directory: PathLike, config: dict, *, bounded: bool = False) -> ShardedIndex:
        """The index saved in ``directory`` with settings ``config``; ``damaged: FILE`` otherwise.
        ``bounded``: keep the re-ranking vectors' pages out of resident memory (see :class:`_MappedRows`;
        slower searches, for a build whose peak memory matters)."""
        import faiss

        directory = Path(directory)
        where = directory / "manifest.json"
        problems = [
            key
            for key, kind in (("dim", int), ("factory", str), ("search_params", str), ("rerank_factor", int))
            if not isinstance(config.get(key), kind) or isinstance(config.get(key), bool)
        ]
        if problems or config.get("dim", 0) < 1:
            key = problems[0] if problems else "dim"
            raise damaged(where, f"sharded index settings: {key} is {config.get(key)!r}")
        index = cls(config["dim"], config["factory"], config["search_params"], config["rerank_factor"])
        index.base_labels = config.get("base_labels", "ids")
        if index.base_labels not in ("ids", "rows"):
            raise damaged(where, f"sharded index settings: base_labels is {index.base_labels!r}")

        def read(name: str, flags: int = 0):
            path = directory / (PREFIX + name)
            if not path.is_file():
                raise ModelError(f"damaged: {path} (missing)")
            with reading(path):
                found = faiss.read_index(str(path), flags)
            if found.d != index.dim or not found.is_trained:
                raise damaged(path, f"a {found.d}-d index, the settings say {index.dim}")
            return found

        def part(stem: str, faiss_index) -> _Part:
            ids, vectors = (
                _open_npy(directory / f"{PREFIX}{stem}_ids.npy"),
                _open_npy(directory / f"{PREFIX}{stem}_vectors.npy"),
            )
            ids = np.asarray(ids)
            if (
                ids.ndim != 1
                or ids.dtype != np.int64
                or vectors.shape != (len(ids), index.dim)
                or vectors.dtype != np.float16
            ):
                raise damaged(
                    directory / f"{PREFIX}{stem}_vectors.npy", f"{vectors.dtype} {vectors.shape} for {ids.shape} ids"
                )
            if faiss_index.ntotal != len(ids):
                raise damaged(
                    directory / f"{PREFIX}{stem}.index", f"holds {faiss_index.ntotal} vectors, the ids file {len(ids)}"
                )
            if stem == "base":  # large: read through a memory map
                mapped = _MappedRows(directory / f"{PREFIX}{stem}_vectors.npy", len(ids), index.dim, bounded=bounded)
                found = _Part(faiss_index, ids, None, mapped, labels_are_rows=index.base_labels == "rows")
                found.scan_fast()
                return found
            return _Part(faiss_index, ids, np.array(vectors))

        index.trained = read("trained.index")
        lists = directory / (PREFIX + "base.ivfdata")
        if not lists.is_file():
            raise ModelError(f"damaged: {lists} (missing)")
        with _faiss_chatter_to_stderr():
            base = read("base.index", faiss.IO_FLAG_ONDISK_SAME_DIR)
        invlists = faiss.downcast_InvertedLists(faiss.extract_index_ivf(base).invlists)  # type: ignore[arg-type]
        if not isinstance(invlists, faiss.OnDiskInvertedLists) or invlists.totsize > lists.stat().st_size:
            raise damaged(lists, "shorter than its index says")
        index.parts.append(part("base", base))
        if config.get("has_added_part"):
            index.parts.append(part("added", read("added.index")))
        hidden_file = directory / (PREFIX + "hidden.npy")
        if hidden_file.is_file():
            index.hidden = {int(i) for i in np.asarray(_open_npy(hidden_file))}
        if config.get("search_params", "").startswith("nprobe="):
            with reading(where):
                index.set_nprobe(int(config["search_params"].split("=", 1)[1]))
        index.files = {p.name: p for p in directory.iterdir() if p.name.startswith(PREFIX)}
        return index

    @classmethod
    def open(cls, directory: PathLike, *, verify: bool = True) -> ShardedIndex:
        """An index written by :func:`build_index_from_shards` into ``directory`` (its manifest checked,
        with every file's checksum unless ``verify=False``)."""
        manifest = read_manifest(directory, FORMAT, [1, FORMAT_VERSION], verify=verify)
        return cls.load(directory, manifest.config)


def _write_vectors_file(path: Path, shards: Sequence[Path], sizes: list[int], dim: int) -> np.ndarray:
    """All shards' vectors as one float16 ``.npy`` (streamed, one shard at a time); returns the ids."""
    header = {
        "descr": np.lib.format.dtype_to_descr(np.dtype(np.float16)),
        "fortran_order": False,
        "shape": (sum(sizes), dim),
    }
    ids = []
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, header)
        for shard in shards:
            shard_ids, vectors = read_embedding_shard(shard)
            for start in range(0, len(shard_ids), 100_000):
                handle.write(np.ascontiguousarray(vectors[start : start + 100_000], np.float16).tobytes())
            ids.append(shard_ids)
        handle.flush()
        os.fsync(handle.fileno())
    return np.concatenate(ids)


def build_index_from_shards(
    shard_paths: Sequence[PathLike],
    out_directory: PathLike,
    *,
    factory: str | None = None,
    seed: int = 0,
    progress: bool = True,
    target_recall: float = TARGET_RECALL,
    rerank_factor: int = RERANK_FACTOR,
    tuning_queries: int = TUNING_QUERIES,
) -> ShardedIndex:
    """Build a :class:`ShardedIndex` over the embedding shards ``shard_paths`` into ``out_directory``
    (written atomically, with a manifest; see the module doc) and return it, opened from there.
    ``factory`` (default :func:`default_factory`) must be an IVF factory string."""
    import faiss
    from faiss.contrib.ondisk import merge_ondisk

    shards = [Path(s) for s in shard_paths]
    if not shards:
        raise ConfigError("no embedding shards given")
    started = time.perf_counter()
    sizes, dim = _shard_sizes(shards)
    total = sum(sizes)
    factory = factory or default_factory(total, dim)
    try:
        template = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
        ivf: Any = faiss.downcast_index(faiss.extract_index_ivf(template))
    except RuntimeError as exc:
        raise ConfigError(f"bad FAISS IVF factory string {factory!r}: {str(exc).splitlines()[-1]}") from exc
    rng = np.random.default_rng(seed)
    ids_all = np.concatenate([read_embedding_shard(s)[0] for s in shards])
    if len(np.unique(ids_all)) != len(ids_all):
        raise ConfigError("vector ids repeat across the shards")
    del ids_all
    _, sample = _sample(shards, sizes, max(TRAIN_POINTS_PER_LIST * ivf.nlist, PQ_TRAIN_POINTS), rng)
    _say(progress, f"{total:,} vectors in {len(shards)} shards; training {factory} on {len(sample):,}")
    ivf.cp.niter = KMEANS_ITERATIONS
    ivf.cp.max_points_per_centroid = TRAIN_POINTS_PER_LIST
    if hasattr(ivf, "do_polysemous_training"):
        ivf.do_polysemous_training = False  # Hamming filtering is not used; it cost 45 s on 20k vectors
    with _faiss_chatter_to_stderr():
        template.train(sample)
    del sample
    with atomic_directory(out_directory, what="sharded index") as staged:
        faiss.write_index(template, str(staged / (PREFIX + "trained.index")))
        parts = []
        for s, shard in enumerate(shards):
            shard_ids, vectors = read_embedding_shard(shard)
            filled = faiss.read_index(str(staged / (PREFIX + "trained.index")))
            _set_quantizer_ef(faiss.extract_index_ivf(filled), QUANTIZER_EF)
            first_row = sum(sizes[:s])  # labels are rows of the vectors file, which keeps shard order
            for start in range(0, len(shard_ids), 100_000):
                block = np.ascontiguousarray(vectors[start : start + 100_000], np.float32)
                filled.add_with_ids(block, np.arange(first_row + start, first_row + start + len(block), dtype=np.int64))
            parts.append(staged / f".part{s}.index")
            faiss.write_index(filled, str(parts[-1]))
            del filled, vectors
            _say(progress, f"filled shard {s + 1}/{len(shards)} ({time.perf_counter() - started:.0f} s)")
        base = faiss.read_index(str(staged / (PREFIX + "trained.index")))
        with _faiss_chatter_to_stderr():
            merge_ondisk(base, [str(p) for p in parts], str(staged / (PREFIX + "base.ivfdata")))
        faiss.write_index(base, str(staged / (PREFIX + "base.index")))
        del base
        for p in parts:
            p.unlink()
        ids = _write_vectors_file(staged / (PREFIX + "base_vectors.npy"), shards, sizes, dim)
        _write_npy_atomically(staged / (PREFIX + "base_ids.npy"), ids)
        del ids
        _say(progress, f"merged into on-disk lists ({time.perf_counter() - started:.0f} s); tuning nprobe")
        config = {
            "kind": KIND,
            "dim": dim,
            "factory": factory,
            "search_params": "",
            "rerank_factor": rerank_factor,
            "base_labels": "rows",
        }
        index: ShardedIndex = ShardedIndex.load(staged, config, bounded=True)
        if total > 2 * 11 and tuning_queries > 0:
            query_ids, queries = _sample(
                shards, sizes, min(tuning_queries, total // 2), np.random.default_rng(seed + 1)
            )
            truth = exact_top_k(queries, shards, 10, exclude_ids=query_ids)
            index.tune(queries, truth, target_recall)
        config["search_params"] = index.search_params
        _say(progress, f"tuned to {index.search_params} ({time.perf_counter() - started:.0f} s)")
        del index
        write_manifest(staged, FORMAT, FORMAT_VERSION, KIND, config)
    return ShardedIndex.open(out_directory)
