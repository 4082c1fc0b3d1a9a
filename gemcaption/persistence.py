"""How gemcaption keeps things on disk: one manifest, one atomic write, one cache location.

Every saved directory (captioner, classifier, classifier model, embedder, index) holds a
``manifest.json``::

    {"format": "gemcaption-captioner", "format_version": 2, "kind": "transformer",
     "config": {...}, "files": {"decoder.keras": "<sha256>", ...}}

written by :func:`write_manifest` and read by :func:`read_manifest`, which refuses another format,
names a format version newer than this release supports, and reports ``damaged: FILE`` when a
file's checksum differs. Directories are written through :func:`save_directory` (or
:func:`atomic_directory` directly) and single files through :func:`atomic_write_bytes`, so a kill
at any moment leaves the previous version loadable. :func:`cache_dir` is where recomputable
things live (features, converted weights, the demo set).

:func:`atomic_directory` takes the directory's lock (:func:`~gemcaption.locking.lock_directory`:
``.NAME.lock`` beside it; another writer waits, then gets ``LockedError`` naming the holder's PID)
and yields a fresh staging directory ``.NAME.staging-PID-xxxx`` next to the target. When the block
finishes, every file in it and the directory itself are fsynced, a ``COMPLETE`` marker is written,
the old target is renamed aside to a backup, the new directory renamed into place, the parent
fsynced and the backup deleted. If the block raises, the staging directory is removed and the
target is untouched. The only moment the target name is absent is between the two renames;
:func:`resolve_directory` (used by loaders) then waits for the live writer, or, if it was killed,
restores the complete backup. Cleaning up (backups, staging directories of dead writers or older
than an hour, a stale lock file) happens only under the lock, never under a live writer's feet.

Each save increments the manifest's ``generation`` (:func:`read_generation`; 0 when absent), so a
reader can tell a new version is in place, ``save_directory(..., expected_generation=N)`` refuses
to overwrite a version it did not load (``ConflictError``), and :func:`read_consistently` reads one
version whole, starting again when another process swapped a new one in meanwhile.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .errors import ConflictError, ModelError
from .locking import DEFAULT_TIMEOUT, lock_directory, lock_path, pid_alive, try_lock_directory

PathLike = str | os.PathLike
"""What every path argument accepts: a string or a :class:`os.PathLike` (a :class:`~pathlib.Path`)."""

COMPLETE_MARKER = "COMPLETE"
STALE_SECONDS = 3600.0
"""A staging directory older than this is a dead writer's, whatever its PID."""
SWAP_WAIT_SECONDS = 5.0
"""How long a reader waits for a live writer between its two renames."""
T = TypeVar("T")


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
    for root, _dirs, files in os.walk(directory):
        for name in files:
            _fsync_path(Path(root, name))
    for root, dirs, _ in os.walk(directory, topdown=False):
        for name in dirs:
            _fsync_path(Path(root, name))
    _fsync_path(directory)


def _siblings(target: Path, kind: str) -> list[Path]:
    return sorted(target.parent.glob(f".{target.name}.{kind}-*"))


def _staging_is_dead(staged: Path) -> bool:
    """A staging directory whose writer is gone: its PID (``.NAME.staging-PID-xxx``) no longer runs,
    or it is older than :data:`STALE_SECONDS` (also the rule for the previous release's ``.tmp-``)."""
    try:
        age = time.time() - staged.stat().st_mtime
    except OSError:
        return False
    if age > STALE_SECONDS:
        return True
    pid = staged.name.rpartition(".staging-")[2].split("-")[0]
    return pid.isdigit() and not pid_alive(int(pid))


def _litter(target: Path) -> list[Path]:
    """Backups, dead writers' staging directories and a lock file left beside ``target``."""
    found = [s for s in _siblings(target, "staging") + _siblings(target, "tmp") if _staging_is_dead(s)]
    found += _siblings(target, "old")
    if lock_path(target).exists():
        found.append(lock_path(target))
    return found


def _clean(target: Path) -> None:
    """Remove what :func:`_litter` lists (the caller holds the lock; an unused lock file goes on release)."""
    for path in _litter(target):
        if path.is_dir() and (target.is_dir() or ".old-" not in path.name):
            shutil.rmtree(path, ignore_errors=True)


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
def atomic_directory(target: PathLike, *, timeout: float = DEFAULT_TIMEOUT, what: str = "directory") -> Iterator[Path]:
    """``with atomic_directory(path) as tmp:`` write files into ``tmp``; they replace ``path`` at the end.

    The whole block holds :func:`lock_directory` on ``path`` (waiting up to ``timeout`` seconds for
    another writer, then :class:`LockedError`); the staging directory is named after this process."""
    target = Path(target).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and not target.is_dir():
        raise ModelError(f"{target} exists and is not a directory")
    with lock_directory(target, timeout, what):
        resolve_directory(target, must_exist=False)  # finish an interrupted swap, remove dead writers' litter
        staged = Path(tempfile.mkdtemp(prefix=f".{target.name}.staging-{os.getpid()}-", dir=target.parent))
        try:
            yield staged
            (staged / COMPLETE_MARKER).write_text("ok\n", encoding="utf-8")
            fsync_tree(staged)
            _swap_into_place(staged, target)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise


def resolve_directory(target: PathLike, must_exist: bool = True) -> Path:
    """``target``, after restoring it from a complete backup if a save was interrupted mid-swap, and
    removing what killed saves left beside it. Repairs happen only under the directory's lock: while a
    live writer is between its two renames, this waits (up to :data:`SWAP_WAIT_SECONDS`) for its swap."""
    target = Path(target).absolute()
    deadline = time.monotonic() + SWAP_WAIT_SECONDS
    while _litter(target):
        with try_lock_directory(target) as locked:
            if locked:
                _restore_backup(target)
                _clean(target)
                break
        if target.exists() or time.monotonic() > deadline:
            break  # a live writer cleans up after itself
        time.sleep(0.02)  # a live writer between its two renames
    if must_exist and not target.is_dir():
        raise ModelError(f"{target}: no such directory")
    return target


def _restore_backup(target: Path) -> None:
    if target.exists():
        return
    backups = [b for b in _siblings(target, "old") if (b / COMPLETE_MARKER).exists()]
    if backups:
        os.rename(max(backups, key=read_generation), target)
        _fsync_path(target.parent)


def read_consistently(target: PathLike, read: Callable[[Path], T], attempts: int = 5) -> T:
    """``read(directory)`` of one saved version of ``target``, never a mix of two: when another
    process swapped a new version in while ``read`` ran (the manifest changed), read again."""
    for _ in range(attempts - 1):
        directory = resolve_directory(target)
        before = _version_token(directory)
        try:
            result = read(directory)
        except Exception:
            if _version_token(directory) == before:
                raise
            continue  # it failed because the files changed under it
        if _version_token(directory) == before:
            return result
    return read(resolve_directory(target))


def _version_token(directory: Path) -> bytes | None:
    try:
        return hashlib.sha256((directory / MANIFEST_FILE).read_bytes()).digest()
    except FileNotFoundError:
        return None if directory.is_dir() else b"absent"
    except OSError:
        return b"unreadable"


def cache_dir(*parts: str) -> Path:
    """``$GEMCAPTION_CACHE`` or ``$XDG_CACHE_HOME/gemcaption`` (default ``~/.cache/gemcaption``), created."""
    root = os.environ.get("GEMCAPTION_CACHE")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(xdg, "gemcaption")
    path = Path(root, *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


# -- single files ---------------------------------------------------------------------------------
def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder, fsynced and renamed
    into place: readers see the old file or the new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: PathLike, text: str) -> Path:
    """:func:`atomic_write_bytes` of UTF-8 ``text``."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: PathLike, payload: Any) -> Path:
    """``payload`` as indented UTF-8 JSON (accents kept), written atomically."""
    return atomic_write_text(path, json.dumps(payload, indent=1, ensure_ascii=False, sort_keys=True) + "\n")


def read_json(path: PathLike) -> Any:
    """Parsed JSON of ``path``; :class:`ModelError` naming the file when missing or unreadable."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{path}: not found") from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"damaged: {path} ({exc.__class__.__name__}: {exc})") from None


# -- reading back ----------------------------------------------------------------------------------
def damaged(path: PathLike, exc: BaseException | str | None = None) -> ModelError:
    """The one error for a saved file that exists but cannot be read back:
    ``damaged: PATH (Detail)``, where the detail is the last line of the underlying error, at most
    200 characters. Raise it ``from None`` so the user sees one line, not a traceback."""
    if exc is None:
        return ModelError(f"damaged: {path}")
    if isinstance(exc, BaseException):
        lines = str(exc).strip().splitlines()
        text = f"{exc.__class__.__name__}: {lines[-1]}" if lines else exc.__class__.__name__
    else:
        text = exc
    return ModelError(f"damaged: {path} ({text[:200]})")


@contextlib.contextmanager
def reading(path: PathLike) -> Iterator[None]:
    """Any failure inside the block becomes :func:`damaged` naming ``path``; a :class:`ModelError`
    raised inside (already clear) passes through unchanged::

        with reading(directory / "index.faiss"):
            index = faiss.read_index(str(directory / "index.faiss"))
    """
    try:
        yield
    except ModelError:
        raise
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as exc:
        raise damaged(path, exc) from None


# -- manifests -------------------------------------------------------------------------------------
MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True)
class Manifest:
    """What a saved directory is: its format and version, the kind of object and its config,
    and the sha256 of every other file in it (relative POSIX paths). ``generation`` counts the saves
    into that directory (0 in directories written before it was kept)."""

    format: str
    format_version: int
    kind: str
    config: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)
    generation: int = 0

    def to_dict(self) -> dict:
        return {
            "format": self.format,
            "format_version": self.format_version,
            "kind": self.kind,
            "config": self.config,
            "files": self.files,
            "generation": self.generation,
        }


def file_sha256(path: PathLike) -> str:
    """The hex sha256 of the file at ``path`` (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _checksums(directory: Path) -> dict[str, str]:
    sums = {}
    for path in sorted(directory.rglob("*")):
        rel = path.relative_to(directory).as_posix()
        if path.is_file() and rel not in (MANIFEST_FILE, COMPLETE_MARKER):
            sums[rel] = file_sha256(path)
    return sums


def write_manifest(
    directory: PathLike, format: str, format_version: int, kind: str, config: dict, generation: int = 0
) -> Manifest:
    """Write ``manifest.json`` into ``directory`` with the checksums of the files already there."""
    directory = Path(directory)
    manifest = Manifest(format, int(format_version), kind, dict(config), _checksums(directory), int(generation))
    write_json(directory / MANIFEST_FILE, manifest.to_dict())
    return manifest


def has_manifest(directory: PathLike) -> bool:
    """True when ``directory`` holds a ``manifest.json`` (a directory of this release's formats)."""
    return Path(directory, MANIFEST_FILE).is_file()


def read_manifest(directory: PathLike, format: str, versions: Iterable[int], *, verify: bool = True) -> Manifest:
    """The manifest of ``directory``, checked: the right ``format``, a version in ``versions``
    and (with ``verify``) every listed file present with its checksum. :class:`ModelError` otherwise."""
    directory = Path(directory)
    versions = sorted(versions)
    if not directory.is_dir():
        raise ModelError(f"{directory}: no such directory")
    payload = read_json(directory / MANIFEST_FILE)
    if not isinstance(payload, dict) or payload.get("format") != format:
        found = payload.get("format") if isinstance(payload, dict) else None
        raise ModelError(f"{directory}: not a {format} directory (format {found!r})")
    version = payload.get("format_version")
    if version not in versions:
        raise ModelError(
            f"{directory}: {format} format version {version!r} is not supported by this "
            f"gemcaption (it reads versions {', '.join(map(str, versions))}); "
            + (
                "upgrade gemcaption"
                if isinstance(version, int) and version > versions[-1]
                else "the directory may be damaged"
            )
        )
    try:  # fields of the wrong type (a hand-edited or damaged manifest): one clear error
        manifest = Manifest(
            format,
            version,
            str(payload.get("kind", "")),
            dict(payload.get("config") or {}),
            {str(rel): str(sha) for rel, sha in dict(payload.get("files") or {}).items()},
            _generation_of(payload),
        )
    except (TypeError, ValueError) as exc:
        raise damaged(directory / MANIFEST_FILE, exc) from None
    if verify:
        for rel, expected in manifest.files.items():
            path = directory / rel
            if not path.is_file():
                raise ModelError(f"damaged: {path} (missing)")
            if file_sha256(path) != expected:
                raise ModelError(f"damaged: {path} (checksum differs from {MANIFEST_FILE})")
    return manifest


def _generation_of(payload: Any) -> int:
    value = payload.get("generation", 0) if isinstance(payload, dict) else 0
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def read_generation(directory: PathLike) -> int:
    """How many times ``directory`` has been saved (its manifest's ``generation``; 0 when it has no
    manifest or one written before the count was kept). A new number means a new version is in
    place: a server holding a loaded copy can compare it to decide to reload. Waits for a writer
    that is between its two renames; :class:`ModelError` when the directory does not exist."""
    directory = Path(directory)
    for _ in range(3):
        try:
            return _generation_of(json.loads((directory / MANIFEST_FILE).read_bytes()))
        except FileNotFoundError:
            if directory.is_dir():
                return 0
            directory = resolve_directory(directory)  # waits for a live writer's swap, or raises
        except (OSError, ValueError):
            return 0
    return 0


def save_directory(
    target: PathLike,
    format: str,
    format_version: int,
    kind: str,
    config: dict,
    write: Callable[[Path], None],
    *,
    expected_generation: int | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    what: str = "directory",
) -> Path:
    """Atomically replace directory ``target``: ``write(staging)`` fills a staging directory, then
    the manifest (with checksums and the next ``generation``) is added and the whole directory
    swapped into place, all under the directory's lock (see :func:`atomic_directory`).

    With ``expected_generation`` (the generation the caller loaded), refuse with
    :class:`ConflictError` when another process saved ``target`` since: saving would drop its changes."""
    with atomic_directory(target, timeout=timeout, what=what) as staged:
        current = read_generation(target) if Path(target).is_dir() else 0
        if expected_generation is not None and current != expected_generation:
            raise ConflictError(
                f"{what} {Path(target)} changed on disk since it was loaded (generation {expected_generation}, "
                f"now {current}: another process saved it); load it again and redo the change"
            )
        write(staged)
        write_manifest(staged, format, format_version, kind, config, generation=current + 1)
    return Path(target)
