"""What a worker runs: caption and embed one shard and write its result to the work folder.

A task gets a :class:`ShardJob` (plain data: the shard's inputs, the model directory, the fitted
embedder's folder if any, the retriever settings). Each worker process builds its
:class:`~gemcaption.retrieval.retriever.Retriever` (and so loads the captioner) once per build and
reuses it for every shard it runs; the feature cache is read and written as in a single process."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .parts import write_part

_RETRIEVERS: dict[tuple, Any] = {}  # (model_dir, embedder_dir, settings) -> Retriever, per worker process


@dataclass(frozen=True)
class ShardJob:
    """Everything a worker needs for one shard (picklable plain data)."""

    name: str
    items: tuple
    work_folder: str
    model_dir: str
    embedder_dir: str | None
    settings: str  # JSON object of Retriever keyword settings (sampler, use_references, ...)


def _retriever(job: ShardJob):
    key = (job.model_dir, job.embedder_dir, job.settings)
    if key not in _RETRIEVERS:
        from ..retrieval.embedders import build_embedder, load_embedder
        from ..retrieval.retriever import Retriever

        _RETRIEVERS.clear()  # one build's retriever at a time
        embedder = load_embedder(job.embedder_dir) if job.embedder_dir else build_embedder()  # unfitted: no vectors
        _RETRIEVERS[key] = Retriever(
            None, embedder, model_dir=job.model_dir, progress=False, **json.loads(job.settings)
        )
    return _RETRIEVERS[key]


def run_shard(job: ShardJob) -> dict:
    """Prepare the shard's images and write its part; returns a summary (name, images, new, seconds)."""
    started = time.perf_counter()
    retriever = _retriever(job)
    sources, references, labels = zip(*job.items) if job.items else ((), (), ())
    prepared = retriever.prepare(list(sources), captions=list(references), labels=list(labels))
    write_part(Path(job.work_folder), job.name, prepared)
    return {
        "name": job.name,
        "images": len(job.items),
        "new": len(prepared.new),
        "seconds": time.perf_counter() - started,
    }
