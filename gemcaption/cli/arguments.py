"""How every ``gemcaption`` parser behaves, and the argument types shared by the commands.

* :class:`CommandParser`: an :class:`argparse.ArgumentParser` whose errors are one line on stderr
  (``gemcaption train: error: argument --epochs: ...``) with status 2, and whose help shows each
  option's default (``(default: X)``) unless its help text already states it. Sub-command parsers
  inherit the class, so every (sub)command gets both.
* :func:`whole` and :func:`real`: argparse ``type=`` validators (a bad value is refused while the
  command line is parsed, before any data or model is read);
* :func:`add_limit_option`: ``--limit N``, the seeded subset of a dataset (see
  :func:`gemcaption.data.splits.limit_dataset`);
* :func:`progress_on_stderr` and :func:`say`: progress and chatter go to stderr, so stdout carries
  only results (``M=$(gemcaption train ...)`` captures the model directory alone).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
from collections.abc import Callable, Iterator
from typing import NoReturn

_NOT_SHOWN = (None, False, argparse.SUPPRESS)


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to an option's help unless the text already mentions its default
    or there is nothing to show (no default, a flag that is off, a positional argument)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text.lower() or not action.option_strings:
            return text
        if any(action.default is value for value in _NOT_SHOWN) or action.default == []:
            return text
        return f"{text} (default: %(default)s)".strip()


class CommandParser(argparse.ArgumentParser):
    """One-line errors and defaults in the help, for ``gemcaption`` and all its sub-commands."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", DefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def add_argument(self, *args, **kwargs):
        # An option without help text would show no default at all: give it one to show.
        if args and str(args[0]).startswith("-") and kwargs.get("help") is None:
            default = kwargs.get("default")
            if not any(default is value for value in _NOT_SHOWN) and kwargs.get("action") not in ("version", "help"):
                kwargs["help"] = "(default: %(default)s)"
        return super().add_argument(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        """``PROG: error: MESSAGE (see PROG --help)`` on one line, status 2 (argparse prints usage too)."""
        line = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {line} (see '{self.prog} --help')\n")


def _checked(
    kind: str, parse: Callable[[str], float], low: float | None, high: float | None, low_open: bool, high_open=False
):
    def check(text: str):
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and (value >= high if high_open else value > high)
        if too_low or too_high:
            raise argparse.ArgumentTypeError(f"must be {_bounds(low, high, low_open, high_open)}, got {text}")
        return value

    check.__name__ = kind  # argparse names the type in some messages
    return check


def _bounds(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    lower = None if low is None else (f"above {low:g}" if low_open else f"at least {low:g}")
    upper = None if high is None else (f"below {high:g}" if high_open else f"at most {high:g}")
    return " and ".join(bound for bound in (lower, upper) if bound)


def whole(minimum: int | None = 1, maximum: int | None = None):
    """An argparse type: a whole number within ``[minimum, maximum]``."""
    return _checked("a whole number", int, minimum, maximum, False)


def real(minimum: float | None = None, maximum: float | None = None, *, above: bool = False, below: bool = False):
    """An argparse type: a finite number within ``[minimum, maximum]`` (``above`` / ``below``: the
    bound itself excluded)."""
    return _checked("a number", float, minimum, maximum, above, below)


def add_limit_option(parser: argparse.ArgumentParser, what: str = "the dataset", seeded: str = "by --seed") -> None:
    """``--limit N``: use N images picked at random (seeded) instead of all of them."""
    parser.add_argument(
        "--limit",
        type=whole(1),
        default=None,
        metavar="N",
        help=f"use only N images of {what}, picked at random (seeded {seeded}) (default: all)",
    )


def say(args: argparse.Namespace, message: str) -> None:
    """Chatter on stderr unless ``-q``."""
    if not getattr(args, "quiet", False):
        print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def progress_on_stderr() -> Iterator[None]:
    """Send whatever a library prints to stdout (Keras' progress bar, epoch lines) to stderr while
    the block runs, so that stdout carries only the command's results."""
    with contextlib.redirect_stdout(sys.stderr):
        yield
