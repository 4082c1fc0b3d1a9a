"""Defensive reading of what a client sends the search page: JSON bodies with limits, ``k`` and ids.

* JSON bodies: at most :data:`MAX_JSON_BYTES`, nested at most :data:`MAX_JSON_DEPTH` deep (checked
  before parsing, so no RecursionError), UTF-8, no NaN/Infinity, no number that overflows to
  infinity (``1e400``), integers of at most :data:`MAX_INT_DIGITS` digits; the top level an object.
* ``k``: a JSON integer (not ``1.9``, not ``true``, not ``"3"``), or in a form ASCII digits only;
  ``offset`` the same, from 0 to :data:`MAX_OFFSET`; ``label`` a string of at most
  :data:`MAX_LABEL_CHARS` characters (empty means no filter).
* ids: a JSON integer or a string of ASCII digits; path ids match ``[0-9]{1,18}`` only
  (``str.isdigit`` and ``int()`` accept Unicode digits such as ``"１"``: never used here).
* :class:`MemoryRequest` keeps uploaded files in memory (werkzeug spools large ones to a temporary
  file by default); the request size limit bounds that memory.
Every refusal raises :class:`~gemcaption.errors.QueryError` (HTTP 400) or a werkzeug 413 naming the limit.
"""

from __future__ import annotations

import io
import json
import math
import re
from typing import Any

from flask import Request
from werkzeug.exceptions import RequestEntityTooLarge

from ..errors import QueryError

MAX_JSON_BYTES = 64 * 1024
MAX_JSON_DEPTH = 32
MAX_INT_DIGITS = 18
MAX_FORM_FIELD_BYTES = 64 * 1024
"""Largest text field of a multipart form (the image file is bounded by the request size only)."""
MAX_FORM_PARTS = 16
MAX_OFFSET = 100_000
MAX_LABEL_CHARS = 200

_ASCII_ID = re.compile(r"[0-9]{1,18}")
_FORM_K = re.compile(r"[0-9]{1,4}")
_FORM_OFFSET = re.compile(r"[0-9]{1,6}")
_USAGE = 'send an image upload (multipart field "image") or JSON {"text": ..., "k": ...} or {"id": ..., "k": ...}'


class MemoryRequest(Request):
    """A Flask request whose uploaded files stay in memory (bounded by ``MAX_CONTENT_LENGTH``)."""

    def _get_file_stream(self, total_content_length, content_type, filename=None, content_length=None):
        return io.BytesIO()


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when arrays and objects in a JSON text nest deeper than ``limit`` (one linear pass;
    brackets inside strings do not count)."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth, in_string, escaped = 0, False, False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def _refuse_constant(name: str) -> Any:
    raise QueryError(f"the JSON body contains {name}, which is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise QueryError(f"the JSON number {text[:20]} is too large")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise QueryError(f"the JSON body has an integer longer than {MAX_INT_DIGITS} digits")
    return int(text)


def parse_json(data: bytes) -> Any:
    """Parse a JSON body within the limits of this module (QueryError otherwise)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise QueryError("the JSON body is not UTF-8 text") from None
    if too_deep(text):
        raise QueryError(f"the JSON body is nested more than {MAX_JSON_DEPTH} levels deep")
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float, parse_int=_bounded_int)
    except QueryError:
        raise
    except (ValueError, RecursionError) as exc:
        raise QueryError(f"the body is not valid JSON ({str(exc)[:80]}); {_USAGE}") from None


def json_object(req: Request, limit: int = MAX_JSON_BYTES) -> dict:
    """The request's JSON body as an object, read with at most ``limit`` bytes (413 above)."""
    too_large = f"JSON body too large: the limit is {limit // 1024} KB"
    if req.content_length is not None and req.content_length > limit:
        raise RequestEntityTooLarge(description=too_large)
    data = req.stream.read(limit + 1)
    if len(data) > limit:
        raise RequestEntityTooLarge(description=too_large)
    if not data.strip():
        raise QueryError(_USAGE)
    body = parse_json(data)
    if not isinstance(body, dict):
        raise QueryError(f"the JSON body must be an object; {_USAGE}")
    return body


def _check_k(k: int, shown: Any, max_k: int) -> int:
    if not 1 <= k <= max_k:
        raise QueryError(f"k must be between 1 and {max_k}, got {_show(shown)}")
    return k


def json_k(value: Any, default: int, max_k: int) -> int:
    """``k`` from a JSON body: absent means ``default``; else a JSON integer from 1 to ``max_k``."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise QueryError(f"k must be a whole number (a JSON integer), got {_show(value)}")
    return _check_k(value, value, max_k)


def parse_form_k(value: str | None, default: int, max_k: int) -> int:
    """``k`` from a form field: empty means ``default``; else ASCII digits from 1 to ``max_k``."""
    if value is None or value == "":
        return default
    if not _FORM_K.fullmatch(value.strip()):
        raise QueryError(f"k must be a whole number, got {_show(value)}")
    return _check_k(int(value.strip()), value, max_k)


def json_offset(value: Any) -> int:
    """``offset`` from a JSON body (results skipped, for paging): absent means 0; else a JSON integer."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise QueryError(f"offset must be a whole number (a JSON integer), got {_show(value)}")
    return _check_offset(value, value)


def parse_form_offset(value: str | None) -> int:
    """``offset`` from a form field: empty means 0; else ASCII digits."""
    if value is None or value.strip() == "":
        return 0
    if not _FORM_OFFSET.fullmatch(value.strip()):
        raise QueryError(f"offset must be a whole number, got {_show(value)}")
    return _check_offset(int(value.strip()), value)


def _check_offset(offset: int, shown: Any) -> int:
    if not 0 <= offset <= MAX_OFFSET:
        raise QueryError(f"offset must be between 0 and {MAX_OFFSET}, got {_show(shown)}")
    return offset


def parse_label(value: Any) -> str | None:
    """The label filter (JSON or form): absent or empty means None (no filter); else a short string."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise QueryError(f"label must be a string, got {_show(value)}")
    if len(value) > MAX_LABEL_CHARS:
        raise QueryError(f"label must be at most {MAX_LABEL_CHARS} characters long")
    return value


def parse_id(value: Any) -> int:
    """An indexed image's id from JSON: a non-negative integer, or a string of ASCII digits."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and _ASCII_ID.fullmatch(value):
        return int(value)
    raise QueryError(f"id must be a non-negative integer, got {_show(value)}")


def path_id(text: str) -> int | None:
    """The id in ``/images/<id>`` if it is 1 to 18 ASCII digits, else None."""
    return int(text) if _ASCII_ID.fullmatch(text) else None
