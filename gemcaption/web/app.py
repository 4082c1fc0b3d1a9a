"""Flask application factory for the local search page (see :mod:`gemcaption.web`).

Every error answers JSON ``{"error": "..."}``: a bad query or image 400, a missing item 404, a
request over one of the limits 413 (the message names that limit), a server busy decoding other
images or an index that cannot answer 503, anything unexpected 500 (logged). Request parsing is
defensive: JSON bodies are read by :mod:`gemcaption.web.parsing` with size, depth and number
limits, ids only match ASCII digits, and uploads are checked from their header (pixel cap) before a
bounded number of them are decoded at once, kept in memory only and shrunk right after decoding.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mimetypes
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from flask import Flask, abort, jsonify, render_template, request, send_file
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ..captioning.features import memory_features
from ..data.images import PixelLimitError, has_image_extension, load_image, read_image_size
from ..errors import ConfigError, GemcaptionError, ImageError, ModelError, QueryError
from .paging import NO_KNOWN_WORD, index_labels, no_known_word, result_page
from .parsing import (
    MAX_FORM_FIELD_BYTES,
    MAX_FORM_PARTS,
    MAX_JSON_BYTES,
    MemoryRequest,
    json_k,
    json_object,
    json_offset,
    parse_form_k,
    parse_form_offset,
    parse_id,
    parse_label,
    path_id,
)
from .reload import LiveRetriever

DEFAULT_K = 12
MAX_K = 100
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_TEXT_CHARS = 1000
MAX_PIXELS = 40_000_000
"""Largest upload in pixels (width x height), read from the image header before decoding."""
MAX_DECODES = 2
"""Uploads decoded at the same time; the others wait up to DECODE_WAIT seconds, then get a 503."""
DECODE_WAIT = 5.0
UPLOAD_MAX_SIDE = 1024
"""Uploads are shrunk to at most this many pixels per side right after decoding."""


def create_app(
    retriever: Any,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    default_k: int = DEFAULT_K,
    title: str = "gemcaption search",
    *,
    max_pixels: int = MAX_PIXELS,
    max_decodes: int = MAX_DECODES,
    decode_wait: float = DECODE_WAIT,
) -> Flask:
    """A Flask app searching ``retriever`` (anything with ``search_image``, ``search_text``,
    ``get(id)`` and ``len``, e.g. :class:`gemcaption.retrieval.retriever.Retriever`), or a
    :class:`~gemcaption.web.reload.LiveRetriever` (then the index is reloaded when it changes on
    disk, and ``POST /api/reload`` reloads on request).

    ``max_upload_bytes`` caps the size of a request, ``max_pixels`` the pixels of an uploaded image
    (both HTTP 413); ``max_decodes`` uploads are decoded at once, the others wait up to
    ``decode_wait`` seconds (then 503). Searches run one at a time (a lock), so the app can be
    served by a threaded server.
    """
    if max_upload_bytes < 1:
        raise ConfigError("max_upload_bytes must be positive")
    if max_pixels < 1:
        raise ConfigError("max_pixels must be positive")
    if max_decodes < 1:
        raise ConfigError("max_decodes must be positive")
    package = Path(__file__).parent
    app = Flask(__name__, template_folder=str(package / "templates"), static_folder=str(package / "static"))
    app.request_class = MemoryRequest
    app.config["MAX_CONTENT_LENGTH"] = int(max_upload_bytes)
    app.config["MAX_FORM_MEMORY_SIZE"] = MAX_FORM_FIELD_BYTES
    app.config["MAX_FORM_PARTS"] = MAX_FORM_PARTS
    app.config["JSON_SORT_KEYS"] = False
    json_limit = min(MAX_JSON_BYTES, int(max_upload_bytes))
    lock = threading.Lock()
    decodes = threading.BoundedSemaphore(max_decodes)
    # Decoding runs on max_decodes long-lived threads: the server makes a thread per request, and
    # large decodes spread over many threads leave freed memory in many malloc arenas (GBs).
    decoder_pool = ThreadPoolExecutor(max_workers=max_decodes, thread_name_prefix="gemcaption-decode")
    live = retriever if isinstance(retriever, LiveRetriever) else None

    def current() -> Any:
        """The retriever for this request: the live one is checked for a new version first."""
        if live is None:
            return retriever
        live.maybe_reload()
        return live.current

    def decode_upload(upload) -> Any:
        """The uploaded file as a shrunk RGB PIL image, decoded in memory within a decode slot."""
        data = upload.read()
        name = upload.filename or "the upload"
        if not data:
            raise QueryError(f"{name}: the uploaded file is empty")
        try:
            width, height = read_image_size(data)
        except PixelLimitError:
            raise
        except ImageError:
            raise ImageError(
                f"{name}: not an image this server can read (use JPEG, PNG, GIF, BMP, WebP or TIFF)"
            ) from None
        if width * height > max_pixels:
            raise PixelLimitError(f"{name}: {width}x{height} pixels is more than the limit of {max_pixels} pixels")
        if not decodes.acquire(timeout=decode_wait):
            abort(503, description="the server is busy decoding other images; try again in a few seconds")
        try:
            return decoder_pool.submit(_decode_and_trim, data, max_pixels).result()
        except PixelLimitError:
            raise
        except ImageError:
            raise ImageError(
                f"{name}: not an image this server can read (use JPEG, PNG, GIF, BMP, WebP or TIFF)"
            ) from None
        finally:
            decodes.release()

    @app.get("/")
    def page():
        active = current()
        return render_template(
            "index.html",
            title=title,
            indexed=len(active),
            labels=index_labels(active),
            default_k=default_k,
            max_k=MAX_K,
            max_upload_mb=max_upload_bytes / 1024 / 1024,
        )

    @app.get("/api/info")
    def info():
        active = current()
        payload: dict[str, Any] = {
            "indexed": len(active),
            "labels": index_labels(active),
            "max_upload_bytes": max_upload_bytes,
            "max_pixels": max_pixels,
            "max_k": MAX_K,
        }
        if live is not None:
            payload["generation"] = live.generation
        return jsonify(payload)

    @app.post("/api/reload")
    def reload():
        if live is None:
            abort(404, description="live reload is off: this server was not started on an index directory")
        status = live.reload()
        return jsonify(status), (409 if "error" in status else 200)

    @app.post("/api/search")
    def search():
        active = current()
        size = len(active)
        extra: dict[str, Any] = {}
        if request.mimetype in ("multipart/form-data", "application/x-www-form-urlencoded"):
            upload = request.files.get("image")
            k = parse_form_k(request.form.get("k"), default_k, MAX_K)
            offset = parse_form_offset(request.form.get("offset"))
            label = parse_label(request.form.get("label"))
            if upload is None:
                raise QueryError("send the image in a form field named 'image' (or JSON {\"text\": ...})")
            image = decode_upload(upload)
            with memory_features(), lock:  # an upload's features never reach the disk cache
                hits, more = result_page(partial(active.search_image, image), k, offset, size, label)
                caption = _query_caption(active, image)
            query = {"kind": "image", "name": upload.filename or "upload", "caption": caption}
        else:
            body = json_object(request, json_limit)
            k = json_k(body.get("k"), default_k, MAX_K)
            offset = json_offset(body.get("offset"))
            label = parse_label(body.get("label"))
            if body.get("id") is not None:
                query, hits, more = _search_by_id(active, parse_id(body["id"]), k, offset, label, lock)
            else:
                text = body.get("text")
                if not isinstance(text, str) or not text.strip():
                    raise QueryError("the text query is empty: type a few words")
                if len(text) > MAX_TEXT_CHARS:
                    raise QueryError(f"the text query is longer than {MAX_TEXT_CHARS} characters")
                text = text.strip()
                query = {"kind": "text", "text": text}
                with lock:
                    if size and no_known_word(active, text):  # an empty index knows no word at all
                        hits, more = [], False
                        extra = {"warning": NO_KNOWN_WORD, "known_words": 0}
                    else:
                        hits, more = result_page(partial(active.search_text, text), k, offset, size, label)
        answer: dict[str, Any] = {"query": query, "k": k, "offset": offset}
        if label is not None:
            answer["label"] = label
        answer["results"] = [_hit_json(rank, hit) for rank, hit in enumerate(hits, offset + 1)]
        answer["has_more"] = more
        return jsonify({**answer, **extra})

    @app.get("/images/<item_id>")
    def image(item_id: str):
        number = path_id(item_id)
        if number is None:
            abort(404, description="no indexed image has this id")
        try:
            record = current().get(number)
        except KeyError:
            abort(404, description=f"no indexed image has id {number}")
        path = Path(record.image) if record.image else None
        if path is None or not has_image_extension(path) or not path.is_file():
            abort(404, description=f"indexed image {number} has no image file to show")
        mimetype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return send_file(path, mimetype=mimetype, max_age=3600)

    @app.errorhandler(PixelLimitError)
    def too_many_pixels(exc):
        return jsonify({"error": f"image too large: {exc}"}), 413

    @app.errorhandler(QueryError)
    @app.errorhandler(ImageError)
    def bad_request(exc):
        return jsonify({"error": str(exc)}), 400

    @app.errorhandler(ModelError)
    def unavailable(exc):
        return jsonify({"error": f"the index cannot answer this query: {exc}"}), 503

    @app.errorhandler(GemcaptionError)
    def other_error(exc):
        return jsonify({"error": str(exc)}), 400

    @app.errorhandler(413)
    def too_large(exc):
        return jsonify({"error": _too_large_message(exc, max_upload_bytes)}), 413

    @app.errorhandler(HTTPException)
    def http_error(exc):
        return jsonify({"error": exc.description or exc.name}), exc.code or 500

    @app.errorhandler(Exception)
    def unexpected_error(exc):
        app.logger.exception("unexpected error answering %s %s", request.method, request.path)
        return jsonify({"error": f"internal error ({type(exc).__name__}); the server log has the details"}), 500

    return app


def _malloc_trim():
    """glibc's ``malloc_trim`` (gives freed heap memory back to the system), or None elsewhere."""
    try:
        name = ctypes.util.find_library("c")
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()


def _decode_and_trim(data: bytes, max_pixels: int):
    """Decode an upload (shrunk to UPLOAD_MAX_SIDE), then return the decoder's scratch memory:
    without it a 40-megapixel PNG leaves ~180 MB per decoding thread in the process."""
    try:
        return load_image(data, max_pixels=max_pixels, max_side=UPLOAD_MAX_SIDE)
    finally:
        if _TRIM is not None:
            _TRIM(0)


def _too_large_message(exc, max_upload_bytes: int) -> str:
    """Name the limit that was hit: ours (set in the description), the form's, or the request size."""
    description = getattr(exc, "description", None)
    if description and description != RequestEntityTooLarge.description:
        return str(description)
    length = request.content_length
    if request.mimetype == "multipart/form-data" and length is not None and length <= max_upload_bytes:
        return (
            f"form too large: a text field may hold at most {MAX_FORM_FIELD_BYTES // 1024} KB and a form at most "
            f"{MAX_FORM_PARTS} parts (the upload limit is {max_upload_bytes / 1024 / 1024:.1f} MB)"
        )
    return f"upload too large: the limit is {max_upload_bytes / 1024 / 1024:.1f} MB per request"


def _query_caption(retriever, image) -> str | None:
    """The caption generated for an image query (shown above the results), or None."""
    try:
        captioner = getattr(retriever, "captioner", None)  # already loaded by the search
        if captioner is None:
            return None
        sampler = getattr(retriever, "sampler", None)  # how the index captions its images
        if sampler is not None:
            return captioner.caption([image], sampler=sampler)[0]
        return captioner.caption([image], beam_width=getattr(retriever, "beam_width", 1))[0]
    except GemcaptionError:
        return None


def _search_by_id(retriever, item_id: int, k: int, offset: int, label: str | None, lock):
    """Search by an indexed image: by its file when it still exists, else by its stored caption."""
    try:
        record = retriever.get(item_id)
    except KeyError:
        abort(404, description=f"no indexed image has id {item_id}")
    query = {"kind": "id", "id": item_id, "caption": record.caption}
    if record.image and Path(record.image).is_file():
        search = partial(retriever.search_image, record.image)
    else:
        search = partial(retriever.search_text, record.caption)
    with lock:
        hits, more = result_page(search, k, offset, len(retriever), label)
    return query, hits, more


def _hit_json(rank: int, hit) -> dict:
    return {
        "rank": rank,
        "id": int(hit.id),
        "score": round(float(hit.score), 6),
        "caption": hit.caption,
        "captions": list(hit.captions),
        "label": hit.label,
        "image_url": f"/images/{int(hit.id)}",
    }
