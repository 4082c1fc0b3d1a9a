"""Cutting an image list into shards a re-run recognises.

A shard is ``shard_size`` consecutive inputs. Its name, ``shard-<first position>-<hash>``, carries a
hash of the inputs' sources, references and labels and of the build's settings fingerprint, so a
re-run with the same images and settings finds the shards already done, and a changed list or
setting never reuses a stale one."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError

DEFAULT_SHARD_SIZE = 256


@dataclass(frozen=True)
class Shard:
    """Inputs ``start`` to ``stop`` (exclusive) of the image list, and the name of its result."""

    start: int
    stop: int
    name: str


def _describe(item: tuple) -> list:
    source, references, label = item
    if not isinstance(source, (str, Path)):
        raise ConfigError("a distributed build takes image paths (not in-memory images)")
    return [str(Path(source).absolute()), list(references), label]


def plan_shards(items: list[tuple], fingerprint: str, shard_size: int = DEFAULT_SHARD_SIZE) -> list[Shard]:
    """The shards of ``items`` (``(source, references, label)`` tuples), in order."""
    if shard_size < 1:
        raise ConfigError("shard size must be at least 1")
    shards = []
    for start in range(0, len(items), shard_size):
        stop = min(start + shard_size, len(items))
        payload = json.dumps([fingerprint, [_describe(item) for item in items[start:stop]]], ensure_ascii=False)
        digest = hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]
        shards.append(Shard(start, stop, f"shard-{start:09d}-{digest}"))
    return shards
