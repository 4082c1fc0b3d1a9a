"""The driver of a distributed index build: plan the shards, run the missing ones on the cluster,
assemble the index (see the package doc)."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tempfile
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ..captioning.samplers import serialize_sampler
from ..persistence import file_sha256
from ..retrieval.embedders import write_embedder
from ..retrieval.retriever import _items
from .cluster import dask_client
from .parts import PART_VERSION, is_complete, merge_parts, read_part
from .plan import DEFAULT_SHARD_SIZE, Shard, plan_shards
from .tasks import ShardJob, run_shard

SHARDED_FROM = 1_000_000  # images from which an 'auto' distributed build uses the on-disk sharded index


@dataclass
class BuildReport:
    """What :func:`build_index` did: shard counts, the failed shards (name, error line) and, once
    complete, one id per input image (None for an unreadable one)."""

    shards: int
    skipped: int = 0
    computed: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    ids: list[int | None] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        text = f"{self.shards} shards: {self.computed} computed, {self.skipped} already done"
        return text + (f", {len(self.failed)} failed" if self.failed else "")


def work_folder(out) -> Path:
    """Where the shard results of a build of ``out`` are kept until the index is assembled."""
    out = Path(out).absolute()
    return out.with_name(out.name + ".parts")


def _tree_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(folder)}\0{file_sha256(path)}\n".encode())
    return digest.hexdigest()[:16]


def _shipped_embedder(embedder, work: Path) -> Path | None:
    """A fitted embedder written into ``work`` (named by its content) for the workers to load."""
    if not embedder.fitted:
        return None
    staging = Path(tempfile.mkdtemp(prefix=".embedder-", dir=work))
    try:
        write_embedder(embedder, staging / "embedder")
        target = work / f"embedder-{_tree_hash(staging / 'embedder')}"
        if not target.is_dir():
            (staging / "embedder").rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _model_hash(model_dir: str) -> str:
    for name in ("manifest.json", "config.json"):
        if Path(model_dir, name).is_file():
            return file_sha256(Path(model_dir, name))
    return ""


def _settings(retriever) -> str:
    return json.dumps(
        {
            "sampler": serialize_sampler(retriever.sampler),
            "use_references": retriever.use_references,
            "hybrid_weight": retriever.hybrid_weight,
            "batch_size": retriever.batch_size,
        },
        sort_keys=True,
    )


def _run(jobs: list[ShardJob], report: BuildReport, scheduler: str | None, workers: int, progress: bool) -> None:
    from distributed import as_completed
    from tqdm.auto import tqdm

    with dask_client(scheduler, workers) as client:
        run = uuid.uuid4().hex[:8]  # a fresh key per run: a scheduler may still remember a failed one
        futures = {client.submit(run_shard, job, key=f"gemcaption-{job.name}-{run}"): job.name for job in jobs}
        bar = tqdm(total=len(jobs), desc="Shards", unit="shard", disable=not progress, file=sys.stderr)
        for future in as_completed(futures):
            bar.update(1)
            if future.status == "finished":
                report.computed += 1
            else:
                exc = future.exception()
                report.failed.append((futures[future], f"{type(exc).__name__}: {exc}".splitlines()[0]))
        bar.close()


def build_index(
    retriever,
    data,
    out,
    *,
    captions=None,
    labels=None,
    fit_texts=None,
    scheduler: str | None = None,
    workers: int = 2,
    shard_size: int = DEFAULT_SHARD_SIZE,
    progress: bool = True,
) -> BuildReport:
    """``retriever.build(data, ...)`` with the captioning on a Dask cluster, saved to ``out``.

    ``retriever`` gives the settings and must name its captioner by ``model_dir`` (each worker
    loads it from there); ``data`` is a Dataset, Samples or image paths. Shard results are kept in
    :func:`work_folder` ``(out)``; shards done by an earlier call with the same images and settings
    are not computed again. When a shard fails the index is not written and the report lists it:
    call again to resume. On success ``out`` holds the index and the work folder is removed."""
    if not retriever.model_dir:
        from ..errors import ConfigError

        raise ConfigError("a distributed build needs the captioner's directory (model_dir)")
    retriever.clear()
    if fit_texts is not None:
        retriever.embedder.fit(list(fit_texts))
    items = _items(data, captions, labels)
    work = work_folder(out)
    work.mkdir(parents=True, exist_ok=True)
    embedder_dir = _shipped_embedder(retriever.embedder, work)
    settings = _settings(retriever)
    fingerprint = json.dumps(
        [
            PART_VERSION,
            retriever.model_dir,
            _model_hash(retriever.model_dir),
            embedder_dir and embedder_dir.name,
            settings,
        ]
    )
    shards = plan_shards(items, fingerprint, shard_size)
    todo = [s for s in shards if not is_complete(work, s.name)]
    report = BuildReport(len(shards), skipped=len(shards) - len(todo))
    if todo:
        jobs = [_job(s, items, work, retriever.model_dir, embedder_dir, settings) for s in todo]
        _run(jobs, report, scheduler, workers, progress)
    if report.failed:
        return report
    parts = [read_part(work, s.name, items[s.start : s.stop]) for s in shards]
    merged = merge_parts(parts, items)
    if wants_sharded_index(retriever.index_factory, len(merged.new)):
        report.ids = _insert_sharded(retriever, merged, work, shard_size, progress)
    else:
        report.ids = retriever.insert(merged)
    retriever.save(out)
    shutil.rmtree(work, ignore_errors=True)
    for (source, _, _), item_id in zip(items, report.ids):
        if item_id is None:
            warnings.warn(f"skipping {source}: not a readable image", stacklevel=2)
    return report


def wants_sharded_index(factory: str, count: int) -> bool:
    """True when the build should use the on-disk IVF-PQ index built from embedding shards
    (:mod:`gemcaption.retrieval.sharded_index`): an explicit IVF-PQ factory, or ``auto`` from
    :data:`SHARDED_FROM` images on."""
    if factory == "auto":
        return count >= SHARDED_FROM
    return factory.upper().startswith("IVF") and ",PQ" in factory.upper()


def _insert_sharded(retriever, merged, work: Path, shard_size: int, progress: bool) -> list[int | None]:
    """``retriever.insert(merged)`` with the vectors put into embedding shards and an on-disk
    IVF-PQ index built from them, in place of the in-memory one."""
    from ..retrieval.sharded_index import build_index_from_shards, write_embedding_shard

    factory = retriever.index_factory
    retriever.index_factory = "Flat"  # a table of the vectors, no FAISS training
    try:
        ids = retriever.insert(merged)
    finally:
        retriever.index_factory = factory
    table = retriever.index.table
    step = max(shard_size, 100_000)
    paths = [
        write_embedding_shard(
            work / "embeddings",
            f"e{start // step:06d}",
            table.ids[start : start + step],
            table.vectors[start : start + step],
        )
        for start in range(0, len(table.ids), step)
    ]
    chosen = None if factory == "auto" else factory
    retriever.index = build_index_from_shards(paths, work / "sharded-index", factory=chosen, progress=progress)
    return ids


def _job(shard: Shard, items, work: Path, model_dir: str, embedder_dir: Path | None, settings: str) -> ShardJob:
    chosen = tuple(
        (str(Path(source).absolute()), tuple(refs), label) for source, refs, label in items[shard.start : shard.stop]
    )
    return ShardJob(shard.name, chosen, str(work), model_dir, str(embedder_dir) if embedder_dir else None, settings)
