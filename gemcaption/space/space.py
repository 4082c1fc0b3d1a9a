""":class:`CaptionSpace`: embeds texts and feature grids into the learned space; saves and loads it.

A space directory (``MODEL/space/`` inside a captioner, or anywhere) holds ``manifest.json``
(format ``gemcaption-space``, version 1, the :class:`~.config.SpaceConfig` and the feature
channels), ``space.keras`` (the :class:`~.layers.DualEncoder`, loaded with ``safe_mode=True``),
``vocabulary.json`` and ``history.json``, written atomically by :meth:`CaptionSpace.save`. The
manifest's config also holds the :class:`~.fusion.Fusion` weights chosen on the validation split
(``fusion``; absent when none was chosen), which an index built with the space uses.
Words the vocabulary does not know are dropped; a text with no known word embeds to zeros (its
cosine with everything is 0), and :meth:`CaptionSpace.known_words` says how many it has.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..captioning.vocabulary import SPECIAL_TOKENS, Vocabulary
from ..errors import ModelError
from ..persistence import (
    PathLike,
    has_manifest,
    read_json,
    read_manifest,
    reading,
    resolve_directory,
    save_directory,
    write_json,
)
from ..text import tokenize
from .config import SpaceConfig
from .fusion import Fusion

FORMAT = "gemcaption-space"
FORMAT_VERSION = 1
MODEL_FILE = "space.keras"
VOCABULARY_FILE = "vocabulary.json"
HISTORY_FILE = "history.json"


def is_space_directory(path: PathLike) -> bool:
    """True when ``path`` holds a saved space (its manifest names the space format)."""
    path = Path(path)
    if not has_manifest(path):
        return False
    try:
        return read_json(path / "manifest.json").get("format") == FORMAT
    except (ModelError, AttributeError):
        return False


class CaptionSpace:
    """A trained text encoder and image projection into one L2-normalised space (cosine = dot product).

    Build one with :meth:`fit` (see :func:`gemcaption.space.training.fit_space`) or :meth:`load`.
    """

    kind = "caption_space"

    def __init__(
        self,
        config: SpaceConfig,
        vocabulary: Vocabulary,
        model: Any,
        channels: int,
        history=None,
        fusion: Fusion | None = None,
    ):
        self.config = config
        self.fusion = fusion  # chosen on a validation split (gemcaption.space.fusion.choose_fusion), or None
        self.vocabulary = vocabulary
        self.model = model
        self.channels = int(channels)
        self.history: dict = dict(history or {})
        self._ids = {w: i for i, w in enumerate(vocabulary.words) if i >= len(SPECIAL_TOKENS)}

    @classmethod
    def fit(cls, train_grids, train_captions, dev_grids=None, dev_captions=None, config=None, **kwargs) -> CaptionSpace:
        """Train a space on (grid, captions) pairs; see :func:`gemcaption.space.training.fit_space`."""
        from .training import fit_space

        return fit_space(train_grids, train_captions, dev_grids, dev_captions, config=config, **kwargs)

    @property
    def dim(self) -> int:
        return self.config.dim

    @property
    def fitted(self) -> bool:
        return True

    def get_config(self) -> dict:
        """JSON-able settings: the kind, the space configuration, the vocabulary size, feature channels
        and the fusion weights chosen on validation (when there are)."""
        config = {
            "kind": self.kind,
            "space": self.config.get_config(),
            "words": len(self.vocabulary),
            "channels": self.channels,
        }
        if self.fusion is not None:
            config["fusion"] = self.fusion.get_config()
        return config

    # -- embedding ------------------------------------------------------------------------------
    def known_words(self, text: str) -> int:
        """How many words of ``text`` the space knows."""
        return sum(w in self._ids for w in tokenize(text))

    def token_ids(self, texts) -> np.ndarray:
        """(N, seq_len) int32: the known words' ids, padded with 0 (unknown words dropped)."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        out = np.zeros((len(texts), self.config.seq_len), np.int32)
        for row, text in enumerate(texts):
            ids = [self._ids[w] for w in tokenize(str(text)) if w in self._ids][: self.config.seq_len]
            out[row, : len(ids)] = ids
        return out

    def embed_token_ids(self, tokens: np.ndarray, batch_size: int = 2048) -> np.ndarray:
        """Embeddings of token rows (all-padding rows give zeros)."""
        out = np.zeros((len(tokens), self.dim), np.float32)
        for start in range(0, len(tokens), batch_size):
            chunk = tokens[start : start + batch_size]
            out[start : start + len(chunk)] = np.asarray(self.model.text(chunk, training=False))
        out[~(tokens != 0).any(axis=1)] = 0.0
        return out

    def embed_texts(self, texts, batch_size: int = 2048) -> np.ndarray:
        """Float32 (N, dim) unit vectors of ``texts``; zeros for a text with no known word."""
        return self.embed_token_ids(self.token_ids(texts), batch_size)

    transform = embed_texts  # so a space can stand where a caption embedder is expected

    def embed_images(self, grids, batch_size: int = 256) -> np.ndarray:
        """Float32 (N, dim) unit vectors of encoder feature grids (N, G, C) or pooled features (N, C)."""
        grids = np.asarray(grids)
        if grids.ndim == 2:
            grids = grids[:, None, :]
        if grids.ndim != 3 or grids.shape[-1] != self.channels:
            raise ModelError(f"the space expects features with {self.channels} channels, got shape {grids.shape}")
        if self.config.image_pooling == "mean" and grids.shape[1] != 1:
            grids = np.asarray(grids, np.float32).mean(axis=1, keepdims=True)
        out = np.zeros((len(grids), self.dim), np.float32)
        for start in range(0, len(grids), batch_size):
            chunk = grids[start : start + batch_size].astype(np.float32)
            out[start : start + len(chunk)] = np.asarray(self.model.image(chunk, training=False))
        return out

    # -- saving -------------------------------------------------------------------------------
    def write_files(self, directory: Path) -> None:
        """The files of :meth:`save` without the manifest, into the existing ``directory``."""
        self.model.save(directory / MODEL_FILE)
        self.vocabulary.save(directory / VOCABULARY_FILE)
        write_json(directory / HISTORY_FILE, self.history)

    def save(self, directory: PathLike) -> Path:
        """Write the space directory atomically (manifest with sha256 of every file)."""
        return save_directory(directory, FORMAT, FORMAT_VERSION, self.kind, self.get_config(), self.write_files)

    @classmethod
    def from_files(cls, directory: Path, config: dict) -> CaptionSpace:
        """Rebuild from the files of :meth:`write_files` in ``directory`` and ``config`` (:meth:`get_config`);
        the caller has checked the directory's manifest. :class:`ModelError` when a file is damaged."""
        import keras

        from . import layers  # noqa: F401  (registers the Keras classes)

        with reading(directory / "manifest.json"):
            space_config = SpaceConfig.from_config(config["space"])
            channels = int(config["channels"])
            fusion = Fusion.from_config(config["fusion"]) if config.get("fusion") is not None else None
        with reading(directory / VOCABULARY_FILE):
            vocabulary = Vocabulary.load(directory / VOCABULARY_FILE)
        with reading(directory / MODEL_FILE):
            model = keras.saving.load_model(directory / MODEL_FILE, safe_mode=True, compile=False)
        history = read_json(directory / HISTORY_FILE)
        if not isinstance(history, dict):
            raise ModelError(f"damaged: {directory / HISTORY_FILE} (not a JSON object)")
        return cls(space_config, vocabulary, model, channels, history, fusion)

    @classmethod
    def load(cls, directory: PathLike) -> CaptionSpace:
        """Load a saved space; :class:`ModelError` naming the file when it is missing or damaged."""
        directory = resolve_directory(directory)
        manifest = read_manifest(directory, FORMAT, (FORMAT_VERSION,))
        return cls.from_files(directory, manifest.config)
