"""Image arguments of the commands that take several images (``caption``, ``classify predict``):
files and folders expanded into one list, and each bad input worded the same way by every command.

A folder stands for its image files (recursively, sorted, hidden ones left out; see
:func:`gemcaption.data.images.find_image_files`). A missing file is ``PATH: no such file or
directory`` (as every other command words it), an unreadable one ``PATH: not a readable image
(why)``. The commands print each problem as ``gemcaption: error: ...``, process the other images
and exit with status 1.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path


def missing_file(path: object) -> str:
    """The one wording of a missing file, shared by every command."""
    return f"{path}: no such file or directory"


def expand_images(arguments: Iterable[str]) -> tuple[list[str], list[str]]:
    """``(image paths, problems)``: each folder replaced by its image files, a folder without any
    and a path that does not exist reported as a problem; other files are passed on as given."""
    from ..data.images import find_image_files

    images: list[str] = []
    problems: list[str] = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            found = find_image_files(path)
            if not found:
                problems.append(f"{argument}: no image files in this folder")
            images += found
        elif not path.exists():
            problems.append(missing_file(argument))
        else:
            images.append(str(argument))
    return images, problems


def unreadable(path: str, error: BaseException | None = None) -> str:
    """The one wording of an image that could not be read (``error``: why, when known)."""
    reason = str(error).removeprefix(f"{path}: ").strip() if error is not None else ""
    return f"{path}: not a readable image" + (f" ({reason})" if reason else "")


def image_problem(path: str) -> str:
    """Why ``path`` could not be used as an image (it is read again to find out), in the shared wording."""
    from ..data.images import load_image
    from ..errors import ImageError

    if not Path(path).exists():
        return missing_file(path)
    try:
        load_image(path)
    except ImageError as exc:
        return unreadable(path, exc)
    return unreadable(path)


def report_problems(problems: Iterable[str], total: int) -> int:
    """Print each problem as ``gemcaption: error: ...``, then ``N of M inputs failed``; returns
    the number of problems."""
    problems = list(problems)
    for problem in problems:
        print(f"gemcaption: error: {problem}", file=sys.stderr)
    if problems:
        print(f"gemcaption: {len(problems)} of {total} inputs failed", file=sys.stderr)
    return len(problems)
