"""Caption vocabulary: words to ids and back, with padding, unknown, start and end tokens."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from ..persistence import atomic_write_text
from ..text import tokenize

PAD, UNK, START, END = "<pad>", "<unk>", "<start>", "<end>"
SPECIAL_TOKENS = (PAD, UNK, START, END)


class Vocabulary:
    """Maps words to integer ids. Id 0 is padding, 1 unknown, 2 start, 3 end."""

    pad_id, unk_id, start_id, end_id = 0, 1, 2, 3

    def __init__(self, words: list[str]):
        self.words = list(SPECIAL_TOKENS) + [w for w in words if w not in SPECIAL_TOKENS]
        self._ids = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def build(cls, captions, max_size: int = 10_000, min_count: int = 1) -> Vocabulary:
        """The ``max_size`` most frequent words (ties broken alphabetically) seen ``min_count`` times."""
        counts = Counter(word for caption in captions for word in tokenize(caption))
        ranked = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        return cls(ranked[: max(0, max_size - len(SPECIAL_TOKENS))])

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, caption: str, length: int) -> np.ndarray:
        """``<start> words… <end>`` as ids, cut or padded to ``length``."""
        ids = [self.start_id] + [self._ids.get(w, self.unk_id) for w in tokenize(caption)]
        ids = ids[: length - 1] + [self.end_id]
        return np.array(ids + [self.pad_id] * (length - len(ids)), dtype=np.int32)

    def decode(self, ids) -> str:
        """Words up to the first end token, without special tokens."""
        words = []
        for i in ids:
            i = int(i)
            if i == self.end_id:
                break
            if i >= len(SPECIAL_TOKENS):
                words.append(self.words[i])
            elif i == self.unk_id:
                words.append(UNK)
        return " ".join(words)

    def save(self, path: str | Path) -> None:
        """``{"words": [...]}`` in id order, written atomically."""
        atomic_write_text(path, json.dumps({"words": self.words}, ensure_ascii=False, indent=0))

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        words = json.loads(Path(path).read_text(encoding="utf-8"))["words"]
        if tuple(words[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise ValueError(f"{path}: not a gemcaption vocabulary")
        return cls(words[len(SPECIAL_TOKENS) :])
