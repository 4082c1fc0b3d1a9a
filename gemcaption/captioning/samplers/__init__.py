"""Decoding strategies as objects: how a caption decoder's next-token scores become captions.

:class:`~.base.Sampler` owns the incremental decoding loop; :class:`~.greedy.GreedySampler` and
:class:`~.beam.BeamSampler` only choose tokens. A sampler is named in :data:`SAMPLERS`
(``"greedy"``, ``"beam"``), built by :func:`get_sampler` from a name, an instance or its
serialized form (``{"name": "beam", "config": {...}}``, see :func:`serialize_sampler`), and
:func:`resolve_sampler` adds the older ``beam_width`` spelling (1 = greedy, N > 1 = beam of N).

>>> sampler = get_sampler("beam", width=5, length_penalty=1.0)
>>> ids = sampler(decoder, features, start_id=2, end_id=3, pad_id=0)   # (N, steps)
"""

from __future__ import annotations

from typing import Any

from ...errors import ConfigError
from ...registry import Registry
from .base import Sampler, whole_number
from .beam import BeamSampler
from .greedy import GreedySampler

SAMPLERS: Registry[type[Sampler]] = Registry("sampler")
SAMPLERS.register("greedy", GreedySampler, aliases=("argmax",))
SAMPLERS.register("beam", BeamSampler, aliases=("beam_search",))

__all__ = ["SAMPLERS", "BeamSampler", "GreedySampler", "Sampler", "get_sampler", "resolve_sampler", "serialize_sampler"]


def serialize_sampler(sampler: Sampler) -> dict[str, Any]:
    """``{"name": ..., "config": ...}``, JSON-able; :func:`get_sampler` rebuilds the sampler from it."""
    return {"name": sampler.name, "config": sampler.get_config()}


def get_sampler(sampler: str | Sampler | dict | None = "greedy", **options: Any) -> Sampler:
    """A sampler from a registered name (with constructor ``options``), an instance (``options``
    override its settings) or :func:`serialize_sampler`'s dict. An unknown name raises
    :class:`~gemcaption.errors.UnknownNameError`; a bad option or value a ``ConfigError``."""
    if sampler is None:
        sampler = "greedy"
    if isinstance(sampler, Sampler):
        return type(sampler).from_config({**sampler.get_config(), **options}) if options else sampler
    if isinstance(sampler, dict):
        if set(sampler) - {"name", "config"} or not isinstance(sampler.get("name"), str):
            raise ConfigError('a sampler config must look like {"name": "beam", "config": {...}}')
        config = sampler.get("config") or {}
        if not isinstance(config, dict):
            raise ConfigError("a sampler's config must be a dict")
        return SAMPLERS.get(sampler["name"]).from_config({**config, **options})
    if isinstance(sampler, str):
        return SAMPLERS.get(sampler).from_config(options)
    raise ConfigError(
        f"a sampler must be a name ({', '.join(SAMPLERS.names())}), a Sampler or a config dict, "
        f"not {type(sampler).__name__}"
    )


def resolve_sampler(
    sampler: str | Sampler | dict | int | None = None, beam_width: int | None = None, **options: Any
) -> Sampler:
    """The sampler for ``sampler`` and the older ``beam_width``: without a sampler, ``beam_width``
    1 (or None) is greedy and N > 1 a beam of N; with a beam sampler it sets the width. An int
    ``sampler`` is read as a beam width (the old positional argument)."""
    if isinstance(sampler, bool):
        raise ConfigError(f"a sampler must be a name, a Sampler or a config dict, not {sampler!r}")
    if isinstance(sampler, int):
        sampler, beam_width = None, sampler if beam_width is None else beam_width
    if beam_width is None:
        return get_sampler(sampler, **options)
    width = whole_number("beam_width", beam_width, minimum=1)
    if sampler is None:
        return get_sampler("greedy", **options) if width == 1 else get_sampler("beam", width=width, **options)
    chosen = get_sampler(sampler, **options)
    if isinstance(chosen, BeamSampler):
        return get_sampler(chosen, width=width)
    if width > 1:
        raise ConfigError(f"beam_width={width} needs a beam sampler, not {chosen.name!r}")
    return chosen
