"""The C heap (glibc malloc) settings that keep a long TensorFlow run's memory flat, and handing
freed memory back to the system. Nothing here does anything off glibc.

:func:`tune_heap` is what the ``gemcaption`` command runs first (Python users of
:meth:`Captioner.fit` get the same by starting Python with the environment variables below):

* at most :data:`MALLOC_ARENAS` malloc arenas (``MALLOC_ARENA_MAX``): by default each TensorFlow
  thread that allocates gets an arena of its own, and memory freed after every training step stays
  spread over them;
* a fixed mmap threshold of :data:`MMAP_THRESHOLD` bytes and a trim threshold of
  :data:`TRIM_THRESHOLD` (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``): glibc otherwise
  raises its mmap threshold to the size of every large block freed (up to 32 MiB), so a training
  step's tensors of a few MiB come from the heap, which fragments and keeps growing over an epoch;
  above the threshold a block is mapped for itself and unmapped when freed.

Each setting is left alone when its environment variable (or ``GLIBC_TUNABLES``) is set: glibc has
read the user's choice at start-up. Measured effect: docs/scaling.md, "Bounded memory".
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os

MALLOC_ARENAS = 2
MMAP_THRESHOLD = 4 * 2**20
TRIM_THRESHOLD = 8 * 2**20
# mallopt parameter numbers (glibc's malloc.h) and the environment variables glibc reads for them
SETTINGS = {
    "arena_max": (-8, "MALLOC_ARENA_MAX", MALLOC_ARENAS),
    "mmap_threshold": (-3, "MALLOC_MMAP_THRESHOLD_", MMAP_THRESHOLD),
    "trim_threshold": (-1, "MALLOC_TRIM_THRESHOLD_", TRIM_THRESHOLD),
}


def _libc():
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


def tune_heap() -> dict[str, int]:
    """Apply the settings of the module docstring that the environment does not set; returns the
    ones applied (empty off glibc, or when the environment sets them all)."""
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return {}
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    applied = {}
    for name, (parameter, variable, value) in SETTINGS.items():
        if variable in os.environ or f"glibc.malloc.{name}" in tunables:
            continue
        if mallopt(parameter, value):
            applied[name] = value
    return applied


def release_free_memory() -> None:
    """Collect Python's garbage and give the C heap's free pages back to the system (``malloc_trim``)."""
    gc.collect()
    libc = _libc()
    with contextlib.suppress(AttributeError):
        if libc is not None:
            libc.malloc_trim(0)
