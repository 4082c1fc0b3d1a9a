"""The demo end to end, from an empty cache: wall time and every figure it reports, with chance.

Runs ``gemcaption demo`` (default settings) into a temporary folder with a fresh
``GEMCAPTION_CACHE``, so weight conversion, drawing the synthetic set and feature extraction are
all inside the timed run, as on a user's first run.

    python benchmarks/demo.py
"""

import os
import tempfile
import time

from common import machine, table, write_results


def main():
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["GEMCAPTION_CACHE"] = os.path.join(tmp, "cache")
        from gemcaption.demo.run import run_demo

        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        result = run_demo(out=os.path.join(tmp, "demo-report"), quiet=True)
        wall = time.perf_counter() - started
    rows = [
        {"figure": r.name, "value": r.value, "chance": r.chance if r.chance is not None else "", "note": r.note}
        for r in result["rows"]
        if r.value is not None
    ]
    md = (
        f"`gemcaption demo` with default settings from an empty cache: {wall:.0f} s wall time on 2 cores "
        f"(load average {load_before:.1f} when it started; other processes shared the machine when above 2). "
        f"Pretrained encoder used: {'yes' if result['pretrained'] else 'no'}. The images are synthetic.\n\n"
        + table(rows, ["figure", "value", "chance", "note"])
    )
    write_results(
        "demo",
        {
            "wall_seconds": wall,
            "pretrained_encoder": result["pretrained"],
            "rows": rows,
            "load_average_at_start": load_before,
            "machine": machine(),
        },
        md,
    )


if __name__ == "__main__":
    main()
