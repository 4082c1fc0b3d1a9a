"""The checks every dataset manifest passes before its rows are used (issue 12): the text is UTF-8
without NUL bytes, no field is over :data:`MAX_FIELD` characters, every CSV row parses, and image
paths stay inside the data set's folder (after symlinks) unless the caller allows paths outside.
A failure is one :class:`~gemcaption.errors.DatasetError` ``"FILE, row N: what is wrong"``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ..errors import DatasetError

MAX_FIELD = 131_072  # characters in one manifest field (the csv module's default limit)
OUTSIDE_HINT = "pass allow_outside=True (--allow-outside on the command line) to allow it"


def read_manifest_text(path: Path) -> str:
    """The text of a manifest: UTF-8 (a BOM is dropped) without NUL bytes, else a DatasetError naming the row."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DatasetError(f"{path}: cannot read: {error.strerror or error}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        row = data[: error.start].count(b"\n") + 1
        raise DatasetError(
            f"{path}, row {row}: not UTF-8 text (byte 0x{data[error.start]:02x}); save the file as UTF-8"
        ) from None
    nul = text.find("\x00")
    if nul >= 0:
        raise DatasetError(f"{path}, row {text.count(chr(10), 0, nul) + 1}: NUL byte in the text")
    return text


def parse_csv(path: Path, text: str) -> list[tuple[int, list[str]]]:
    """(row number, cells) of every CSV row; a row the reader cannot parse or an over-long field refuses the file."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[tuple[int, list[str]]] = []
    start = 1
    try:
        for cells in reader:
            for cell in cells:
                if len(cell) > MAX_FIELD:
                    raise DatasetError(
                        f"{path}, row {start}: a field of {len(cell):,} characters (limit {MAX_FIELD:,})"
                    )
            rows.append((start, cells))
            start = reader.line_num + 1
    except csv.Error as error:
        if "field larger than field limit" in str(error):
            raise DatasetError(f"{path}, row {start}: a field over {MAX_FIELD:,} characters") from None
        raise DatasetError(f"{path}, row {start}: malformed CSV row ({error})") from None
    return rows


class Boundary:
    """The folder image paths must stay in (after symlinks), unless outside paths are allowed."""

    def __init__(self, folder: Path, allow_outside: bool) -> None:
        self.folder, self.allow_outside = folder, allow_outside
        self._real = folder.resolve()
        self._folders: dict[Path, bool] = {}  # folder -> inside, so a plain file name costs one lstat

    def contains(self, path: Path) -> bool:
        if self.allow_outside:
            return True
        if path.name not in ("", ".", "..") and not path.is_symlink():
            if path.parent not in self._folders:
                self._folders[path.parent] = path.parent.resolve().is_relative_to(self._real)
            if self._folders[path.parent]:
                return True
        return path.resolve().is_relative_to(self._real)

    def check(self, path: Path, where: str, shown: str) -> None:
        if not self.contains(path):
            raise DatasetError(
                f"{where}: image {shown!r} is outside the data set's folder {self.folder}; {OUTSIDE_HINT}"
            )
