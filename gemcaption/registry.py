"""Named choices: one small registry type for encoders, decoders, samplers, embedders,
classifier kinds and dataset loaders.

A :class:`Registry` maps canonical names (lower case, ``_`` for ``-``) and their aliases to
objects. An entry may be registered as the object itself or lazily as ``"module:attribute"``, so a
package can list everything it offers in one place without importing heavy modules (TensorFlow)
until a name is used, and without any import done only for its side effect. An unknown name raises
:class:`~gemcaption.errors.UnknownNameError`, which lists the choices; the CLI reads its
``choices=`` from :meth:`Registry.names`, so it can never disagree with the library.

>>> SAMPLERS = Registry("sampler")
>>> SAMPLERS.register("greedy", GreedySampler)
>>> SAMPLERS.register("beam", "gemcaption.captioning.samplers.beam:BeamSampler", aliases=("beam_search",))
>>> SAMPLERS.get("Beam-Search")
<class 'gemcaption.captioning.samplers.beam.BeamSampler'>
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

from .errors import UnknownNameError

T = TypeVar("T")

_LAZY_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")  # "package.module:attribute"


def normalize_name(name: str) -> str:
    """The form names are compared in: stripped, lower case, ``-`` and spaces as ``_``."""
    return str(name).strip().lower().replace("-", "_").replace(" ", "_")


class Registry(Generic[T]):
    """Names (and aliases) of one kind of thing, each bound to an object or a lazy import path."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T | str] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, target: T | str | None = None, *, aliases: Iterable[str] = ()) -> Any:
        """Add ``target`` under ``name``; without ``target``, return a decorator that adds the
        decorated object. ``target`` may be ``"package.module:attribute"`` (imported on first use);
        any other string is stored as it is."""
        key = normalize_name(name)
        if target is None:

            def decorator(obj: Callable) -> Callable:
                self.register(key, obj, aliases=aliases)  # type: ignore[arg-type]
                return obj

            return decorator
        if key in self._entries or key in self._aliases:
            raise ValueError(f"{self.kind} {key!r} is already registered")
        self._entries[key] = target
        for alias in aliases:
            self._aliases[normalize_name(alias)] = key
        return target

    def canonical(self, name: str) -> str:
        """The registered name for ``name`` or one of its aliases; :class:`UnknownNameError` otherwise."""
        key = normalize_name(name)
        key = self._aliases.get(key, key)
        if key not in self._entries:
            raise UnknownNameError(self.kind, name, self.names())
        return key

    def get(self, name: str) -> T:
        """The object registered under ``name`` (importing it on first use if registered lazily)."""
        key = self.canonical(name)
        target = self._entries[key]
        if isinstance(target, str) and _LAZY_TARGET.match(target):
            module, _, attribute = target.partition(":")
            target = getattr(importlib.import_module(module), attribute)
            self._entries[key] = target
        return target  # type: ignore[return-value]

    def names(self) -> list[str]:
        """Canonical names in registration order (what the CLI offers as ``choices``)."""
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        key = normalize_name(str(name))
        return key in self._entries or key in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"
