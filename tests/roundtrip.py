"""One round-trip check for every serializable object: save it, load it back, compare.

>>> assert_round_trip(captioner, lambda c: c.save(tmp_path / "m"), Captioner.load, same_captions)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def assert_round_trip(
    obj: T, save: Callable[[T], Any], load: Callable[[Any], T], compare: Callable[[T, T], Any] | None = None
) -> T:
    """``loaded = load(save(obj))`` and ``compare(obj, loaded)``; returns ``loaded``.

    ``save`` returns whatever ``load`` takes (a path, bytes, a dict). ``compare`` either asserts
    itself or returns a truth value (``False`` fails); without it the two must be ``==``.
    """
    loaded = load(save(obj))
    verdict = (obj == loaded) if compare is None else compare(obj, loaded)
    if verdict is False:
        raise AssertionError(f"round trip changed the object: {obj!r} -> {loaded!r}")
    return loaded
