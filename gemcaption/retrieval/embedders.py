"""Caption embedders: turn captions into dense, L2-normalised vectors for the FAISS index.

Two kinds, listed in :data:`EMBEDDERS`, both saved as JSON + ``.npy`` files (never pickles, so
loading an index runs no code from it):

* :class:`TfidfSvdEmbedder` (``"tfidf_svd"``, the default): TF-IDF over :func:`gemcaption.text.tokenize`
  words (and optionally word n-grams), reduced with a truncated SVD to ``dim`` (256) dimensions and
  L2-normalised. Fitted on the training captions with scikit-learn; :meth:`transform` is our own
  NumPy code over the stored vocabulary, idf weights and SVD components, so a loaded embedder gives
  the same vectors as the fitted one.
* :class:`MeanTokenEmbedder` (``"mean_tokens"``): idf-weighted mean of word vectors, for example the
  token embedding table of a trained caption decoder.

A third kind, ``"caption_space"`` (:class:`gemcaption.space.embedder.SpaceEmbedder`), is the
learned caption-embedding space saved with a captioner; :func:`default_embedder` picks it when the
captioner has one and TF-IDF + SVD (the fallback) otherwise.

The cosine of two embeddings is their dot product. A caption with no known word embeds to zeros.
:func:`embed_groups` gives one vector per group of captions (an image's generated and reference
captions): the normalised mean of their embeddings.

An embedder directory holds ``manifest.json`` (format ``gemcaption-embedder``, version 2, ``kind``,
``config`` = :meth:`get_config` plus what rebuilding needs), a JSON list of terms and ``.npy``
arrays, written atomically by ``save``. Directories of the previous release (``embedder.json``,
format version 1) still load.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np

from ..errors import ConfigError, GemcaptionError, ModelError, UnknownNameError
from ..persistence import (
    damaged,
    has_manifest,
    read_json,
    read_manifest,
    reading,
    resolve_directory,
    save_directory,
    write_json,
    write_manifest,
)
from ..registry import Registry
from ..text import tokenize

FORMAT = "gemcaption-embedder"
FORMAT_VERSION = 2
LEGACY_EMBEDDER_FILE = "embedder.json"  # format version 1
TERMS_FILE = "terms.json"
DEFAULT_DIM = 256
# randomized SVD power iterations (on Flickr8k: 7 explain 0.529 of the variance, 4 explain 0.527, in half the time)
SVD_ITERATIONS = 4


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def word_ngrams(text: str, ngram_max: int = 1) -> list[str]:
    """Tokens of ``text`` and, when ``ngram_max > 1``, space-joined word n-grams up to that length."""
    tokens = tokenize(text)
    terms = list(tokens)
    for n in range(2, ngram_max + 1):
        terms.extend(" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    return terms


def _as_text_list(texts) -> list[str]:
    if isinstance(texts, str):
        raise ConfigError("expected a list of captions, got a single string")
    return [str(t) for t in texts]


def _load_array(path: Path, ndim: int) -> np.ndarray:
    """The finite float array of ``ndim`` dimensions in ``path`` (``allow_pickle=False``); damaged otherwise."""
    if not path.is_file():
        raise ModelError(f"damaged: {path} (missing)")
    with reading(path):
        array = np.load(path, allow_pickle=False)
    if array.dtype.kind != "f" or array.ndim != ndim:
        raise damaged(path, f"holds {array.dtype} of shape {array.shape}, expected {ndim}-d floats")
    if not np.isfinite(array).all():
        raise damaged(path, "holds values that are not finite numbers")
    return array


def _load_terms(directory: Path, terms) -> list[str]:
    """``terms`` (from a version-1 file) or ``terms.json``: a list of strings; damaged otherwise."""
    where = directory / TERMS_FILE
    if terms is None:
        terms = read_json(where)
    else:
        where = directory / LEGACY_EMBEDDER_FILE
    if not isinstance(terms, list) or not all(isinstance(term, str) for term in terms):
        raise damaged(where, "the terms are not a list of words")
    return terms


def _check_dim(embedder, config: dict, directory: Path) -> None:
    if "dim" in config and config["dim"] != embedder.dim:
        raise damaged(directory, f"the settings say dim {config['dim']!r}, the arrays hold {embedder.dim}")


def embed_groups(embedder, groups: list[list[str]]) -> np.ndarray:
    """One row per group of captions: the L2-normalised mean of their embeddings (float32)."""
    groups = [list(group) for group in groups]
    if not groups:
        return np.zeros((0, embedder.dim), np.float32)
    if not all(groups):
        raise ConfigError("every group needs at least one caption")
    flat = embedder.transform([text for group in groups for text in group])
    bounds = np.cumsum([0] + [len(group) for group in groups])
    return l2_normalize(np.stack([flat[a:b].mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:])]))


class TfidfSvdEmbedder:
    """TF-IDF (sublinear tf, smoothed idf, L2) reduced by truncated SVD to ``dim``, L2-normalised.

    When the vocabulary has no more than ``dim`` terms the SVD is skipped and the (normalised)
    TF-IDF vector itself is the embedding, so tiny corpora still embed exactly.
    """

    kind = "tfidf_svd"

    def __init__(self, dim: int = DEFAULT_DIM, ngram_max: int = 1, min_df: int = 1, seed: int = 0):
        if dim < 1 or ngram_max < 1 or min_df < 1:
            raise ConfigError("dim, ngram_max and min_df must be positive")
        self.requested_dim = int(dim)
        self.ngram_max = int(ngram_max)
        self.min_df = int(min_df)
        self.seed = int(seed)
        self.vocabulary: dict[str, int] = {}
        self.idf = np.zeros(0, np.float32)
        self.components: np.ndarray | None = None  # (dim, n_terms) or None for identity

    @property
    def fitted(self) -> bool:
        return bool(self.vocabulary)

    @property
    def dim(self) -> int:
        if self.components is not None:
            return int(self.components.shape[0])
        return len(self.vocabulary) if self.fitted else self.requested_dim

    def get_config(self) -> dict:
        """JSON-able settings identifying this embedder."""
        return {
            "kind": self.kind,
            "dim": self.dim,
            "requested_dim": self.requested_dim,
            "ngram_max": self.ngram_max,
            "min_df": self.min_df,
            "seed": self.seed,
            "n_terms": len(self.vocabulary),
        }

    config = get_config  # the name it had

    def _analyze(self, text: str) -> list[str]:
        return word_ngrams(text, self.ngram_max)

    def fit(self, texts) -> TfidfSvdEmbedder:
        """Learn vocabulary, idf weights and SVD components from ``texts`` (training captions)."""
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        texts = _as_text_list(texts)
        if not any(tokenize(t) for t in texts):
            raise GemcaptionError("cannot fit a caption embedder: no words in the training captions")
        vectorizer = TfidfVectorizer(
            analyzer=self._analyze,
            min_df=self.min_df if len(texts) > 1 else 1,
            sublinear_tf=True,
            smooth_idf=True,
            norm="l2",
            dtype=np.float32,
        )
        matrix = vectorizer.fit_transform(texts)
        self.vocabulary = {term: int(i) for term, i in vectorizer.vocabulary_.items()}
        self.idf = vectorizer.idf_.astype(np.float32)
        n_terms = len(self.vocabulary)
        if n_terms <= self.requested_dim:
            self.components = None
        else:
            svd = TruncatedSVD(
                n_components=self.requested_dim, algorithm="randomized", n_iter=SVD_ITERATIONS, random_state=self.seed
            )
            svd.fit(matrix)
            self.components = svd.components_.astype(np.float32)
        return self

    def tfidf(self, texts):
        """Sparse L2-normalised TF-IDF rows (scipy CSR, float32) for ``texts``."""
        from scipy import sparse

        if not self.fitted:
            raise GemcaptionError("the caption embedder is not fitted yet: call fit(training captions)")
        texts = _as_text_list(texts)
        rows, cols, vals = [], [], []
        for row, text in enumerate(texts):
            counts = Counter(self.vocabulary[t] for t in self._analyze(text) if t in self.vocabulary)
            if not counts:
                continue
            columns = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
            tf = 1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))
            weights = tf * self.idf[columns]
            weights /= max(math.sqrt(float(np.dot(weights, weights))), 1e-12)
            rows.extend([row] * len(columns))
            cols.extend(columns.tolist())
            vals.extend(weights.tolist())
        return sparse.csr_matrix(
            (np.asarray(vals, np.float32), (rows, cols)), shape=(len(texts), len(self.vocabulary)), dtype=np.float32
        )

    def transform(self, texts) -> np.ndarray:
        """Embeddings of ``texts``: float32 ``(len(texts), dim)``, L2-normalised rows."""
        matrix = self.tfidf(texts)
        if self.components is None:
            return l2_normalize(matrix.toarray())
        return l2_normalize(np.asarray(matrix @ self.components.T))

    def save(self, directory) -> Path:
        """Write the manifest, ``terms.json`` (the vocabulary in column order), ``idf.npy`` and
        ``components.npy`` into ``directory``, atomically."""
        return save_embedder(self, directory)

    def write_files(self, directory: Path) -> None:
        """The files of :meth:`save` (without the manifest), into the existing ``directory``."""
        write_json(directory / TERMS_FILE, sorted(self.vocabulary, key=lambda term: self.vocabulary[term]))
        np.save(directory / "idf.npy", self.idf)
        if self.components is not None:
            np.save(directory / "components.npy", self.components)

    @classmethod
    def from_files(cls, directory: Path, config: dict, terms: list[str] | None = None) -> TfidfSvdEmbedder:
        """Rebuild from ``config`` and the arrays of ``directory``; ``terms`` default to ``terms.json``."""
        embedder = cls(
            dim=config["requested_dim"],
            ngram_max=config["ngram_max"],
            min_df=config["min_df"],
            seed=config.get("seed", 0),
        )
        terms = _load_terms(directory, terms)
        embedder.vocabulary = {term: i for i, term in enumerate(terms)}
        if len(embedder.vocabulary) != len(terms):
            raise damaged(directory / TERMS_FILE, "the terms repeat")
        embedder.idf = _load_array(directory / "idf.npy", 1).astype(np.float32)
        components = directory / "components.npy"
        embedder.components = _load_array(components, 2) if components.exists() else None
        if len(embedder.idf) != len(embedder.vocabulary):
            raise damaged(directory / "idf.npy", f"{len(embedder.idf)} weights for {len(terms)} terms")
        if embedder.components is not None and embedder.components.shape[1] != len(terms):
            raise damaged(components, f"shape {embedder.components.shape} does not fit {len(terms)} terms")
        _check_dim(embedder, config, directory)
        return embedder


class MeanTokenEmbedder:
    """Idf-weighted mean of word vectors (e.g. a trained decoder's token embeddings), L2-normalised.

    ``words`` and ``vectors`` (``(len(words), D)``) are given; :meth:`fit` only learns idf weights
    from the training captions (words never seen there get the largest idf).
    """

    kind = "mean_tokens"

    def __init__(self, words: list[str], vectors: np.ndarray, center: bool = True):
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(words):
            raise ConfigError("mean_tokens embedder: need one vector per word")
        self.words = list(words)
        self.index = {w: i for i, w in enumerate(self.words)}
        self.vectors = vectors - vectors.mean(axis=0, keepdims=True) if center else vectors
        self.center = center
        self.idf = np.ones(len(self.words), np.float32)
        self.fitted = False

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def get_config(self) -> dict:
        """JSON-able settings identifying this embedder."""
        return {
            "kind": self.kind,
            "dim": self.dim,
            "n_terms": len(self.words),
            "center": self.center,
            "fitted": self.fitted,
        }

    config = get_config  # the name it had

    @classmethod
    def from_captioner(cls, captioner) -> MeanTokenEmbedder:
        """The trained decoder's token embedding table (``decoder.token_embedding``) and vocabulary."""
        getter = getattr(captioner, "token_embeddings", None)
        if getter is not None:
            words, vectors = getter()
            return cls(words, vectors)
        layer = getattr(getattr(captioner, "decoder", None), "token_embedding", None)
        vocabulary = getattr(captioner, "vocabulary", None)
        if layer is None or vocabulary is None:
            raise ModelError("this captioner has no trained decoder token embeddings")
        vectors = np.asarray(layer.embeddings.numpy() if hasattr(layer.embeddings, "numpy") else layer.embeddings)
        return cls(list(vocabulary.words), vectors)

    def fit(self, texts) -> MeanTokenEmbedder:
        """Learn smoothed idf weights of the words from ``texts``."""
        texts = _as_text_list(texts)
        df = Counter(w for t in texts for w in set(tokenize(t)))
        n = len(texts)
        self.idf = np.array([math.log((1 + n) / (1 + df.get(w, 0))) + 1 for w in self.words], np.float32)
        self.fitted = True
        return self

    def transform(self, texts) -> np.ndarray:
        """Embeddings of ``texts``: float32 ``(len(texts), dim)``, L2-normalised rows."""
        texts = _as_text_list(texts)
        out = np.zeros((len(texts), self.dim), np.float32)
        for row, text in enumerate(texts):
            ids = [self.index[w] for w in tokenize(text) if w in self.index]
            if ids:
                weights = self.idf[ids]
                out[row] = (weights[:, None] * self.vectors[ids]).sum(axis=0) / weights.sum()
        return l2_normalize(out)

    def save(self, directory) -> Path:
        """Write the manifest, ``terms.json`` (the words), ``vectors.npy`` and ``idf.npy``, atomically."""
        return save_embedder(self, directory)

    def write_files(self, directory: Path) -> None:
        """The files of :meth:`save` (without the manifest), into the existing ``directory``."""
        write_json(directory / TERMS_FILE, self.words)
        np.save(directory / "vectors.npy", self.vectors)
        np.save(directory / "idf.npy", self.idf)

    @classmethod
    def from_files(cls, directory: Path, config: dict, terms: list[str] | None = None) -> MeanTokenEmbedder:
        """Rebuild from ``config`` and the arrays of ``directory``; ``terms`` default to ``terms.json``."""
        words = _load_terms(directory, terms)
        vectors = _load_array(directory / "vectors.npy", 2)
        if len(vectors) != len(words):
            raise damaged(directory / "vectors.npy", f"{len(vectors)} vectors for {len(words)} words")
        embedder = cls(words, vectors, center=False)
        embedder.center = bool(config.get("center", True))
        embedder.idf = _load_array(directory / "idf.npy", 1).astype(np.float32)
        if len(embedder.idf) != len(words):
            raise damaged(directory / "idf.npy", f"{len(embedder.idf)} weights for {len(words)} words")
        embedder.fitted = bool(config.get("fitted", True))
        _check_dim(embedder, config, directory)
        return embedder


EMBEDDERS: Registry = Registry("caption embedder")
EMBEDDERS.register(TfidfSvdEmbedder.kind, TfidfSvdEmbedder, aliases=("tfidf",))
EMBEDDERS.register(MeanTokenEmbedder.kind, MeanTokenEmbedder)
EMBEDDERS.register("caption_space", "gemcaption.space.embedder:SpaceEmbedder", aliases=("space",))  # learned space


def build_embedder(kind: str = "tfidf_svd", **settings):
    """A new, unfitted embedder. ``kind``: ``"tfidf_svd"`` (settings: dim, ngram_max, min_df).
    An unknown kind raises :class:`~gemcaption.errors.UnknownNameError` listing the kinds."""
    embedder_class = EMBEDDERS.get(kind)
    if embedder_class is MeanTokenEmbedder:
        raise ConfigError("build a mean_tokens embedder with MeanTokenEmbedder.from_captioner(captioner)")
    return embedder_class(**settings)


def default_embedder(captioner=None, model_dir=None, **settings):
    """The caption embedder of a retriever given none: the captioner's learned space (a
    :class:`~gemcaption.space.embedder.SpaceEmbedder` with the fusion chosen on validation when the
    space was trained) when it has one, else a new TF-IDF + SVD embedder (``settings``: dim...).
    Without a loaded captioner, ``model_dir/space`` is looked at (no decoder is loaded)."""
    space = getattr(captioner, "space", None)
    if space is None and captioner is None and model_dir:
        from ..space import CaptionSpace, is_space_directory

        if is_space_directory(Path(model_dir, "space")):
            space = CaptionSpace.load(Path(model_dir, "space"))
    if space is not None:
        return EMBEDDERS.get("caption_space")(space)
    return build_embedder(**settings)


def save_embedder(embedder, directory) -> Path:
    """``embedder``'s files and manifest written atomically to ``directory`` (what ``save`` does)."""
    return save_directory(directory, FORMAT, FORMAT_VERSION, embedder.kind, embedder.get_config(), embedder.write_files)


def write_embedder(embedder, directory) -> Path:
    """``embedder``'s files and manifest written into a new ``directory`` inside a directory that is
    itself being saved atomically (an index's staging directory): no second atomic swap."""
    directory = Path(directory)
    if not hasattr(embedder, "write_files"):  # an embedder class of its own, with only save()
        embedder.save(directory)
        return directory
    directory.mkdir(parents=True)
    embedder.write_files(directory)
    write_manifest(directory, FORMAT, FORMAT_VERSION, embedder.kind, embedder.get_config())
    return directory


def _embedder_class(directory: Path, kind):
    try:
        return EMBEDDERS.get(str(kind))
    except UnknownNameError as exc:
        raise ModelError(f"{directory}: {exc}") from None


def load_embedder(directory):
    """Read an embedder written by ``save(directory)`` (JSON + .npy only, no pickles), or by the
    previous release (``embedder.json``). ModelError when missing, damaged or of an unknown version."""
    directory = resolve_directory(directory, must_exist=False)
    if has_manifest(directory):
        manifest = read_manifest(directory, FORMAT, (FORMAT_VERSION,))
        kind, config, terms = manifest.kind, manifest.config, None
    elif (directory / LEGACY_EMBEDDER_FILE).is_file():
        config = read_json(directory / LEGACY_EMBEDDER_FILE)
        if not isinstance(config, dict):
            raise ModelError(f"damaged: {directory / LEGACY_EMBEDDER_FILE}")
        kind = config.get("kind")
        terms = config.get("words" if kind == MeanTokenEmbedder.kind else "terms")
    else:
        raise ModelError(f"{directory}: no caption embedder here (no manifest.json)")
    embedder_class = _embedder_class(directory, kind)
    try:
        return embedder_class.from_files(directory, config, terms)
    except (KeyError, TypeError, ValueError) as exc:  # ConfigError too: settings out of range
        raise damaged(directory / "manifest.json", f"embedder settings: {exc.__class__.__name__}: {exc}") from None
