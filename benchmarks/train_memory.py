"""Peak resident memory and epoch time of ``gemcaption train`` on Flickr8k, at the CLI defaults.

Each run is ``gemcaption train --data flickr8k:DIR --out TMP --epochs E`` (everything else at its
default: transformer decoder, EfficientNet-Lite0 at 224 px, batch 64, the caption-embedding space
trained after the decoder) in its own process; its peak resident set (``ru_maxrss``: anonymous and
file-backed pages, TensorFlow's libraries included) is read by a wrapper process that runs only it.
Epoch time is the decoder's ``fit`` time from the model's ``history.json`` divided by the epochs run
(the first epoch includes compiling the step).

* ``--repeat 1``: the 6,000 train + 1,000 dev images of ../shared/data/flickr8k;
* ``--repeat 10``: the same images ten times under distinct names (symlinks in ``--workdir``), i.e.
  60,000 + 10,000 images; the feature cache already holds every grid, so the run measures training,
  not encoding (run ``--repeat 1`` first, or any command that encodes Flickr8k, to warm the cache).
* ``--baseline DIR``: also runs a source tree of an earlier release (``PYTHONPATH=DIR python -m
  gemcaption``), e.g. ``git archive cc68065 | tar -x -C DIR`` for the in-memory training this replaced.

    python benchmarks/train_memory.py [--repeat 1 10] [--epochs 2] [--baseline DIR]

The machine's 1-minute load average is recorded before and after each run (2 shared cores). Writes
benchmarks/results/train_memory.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import RESULTS, ROOT, SHARED, machine, table, write_results

TARGET_GIB = 1.5
TIME_SLACK = 1.10  # epoch time at most 10 % above the baseline's
WRAPPER = (
    "import json, resource, subprocess, sys\n"
    "rc = subprocess.call(sys.argv[1:])\n"
    "print(json.dumps({'rc': rc, 'maxrss_kb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))\n"
)


def repeated_flickr8k(source: Path, target: Path, repeat: int) -> Path:
    """A Flickr8k folder whose images are ``source``'s, ``repeat`` times under names ``r{k}_NAME``."""
    if repeat == 1:
        return source
    images = target / "Images"
    if target.exists():
        shutil.rmtree(target)
    images.mkdir(parents=True)
    rows = (source / "captions.txt").read_text().splitlines()
    header, body = rows[0], [r for r in rows[1:] if r]
    present = {p.name for p in (source / "Images").iterdir()}
    out = [header]
    for k in range(repeat):
        for name in present:
            os.symlink((source / "Images" / name).resolve(), images / f"r{k}_{name}")
        out += [f"r{k}_{row}" for row in body if row.split(",", 1)[0] in present]
    (target / "captions.txt").write_text("\n".join(out) + "\n")
    for split in ("Flickr_8k.trainImages.txt", "Flickr_8k.devImages.txt"):
        names = [n for n in (source / split).read_text().split() if n]
        (target / split).write_text("".join(f"r{k}_{n}\n" for k in range(repeat) for n in names))
    return target


def run(label: str, data: Path, epochs: int, baseline: Path | None, workdir: Path) -> dict:
    out = Path(tempfile.mkdtemp(dir=workdir, prefix="model-"))
    command = [sys.executable, "-m", "gemcaption", "train", "--data", f"flickr8k:{data}", "--allow-outside"]
    command += ["--out", str(out / "model"), "--epochs", str(epochs), "-q"]
    env = dict(os.environ)
    if baseline is not None:
        env["PYTHONPATH"] = str(baseline)
    load_before = round(os.getloadavg()[0], 2)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, *command], env=env, cwd=baseline or ROOT, stdout=subprocess.PIPE, text=True
    )
    wall = time.perf_counter() - started
    report = json.loads(done.stdout.strip().splitlines()[-1])
    if report["rc"] != 0:
        raise SystemExit(f"{label}: gemcaption train exited with {report['rc']}")
    history = json.loads((out / "model" / "history.json").read_text())
    shutil.rmtree(out)
    ran = len(history["loss"])
    row = {
        "run": label,
        "train_images": history["train_images"],
        "validation_images": history["validation_images"],
        "epochs": ran,
        "peak_rss_gib": report["maxrss_kb"] / 2**20,
        "epoch_s": history["seconds"] / ran,
        "wall_s": wall,
        "load_before": load_before,
        "load_after": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, nargs="+", default=[1, 10], help="copies of Flickr8k per run")
    parser.add_argument("--epochs", type=int, default=2, help="decoder epochs per run (default 2)")
    parser.add_argument("--baseline", type=Path, help="source tree of an earlier release to run at --repeat 1")
    parser.add_argument(
        "--epochs-repeated", type=int, help="decoder epochs of the runs with --repeat > 1 (default: --epochs)"
    )
    parser.add_argument("--add", action="store_true", help="keep the rows of other runs already in train_memory.json")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "gemcaption-train-memory")
    args = parser.parse_args(argv)
    source = SHARED / "flickr8k"
    args.workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    if args.baseline is not None:
        rows.append(run("baseline (in memory)", source, args.epochs, args.baseline.resolve(), args.workdir))
    for repeat in args.repeat:
        data = repeated_flickr8k(source, args.workdir / f"flickr8k-x{repeat}", repeat)
        epochs = args.epochs if repeat == 1 or args.epochs_repeated is None else args.epochs_repeated
        rows.append(run(f"streamed, {repeat}x Flickr8k", data, epochs, None, args.workdir))
    command = "python benchmarks/train_memory.py " + " ".join(argv if argv is not None else sys.argv[1:])
    commands = [command]
    if args.add and (RESULTS / "train_memory.json").is_file():
        done = {r["run"] for r in rows}
        earlier = json.loads((RESULTS / "train_memory.json").read_text())
        rows = [r for r in earlier["rows"] if r["run"] not in done] + rows
        commands = earlier.get("commands", [earlier.get("command")]) + commands
        rows.sort(key=lambda r: (not r["run"].startswith("baseline"), r["train_images"]))
    streamed = [r for r in rows if r["run"].startswith("streamed")]
    targets = {f"peak RSS <= {TARGET_GIB} GiB ({r['run']})": r["peak_rss_gib"] <= TARGET_GIB for r in streamed}
    baseline = next((r for r in rows if r["run"].startswith("baseline")), None)
    same_size = [r for r in streamed if baseline and r["train_images"] == baseline["train_images"]]
    if baseline and same_size:
        limit = baseline["epoch_s"] * TIME_SLACK
        targets[f"epoch time <= 1.1 x baseline ({same_size[0]['run']})"] = same_size[0]["epoch_s"] <= limit
    columns = ["run", "train_images", "validation_images", "epochs", "peak_rss_gib", "epoch_s", "wall_s"]
    columns += ["load_before", "load_after"]
    verdicts = "\n".join(f"- {k}: {'met' if v else 'NOT met'}" for k, v in targets.items())
    markdown = table(rows, columns) + "\n\n" + verdicts
    write_results("train_memory", {"rows": rows, "targets": targets, "commands": commands, **machine()}, markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
