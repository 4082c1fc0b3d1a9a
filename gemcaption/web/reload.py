"""Live reload for ``gemcaption serve``: :class:`LiveRetriever` holds the current index and swaps in
a new version when another process (``gemcaption index add``...) saves the directory again.

A version is identified by the sha256 of the directory's ``manifest.json`` (every save through
:mod:`gemcaption.persistence` rewrites it); the reported ``generation`` is the manifest's own counter
when :mod:`gemcaption.persistence` provides ``read_generation``, else the number of versions this
server has loaded. Requests keep being answered by the old retriever while the new one loads (one
reload at a time; a change noticed during a request is loaded in a background thread, so no
request waits for it, unless ``background=False``); a failed load (a damaged or half-written
directory) keeps the old retriever, records the error, and is retried only once the manifest
changes again.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import persistence
from ..errors import GemcaptionError

Loader = Callable[[Path, Any], Any]
"""``loader(directory, previous_retriever_or_None) -> retriever``."""

CHECK_INTERVAL = 1.0
"""Seconds between two looks at the manifest during requests."""


def manifest_version(directory: Path) -> str | None:
    """The sha256 of ``directory/manifest.json``, or None when it cannot be read (mid-swap, legacy)."""
    try:
        return hashlib.sha256((directory / "manifest.json").read_bytes()).hexdigest()
    except OSError:
        return None


class LiveRetriever:
    """The retriever currently served for ``directory``, reloaded when its manifest changes."""

    def __init__(
        self,
        directory: str | Path,
        loader: Loader,
        *,
        retriever: Any = None,
        check_interval: float = CHECK_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        background: bool = True,
    ):
        self.directory = Path(directory)
        self._loader = loader
        self._clock = clock
        self.check_interval = float(check_interval)
        self.background = background
        self._version = manifest_version(self.directory)
        self._current = retriever if retriever is not None else loader(self.directory, None)
        self._loads = 1
        self._failed_version: str | None = None
        self.last_error: str | None = None
        self._last_check = clock()
        self._reloading = threading.Lock()

    @property
    def current(self) -> Any:
        """The retriever to answer the next request with (take it once per request)."""
        return self._current

    @property
    def generation(self) -> int:
        """The manifest's generation counter if the persistence layer has one, else versions loaded."""
        read_generation = getattr(persistence, "read_generation", None)
        if read_generation is not None:
            try:
                return int(read_generation(self.directory))
            except (GemcaptionError, OSError, ValueError, TypeError):
                pass
        return self._loads

    def status(self, reloaded: bool) -> dict:
        payload: dict[str, Any] = {"generation": self.generation, "size": len(self._current), "reloaded": reloaded}
        if self.last_error:
            payload["error"] = self.last_error
        return payload

    def maybe_reload(self) -> bool:
        """Look for a new version at most once per ``check_interval`` (reading the manifest only) and
        load it, in a background thread unless ``background=False``; never waits for a reload already
        running. True when a load was started (background) or a new version swapped in."""
        now = self._clock()
        if now - self._last_check < self.check_interval:
            return False
        self._last_check = now
        version = manifest_version(self.directory)
        if version is None or version in (self._version, self._failed_version):
            return False
        if not self._reloading.acquire(blocking=False):
            return False
        if not self.background:
            try:
                return self._reload_locked(force=False)
            finally:
                self._reloading.release()
        threading.Thread(target=self._reload_and_release, name="gemcaption-reload", daemon=True).start()
        return True

    def _reload_and_release(self) -> None:
        try:
            self._reload_locked(force=False)
        finally:
            self._reloading.release()

    def reload(self, force: bool = False) -> dict:
        """Reload now if the manifest changed (or always with ``force``); the JSON of ``POST /api/reload``."""
        with self._reloading:
            self._last_check = self._clock()
            reloaded = self._reload_locked(force=force)
        return self.status(reloaded)

    def _reload_locked(self, force: bool) -> bool:
        version = manifest_version(self.directory)
        if version is None:
            return False  # mid-swap or gone: keep serving, look again later
        if not force and (version == self._version or version == self._failed_version):
            return False
        try:
            fresh = self._loader(self.directory, self._current)
        except Exception as exc:  # any failure keeps the old version serving
            self._failed_version = version
            self.last_error = f"reload of {self.directory} failed, still serving the previous version: {exc}"
            return False
        self._current, self._version, self._failed_version = fresh, version, None
        self._loads += 1
        self.last_error = None
        return True
