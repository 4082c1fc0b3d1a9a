"""Web: the local search page of ``gemcaption serve``, a small Flask app over a
:class:`~gemcaption.retrieval.retriever.Retriever`.

>>> app = create_app(Retriever.load("my-index"))
>>> app.run(host="127.0.0.1", port=8000)

Routes:

* ``GET /``: the page (drop or pick an image, or type text; click a result to search by it);
* ``POST /api/search``: a multipart upload (field ``image``, optional ``k``) or JSON ``{"text": ..., "k": ...}``
  or ``{"id": ..., "k": ...}`` (search by an indexed image); answers JSON ``{"query", "k", "results"}``,
  each result ``{"rank", "id", "score", "caption", "captions", "label", "image_url"}``;
* ``GET /images/<id>``: an indexed image, looked up by integer id in the index metadata (never by path);
* ``GET /api/info``: the number of indexed images.

Every error answers JSON ``{"error": ...}``. Uploads larger than ``max_upload_bytes`` get a 413,
unreadable images a 400; uploads are decoded with Pillow only (nothing a user sends is ever
unpickled) and are not written to disk.
"""

from .app import DEFAULT_K, MAX_K, MAX_UPLOAD_BYTES, create_app

__all__ = ["create_app", "DEFAULT_K", "MAX_K", "MAX_UPLOAD_BYTES"]
