"""Caption embedders: turn captions into dense, L2-normalised vectors for the FAISS index.

Two kinds, both saved as JSON + ``.npy`` files (never pickles, so loading an index runs no code
from it):

* :class:`TfidfSvdEmbedder` (``"tfidf_svd"``, the default): TF-IDF over :func:`gemcaption.text.tokenize`
  words (and optionally word n-grams), reduced with a truncated SVD to ``dim`` (256) dimensions and
  L2-normalised. Fitted on the training captions with scikit-learn; :meth:`transform` is our own
  NumPy code over the stored vocabulary, idf weights and SVD components, so a loaded embedder gives
  the same vectors as the fitted one.
* :class:`MeanTokenEmbedder` (``"mean_tokens"``): idf-weighted mean of word vectors, for example the
  token embedding table of a trained caption decoder.

The cosine of two embeddings is their dot product. A caption with no known word embeds to zeros.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np

from ..errors import GemcaptionError, ModelError
from ..text import tokenize

EMBEDDER_FILE = "embedder.json"
DEFAULT_DIM = 256
SVD_ITERATIONS = 4  # randomized SVD power iterations (on Flickr8k: 7 explains 0.529 of variance, 4 0.527, in half the time)


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
        terms.extend(" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
    return terms


def _as_text_list(texts) -> list[str]:
    if isinstance(texts, str):
        raise GemcaptionError("expected a list of captions, got a single string")
    return [str(t) for t in texts]


class TfidfSvdEmbedder:
    """TF-IDF (sublinear tf, smoothed idf, L2) reduced by truncated SVD to ``dim``, L2-normalised.

    When the vocabulary has no more than ``dim`` terms the SVD is skipped and the (normalised)
    TF-IDF vector itself is the embedding, so tiny corpora still embed exactly.
    """

    kind = "tfidf_svd"

    def __init__(self, dim: int = DEFAULT_DIM, ngram_max: int = 1, min_df: int = 1, seed: int = 0):
        if dim < 1 or ngram_max < 1 or min_df < 1:
            raise GemcaptionError("dim, ngram_max and min_df must be positive")
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

    def config(self) -> dict:
        """JSON-able settings identifying this embedder."""
        return {"kind": self.kind, "dim": self.dim, "requested_dim": self.requested_dim,
                "ngram_max": self.ngram_max, "min_df": self.min_df, "seed": self.seed,
                "n_terms": len(self.vocabulary)}

    def _analyze(self, text: str) -> list[str]:
        return word_ngrams(text, self.ngram_max)

    def fit(self, texts) -> "TfidfSvdEmbedder":
        """Learn vocabulary, idf weights and SVD components from ``texts`` (training captions)."""
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        texts = _as_text_list(texts)
        if not any(tokenize(t) for t in texts):
            raise GemcaptionError("cannot fit a caption embedder: no words in the training captions")
        vectorizer = TfidfVectorizer(analyzer=self._analyze, min_df=self.min_df if len(texts) > 1 else 1,
                                     sublinear_tf=True, smooth_idf=True, norm="l2", dtype=np.float32)
        matrix = vectorizer.fit_transform(texts)
        self.vocabulary = {term: int(i) for term, i in vectorizer.vocabulary_.items()}
        self.idf = vectorizer.idf_.astype(np.float32)
        n_terms = len(self.vocabulary)
        if n_terms <= self.requested_dim:
            self.components = None
        else:
            svd = TruncatedSVD(n_components=self.requested_dim, algorithm="randomized",
                               n_iter=SVD_ITERATIONS, random_state=self.seed)
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
        return sparse.csr_matrix((np.asarray(vals, np.float32), (rows, cols)),
                                 shape=(len(texts), len(self.vocabulary)), dtype=np.float32)

    def transform(self, texts) -> np.ndarray:
        """Embeddings of ``texts``: float32 ``(len(texts), dim)``, L2-normalised rows."""
        matrix = self.tfidf(texts)
        if self.components is None:
            return l2_normalize(matrix.toarray())
        return l2_normalize(np.asarray(matrix @ self.components.T))

    def save(self, directory) -> None:
        """Write ``embedder.json`` (settings, vocabulary), ``idf.npy`` and ``components.npy``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        terms = sorted(self.vocabulary, key=self.vocabulary.get)
        payload = {**self.config(), "terms": terms}
        (directory / EMBEDDER_FILE).write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
        np.save(directory / "idf.npy", self.idf)
        if self.components is not None:
            np.save(directory / "components.npy", self.components)

    @classmethod
    def from_files(cls, directory: Path, payload: dict) -> "TfidfSvdEmbedder":
        embedder = cls(dim=payload["requested_dim"], ngram_max=payload["ngram_max"],
                       min_df=payload["min_df"], seed=payload.get("seed", 0))
        embedder.vocabulary = {term: i for i, term in enumerate(payload["terms"])}
        embedder.idf = np.load(directory / "idf.npy", allow_pickle=False).astype(np.float32)
        components = directory / "components.npy"
        embedder.components = np.load(components, allow_pickle=False) if components.exists() else None
        if len(embedder.idf) != len(embedder.vocabulary):
            raise ModelError(f"{directory}: embedder vocabulary and idf sizes differ")
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
            raise GemcaptionError("mean_tokens embedder: need one vector per word")
        self.words = list(words)
        self.index = {w: i for i, w in enumerate(self.words)}
        self.vectors = vectors - vectors.mean(axis=0, keepdims=True) if center else vectors
        self.center = center
        self.idf = np.ones(len(self.words), np.float32)
        self.fitted = False

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def config(self) -> dict:
        return {"kind": self.kind, "dim": self.dim, "n_terms": len(self.words), "center": self.center}

    @classmethod
    def from_captioner(cls, captioner) -> "MeanTokenEmbedder":
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

    def fit(self, texts) -> "MeanTokenEmbedder":
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

    def save(self, directory) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        payload = {**self.config(), "words": self.words, "fitted": self.fitted}
        (directory / EMBEDDER_FILE).write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
        np.save(directory / "vectors.npy", self.vectors)
        np.save(directory / "idf.npy", self.idf)

    @classmethod
    def from_files(cls, directory: Path, payload: dict) -> "MeanTokenEmbedder":
        embedder = cls(payload["words"], np.load(directory / "vectors.npy", allow_pickle=False), center=False)
        embedder.center = payload.get("center", True)
        embedder.idf = np.load(directory / "idf.npy", allow_pickle=False).astype(np.float32)
        embedder.fitted = bool(payload.get("fitted", True))
        return embedder


EMBEDDERS = {TfidfSvdEmbedder.kind: TfidfSvdEmbedder, MeanTokenEmbedder.kind: MeanTokenEmbedder}


def build_embedder(kind: str = "tfidf_svd", **settings):
    """A new, unfitted embedder. ``kind``: ``"tfidf_svd"`` (settings: dim, ngram_max, min_df)."""
    if kind not in EMBEDDERS:
        raise GemcaptionError(f"unknown caption embedder {kind!r}; choose from {sorted(EMBEDDERS)}")
    if kind == MeanTokenEmbedder.kind:
        raise GemcaptionError("build a mean_tokens embedder with MeanTokenEmbedder.from_captioner(captioner)")
    return EMBEDDERS[kind](**settings)


def load_embedder(directory):
    """Read an embedder written by ``save(directory)`` (JSON + .npy only, no pickles)."""
    directory = Path(directory)
    try:
        payload = json.loads((directory / EMBEDDER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{directory}: no readable caption embedder ({exc})") from exc
    kind = payload.get("kind")
    if kind not in EMBEDDERS:
        raise ModelError(f"{directory}: unknown caption embedder kind {kind!r}")
    return EMBEDDERS[kind].from_files(directory, payload)
