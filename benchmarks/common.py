"""Helpers shared by the benchmark scripts: data location, machine facts, table and JSON output."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SHARED = Path(os.environ.get("GEMCAPTION_DATA", ROOT.parent / "shared" / "data"))


def machine() -> dict:
    """Facts that make a figure reproducible: CPU count, load while running, versions."""
    import numpy
    import tensorflow as tf

    return {
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "numpy": numpy.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def table(rows: list[dict], columns: list[str]) -> str:
    """A markdown table of ``rows`` with the given columns (floats to 4 significant digits)."""

    def fmt(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def write_results(name: str, payload: dict, markdown: str) -> None:
    """``benchmarks/results/<name>.json`` and ``.md``; prints the markdown."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2, ensure_ascii=False))
    (RESULTS / f"{name}.md").write_text(markdown + "\n")
    print(markdown)
