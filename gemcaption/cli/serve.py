"""``gemcaption serve``: the local search web page over an index, reloaded live when the index
directory is saved again by another process (``gemcaption index add``), or on ``POST /api/reload``."""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import ipaddress
import sys

from ..errors import ConfigError, GemcaptionError, ModelError
from .arguments import real, whole

LOOPBACK_NAMES = {"localhost", "ip6-localhost"}
MMAP_THRESHOLD = 4 * 1024 * 1024
"""Allocations this large get their own pages from the system and go back to it when freed."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("serve", help="a local web page to search an index by image or text")
    p.add_argument("--index", required=True, metavar="IDX", help="index directory written by 'gemcaption index build'")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: only this computer can connect)"
    )
    p.add_argument("--port", type=whole(0, 65535), default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument(
        "--model", default=None, metavar="DIR", help="captioner directory (default: the one the index was built with)"
    )
    p.add_argument(
        "--max-upload-mb", type=real(0.0, above=True), default=10.0, help="largest accepted upload in MB (default 10)"
    )
    p.add_argument("-k", type=whole(1), default=12, help="results shown per search (default 12)")
    p.add_argument(
        "--max-pixels",
        type=whole(1),
        default=40_000_000,
        help="largest uploaded image in pixels, read from its header before decoding (default 40000000)",
    )
    p.add_argument("--max-decodes", type=whole(1), default=2, help="uploads decoded at the same time (default 2)")
    p.add_argument(
        "--no-reload", action="store_true", help="do not watch the index directory for new versions (default: watch)"
    )
    p.set_defaults(func=serve)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _preload_captioner(args, retriever) -> None:
    """Load the captioner now, so the first image query is not slow; text search works without it."""
    if not getattr(args, "quiet", False):
        print("Loading the captioner for image queries...", file=sys.stderr, flush=True)
    try:
        _ = retriever.captioner  # the property loads it
    except ModelError as exc:
        print(f"gemcaption: warning: image search is unavailable ({exc}); text search works", file=sys.stderr)


def limit_heap_growth() -> bool:
    """Fix glibc's mmap threshold at :data:`MMAP_THRESHOLD` (it otherwise grows up to 32 MB), so the
    large buffers of image decoding are returned to the system instead of staying in the heaps of
    the server's many threads. True when applied (glibc only)."""
    try:
        name = ctypes.util.find_library("c")
        if not name:
            return False
        return bool(ctypes.CDLL(name).mallopt(-3, MMAP_THRESHOLD))  # -3: M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return False


def _captioner_if_loaded(retriever):
    """The captioner a previous version already loaded (None if it has none)."""
    try:
        return retriever.captioner
    except ModelError:
        return None


def _loader(args):
    """Loads a new version of the index, reusing the loaded captioner when it is the same model."""
    from ..retrieval.retriever import Retriever

    def load(directory, previous):
        captioner = _captioner_if_loaded(previous) if previous is not None else None
        fresh = Retriever.load(directory, captioner=captioner, model_dir=args.model, progress=False)
        if captioner is not None and fresh.model_dir != previous.model_dir:  # another model: load that one
            fresh = Retriever.load(directory, model_dir=args.model, progress=False)
        return fresh

    return load


def serve(args: argparse.Namespace) -> int:
    from werkzeug.serving import make_server

    from ..retrieval.retriever import Retriever
    from ..web import MAX_K, create_app
    from ..web.reload import LiveRetriever

    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be between 0 and 65535, got {args.port}")
    if args.max_upload_mb <= 0:
        raise ConfigError("--max-upload-mb must be positive")
    if not 1 <= args.k <= MAX_K:
        raise ConfigError(f"-k must be between 1 and {MAX_K}")
    if args.max_pixels < 1:
        raise ConfigError("--max-pixels must be positive")
    if args.max_decodes < 1:
        raise ConfigError("--max-decodes must be positive")
    limit_heap_growth()
    retriever = Retriever.load(args.index, model_dir=args.model, progress=False)
    _preload_captioner(args, retriever)
    served = retriever if args.no_reload else LiveRetriever(args.index, _loader(args), retriever=retriever)
    app = create_app(
        served,
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        default_k=args.k,
        max_pixels=args.max_pixels,
        max_decodes=args.max_decodes,
    )
    if not is_loopback(args.host):
        print(
            f"gemcaption: warning: listening on {args.host}: other computers can reach this page "
            "and every indexed image",
            file=sys.stderr,
        )
    try:
        server = make_server(args.host, args.port, app, threaded=True)
    except OSError as exc:
        raise GemcaptionError(f"cannot listen on {args.host}:{args.port} ({exc.strerror or exc})") from None
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(
        f"Serving {len(retriever)} indexed images on http://{host}:{server.server_port}/ (Ctrl+C to stop)", flush=True
    )
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0
