"""Exclusive locks between processes that write the same saved directory.

:func:`lock_directory` takes an ``fcntl.flock`` on a sibling file ``.NAME.lock`` (next to the
directory, so the atomic swap of the directory never touches it) and writes the holder's PID into
it. The lock is re-entrant within a thread (a :meth:`Retriever.edit` block may save, and the save
locks again); another thread or process waits, and after ``timeout`` seconds gets
:class:`~gemcaption.errors.LockedError` naming the holder's PID. The kernel releases the lock when
its holder dies, so a killed writer never blocks the next one. On release the holder deletes the
lock file (an acquirer checks that the file it locked is still the one at that path, so deleting
is safe). :func:`pid_alive` tells whether the writer named in a staging directory still runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import LockedError, ModelError

DEFAULT_TIMEOUT = 60.0
"""Seconds a writer waits for another writer of the same directory before :class:`LockedError`."""
POLL_SECONDS = 0.05

_held: dict[tuple[str, int], list[int]] = {}  # (lock file, thread id) -> [fd, depth]
_guard = threading.Lock()


def lock_path(target: str | os.PathLike) -> Path:
    """The lock file of directory ``target``: ``.NAME.lock`` beside it (the folder's real path, so
    two spellings of one directory share one lock)."""
    target = Path(target).absolute()
    return target.parent.resolve() / f".{target.name}.lock"


def pid_alive(pid: int) -> bool:
    """True when process ``pid`` exists and is not a zombie."""
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def holder(target: str | os.PathLike) -> int | None:
    """The PID written in the lock file of ``target`` (None if absent or not written yet)."""
    try:
        return int(lock_path(target).read_text().strip())
    except (OSError, ValueError):
        return None


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino)


def _acquire(target: Path, timeout: float, what: str) -> int:
    path = lock_path(target)
    start = time.monotonic()
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise ModelError(f"{path}: cannot create the lock file ({exc.strerror or exc})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            waited = time.monotonic() - start
            if waited >= timeout:
                pid = holder(target)
                who = f"PID {pid}" if pid is not None else "another process"
                raise LockedError(f"{what} {target} is being written by {who} (waited {waited:.1f} s)") from None
            time.sleep(min(POLL_SECONDS, timeout - waited))
            continue
        except OSError as exc:
            os.close(fd)
            raise ModelError(f"{path}: cannot lock ({exc.strerror or exc})") from None
        if not _same_file(fd, path):
            os.close(fd)  # its previous holder deleted it between our open and our flock
            continue
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return fd


def _release(target: Path, fd: int) -> None:
    with contextlib.suppress(OSError):
        os.unlink(lock_path(target))
    os.close(fd)


@contextlib.contextmanager
def lock_directory(
    target: str | os.PathLike, timeout: float = DEFAULT_TIMEOUT, what: str = "directory"
) -> Iterator[Path]:
    """``with lock_directory(path):`` no other process (or thread) writes ``path`` meanwhile.

    Waits up to ``timeout`` seconds (0: one try) for another writer, then raises
    :class:`LockedError` "``what`` PATH is being written by PID N (waited S s)". Re-entrant in a thread."""
    target = Path(target).absolute()
    key = (str(lock_path(target)), threading.get_ident())
    with _guard:
        entry = _held.get(key)
        if entry is not None:
            entry[1] += 1
    if entry is not None:
        try:
            yield target
        finally:
            with _guard:
                entry[1] -= 1
        return
    fd = _acquire(target, max(0.0, float(timeout)), what)
    with _guard:
        _held[key] = [fd, 1]
    try:
        yield target
    finally:
        with _guard:
            del _held[key]
        _release(target, fd)


@contextlib.contextmanager
def try_lock_directory(target: str | os.PathLike) -> Iterator[bool]:
    """``with try_lock_directory(path) as locked:`` the lock if it is free now (``locked`` True),
    else (held by a live writer, or a read-only parent folder) ``locked`` False, without waiting."""
    try:
        context = lock_directory(target, timeout=0)
        context.__enter__()
    except (LockedError, ModelError, OSError):
        yield False
        return
    try:
        yield True
    finally:
        context.__exit__(None, None, None)


def holds_lock(target: str | os.PathLike) -> bool:
    """True when this thread holds the lock of ``target``."""
    key = (str(lock_path(target)), threading.get_ident())
    with _guard:
        return key in _held
