"""Short factual descriptions of the 87 classes of the Kaggle "Gemstones Images" set.

The table ``gemcaption/data/gemstones.csv`` (columns ``label,description``) was written for this
project: colour, mineral family and notable optical traits of each gem. It turns a class-folder
gemstone set into a captioned one (:func:`gemcaption.data.loaders.load_folder`).

Labels match tolerantly: case, underscores, hyphens, apostrophes and extra spaces are ignored
("tigers_eye", "Tiger's Eye" and " TIGERS  EYE " are all "Tigers Eye"). An unknown class is not
an error: it gets the generic caption ``"a <label> gemstone"`` (label lower-cased, underscores to
spaces), so any class folder set can be loaded.
"""

from __future__ import annotations

import csv
import re
from functools import lru_cache
from importlib import resources

_TABLE = "gemstones.csv"
__all__ = ["GEMSTONE_CLASSES", "describe_gemstone", "gemstone_classes", "normalize_label"]


def normalize_label(label: str) -> str:
    """The matching key of a label: lower case, words separated by single spaces."""
    text = str(label).replace("_", " ").replace("-", " ").replace("'", "").replace("’", "")
    return " ".join(text.lower().split())


@lru_cache(maxsize=1)
def _table() -> dict[str, tuple[str, str]]:
    """normalised label -> (canonical label, description)."""
    source = resources.files("gemcaption").joinpath("data", _TABLE)
    with source.open("r", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return {normalize_label(r["label"]): (r["label"].strip(), r["description"].strip()) for r in rows}


def gemstone_classes() -> list[str]:
    """The canonical class names, sorted."""
    return sorted(label for label, _ in _table().values())


def describe_gemstone(label: str) -> str:
    """A one-sentence description of gemstone class ``label``; ``"a <label> gemstone"`` if unknown."""
    found = _table().get(normalize_label(label))
    if found:
        return found[1]
    name = re.sub(r"\s+", " ", str(label).replace("_", " ")).strip().lower()
    return f"a {name} gemstone" if name else "a gemstone"


GEMSTONE_CLASSES: tuple[str, ...] = tuple(gemstone_classes())
"""The 87 class names of the Kaggle "Gemstones Images" set, sorted."""
