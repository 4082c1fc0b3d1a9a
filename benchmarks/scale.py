"""The scaling evidence of docs/scaling.md in one command: runs the three scale benchmarks and prints
one table from their result files.

* ``index``: benchmarks/scale_index.py (10M vectors into an on-disk sharded index, then searched);
* ``encoding``: benchmarks/scale_encoding.py (images/s of distributed encoding, 1 and 2 workers);
* ``memory``: benchmarks/train_memory.py (peak RSS of ``gemcaption train``).

``python benchmarks/scale.py`` runs all three (more than an hour on 2 cores); ``--part index`` one of
them; ``--table`` only prints the table from the JSON files already in benchmarks/results/.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
PARTS = {"index": "scale_index", "encoding": "scale_encoding", "memory": "train_memory"}


def _scalars(payload, prefix: str = "") -> list[tuple[str, object]]:
    """Top-level (and one level nested) numbers, strings and booleans of a result file, and one line
    per item of a list of records."""
    out: list[tuple[str, object]] = []
    if isinstance(payload, dict):
        for key, value in payload.items():
            if isinstance(value, (int, float, str, bool)) and not (isinstance(value, str) and len(value) > 80):
                out.append((prefix + str(key), value))
            elif isinstance(value, dict) and not prefix:
                out += _scalars(value, f"{key}.")
            elif isinstance(value, list) and all(isinstance(item, dict) for item in value):
                for i, item in enumerate(value):
                    flat = ", ".join(f"{k} {v}" for k, v in _scalars(item))
                    out.append((f"{prefix}{key} {i + 1}", flat))
    return out


def _index_rows(payload: dict) -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = [
        ("vectors", f"{payload['vectors']:,} x {payload['dim']}-d in {payload['shards']} shards"),
        ("index", f"{payload['factory']} (tuned {payload['tuned']})"),
        ("build time", f"{payload['build_s'] / 60:.1f} min"),
        ("build peak RSS", f"{payload['build_peak_rss_gb']:.2f} GB"),
        ("index on disk", f"{payload['index_gb']:.2f} GB"),
        ("load (checksums included)", f"{payload['load_s']:.1f} s"),
    ]
    first = payload.get("first_batch_after_open")
    if first:
        rows.append(
            (
                f"first batch after opening, {first['params']}",
                f"recall@10 {first['recall@10']:.3f}, {first['qps']:,.0f} q/s",
            )
        )
    for row in payload["rows"]:
        rows.append(
            (
                f"search {row['params']}",
                f"recall@10 {row['recall@10']:.3f}, {row['qps']:,.0f} q/s ({row['qps_2cpu']:,.0f} per 2 CPU s)",
            )
        )
    rows.append(("load average before / after", f"{payload['load_before']} / {payload['load_after']}"))
    return rows


def table() -> str:
    lines = ["| part | measure | value |", "|---|---|---|"]
    for part, stem in PARTS.items():
        path = RESULTS / f"{stem}.json"
        if not path.is_file():
            lines.append(f"| {part} | (not run: {path.name} missing) | |")
            continue
        payload = json.loads(path.read_text())
        rows = _index_rows(payload) if part == "index" else _scalars(payload)
        lines += [f"| {part} | {name} | {value} |" for name, value in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=sorted(PARTS), help="run only this part (default: all three)")
    parser.add_argument("--table", action="store_true", help="only print the table of the existing results")
    args = parser.parse_args(argv)
    if not args.table:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        sys.path.insert(0, str(ROOT))
        for part in [args.part] if args.part else list(PARTS):
            print(f"== {part}: benchmarks/{PARTS[part]}.py", file=sys.stderr, flush=True)
            importlib.import_module(PARTS[part]).main([])
    print(table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
