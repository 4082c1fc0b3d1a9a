"""Images/s of the distributed index build (gemcaption.distributed) with 1 and 2 local Dask workers.

Flickr8k dev images (``--images``, default 1,000) are captioned, embedded and indexed by
``build_index`` on a local cluster, first with a cold feature cache (a new, empty
``$GEMCAPTION_CACHE`` holding only the converted encoder weights, so the CNN really runs), then
again warm (features read from that cache). The captioner is a small transformer trained for one
epoch on ``--train`` train images (with the user's feature cache); its quality does not matter here,
its encoder (EfficientNet-Lite0, 224 px) is the default one. Each run's time includes starting the
cluster and loading the model in every worker. Run from the repository root:

    nice -n 5 .venv/bin/python benchmarks/scale_encoding.py [--images 1000] [--workers 1 2]

Writes benchmarks/results/scale_encoding.json and .md. ``main(argv)`` is what benchmarks/scale.py calls.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import SHARED, machine, table, write_results


def _captioner(train, model_dir: Path):
    from gemcaption.captioning.captioner import Captioner

    captioner = Captioner("transformer", embed_dim=64, ff_dim=64, num_heads=2, seq_len=16, seed=0)
    captioner.fit(train, epochs=1, batch_size=32, verbose=0, space=False)
    captioner.save(model_dir)
    return model_dir


def _timed_build(model_dir: Path, samples, out: Path, workers: int, shard_size: int) -> tuple[float, int]:
    from gemcaption.distributed import build_index
    from gemcaption.retrieval.retriever import Retriever

    retriever = Retriever(None, model_dir=model_dir, index_factory="Flat", progress=False)
    started = time.perf_counter()
    report = build_index(retriever, samples, out, workers=workers, shard_size=shard_size, progress=False)
    seconds = time.perf_counter() - started
    if not report.complete:
        raise SystemExit(f"build failed: {report.failed}")
    shutil.rmtree(out)
    return seconds, len(retriever)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000, help="Flickr8k dev images indexed (default 1000)")
    parser.add_argument("--train", type=int, default=300, help="train images of the small captioner (default 300)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts (default 1 2)")
    parser.add_argument("--shard-size", type=int, default=128, help="images per shard (default 128)")
    args = parser.parse_args(argv)

    from gemcaption.data.loaders import load_dataset
    from gemcaption.persistence import cache_dir

    dataset = load_dataset(f"flickr8k:{SHARED / 'flickr8k'}")
    train = dataset.split("train").samples[: args.train]
    samples = dataset.split("dev").samples[: args.images]
    load_before = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory(prefix="scale-encoding-") as tmp:
        model_dir = _captioner(train, Path(tmp) / "model")
        weights = cache_dir("weights")
        previous = os.environ.get("GEMCAPTION_CACHE")
        try:
            for workers in args.workers:
                cache = Path(tmp) / f"cache-{workers}"
                shutil.copytree(weights, cache / "weights")  # converted weights only: no features
                os.environ["GEMCAPTION_CACHE"] = str(cache)  # the workers inherit it
                for state in ("cold", "warm"):
                    seconds, indexed = _timed_build(model_dir, samples, Path(tmp) / "index", workers, args.shard_size)
                    rows.append(
                        {
                            "workers": workers,
                            "cache": state,
                            "images": len(samples),
                            "indexed": indexed,
                            "seconds": round(seconds, 2),
                            "images_per_s": round(len(samples) / seconds, 2),
                            "load_average_1m_after": round(os.getloadavg()[0], 2),
                        }
                    )
                    print(rows[-1], file=sys.stderr)
        finally:
            if previous is None:
                os.environ.pop("GEMCAPTION_CACHE", None)
            else:
                os.environ["GEMCAPTION_CACHE"] = previous
    payload = {
        "command": "nice -n 5 .venv/bin/python benchmarks/scale_encoding.py " + " ".join(argv or sys.argv[1:]),
        "machine": {**machine(), "load_average_1m_before": round(load_before, 2)},
        "settings": {"shard_size": args.shard_size, "encoder": "efficientnet_lite0 224 px", "index": "Flat"},
        "note": "seconds include starting the local cluster and loading the model in each worker",
        "runs": rows,
    }
    markdown = "# Distributed index build: images/s\n\n" + table(
        rows, ["workers", "cache", "images", "indexed", "seconds", "images_per_s", "load_average_1m_after"]
    )
    write_results("scale_encoding", payload, markdown)
    return payload


if __name__ == "__main__":
    main()
