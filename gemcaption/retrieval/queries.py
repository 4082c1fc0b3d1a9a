"""Is a search query an image or a text?

The rule used by ``Retriever.search``:

* ``pathlib.Path``, PIL images, NumPy arrays and raw ``bytes`` are images;
* a ``str`` is an image when it names an existing file, or when it ends with an image file
  extension (:data:`gemcaption.data.images.IMAGE_EXTENSIONS`, any case) and has no line break:
  a missing ``photos/ring.jpg`` then raises :class:`~gemcaption.errors.ImageError` rather than
  being searched as words;
* any other ``str`` is a text query; an empty or blank one raises :class:`~gemcaption.errors.QueryError`,
  as does a query of any other type.

Use ``search_text`` / ``search_image`` to say which one explicitly.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..data.images import IMAGE_EXTENSIONS
from ..errors import QueryError

__all__ = ["IMAGE_EXTENSIONS", "looks_like_image_path", "is_image_query", "is_batch"]


def looks_like_image_path(text: str) -> bool:
    """True for a string ending with an image extension and holding no line break."""
    return "\n" not in text and text.strip().lower().endswith(IMAGE_EXTENSIONS)


def is_image_query(query) -> bool:
    """Classify one query by the module's rule; raises for types that are neither."""
    if isinstance(query, str):
        if not query.strip():
            raise QueryError("empty search query")
        try:
            exists = os.path.isfile(query)
        except (OSError, ValueError):
            exists = False
        return exists or looks_like_image_path(query)
    if isinstance(query, (Path, bytes, bytearray, memoryview)):
        return True
    if type(query).__module__.startswith("numpy") or hasattr(query, "getbands"):  # ndarray, PIL image
        return True
    raise QueryError(f"cannot search for a {type(query).__name__}: give a path, image, array, bytes or text")


def is_batch(query) -> bool:
    """A list or tuple of queries (a NumPy array is one image, not a batch)."""
    return isinstance(query, (list, tuple))
