"""Build and search an on-disk sharded index of 10 million 256-d caption-like vectors on one machine.

Steps (``python benchmarks/scale_index.py``; ``--vectors 1000000`` for a quicker run):

1. generate ``--vectors`` synthetic vectors (the compositional caption-like model of
   benchmarks/index_speed.py) shard by shard (``--shard-size``) into float16 embedding shards in
   ``--workdir`` (deleted afterwards unless ``--keep``), plus ``--queries`` fresh query vectors;
2. exact top-10 of each query by streaming the shards (numpy, the ground truth);
3. :func:`gemcaption.retrieval.sharded_index.build_index_from_shards` in a **child process**, whose
   peak resident memory (``ru_maxrss`` of the child: anonymous and file-backed pages) is recorded;
4. open the index and search all queries as one batch with 2 FAISS threads: queries/s (wall clock,
   and per CPU second x 2) and recall@10 against step 2, first right after opening at the tuned
   ``nprobe`` (``first_batch_after_open``: the re-scoring reads fault the vectors file's pages into
   the map), then, after ``WARM_UP_QUERIES`` other fresh queries (untimed), at the tuned ``nprobe``
   and its neighbours (the steady state of a server).

The 1-minute load average is recorded before and after (the 2 cores are shared). Writes
benchmarks/results/scale_index.json (``scale_index_partial.json`` for other sizes).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from index_speed import Mixture  # noqa: E402

from gemcaption.retrieval.sharded_index import (  # noqa: E402
    ShardedIndex,
    build_index_from_shards,
    exact_top_k,
    write_embedding_shard,
)

RESULTS = ROOT / "benchmarks" / "results"
DIM, K, THREADS = 256, 10, 2
TARGET_RECALL, TARGET_QPS, MEMORY_LIMIT_GB = 0.90, 1000, 4.0
WARM_UP_QUERIES = 2000  # searched (not timed) before the timed rows, after the first timed batch


def generate(workdir: Path, n: int, shard_size: int, n_queries: int, seed: int, reuse: bool):
    """The shards (kept when ``reuse`` and already there) and fresh queries (their own seeded draws)."""
    mixture = Mixture(DIM, np.random.default_rng(seed))
    shards: list[Path] = []
    existing = sorted((workdir / "shards").glob("*.ids.npy")) if reuse else []
    for s, start in enumerate(range(0, n, shard_size) if not existing else []):
        m = min(shard_size, n - start)
        shards.append(
            write_embedding_shard(
                workdir / "shards", f"s{s:04d}", np.arange(start, start + m), mixture.draw(m).astype(np.float16)
            )
        )
    mixture.rng = np.random.default_rng(seed + 99)
    queries = mixture.draw(n_queries)
    mixture.rng = np.random.default_rng(seed + 199)
    return shards or existing, queries, mixture.draw(WARM_UP_QUERIES)


def child_build(args) -> int:
    """Step 3 in this (child) process: prints the build seconds as JSON on stdout."""
    import faiss

    faiss.omp_set_num_threads(THREADS)
    shards = sorted((Path(args.workdir) / "shards").glob("*.ids.npy"))
    started = time.perf_counter()
    build_index_from_shards(
        shards, Path(args.workdir) / "index", target_recall=args.target_recall, rerank_factor=args.rerank_factor
    )
    print(json.dumps({"build_s": time.perf_counter() - started}))
    return 0


def recall(found, truth) -> float:
    return float(np.mean([len({i for i, _ in hits[:K]} & set(row.tolist())) / K for hits, row in zip(found, truth)]))


def measure(index: ShardedIndex, queries: np.ndarray, truth: np.ndarray) -> dict:
    wall, cpu = time.perf_counter(), time.process_time()
    found = index.search(queries, K)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "params": index.search_params,
        "qps": len(queries) / wall,
        "qps_2cpu": THREADS * len(queries) / max(cpu, 1e-9),
        "cpu_share": cpu / wall / THREADS,
        "recall@10": recall(found, truth),
    }


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(argv=None) -> int:
    import faiss

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=10_000_000)
    parser.add_argument("--shard-size", type=int, default=500_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--target-recall", type=float, default=0.95, help="the build's nprobe tuning target")
    parser.add_argument("--rerank-factor", type=int, default=50, help="candidates re-scored per result")
    parser.add_argument("--reuse-shards", action="store_true", help="keep the shards already in --workdir")
    parser.add_argument("--workdir", default="/work/scratch/scale_index")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the shards and the index")
    parser.add_argument("--child-build", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_build:
        return child_build(args)
    faiss.omp_set_num_threads(THREADS)
    workdir = Path(args.workdir)
    if not args.reuse_shards:
        shutil.rmtree(workdir, ignore_errors=True)
    shutil.rmtree(workdir / "index", ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)
    out: dict = {"vectors": args.vectors, "dim": DIM, "shard_size": args.shard_size, "queries": args.queries}
    out["load_before"] = round(os.getloadavg()[0], 2)
    started = time.perf_counter()
    shards, queries, warm_up = generate(
        workdir, args.vectors, args.shard_size, args.queries, args.seed, args.reuse_shards
    )
    out["generate_s"] = time.perf_counter() - started
    out["shards"], out["shards_gb"] = len(shards), sum(f.stat().st_size for f in (workdir / "shards").iterdir()) / 1e9
    print(f"generated {len(shards)} shards in {out['generate_s']:.0f} s", file=sys.stderr, flush=True)
    started = time.perf_counter()
    truth = exact_top_k(queries, shards, K)
    out["exact_truth_s"] = time.perf_counter() - started
    print(f"exact top-10 in {out['exact_truth_s']:.0f} s", file=sys.stderr, flush=True)
    command = [
        sys.executable,
        __file__,
        "--child-build",
        "--workdir",
        str(workdir),
        "--target-recall",
        str(args.target_recall),
        "--rerank-factor",
        str(args.rerank_factor),
    ]
    child = subprocess.run(command, stdout=subprocess.PIPE, check=True, text=True)
    out["build_s"] = json.loads(child.stdout.strip().splitlines()[-1])["build_s"]
    out["build_peak_rss_gb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / 1e9
    index_dir = workdir / "index"
    out["index_files_gb"] = {p.name: round(p.stat().st_size / 1e9, 3) for p in index_dir.iterdir()}
    out["index_gb"] = sum(out["index_files_gb"].values())
    started = time.perf_counter()
    index = ShardedIndex.open(index_dir)
    out["load_s"] = time.perf_counter() - started
    out["factory"], out["tuned"] = index.factory, index.search_params
    tuned = int(index.search_params.split("=")[1])
    out["first_batch_after_open"] = measure(index, queries, truth)  # pays the page faults of the vectors' map
    print(out["first_batch_after_open"], file=sys.stderr, flush=True)
    index.search(warm_up, K)  # other queries: the steady state of a server that has answered a few thousand
    rows = []
    for nprobe in sorted({max(1, tuned // 2), tuned, tuned * 2}):
        index.set_nprobe(nprobe)
        rows.append(measure(index, queries, truth))
        print(rows[-1], file=sys.stderr, flush=True)
    out["rows"] = rows
    out["search_rss_gb"] = rss_mb() / 1024 * 1.048576
    out["load_after"] = round(os.getloadavg()[0], 2)
    at_tuned = next(r for r in rows if r["params"] == f"nprobe={tuned}")
    out["targets"] = {
        "build_peak_rss_gb <= 4": out["build_peak_rss_gb"] <= MEMORY_LIMIT_GB,
        "recall@10 >= 0.90 at the tuned nprobe": at_tuned["recall@10"] >= TARGET_RECALL,
        "qps >= 1000 (wall clock) at the tuned nprobe": at_tuned["qps"] >= TARGET_QPS,
    }
    out.update(
        command="nice -n 5 python benchmarks/scale_index.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        faiss=faiss.__version__,
        cpus=os.cpu_count(),
        date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    )
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "scale_index" if args.vectors == 10_000_000 else "scale_index_partial"
    (RESULTS / f"{name}.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
