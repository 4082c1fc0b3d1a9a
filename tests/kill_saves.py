"""Kill a process while it saves: the test helper behind the "a kill leaves the previous version
loadable" tests of the index, the embedder and the classifier.

:func:`kill_while_saving` starts ``python -c CODE ARGS...``; the code builds what it saves, prints
``READY`` and then saves over the same directory again and again (two contents in turn), until it
is SIGKILLed after a random delay. The caller then checks that the directory loads with one of the
two contents. :func:`kill_until_one_lands_mid_save` repeats that, checking after every kill, until
one kill has visibly interrupted a save (a timing matter, so a loaded machine may need more tries).
:func:`leftovers` lists the staging / backup directories (and lock file) a killed save
left beside it.
"""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

TESTS = Path(__file__).resolve().parent
READY = "READY"


def kill_while_saving(code: str, args: list[str], delay: float, timeout: float = 60.0) -> None:
    """Run ``code`` with ``args`` in a fresh interpreter, wait for ``READY``, sleep ``delay``
    seconds and SIGKILL it. Fails with the child's stderr if it dies or never gets ready."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        ready, _, _ = select.select([child.stdout], [], [], timeout)
        if not ready or child.stdout.readline().strip() != READY:
            child.kill()
            raise AssertionError(f"the saving process did not start: {child.stderr.read()[-2000:]}")
        time.sleep(delay)
        if child.poll() is not None:
            raise AssertionError(f"the saving process stopped by itself: {child.stderr.read()[-2000:]}")
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=timeout)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
        child.stderr.close()


def random_delays(count: int, seed: int, low: float = 0.0, high: float = 0.4) -> list[float]:
    """``count`` seeded random kill delays (seconds after ``READY``)."""
    rng = random.Random(seed)
    return [rng.uniform(low, high) for _ in range(count)]


def leftovers(target: Path, lock: bool = False) -> list[str]:
    """Names of the staging (``.NAME.staging-PID-*``) and backup (``.NAME.old-*``) directories beside
    ``target``, and with ``lock`` its lock file (``.NAME.lock``, which a killed writer leaves too)."""
    names = sorted(p.name for p in target.parent.glob(f".{target.name}.*"))
    return names if lock else [name for name in names if name != f".{target.name}.lock"]


def kill_until_one_lands_mid_save(
    code: str,
    args: list[str],
    target: Path,
    check: Callable[[], None],
    seed: int,
    high: float = 0.4,
    minimum: int = 3,
    maximum: int = 25,
) -> list[bool]:
    """Kill a saver at random moments (:func:`kill_while_saving`), calling ``check()`` after each
    kill, at least ``minimum`` times and then until one kill left a save half-done beside ``target``
    (:func:`leftovers`), at most ``maximum`` times. Returns, per kill, whether it interrupted a save;
    the caller asserts ``any`` of them so the test proves it exercised an interrupted save."""
    interrupted: list[bool] = []
    for delay in random_delays(maximum, seed=seed, high=high):
        kill_while_saving(code, args, delay)
        interrupted.append(bool(leftovers(target)))
        check()
        if len(interrupted) >= minimum and any(interrupted):
            break
    return interrupted
