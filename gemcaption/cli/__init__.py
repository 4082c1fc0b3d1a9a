"""CLI: the ``gemcaption`` command. Each sub-command group lives in its own module with a
``register(subparsers)`` function that adds its parsers and sets ``func`` on them; choices of names
(encoders, decoders, samplers, classifier kinds...) come from the registries. Every
:class:`~gemcaption.errors.GemcaptionError` ends the command with one line on stderr and status 2.

Global options (``-q``/``--quiet``) are accepted before or after the command; ``--version``
prints the release. Quiet mode also silences TensorFlow's C++ and absl logging, and Python
warnings are printed once each, on one line, without source lines. The command sets glibc's heap up
for long training runs (:func:`gemcaption.heap.tune_heap`) before TensorFlow starts its threads.

Every parser is a :class:`~gemcaption.cli.arguments.CommandParser`: a bad argument is one line
on stderr and status 2 (argparse's usage block is left out), and each option's help shows its
default. Results go to stdout, everything else (progress, chatter, warnings, errors) to stderr."""

import argparse
import importlib
import logging
import os
import sys
import warnings
from collections.abc import Sequence

from .. import __version__
from ..errors import GemcaptionError
from ..heap import tune_heap
from .arguments import CommandParser
from .inputs import missing_file

# Sub-command modules, in the order ``gemcaption --help`` lists them.
COMMAND_MODULES = ["captioning", "retrieval", "classify", "serve", "export"]


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="gemcaption",
        description="Caption gemstone, jewellery and everyday photos, and search them by image or text.",
    )
    parser.add_argument("--version", action="version", version=f"gemcaption {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars, chatter or library logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:  # a command group not built yet
            if exc.name == f"{__name__}.{name}":
                continue
            raise
        module.register(subparsers)
    _accept_global_options(subparsers)
    return parser


def _accept_global_options(subparsers: argparse._SubParsersAction) -> None:
    """Let ``-q`` follow the command too (``gemcaption train ... -q``). SUPPRESS keeps a sub-command
    that was not given ``-q`` from resetting the value set before the command."""
    for sub in set(subparsers.choices.values()):
        nested = [a for a in sub._actions if isinstance(a, argparse._SubParsersAction)]
        for action in nested:
            _accept_global_options(action)
        if not any("--quiet" in a.option_strings for a in sub._actions):
            sub.add_argument(
                "-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="same as gemcaption -q"
            )


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"gemcaption: warning: {category.__name__}: {message}\n"


def configure_output(quiet: bool) -> None:
    """Warnings once each, on one line; with ``quiet``, TensorFlow's C++ and absl logging off too.
    Deprecation warnings are for developers: only gemcaption's own are shown (a library's, such as
    NumPy 2 about a dependency's ``__array__``, tells a user nothing they can act on).
    Must run before TensorFlow is imported for the C++ level to take effect."""
    warnings.simplefilter("once")
    for category in (DeprecationWarning, PendingDeprecationWarning):
        warnings.filterwarnings("ignore", category=category)
        warnings.filterwarnings("once", category=category, module=r"gemcaption(\.|$)")
    warnings.formatwarning = _one_line_warning
    if quiet:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        for name in ("absl", "tensorflow", "keras", "h5py", "PIL"):
            logging.getLogger(name).setLevel(logging.ERROR)


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line (its lines joined by "; "), or its class name when empty."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return "; ".join(lines) or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status.

    Every :class:`~gemcaption.errors.GemcaptionError` (a bad option value, an unknown name, a
    missing file, a damaged model...) prints one line ``gemcaption: error: ...`` and gives 2; so
    does a bad argument (``gemcaption train: error: argument --epochs: ...``). ``--help`` and
    ``--version`` give 0.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    tune_heap()
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help, --version or a bad argument (already reported)
            return exc.code if isinstance(exc.code, int) else 2
        configure_output(bool(getattr(args, "quiet", False)))
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return 2
        result = args.func(args)
    except GemcaptionError as exc:
        print(f"gemcaption: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"gemcaption: error: {missing_file(exc.filename or exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gemcaption: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
