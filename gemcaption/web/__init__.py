"""Web: the local search page of ``gemcaption serve``, a small Flask app over a
:class:`~gemcaption.retrieval.retriever.Retriever`.

>>> app = create_app(Retriever.load("my-index"))
>>> app.run(host="127.0.0.1", port=8000)

Routes:

* ``GET /``: the page (drop or pick an image, or type text; a grid of cards; a full-size view; "show
  more"; a label filter; the search kept in the URL: ``?q=``, ``?id=``, ``&label=``, ``&per_page=``);
* ``POST /api/search``: a multipart upload (field ``image``, optional ``k``, ``offset``, ``label``) or
  JSON ``{"text": ..., "k", "offset", "label"}`` or ``{"id": ..., ...}`` (search by an indexed image);
  answers JSON ``{"query", "k", "offset", ["label",] "results", "has_more"}``, each result ``{"rank",
  "id", "score", "caption", "captions", "label", "image_url"}``; a text with no known word answers no
  results plus ``"warning"`` and ``"known_words": 0`` (:mod:`gemcaption.web.paging`);
* ``GET /images/<id>``: an indexed image, looked up by integer id in the index metadata (never by path);
* ``GET /api/info``: the number of indexed images, their labels (and the limits, and the index
  generation when live);
* ``POST /api/reload`` (when served over a :class:`~gemcaption.web.reload.LiveRetriever`): load the
  index again if it changed on disk; answers ``{"generation", "size", "reloaded"}`` (409 with an
  ``"error"`` when the new version is damaged: the previous one keeps answering).

Every error answers JSON ``{"error": ...}``, never an HTML page, and a malformed request is a 4xx,
never a 500 (:mod:`gemcaption.web.parsing`: JSON at most 64 KB and 32 levels deep, no NaN or
1e400, ``k`` a JSON integer, ids ASCII digits). A request larger than ``max_upload_bytes``, a form
text field over 64 KB and an image over ``max_pixels`` (40 megapixels, read from the header before
decoding) get a 413 naming that limit; unreadable images a 400. At most ``max_decodes`` uploads are
decoded at once (others wait, then 503); each is shrunk to 1024 px per side right after decoding.
Uploads are decoded with Pillow only (nothing a user sends is ever unpickled), stay in memory and
never reach the disk, not even the feature cache.
"""

from .app import DEFAULT_K, MAX_DECODES, MAX_K, MAX_PIXELS, MAX_UPLOAD_BYTES, create_app

__all__ = ["create_app", "DEFAULT_K", "MAX_K", "MAX_UPLOAD_BYTES", "MAX_PIXELS", "MAX_DECODES"]
