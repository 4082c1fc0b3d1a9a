"""``gemcaption serve``: the local search web page over an index."""

from __future__ import annotations

import argparse
import ipaddress
import sys

from ..errors import ConfigError, GemcaptionError, ModelError

LOOPBACK_NAMES = {"localhost", "ip6-localhost"}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("serve", help="a local web page to search an index by image or text")
    p.add_argument("--index", required=True, metavar="IDX", help="index directory written by 'gemcaption index build'")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: only this computer can connect)"
    )
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--model", default=None, help="captioner directory (default: the one the index was built with)")
    p.add_argument("--max-upload-mb", type=float, default=10.0, help="largest accepted upload in MB (default 10)")
    p.add_argument("-k", type=int, default=12, help="results shown per search (default 12)")
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


def serve(args: argparse.Namespace) -> int:
    from werkzeug.serving import make_server

    from ..retrieval.retriever import Retriever
    from ..web import MAX_K, create_app

    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be between 0 and 65535, got {args.port}")
    if args.max_upload_mb <= 0:
        raise ConfigError("--max-upload-mb must be positive")
    if not 1 <= args.k <= MAX_K:
        raise ConfigError(f"-k must be between 1 and {MAX_K}")
    retriever = Retriever.load(args.index, model_dir=args.model, progress=False)
    _preload_captioner(args, retriever)
    app = create_app(retriever, max_upload_bytes=int(args.max_upload_mb * 1024 * 1024), default_k=args.k)
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
