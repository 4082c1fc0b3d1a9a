"""Flask application factory for the local search page (see :mod:`gemcaption.web`).

Every error answers JSON ``{"error": "..."}``: a bad query or image 400, a missing item 404, an
upload over the limit 413, an index that cannot answer 503, anything unexpected 500 (logged).
"""

from __future__ import annotations

import mimetypes
import threading
from pathlib import Path
from typing import Any

from flask import Flask, abort, jsonify, render_template, request, send_file
from werkzeug.exceptions import HTTPException

from ..data.images import has_image_extension, load_image
from ..errors import ConfigError, GemcaptionError, ImageError, ModelError, QueryError

DEFAULT_K = 12
MAX_K = 100
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_TEXT_CHARS = 1000


def create_app(
    retriever: Any,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    default_k: int = DEFAULT_K,
    title: str = "gemcaption search",
) -> Flask:
    """A Flask app searching ``retriever`` (anything with ``search_image``, ``search_text``,
    ``get(id)`` and ``len``, e.g. :class:`gemcaption.retrieval.retriever.Retriever`).

    ``max_upload_bytes`` caps the size of a request (larger ones get HTTP 413). Searches run one at
    a time (a lock), so the app can be served by a threaded server.
    """
    if max_upload_bytes < 1:
        raise ConfigError("max_upload_bytes must be positive")
    package = Path(__file__).parent
    app = Flask(__name__, template_folder=str(package / "templates"), static_folder=str(package / "static"))
    app.config["MAX_CONTENT_LENGTH"] = int(max_upload_bytes)
    app.config["JSON_SORT_KEYS"] = False
    lock = threading.Lock()

    @app.get("/")
    def page():
        return render_template(
            "index.html",
            title=title,
            indexed=len(retriever),
            default_k=default_k,
            max_upload_mb=max_upload_bytes / 1024 / 1024,
        )

    @app.get("/api/info")
    def info():
        return jsonify({"indexed": len(retriever), "max_upload_bytes": max_upload_bytes, "max_k": MAX_K})

    @app.post("/api/search")
    def search():
        if request.files or request.form:
            k = _parse_k(request.form.get("k"), default_k)
            upload = request.files.get("image")
            if upload is None:
                raise QueryError("send the image in a form field named 'image' (or JSON {\"text\": ...})")
            image = _decode_upload(upload)
            with lock:
                hits = retriever.search_image(image, k)
                caption = _query_caption(retriever, hits, image)
            query = {"kind": "image", "name": upload.filename or "upload", "caption": caption}
        else:
            body = request.get_json(silent=True)
            if not isinstance(body, dict):
                raise QueryError('send an image upload (multipart field "image") or JSON {"text": ..., "k": ...}')
            k = _parse_k(body.get("k"), default_k)
            if body.get("id") is not None:
                item_id = _parse_id(body["id"])
                query, hits = _search_by_id(retriever, item_id, k, lock)
            else:
                text = body.get("text")
                if not isinstance(text, str) or not text.strip():
                    raise QueryError("the text query is empty")
                if len(text) > MAX_TEXT_CHARS:
                    raise QueryError(f"the text query is longer than {MAX_TEXT_CHARS} characters")
                with lock:
                    hits = retriever.search_text(text.strip(), k)
                query = {"kind": "text", "text": text.strip()}
        return jsonify({"query": query, "k": k, "results": [_hit_json(rank, h) for rank, h in enumerate(hits, 1)]})

    @app.get("/images/<int:item_id>")
    def image(item_id: int):
        try:
            record = retriever.get(item_id)
        except KeyError:
            abort(404)
        path = Path(record.image) if record.image else None
        if path is None or not has_image_extension(path) or not path.is_file():
            abort(404)
        mimetype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return send_file(path, mimetype=mimetype, max_age=3600)

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
        limit = max_upload_bytes / 1024 / 1024
        return jsonify({"error": f"upload too large: the limit is {limit:.1f} MB"}), 413

    @app.errorhandler(HTTPException)
    def http_error(exc):
        return jsonify({"error": exc.description}), exc.code

    @app.errorhandler(Exception)
    def unexpected_error(exc):
        app.logger.exception("unexpected error answering %s %s", request.method, request.path)
        return jsonify({"error": f"internal error ({type(exc).__name__}); the server log has the details"}), 500

    return app


def _parse_k(value, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        k = int(value)
    except (TypeError, ValueError):
        raise QueryError(f"k must be a whole number, got {value!r}") from None
    if not 1 <= k <= MAX_K or isinstance(value, bool):
        raise QueryError(f"k must be between 1 and {MAX_K}, got {value!r}")
    return k


def _parse_id(value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise QueryError(f"id must be an integer, got {value!r}")
    try:
        return int(value)
    except ValueError:
        raise QueryError(f"id must be an integer, got {value!r}") from None


def _decode_upload(upload):
    """The uploaded file as an RGB PIL image (decoded by Pillow, kept in memory); 400 otherwise."""
    data = upload.read()
    name = upload.filename or "the upload"
    if not data:
        raise QueryError(f"{name}: the uploaded file is empty")
    try:
        return load_image(data)
    except ImageError:
        raise ImageError(f"{name}: not an image this server can read (use JPEG, PNG, GIF, BMP, WebP or TIFF)") from None


def _query_caption(retriever, hits, image) -> str | None:
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


def _search_by_id(retriever, item_id: int, k: int, lock):
    """Search by an indexed image: by its file when it still exists, else by its stored caption."""
    try:
        record = retriever.get(item_id)
    except KeyError:
        abort(404, description=f"no indexed image has id {item_id}")
    query = {"kind": "id", "id": item_id, "caption": record.caption}
    with lock:
        if record.image and Path(record.image).is_file():
            hits = retriever.search_image(record.image, k)
        else:
            hits = retriever.search_text(record.caption, k)
    return query, hits


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
