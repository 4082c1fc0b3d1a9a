"""Replace a directory as a whole, so a crash or kill mid-save leaves the previous one loadable.

:func:`atomic_directory` yields a fresh temporary directory next to the target. When the block
finishes, every file in it and the directory itself are fsynced, a ``COMPLETE`` marker is written,
the old target is renamed aside to a backup, the new directory renamed into place, the parent
fsynced and the backup deleted. If the block raises, the temporary directory is removed and the
target is untouched. The only moment the target name is absent is between the two renames;
:func:`resolve_directory` (used by loaders) then restores the complete backup.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from .errors import ModelError

COMPLETE_MARKER = "COMPLETE"


def _fsync_path(path: Path) -> None:
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if path.is_dir() else os.O_RDONLY
    try:
        fd = os.open(path, flags)
    except OSError:
        return  # e.g. directories cannot be opened on some platforms
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_tree(directory: Path) -> None:
    """fsync every file below ``directory``, then the directories themselves."""
    for root, dirs, files in os.walk(directory):
        for name in files:
            _fsync_path(Path(root, name))
    for root, dirs, _ in os.walk(directory, topdown=False):
        for name in dirs:
            _fsync_path(Path(root, name))
    _fsync_path(directory)


def _siblings(target: Path, kind: str) -> list[Path]:
    return sorted(target.parent.glob(f".{target.name}.{kind}-*"))


def _swap_into_place(staged: Path, target: Path) -> None:
    backup = None
    if target.exists():
        backup = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        backup.rmdir()
        os.rename(target, backup)
    _rename_staged(staged, target)
    _fsync_path(target.parent)
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)


def _rename_staged(staged: Path, target: Path) -> None:
    os.rename(staged, target)


@contextlib.contextmanager
def atomic_directory(target):
    """``with atomic_directory(path) as tmp:`` write files into ``tmp``; they replace ``path`` at the end."""
    target = Path(target).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and not target.is_dir():
        raise ModelError(f"{target} exists and is not a directory")
    resolve_directory(target, must_exist=False)  # finish a previously interrupted swap first
    for stale in _siblings(target, "tmp"):
        shutil.rmtree(stale, ignore_errors=True)  # left by a crash during an earlier save
    staged = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield staged
        (staged / COMPLETE_MARKER).write_text("ok\n", encoding="utf-8")
        fsync_tree(staged)
        _swap_into_place(staged, target)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise


def resolve_directory(target, must_exist: bool = True) -> Path:
    """``target``, after restoring it from a complete backup if a save was interrupted mid-swap."""
    target = Path(target).absolute()
    if not target.exists():
        backups = [b for b in _siblings(target, "old") if (b / COMPLETE_MARKER).exists()]
        if backups:
            os.rename(backups[-1], target)
            _fsync_path(target.parent)
    elif target.is_dir():
        for stale in _siblings(target, "old"):
            shutil.rmtree(stale, ignore_errors=True)
    if must_exist and not target.is_dir():
        raise ModelError(f"{target}: no such index directory")
    return target
