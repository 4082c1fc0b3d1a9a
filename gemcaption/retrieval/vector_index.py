"""Vectors with stable integer ids, searchable by inner product through FAISS.

:class:`VectorTable` keeps the raw vectors (to rebuild the FAISS index with another type, and to
re-score candidates exactly); :class:`VectorIndex` adds the FAISS index on top of it.

Choosing the FAISS index (``factory="auto"``, :func:`choose_index_factory`), in the spirit of
autofaiss, from the measurements in benchmarks/results/index_speed.md:

* up to ``FLAT_MAX`` (100,000) vectors: ``Flat``, exact inner-product search (a few ms a query);
* above that: ``IVF{nlist},PQ{dim/4}x4fs,RFlat``: an inverted file with ``nlist`` the power of two
  nearest to ``2 * sqrt(n)`` (2048 lists for 1M vectors; the low end of FAISS's usual range, so
  k-means training stays affordable on small machines), scanned with 4-bit fast-scan product-quantizer
  codes, and the best ``k_factor * k`` (``REFINE_K_FACTOR`` = 32) candidates re-ranked with the exact
  vectors. On 1M vectors this was the only type to pass 0.95 recall@10 at more than 2,000 queries/s
  on 2 cores (HNSW32 needed efSearch > 256 and twelve minutes to build);
* ``IVF{nlist},SQ8`` instead (8-bit codes, no exact copy inside FAISS) when two float copies of the
  vectors (ours and the re-ranking one) would not fit in the memory budget (default: half the RAM),
  or when ``dim`` is not a multiple of 8.

Search parameters are then tuned, as autofaiss does: unless ``search_params`` is given, the smallest
``nprobe`` (IVF) or ``efSearch`` (HNSW) whose recall@10 reaches ``TARGET_RECALL`` (0.95) against
exact search (mean recall minus two standard errors, so fresh queries reach it too) is chosen each
time the index is (re)built, using ``TUNING_QUERIES`` (500) of the vectors as fresh queries: they
are held out while tuning and added afterwards. Adding vectors later keeps the setting.

Any FAISS index-factory string may be given instead (e.g. ``"IVF1024,Flat"``, ``"HNSW32"``); it is
wrapped in ``IDMap2`` for stable ids (IVF indexes store ids themselves). Search-time parameters
(``nprobe=..``, ``efSearch=..``) can be set with ``search_params``. IVF k-means is trained on at
most ``TRAIN_POINTS_PER_LIST * nlist`` vectors (a seeded sample). Indexes that cannot delete (HNSW)
hide removed ids and are rebuilt from the kept vectors when more than a quarter of their entries
are removed.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, GemcaptionError, ModelError
from ..persistence import damaged, read_json, reading

FLAT_MAX = 100_000
TARGET_RECALL = 0.95
REFINE_K_FACTOR = 32
TUNING_QUERIES = 500
TRAIN_POINTS_PER_LIST = 40  # IVF k-means trains on at most this many vectors per list
LEGACY_SETTINGS_FILE = "index.json"  # where index format version 1 kept the settings


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def ivf_nlist(n: int) -> int:
    """The power of two nearest to ``2 * sqrt(n)`` (at least 1): 2048 lists for 1M vectors."""
    return max(1, 2 ** round(math.log2(max(2 * math.sqrt(max(n, 1)), 1))))


def choose_index_factory(n: int, dim: int, memory_budget: int | None = None) -> str:
    """The FAISS factory string for ``n`` vectors of ``dim`` floats, by the rule in the module doc."""
    if n <= FLAT_MAX:
        return "Flat"
    budget = memory_budget if memory_budget is not None else _memory_bytes() // 2
    if dim % 8 == 0 and 2 * n * 4 * dim <= budget:
        return f"IVF{ivf_nlist(n)},PQ{dim // 4}x4fs,RFlat"
    return f"IVF{ivf_nlist(n)},SQ8"


def apply_search_params(index, params: str) -> None:
    """Set ``"nprobe=..,efSearch=..,k_factor=.."`` on ``index`` (also through an IDMap2 wrapper)."""
    import faiss

    if not params:
        return
    settings = dict(item.split("=", 1) for item in params.split(","))
    k_factor = settings.pop("k_factor", None)
    if k_factor is not None:
        refine = faiss.downcast_index(index.index if hasattr(index, "id_map") else index)
        if not hasattr(refine, "k_factor"):
            raise ConfigError("k_factor applies only to refined indexes (factory ending in RFlat)")
        refine.k_factor = float(k_factor)
    if settings:
        try:
            joined = ",".join(f"{k}={v}" for k, v in settings.items())
            faiss.ParameterSpace().set_index_parameters(index, joined)  # type: ignore[arg-type]  # (stub: str)
        except RuntimeError as exc:
            raise ConfigError(f"cannot set search parameters {params!r}: {str(exc).splitlines()[-1]}") from exc


def _tunable(index) -> tuple[str, list[int]] | None:
    """The search parameter that trades speed for recall in ``index``, and the values to try."""
    import faiss

    try:
        nlist = faiss.extract_index_ivf(index).nlist
        return "nprobe", [2**i for i in range(int(math.log2(nlist)) + 1)] + ([nlist] if nlist & (nlist - 1) else [])
    except RuntimeError:
        pass
    inner = faiss.downcast_index(index.index) if hasattr(index, "id_map") else index
    if hasattr(inner, "hnsw"):
        return "efSearch", [16, 32, 64, 128, 256, 512, 1024]
    return None


def exact_neighbours(queries: np.ndarray, vectors: np.ndarray, k: int, exclude_rows=None) -> np.ndarray:
    """Rows of ``vectors`` with the ``k`` largest inner products with each query (best first), by numpy;
    ``exclude_rows[i]`` (optional) is left out of query i's answer."""
    top = np.empty((len(queries), k), np.int64)
    for start in range(0, len(queries), 16):
        scores = queries[start : start + 16] @ vectors.T
        if exclude_rows is not None:
            scores[np.arange(len(scores)), exclude_rows[start : start + 16]] = -np.inf
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
        top[start : start + 16] = np.take_along_axis(part, order, axis=1)
    return top


def tune_search_params(
    index, queries: np.ndarray, vectors: np.ndarray, ids: np.ndarray, target: float | None = None, k: int = 10
) -> str:
    """The cheapest ``nprobe=``/``efSearch=`` setting of ``index`` (holding ``vectors`` under ``ids``)
    whose recall@k for ``queries`` (not in the index) reaches ``target`` (default ``TARGET_RECALL``)
    with margin: mean minus two standard errors; the largest tried if none does; "" for exact indexes."""
    tunable = _tunable(index)
    if tunable is None or len(vectors) <= k or not len(queries):
        return ""
    target = TARGET_RECALL if target is None else target
    name, values = tunable
    truth = ids[exact_neighbours(queries, vectors, k)]
    for value in values:
        apply_search_params(index, f"{name}={value}")
        _, found = index.search(queries, k)
        recalls = np.array([len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth)]) / k
        if recalls.mean() - 2 * recalls.std() / np.sqrt(len(recalls)) >= target:  # ~97.5% lower bound
            break
    return f"{name}={value}"


def _removes_in_place(index) -> bool:
    """True for indexes whose remove_ids keeps ids right: IVF at the top, or IDMap2 over a flat index."""
    import faiss

    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexIVF):
        return True
    return isinstance(index, faiss.IndexIDMap) and isinstance(faiss.downcast_index(index.index), faiss.IndexFlat)


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
            raise ConfigError("need one id per vector")
        if np.isin(ids, self.ids).any() or len(np.unique(ids)) != len(ids):
            raise ConfigError("vector ids must be unique")
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
    def load(cls, directory: Path, stem: str, dim: int) -> VectorTable:
        """The table saved by :meth:`save`, checked: integer ids, unique, one finite float row of
        ``dim`` values each; ``damaged: FILE`` otherwise."""
        table = cls(dim)
        ids_file, vectors_file = directory / f"{stem}_ids.npy", directory / f"{stem}_vectors.npy"
        ids, vectors = _load_npy(ids_file), _load_npy(vectors_file)
        if ids.ndim != 1 or ids.dtype.kind not in "iu":
            raise damaged(ids_file, f"holds {ids.dtype} of shape {ids.shape}, not a list of integer ids")
        if len(np.unique(ids)) != len(ids):
            raise damaged(ids_file, "the ids repeat")
        if vectors.dtype.kind != "f" or vectors.shape != (len(ids), dim):
            raise damaged(
                vectors_file, f"holds {vectors.dtype} of shape {vectors.shape}, expected ({len(ids)}, {dim}) floats"
            )
        if not np.isfinite(vectors).all():
            raise damaged(vectors_file, "holds values that are not finite numbers")
        table.ids, table.vectors = ids.astype(np.int64), vectors.astype(np.float32)
        table._reindex()
        return table


def _load_npy(path: Path) -> np.ndarray:
    if not path.is_file():
        raise ModelError(f"damaged: {path} (missing)")
    with reading(path):
        return np.load(path, allow_pickle=False)


def _checked_settings(settings, directory: Path) -> dict:
    """The index settings with their types checked; ``damaged:`` naming where they came from."""
    where = directory / LEGACY_SETTINGS_FILE if settings is None else directory
    if settings is None:
        settings = read_json(where)
    problems = []
    if not isinstance(settings, dict):
        problems.append("not an object")
    else:
        dim, budget, hidden = settings.get("dim"), settings.get("memory_budget"), settings.get("hidden", [])
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
            problems.append(f"dim is {dim!r}")
        for key in ("factory_setting", "factory", "search_params_setting", "search_params"):
            if not isinstance(settings.get(key), str):
                problems.append(f"{key} is {settings.get(key)!r}")
        if budget is not None and (not isinstance(budget, int) or isinstance(budget, bool)):
            problems.append(f"memory_budget is {budget!r}")
        if not isinstance(hidden, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in hidden):
            problems.append("hidden is not a list of ids")
    if problems:
        raise damaged(where, f"vector index settings: {problems[0]}")
    return settings


class VectorIndex:
    """A :class:`VectorTable` plus a FAISS inner-product index over it (see the module doc)."""

    def __init__(self, dim: int, factory: str = "auto", search_params: str = "", memory_budget: int | None = None):
        self.dim = int(dim)
        self.factory_setting = factory
        self.search_params_setting = search_params
        self.memory_budget = memory_budget
        self.table = VectorTable(dim)
        self.factory = ""
        self.search_params = ""
        self.faiss_index: Any = None  # a faiss.Index once vectors are added
        self.hidden: set[int] = set()  # removed but still inside a FAISS index that cannot delete

    def __len__(self) -> int:
        return len(self.table)

    def _wanted_factory(self, n: int) -> str:
        if self.factory_setting == "auto":
            return choose_index_factory(n, self.dim, self.memory_budget)
        return self.factory_setting

    def rebuild(self) -> None:
        """Recreate the FAISS index from the stored vectors (training it if needed)."""
        import faiss

        factory, params = self._wanted_factory(len(self.table)), self.search_params_setting
        try:
            index = faiss.index_factory(self.dim, factory, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as exc:
            raise ConfigError(f"bad FAISS index factory string {factory!r}: {exc}") from exc
        if not isinstance(faiss.downcast_index(index), (faiss.IndexIVF, faiss.IndexIDMap)):
            # IVF indexes keep ids themselves (and IDMap2 over IVF mis-maps ids after a removal)
            index = faiss.IndexIDMap2(index)
        if not index.is_trained:
            if len(self.table) == 0:
                self.faiss_index, self.factory, self.search_params = None, factory, params
                return  # trained on the first vectors added
            try:
                index.train(self._training_sample(index))
            except RuntimeError as exc:
                raise GemcaptionError(
                    f"cannot train FAISS index {factory!r} on {len(self.table)} vectors: "
                    f"{str(exc).splitlines()[-1] if str(exc) else exc}"
                ) from exc
        if "RFlat" in factory and "k_factor" not in params:
            params = ",".join(p for p in (params, f"k_factor={REFINE_K_FACTOR}") if p)
        apply_search_params(index, params)
        vectors, ids = self.table.vectors, self.table.ids
        if "=" not in params.replace("k_factor=", "") and _tunable(index) is not None and len(ids) > 2 * TUNING_QUERIES:
            # tune on held-out vectors as fresh queries, then add them too
            held = np.zeros(len(ids), bool)
            held[np.random.default_rng(0).choice(len(ids), TUNING_QUERIES, replace=False)] = True
            index.add_with_ids(np.ascontiguousarray(vectors[~held]), ids[~held])
            tuned = tune_search_params(index, np.ascontiguousarray(vectors[held]), vectors[~held], ids[~held])
            params = ",".join(p for p in (tuned, params) if p)
            index.add_with_ids(np.ascontiguousarray(vectors[held]), ids[held])
        elif len(ids):
            index.add_with_ids(vectors, ids)
        apply_search_params(index, params)
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
        if self.faiss_index is None or self._wanted_factory(len(self.table)) != self.factory:
            self.rebuild()
        else:
            self.faiss_index.add_with_ids(vectors, ids)

    def remove(self, ids) -> int:
        """Remove ``ids``; returns how many were present."""
        removed = self.table.remove(ids)
        if not len(removed) or self.faiss_index is None:
            return len(removed)
        if _removes_in_place(self.faiss_index):
            self.faiss_index.remove_ids(np.asarray(removed, np.int64))
        else:  # e.g. HNSW: hide now, rebuild when too many are hidden
            self.hidden.update(int(i) for i in removed)
            if len(self.hidden) > self.faiss_index.ntotal // 4:
                self.rebuild()
        return len(removed)

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        """For each query row, up to ``k`` ``(id, inner product)`` pairs, best first."""
        queries = np.ascontiguousarray(np.asarray(queries, np.float32).reshape(-1, self.dim))
        if k < 1:
            raise ConfigError("k must be at least 1")
        if self.faiss_index is None or len(self.table) == 0:
            return [[] for _ in range(len(queries))]
        total = self.faiss_index.ntotal
        fetch = min(k + len(self.hidden) + 1, total)
        while True:  # fetch past the cut until the (k+1)-th hit scores below the k-th: ties never depend on k
            scores, found = self.faiss_index.search(queries, fetch)
            rows = [
                [(int(i), float(s)) for i, s in zip(row_ids, row_scores) if i >= 0 and int(i) not in self.hidden]
                for row_scores, row_ids in zip(scores, found)
            ]
            done = [(ids < 0).any() or (len(h) > k and h[k][1] < h[k - 1][1]) for h, ids in zip(rows, found)]
            if fetch >= total or all(done):
                break
            fetch = min(2 * fetch, total)
        return [sorted(hits, key=lambda hit: (-hit[1], hit[0]))[:k] for hits in rows]  # ties: lower id first

    def get_config(self) -> dict:
        """JSON-able settings and state saved beside the arrays (in the index manifest)."""
        return {
            "dim": self.dim,
            "factory_setting": self.factory_setting,
            "factory": self.factory,
            "search_params_setting": self.search_params_setting,
            "search_params": self.search_params,
            "memory_budget": self.memory_budget,
            "hidden": sorted(self.hidden),
            "has_faiss_index": self.faiss_index is not None,
        }

    def save(self, directory) -> dict:
        """Write ``index.faiss`` (faiss.write_index) and the vectors into ``directory``; returns
        :meth:`get_config`, which the caller stores (the retriever's manifest)."""
        import faiss

        directory = Path(directory)
        self.table.save(directory, "text")
        if self.faiss_index is not None:
            faiss.write_index(self.faiss_index, str(directory / "index.faiss"))
        return self.get_config()

    @classmethod
    def load(cls, directory, config: dict | None = None) -> VectorIndex:
        """The index saved in ``directory`` with settings ``config`` (default: the ``index.json``
        that the previous release wrote there)."""
        import faiss

        directory = Path(directory)
        if isinstance(config, dict) and config.get("kind") == "sharded":  # built from shards, on-disk lists
            from .sharded_index import ShardedIndex

            return ShardedIndex.load(directory, config)  # type: ignore[return-value]  # same public surface
        settings = _checked_settings(config, directory)
        index = cls(
            settings["dim"],
            settings["factory_setting"],
            settings["search_params_setting"],
            settings.get("memory_budget"),
        )
        index.factory, index.search_params = settings["factory"], settings["search_params"]
        index.table = VectorTable.load(directory, "text", index.dim)
        index.hidden = set(settings.get("hidden", []))
        if settings.get("has_faiss_index"):
            path = directory / "index.faiss"
            if not path.is_file():
                raise ModelError(f"damaged: {path} (missing)")
            with reading(path):
                index.faiss_index = faiss.read_index(str(path))
                apply_search_params(index.faiss_index, index.search_params)
            if index.faiss_index.d != index.dim or not index.faiss_index.is_trained:
                raise damaged(path, f"a {index.faiss_index.d}-d index, the settings say {index.dim}")
            if index.faiss_index.ntotal - len(index.hidden) != len(index.table):
                raise damaged(
                    path,
                    f"holds {index.faiss_index.ntotal} vectors ({len(index.hidden)} hidden), "
                    f"the stored table {len(index.table)}",
                )
        return index
