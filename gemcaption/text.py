"""Text standardisation and tokenisation shared by the vocabulary, the embedder and the metrics.

No downloaded data is needed (nltk's ``word_tokenize`` needs punkt; this does not). Letters with
accents are kept, so Spanish captions ("Pendientes de plata con circonitas") survive intact.
"""

import re
import unicodedata

_TOKEN = re.compile(r"[^\W_]+(?:['’][^\W_]+)*", re.UNICODE)


def standardize(text: str) -> str:
    """Lower-case, NFC-normalise, drop punctuation, collapse white space."""
    text = unicodedata.normalize("NFC", str(text)).lower()
    return " ".join(_TOKEN.findall(text))


def tokenize(text: str) -> list[str]:
    """Words of ``text`` after :func:`standardize` (letters and digits, accents kept)."""
    return standardize(text).split()
