"""Vectors with stable integer ids, searchable by inner product through FAISS.

:class:`VectorTable` keeps the raw vectors (to rebuild the FAISS index with another type, and to
re-score candidates exactly); :class:`VectorIndex` adds the FAISS index on top of it.

Choosing the FAISS index (``factory="auto"``, :func:`choose_index_factory`), in the spirit of
autofaiss, from the measurements in benchmarks/results/index_speed.md:

* up to ``FLAT_MAX`` (100,000) vectors: ``Flat``, exact inner-product search (a few ms a query);
* above that, if ``n * (4 * dim + 320)`` bytes (vectors plus HNSW32 graph links) fit in the memory
  budget (default: half the machine's RAM): ``HNSW32`` with ``efSearch=HNSW_EF_SEARCH`` (64): the
  only type that kept recall@10 >= 0.95 on the real caption embeddings at a cheap setting;
* otherwise ``IVF{nlist},Flat`` with ``nlist`` the power of two nearest to ``2 * sqrt(n)`` (the
  low end of FAISS's usual range, so k-means training stays affordable on small machines) and
  ``nprobe = nlist / 8`` (real caption embeddings need many probes: they are less clustered than
  the synthetic benchmark data).

Any FAISS index-factory string may be given instead (e.g. ``"IVF1024,Flat"``, ``"HNSW32"``); it is
wrapped in ``IDMap2`` for stable ids (IVF indexes store ids themselves). Search-time parameters
(``nprobe=..``, ``efSearch=..``) can be set with ``search_params``. IVF k-means is trained on at
most ``TRAIN_POINTS_PER_LIST * nlist`` vectors (a seeded sample). Indexes that cannot delete (HNSW) hide removed ids and are rebuilt
from the kept vectors when more than a quarter of their entries are removed.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from .errors import GemcaptionError, ModelError

FLAT_MAX = 100_000
HNSW_EF_SEARCH = 64
TRAIN_POINTS_PER_LIST = 40  # IVF k-means trains on at most this many vectors per list
HNSW_BYTES_PER_VECTOR = 320  # 32 links x 2 (level 0) x 4 bytes + upper levels, ids, overhead


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def ivf_nlist(n: int) -> int:
    """The power of two nearest to ``2 * sqrt(n)`` (at least 1): 2048 lists for 1M vectors."""
    return max(1, 2 ** round(math.log2(max(2 * math.sqrt(max(n, 1)), 1))))


def choose_index_factory(n: int, dim: int, memory_budget: int | None = None) -> tuple[str, str]:
    """``(factory, search_params)`` for ``n`` vectors of ``dim`` floats, by the rule in the module doc."""
    if n <= FLAT_MAX:
        return "Flat", ""
    budget = memory_budget if memory_budget is not None else _memory_bytes() // 2
    if n * (4 * dim + HNSW_BYTES_PER_VECTOR) <= budget:
        return "HNSW32", f"efSearch={HNSW_EF_SEARCH}"
    nlist = ivf_nlist(n)
    return f"IVF{nlist},Flat", f"nprobe={max(16, nlist // 8)}"


class VectorTable:
    """Row-aligned ``ids`` (int64) and ``vectors`` (float32, ``(n, dim)``) with add/remove/lookup."""

    def __init__(self, dim: int):
        self.dim = int(dim)
        self.ids = np.zeros(0, np.int64)
        self.vectors = np.zeros((0, self.dim), np.float32)
        self._rows: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, item_id) -> bool:
        return int(item_id) in self._rows

    def _reindex(self) -> None:
        self._rows = {int(i): row for row, i in enumerate(self.ids)}

    def add(self, vectors: np.ndarray, ids) -> None:
        vectors = np.asarray(vectors, np.float32).reshape(-1, self.dim)
        ids = np.asarray(ids, np.int64).reshape(-1)
        if len(ids) != len(vectors):
            raise GemcaptionError("need one id per vector")
        if np.isin(ids, self.ids).any() or len(np.unique(ids)) != len(ids):
            raise GemcaptionError("vector ids must be unique")
        start = len(self.ids)
        self.ids = np.concatenate([self.ids, ids])
        self.vectors = np.concatenate([self.vectors, vectors])
        self._rows.update((int(i), start + row) for row, i in enumerate(ids))

    def remove(self, ids) -> np.ndarray:
        """Drop the given ids; returns the ids that were present."""
        keep = ~np.isin(self.ids, np.asarray(list(ids), np.int64))
        removed = self.ids[~keep]
        self.ids, self.vectors = self.ids[keep], self.vectors[keep]
        self._reindex()
        return removed

    def get(self, ids) -> np.ndarray:
        """Vectors of ``ids`` (all must be present), ``(len(ids), dim)``."""
        return self.vectors[[self._rows[int(i)] for i in ids]]

    def save(self, directory: Path, stem: str) -> None:
        np.save(directory / f"{stem}_ids.npy", self.ids)
        np.save(directory / f"{stem}_vectors.npy", self.vectors)

    @classmethod
    def load(cls, directory: Path, stem: str, dim: int) -> "VectorTable":
        table = cls(dim)
        table.ids = np.load(directory / f"{stem}_ids.npy", allow_pickle=False).astype(np.int64)
        table.vectors = np.load(directory / f"{stem}_vectors.npy", allow_pickle=False).astype(np.float32)
        if table.vectors.shape != (len(table.ids), dim):
            raise ModelError(f"{directory}: {stem} vectors do not match their ids or dimension")
        table._reindex()
        return table


class VectorIndex:
    """A :class:`VectorTable` plus a FAISS inner-product index over it (see the module doc)."""

    def __init__(self, dim: int, factory: str = "auto", search_params: str = "",
                 memory_budget: int | None = None):
        self.dim = int(dim)
        self.factory_setting = factory
        self.search_params_setting = search_params
        self.memory_budget = memory_budget
        self.table = VectorTable(dim)
        self.factory = ""
        self.search_params = ""
        self.faiss_index = None
        self.hidden: set[int] = set()  # removed but still inside a FAISS index that cannot delete

    def __len__(self) -> int:
        return len(self.table)

    def _wanted_factory(self, n: int) -> tuple[str, str]:
        if self.factory_setting == "auto":
            return choose_index_factory(n, self.dim, self.memory_budget)
        return self.factory_setting, self.search_params_setting

    def rebuild(self) -> None:
        """Recreate the FAISS index from the stored vectors (training it if needed)."""
        import faiss

        factory, params = self._wanted_factory(len(self.table))
        # IVF indexes keep ids themselves (and IDMap2 over IVF mis-maps ids after a removal)
        spec = factory if factory.startswith("IDMap") or "IVF" in factory else f"IDMap2,{factory}"
        try:
            index = faiss.index_factory(self.dim, spec, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as exc:
            raise GemcaptionError(f"bad FAISS index factory string {factory!r}: {exc}") from exc
        if not index.is_trained:
            if len(self.table) == 0:
                self.faiss_index, self.factory, self.search_params = None, factory, params
                return  # trained on the first vectors added
            try:
                index.train(self._training_sample(index))
            except RuntimeError as exc:
                raise GemcaptionError(f"cannot train FAISS index {factory!r} on {len(self.table)} vectors: "
                                      f"{str(exc).splitlines()[-1] if str(exc) else exc}") from exc
        if params:
            faiss.ParameterSpace().set_index_parameters(index, params)
        if len(self.table):
            index.add_with_ids(self.table.vectors, self.table.ids)
        self.faiss_index, self.factory, self.search_params = index, factory, params
        self.hidden = set()

    def _training_sample(self, index) -> np.ndarray:
        """All vectors, or for IVF a seeded sample of ``TRAIN_POINTS_PER_LIST * nlist`` of them."""
        import faiss

        vectors = self.table.vectors
        try:
            limit = TRAIN_POINTS_PER_LIST * faiss.extract_index_ivf(index).nlist
        except RuntimeError:  # not an IVF index
            return vectors
        if len(vectors) <= limit:
            return vectors
        rows = np.sort(np.random.default_rng(0).choice(len(vectors), limit, replace=False))
        return np.ascontiguousarray(vectors[rows])

    def add(self, vectors: np.ndarray, ids) -> None:
        """Add ``vectors`` under ``ids`` (unique, not present yet)."""
        vectors = np.ascontiguousarray(np.asarray(vectors, np.float32).reshape(-1, self.dim))
        ids = np.asarray(ids, np.int64).reshape(-1)
        if not len(ids):
            return
        self.table.add(vectors, ids)
        wanted = self._wanted_factory(len(self.table))
        if self.faiss_index is None or wanted[0] != self.factory:
            self.rebuild()
        else:
            self.faiss_index.add_with_ids(vectors, ids)

    def remove(self, ids) -> int:
        """Remove ``ids``; returns how many were present."""
        removed = self.table.remove(ids)
        if not len(removed) or self.faiss_index is None:
            return len(removed)
        try:
            self.faiss_index.remove_ids(np.asarray(removed, np.int64))
        except RuntimeError:  # e.g. HNSW: hide now, rebuild when too many are hidden
            self.hidden.update(int(i) for i in removed)
            if len(self.hidden) > self.faiss_index.ntotal // 4:
                self.rebuild()
        return len(removed)

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        """For each query row, up to ``k`` ``(id, inner product)`` pairs, best first."""
        queries = np.ascontiguousarray(np.asarray(queries, np.float32).reshape(-1, self.dim))
        if k < 1:
            raise GemcaptionError("k must be at least 1")
        if self.faiss_index is None or len(self.table) == 0:
            return [[] for _ in range(len(queries))]
        fetch = min(k + len(self.hidden), self.faiss_index.ntotal)
        scores, found = self.faiss_index.search(queries, fetch)
        results = []
        for row_scores, row_ids in zip(scores, found):
            hits = [(int(i), float(s)) for i, s in zip(row_ids, row_scores)
                    if i >= 0 and int(i) not in self.hidden]
            results.append(hits[:k])
        return results

    def save(self, directory) -> None:
        """Write ``index.faiss`` (faiss.write_index), the vectors and ``index.json``."""
        import faiss

        directory = Path(directory)
        self.table.save(directory, "text")
        if self.faiss_index is not None:
            faiss.write_index(self.faiss_index, str(directory / "index.faiss"))
        settings = {"dim": self.dim, "factory_setting": self.factory_setting, "factory": self.factory,
                    "search_params_setting": self.search_params_setting,
                    "search_params": self.search_params, "memory_budget": self.memory_budget,
                    "hidden": sorted(self.hidden), "has_faiss_index": self.faiss_index is not None}
        (directory / "index.json").write_text(json.dumps(settings), encoding="utf-8")

    @classmethod
    def load(cls, directory) -> "VectorIndex":
        import faiss

        directory = Path(directory)
        try:
            settings = json.loads((directory / "index.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelError(f"{directory}: no readable index.json ({exc})") from exc
        index = cls(settings["dim"], settings["factory_setting"], settings["search_params_setting"],
                    settings.get("memory_budget"))
        index.table = VectorTable.load(directory, "text", index.dim)
        index.factory, index.search_params = settings["factory"], settings["search_params"]
        index.hidden = set(settings.get("hidden", []))
        if settings.get("has_faiss_index"):
            index.faiss_index = faiss.read_index(str(directory / "index.faiss"))
            if index.search_params:
                faiss.ParameterSpace().set_index_parameters(index.faiss_index, index.search_params)
            if index.faiss_index.ntotal - len(index.hidden) != len(index.table):
                raise ModelError(f"{directory}: FAISS index and stored vectors disagree")
        return index
