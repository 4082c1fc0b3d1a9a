"""Search images by image or by text through their captions.

A :class:`Retriever` joins a trained captioner, a caption embedder and a FAISS index:

>>> retriever = Retriever(Captioner.load("model"), model_dir="model").build(dataset.split("test"))
>>> retriever.search("a blue oval sapphire", k=5)        # text query
>>> retriever.search("photos/ring.jpg")                  # image query: caption it, search the caption
>>> retriever.save("my-index"); Retriever.load("my-index")

Every indexed image is captioned (cached encoder features are reused) and represented by the L2-
normalised mean of the embeddings of its generated caption and, with ``use_references=True``,
its reference captions. Scores are cosine similarities. With ``hybrid_weight=w > 0`` an image
query's score is ``(1 - w) * caption cosine + w * visual cosine`` (centred, normalised mean-pooled
encoder features): the cosine of the two vectors concatenated with weights ``sqrt(1-w), sqrt(w)``.
How a ``str`` query is told apart from a path is described in :mod:`gemcaption.retrieval.queries`.
:meth:`Retriever.add` is :meth:`~Retriever.insert` of :meth:`~Retriever.prepare`: ``prepare`` captions
and embeds without changing the retriever (what :mod:`gemcaption.distributed` runs on workers),
``insert`` gives ids and indexes.

Saved index directory (format ``gemcaption-index`` version 2, written atomically)::

    manifest.json       format, version, kind "retriever", config (:meth:`Retriever.get_config`:
                        settings, embedder, captioner reference, vector index state), sha256 of files
    metadata.sqlite     the records and the next free id
    embedder/           the caption embedder (its own manifest)
    text_ids.npy, text_vectors.npy, index.faiss     the caption vectors and their FAISS index
    visual_ids.npy, visual_vectors.npy, visual_mean.npy   with hybrid_weight > 0

Indexes of the previous release (format version 1: settings in SQLite's ``settings`` table and an
``index.json``, no manifest) still load.

Several processes may write one index. :meth:`Retriever.edit` (what ``gemcaption index add|remove``
use) holds the index's lock while it loads, changes and saves, so writers queue and none loses
another's images; a retriever loaded, changed and saved without it refuses (``ConflictError``) to
overwrite a version another process saved meanwhile. :meth:`Retriever.load` never mixes two versions.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import cast

import numpy as np

from ..captioning.samplers import Sampler, resolve_sampler, serialize_sampler
from ..errors import ConfigError, ImageError, ModelError, QueryError
from ..persistence import (
    DEFAULT_TIMEOUT,
    has_manifest,
    lock_directory,
    read_consistently,
    read_generation,
    read_json,
    read_manifest,
    resolve_directory,
    save_directory,
)
from .embedders import default_embedder, embed_groups, l2_normalize, load_embedder, write_embedder
from .metadata import MetadataStore, Record, file_stamp
from .prepared import PreparedImages
from .queries import is_batch, is_image_query
from .vector_index import VectorIndex, VectorTable

FORMAT = "gemcaption-index"
FORMAT_VERSION = 2
LEGACY_FORMAT_VERSION = 1  # settings in SQLite, vector index settings in index.json
KIND = "retriever"
METADATA_FILE = "metadata.sqlite"
HYBRID_CANDIDATES = 100


@dataclass(frozen=True)
class Hit:
    """One search result: the image's id, path (None if added from memory), cosine score,
    generated caption, reference captions and label (None when unknown)."""

    id: int
    image: str | None
    score: float
    caption: str
    captions: tuple[str, ...] = ()
    label: str | None = None

    def to_dict(self) -> dict:
        return {**asdict(self), "captions": list(self.captions)}


def _items(data, captions=None, labels=None) -> list[tuple]:
    """``(source, reference captions, label)`` for a Dataset, Samples, or plain image sources."""
    samples = getattr(data, "samples", None)
    data = list(samples if samples is not None else ([data] if is_image_query_like(data) else data))
    items = []
    for i, entry in enumerate(data):
        if hasattr(entry, "image") and hasattr(entry, "captions"):
            items.append((entry.image, tuple(entry.captions), getattr(entry, "label", None)))
        else:
            refs = tuple(captions[i]) if captions is not None else ()
            items.append((entry, refs, labels[i] if labels is not None else None))
    return items


def is_image_query_like(data) -> bool:
    return isinstance(data, (str, Path, bytes, bytearray)) or hasattr(data, "getbands") or hasattr(data, "shape")


def _source_name(source) -> str:
    return str(source) if isinstance(source, (str, Path)) else f"<{type(source).__name__} image>"


class Retriever:
    """Captioner + caption embedder + FAISS index + SQLite metadata (see the module doc).

    ``captioner`` may be None when ``model_dir`` names a saved captioner: it is then loaded the
    first time an image must be captioned (text search never needs it). ``embedder`` defaults to
    the captioner's learned caption space when it has one (``captioner.space``, see
    :func:`~gemcaption.retrieval.embedders.default_embedder`; index vectors then fuse the image
    projection with the captions), else to TF-IDF + SVD (256-d), fitted on the first captions indexed
    unless :meth:`fit_embedder` or ``build(..., fit_texts=...)`` fitted it on training captions.
    ``index_factory`` is ``"auto"`` or a FAISS factory string (see :mod:`gemcaption.retrieval.vector_index`).
    """

    def __init__(
        self,
        captioner=None,
        embedder=None,
        *,
        model_dir=None,
        index_factory: str = "auto",
        search_params: str = "",
        beam_width: int | None = None,
        use_references: bool = True,
        hybrid_weight: float = 0.0,
        batch_size: int = 32,
        progress: bool = True,
        sampler: str | Sampler | dict | None = None,
    ):
        if not 0.0 <= hybrid_weight < 1.0:
            raise ConfigError("hybrid_weight must be in [0, 1)")
        if batch_size < 1:
            raise ConfigError("batch_size must be at least 1")
        self.sampler: Sampler = resolve_sampler(sampler, beam_width)  # how images are captioned
        self._captioner = captioner
        model_dir = model_dir or getattr(captioner, "model_dir", None)
        self.model_dir = str(Path(model_dir).absolute()) if model_dir else None
        self.embedder = embedder if embedder is not None else default_embedder(captioner, self.model_dir)
        self.index_factory, self.search_params = index_factory, search_params
        self.use_references = bool(use_references)
        self.hybrid_weight, self.batch_size, self.progress = float(hybrid_weight), int(batch_size), progress
        self.metadata = MetadataStore()
        self.index: VectorIndex | None = None
        self.visual: VectorTable | None = None
        self.visual_mean: np.ndarray | None = None

    @property
    def beam_width(self) -> int:
        """The beam width of :attr:`sampler` (1 for greedy search)."""
        return int(getattr(self.sampler, "width", 1))

    # -- state -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.metadata)

    def __contains__(self, item_id) -> bool:
        return int(item_id) in self.metadata.records

    @property
    def ids(self) -> list[int]:
        return sorted(self.metadata.records)

    def get(self, item_id: int) -> Record:
        """The metadata record of ``item_id`` (KeyError if absent)."""
        return self.metadata.records[int(item_id)]

    @property
    def captioner(self):
        """The captioner, loaded from ``model_dir`` on first use."""
        if self._captioner is None:
            if not self.model_dir:
                raise ModelError("this retriever has no captioner: pass captioner= (or model_dir=) to caption images")
            from ..captioning.captioner import Captioner

            self._captioner = Captioner.load(self.model_dir)
        return self._captioner

    def clear(self) -> None:
        """Forget every indexed image (the fitted embedder is kept)."""
        self.metadata, self.index, self.visual, self.visual_mean = MetadataStore(), None, None, None

    # -- building ----------------------------------------------------------------------------
    def fit_embedder(self, texts) -> Retriever:
        """Fit the caption embedder on ``texts`` (the training captions); clears the index."""
        self.embedder.fit(list(texts))
        self.clear()
        return self

    def build(self, data, *, fit_texts=None, captions=None, labels=None) -> Retriever:
        """Index ``data`` from scratch: a Dataset, Samples, or image sources (with optional
        per-image reference ``captions`` and ``labels``). The embedder is fitted on ``fit_texts``
        when given, else (if not fitted yet) on the indexed images' captions."""
        self.clear()
        if fit_texts is not None:
            self.embedder.fit(list(fit_texts))
        self.add(data, captions=captions, labels=labels)
        return self

    def add(self, images, *, captions=None, labels=None) -> list[int | None]:
        """Index more images without a rebuild; returns one id per input (the existing id for an
        image already indexed, same content hash; None for an unreadable image, with a warning).
        It is :meth:`insert` of :meth:`prepare`."""
        return self.insert(self.prepare(images, captions=captions, labels=labels))

    def prepare(self, images, *, captions=None, labels=None) -> PreparedImages:
        """Caption and embed ``images`` (inputs as for :meth:`add`) without changing this retriever:
        the expensive half of :meth:`add`, which a worker process can run (see
        :mod:`gemcaption.distributed`). Vectors are left to :meth:`insert` while the embedder is
        not fitted (it is then fitted on the captions of all the images inserted at once)."""
        from ..data.images import content_hash

        items = _items(images, captions, labels)
        stamps = [file_stamp(source) for source, _, _ in items]  # (size, mtime_ns) before hashing: see sync
        digests: list[str | None] = [None] * len(items)
        firsts: dict[str, int] = {}  # new content hash -> its first position in items
        for pos, (source, _, _) in enumerate(items):
            try:
                digests[pos] = digest = content_hash(source)
            except (ImageError, OSError) as exc:
                warnings.warn(f"skipping {_source_name(source)}: {exc}", stacklevel=3)
                continue
            if digest not in self.metadata.by_hash:
                firsts.setdefault(digest, pos)
        positions = list(firsts.values())
        generated = self._caption_sources([items[p][0] for p in positions]) if positions else []
        new = [p for p, text in zip(positions, generated) if text is not None]
        texts = [t for t in generated if t is not None]
        prepared = PreparedImages(items, digests, stamps, new, texts)
        if new and self.embedder.fitted:
            prepared.vectors = self._embed(prepared)
        if new and self.hybrid_weight:
            prepared.features = np.asarray(self.captioner.image_features([items[p][0] for p in new]), np.float32)
        return prepared

    def _embed(self, prepared: PreparedImages) -> np.ndarray:
        texts = prepared.caption_groups(self.use_references)
        if hasattr(self.embedder, "gallery"):  # a learned space: fuse the captions with the image projection
            sources = [prepared.items[p][0] for p in prepared.new]
            return self.embedder.gallery(texts, self.embedder.projections(self.captioner, sources))
        return embed_groups(self.embedder, texts)

    def insert(self, prepared: PreparedImages) -> list[int | None]:
        """Give the new images of ``prepared`` (from :meth:`prepare`) the next free ids and index
        them; returns one id per input as :meth:`add` does. New images whose content another
        insert indexed meanwhile are not indexed twice."""
        by_hash = self.metadata.by_hash
        keep = [i for i, p in enumerate(prepared.new) if prepared.digests[p] not in by_hash]
        if len(keep) < len(prepared.new):
            prepared = prepared.subset(keep)
        if prepared.new:
            if not self.embedder.fitted:
                self.embedder.fit([t for group in prepared.caption_groups(self.use_references) for t in group])
            vectors = prepared.vectors if prepared.vectors is not None else self._embed(prepared)
            ids = list(range(self.metadata.next_id, self.metadata.next_id + len(prepared.new)))
            for item_id, pos, caption in zip(ids, prepared.new, prepared.captions):
                source, refs, label = prepared.items[pos]
                path = str(Path(source).absolute()) if isinstance(source, (str, Path)) else None
                digest = cast(str, prepared.digests[pos])
                self.metadata.add(Record(item_id, path, digest, caption, tuple(refs), label, *prepared.stamps[pos]))
            if self.index is None:
                self.index = VectorIndex(self.embedder.dim, self.index_factory, self.search_params)
            self.index.add(vectors, ids)
            if prepared.features is not None:
                self._add_visual(self._normalise_visual(prepared.features), ids)
        return [None if d is None else by_hash.get(d) for d in prepared.digests]

    def remove(self, ids) -> int:
        """Remove images by id without a rebuild; returns how many were indexed."""
        ids = [int(i) for i in ([ids] if isinstance(ids, (int, np.integer)) else ids)]
        removed = [i for i in ids if self.metadata.remove(i) is not None]
        if removed and self.index is not None:
            self.index.remove(removed)
        if removed and self.visual is not None:
            self.visual.remove(removed)
        return len(removed)

    def sync(self, folder, *, progress: bool | None = None):
        """Bring the index in line with the images below ``folder``: add new and changed files,
        drop deleted ones, skip unchanged ones without reading them (size and modification time,
        then content hash). Returns a :class:`~gemcaption.retrieval.sync.SyncReport`; rules in
        :mod:`gemcaption.retrieval.sync`. Save afterwards (or call it inside :meth:`edit`)."""
        from .sync import sync_folder

        return sync_folder(self, folder, progress=progress)

    # -- captioning and embedding --------------------------------------------------------------
    def _caption_sources(self, sources: list) -> list[str | None]:
        from tqdm.auto import tqdm

        captions: list[str | None] = []
        steps = range(0, len(sources), self.batch_size)
        for start in tqdm(steps, desc="Captioning", unit="batch", disable=not self.progress or len(steps) < 2):
            batch = sources[start : start + self.batch_size]
            try:
                out = list(self.captioner.caption(batch, sampler=self.sampler))
            except ImageError:
                out = [self._caption_one(source) for source in batch]
            for source, text in zip(batch, out):
                if text is None:
                    warnings.warn(f"skipping {_source_name(source)}: not a readable image", stacklevel=3)
            captions.extend(out)
        return captions

    def _caption_one(self, source) -> str | None:
        try:
            return self.captioner.caption([source], sampler=self.sampler)[0]
        except ImageError:
            return None

    def _normalise_visual(self, feats: np.ndarray) -> np.ndarray:
        if self.visual_mean is None:
            self.visual_mean = feats.mean(axis=0) if len(feats) > 1 else np.zeros(feats.shape[1], np.float32)
        return l2_normalize(feats - self.visual_mean)

    def _add_visual(self, features: np.ndarray, ids: list[int]) -> None:
        if self.visual is None:
            self.visual = VectorTable(features.shape[1])
        self.visual.add(features, ids)

    # -- searching -----------------------------------------------------------------------------
    def search(self, query, k: int = 10):
        """Hits for one query (path, PIL image, array, bytes or text), best first; for a list of
        queries, one list of hits per query. See :mod:`gemcaption.retrieval.queries` for the str rule."""
        if not is_batch(query):
            return self.search(list([query]), k)[0]
        kinds = [is_image_query(q) for q in query]
        results: list = [None] * len(query)
        for want_image, run in ((True, self.search_image), (False, self.search_text)):
            positions = [i for i, kind in enumerate(kinds) if kind == want_image]
            if positions:
                for pos, hits in zip(positions, run([query[i] for i in positions], k)):
                    results[pos] = hits
        return results

    def search_text(self, text, k: int = 10):
        """Hits for a text query (or one list per text for a list of texts)."""
        single = isinstance(text, str)
        texts = [text] if single else [str(t) for t in text]
        if any(not t.strip() for t in texts):
            raise QueryError("empty search query")
        results: list[list[Hit]]
        if not self._searchable():
            results = [[] for _ in texts]
        else:
            vectors = self.embedder.transform(texts)
            results = self._search_vectors(vectors, k)
            results = [hits if np.any(v) else [] for v, hits in zip(vectors, results)]  # no known word: no hits
        return results[0] if single else results

    def knows_words(self, text: str) -> bool:
        """True when the embedder knows at least one word of ``text`` (else a search gives no hits)."""
        return bool(self.embedder.fitted and np.any(self.embedder.transform([str(text)])))

    def search_image(self, image, k: int = 10):
        """Hits for an image query (or one list per image for a list): the image is captioned and
        its caption searched. Raises :class:`ImageError` for a missing or unreadable image."""
        from ..data.images import load_image

        single = not is_batch(image)
        images = [image] if single else list(image)
        decoded = [load_image(source) for source in images]  # ImageError names the bad one
        results: list[list[Hit]]
        if not self._searchable():
            results = [[] for _ in images]
        else:
            sources = [s if isinstance(s, (str, Path)) else d for s, d in zip(images, decoded)]
            captions, grids = self._caption_queries(images, sources)
            visual = None
            if self.hybrid_weight and self.visual is not None and self.visual_mean is not None and len(self.visual):
                pooled = grids.mean(axis=1) if grids is not None else self.captioner.image_features(sources)
                visual = l2_normalize(np.asarray(pooled, np.float32) - self.visual_mean)
            queries = self.embedder.transform(captions)
            if hasattr(self.embedder, "image_query"):  # a learned space: projection + generated caption
                projections = (
                    self.embedder.projections_of_grids(grids)
                    if grids is not None
                    else self.embedder.projections(self.captioner, sources)
                )
                queries = self.embedder.image_query(queries, projections)
            results = self._search_vectors(queries, k, visual)
        return results[0] if single else results

    def _caption_queries(self, images, sources) -> tuple[list[str], np.ndarray | None]:
        """Generated captions of the query images and their feature grids, the encoder run once
        for both (grids None for a captioner that only captions); ImageError naming an unreadable one."""
        captioner = self.captioner
        if hasattr(captioner, "encode") and hasattr(captioner, "caption_features"):
            grids, kept = captioner.encode(sources)
            if len(kept) != len(sources):
                bad = min(set(range(len(sources))) - set(kept))
                raise ImageError(f"{_source_name(images[bad])}: not a readable image")
            return list(captioner.caption_features(grids, self.sampler)), np.asarray(grids, np.float32)
        captions = captioner.caption(sources, sampler=self.sampler)
        for source, text in zip(images, captions):
            if text is None:
                raise ImageError(f"{_source_name(source)}: not a readable image")
        return list(captions), None

    def _searchable(self) -> bool:
        return self.index is not None and len(self.metadata) > 0 and self.embedder.fitted

    def _search_vectors(self, queries: np.ndarray, k: int, visual: np.ndarray | None = None) -> list[list[Hit]]:
        if self.index is None:
            return [[] for _ in queries]
        if visual is None:
            found = self.index.search(queries, k)
        else:
            found = [self._hybrid(q, v, k) for q, v in zip(queries, visual)]
        return [[self._hit(i, s) for i, s in hits] for hits in found]

    def _hybrid(self, query: np.ndarray, visual: np.ndarray, k: int) -> list[tuple[int, float]]:
        index, table = self.index, self.visual
        if index is None or table is None:
            return []
        n = max(k, HYBRID_CANDIDATES)
        candidates = {i for i, _ in index.search(query[None], n)[0]}
        visual_scores = table.vectors @ visual
        top = np.argsort(-visual_scores)[:n]
        candidates.update(int(table.ids[j]) for j in top)
        ids = sorted(i for i in candidates if i in table and i in index.table)  # ties: lower id first
        w = self.hybrid_weight
        scores = (1 - w) * (index.table.get(ids) @ query) + w * (table.get(ids) @ visual)
        order = np.argsort(-scores, kind="stable")[:k]
        return [(ids[j], float(scores[j])) for j in order]

    def _hit(self, item_id: int, score: float) -> Hit:
        r = self.metadata.records[item_id]
        return Hit(item_id, r.image, float(score), r.caption, r.references, r.label)

    # -- persistence ---------------------------------------------------------------------------
    def get_config(self) -> dict:
        """JSON-able settings saved with the index: the retriever's settings, the embedder's, the
        captioner reference and the vector index state."""
        return {
            "index_factory": self.index_factory,
            "search_params": self.search_params,
            "beam_width": self.beam_width,
            "sampler": serialize_sampler(self.sampler),
            "use_references": self.use_references,
            "hybrid_weight": self.hybrid_weight,
            "batch_size": self.batch_size,
            "embedder": self.embedder.get_config(),
            "captioner": {"model_dir": self.model_dir, "config": _captioner_description(self.model_dir)},
            "vector_index": self.index.get_config() if self.index is not None else None,
        }

    settings = get_config  # the name it had
    format_version = FORMAT_VERSION  # of the directory this retriever was loaded from (set by load and save)
    _source: str | None = None  # the directory this retriever was loaded from (or last saved to, once loaded)
    _generation = 0  # that directory's generation when it was read or saved

    @property
    def generation(self) -> int | None:
        """The generation (:func:`gemcaption.persistence.read_generation`) of the saved version this
        retriever holds; None when it was not loaded from a directory. A server compares it with
        ``read_generation(directory)`` to know a newer version is in place."""
        return self._generation if self._source is not None else None

    def save(self, directory, *, timeout: float = DEFAULT_TIMEOUT) -> Path:
        """Write the index to ``directory`` atomically (a crash mid-save keeps the old one); the
        layout is in the module doc. Another process writing it meanwhile is waited for (up to
        ``timeout`` seconds, then :class:`~gemcaption.errors.LockedError`). A retriever loaded from
        ``directory`` refuses (:class:`~gemcaption.errors.ConflictError`) to overwrite a version another
        process saved after the load, which would drop that process's images: use :meth:`edit`."""

        def write(staged: Path) -> None:
            self.metadata.write(staged / METADATA_FILE)
            if self.embedder.fitted:
                write_embedder(self.embedder, staged / "embedder")
            if self.index is not None:
                self.index.save(staged)
            if self.visual is not None and self.visual_mean is not None:
                self.visual.save(staged, "visual")
                np.save(staged / "visual_mean.npy", self.visual_mean)

        target = Path(directory).absolute()
        expected = self._generation if self._source == str(target) else None
        with lock_directory(target, timeout, "index"):
            path = save_directory(
                directory,
                FORMAT,
                FORMAT_VERSION,
                KIND,
                self.get_config(),
                write,
                expected_generation=expected,
                timeout=timeout,
                what="index",
            )
            if self._source is not None:
                self._source, self._generation = str(target), read_generation(target)
        self.format_version = FORMAT_VERSION
        return path

    @classmethod
    @contextlib.contextmanager
    def edit(
        cls, directory, captioner=None, *, model_dir=None, progress: bool = True, timeout: float = DEFAULT_TIMEOUT
    ) -> Iterator[Retriever]:
        """``with Retriever.edit("idx") as retriever: retriever.add(images)``: change a saved index
        safely while other processes may write it too. The block holds the index's lock (waiting up
        to ``timeout`` seconds for another writer, then :class:`~gemcaption.errors.LockedError`), gets
        the current version, and saves it when the block ends without an error; so writers queue
        and each sees the others' images."""
        directory = resolve_directory(directory)  # "no such directory" before any lock file is made
        with lock_directory(directory, timeout, "index"):
            retriever = cls.load(directory, captioner, model_dir=model_dir, progress=progress)
            yield retriever
            retriever.save(directory, timeout=timeout)

    @classmethod
    def load(cls, directory, captioner=None, *, model_dir=None, progress: bool = True) -> Retriever:
        """An index written by :meth:`save` (or by the previous release). The captioner is
        ``captioner`` if given, else loaded from ``model_dir`` (default: the saved reference) when
        an image must be captioned. A version saved by another process while this reads is never
        mixed with the previous one: the read starts again."""
        return read_consistently(directory, lambda found: cls._read(found, captioner, model_dir, progress))

    @classmethod
    def _read(cls, directory: Path, captioner, model_dir, progress: bool) -> Retriever:
        generation = 0
        if has_manifest(directory):
            manifest = read_manifest(directory, FORMAT, (FORMAT_VERSION,))
            config, generation = manifest.config, manifest.generation
            metadata, _ = MetadataStore.read(directory / METADATA_FILE)
            index_config, version = config.get("vector_index"), FORMAT_VERSION
        else:
            metadata, config = _read_legacy_settings(directory)
            index_config = read_json(directory / "index.json") if (directory / "index.json").is_file() else None
            version = LEGACY_FORMAT_VERSION
        embedder = load_embedder(directory / "embedder") if (directory / "embedder").is_dir() else None
        try:
            self = cls(
                captioner,
                embedder,
                model_dir=model_dir or config["captioner"]["model_dir"],
                index_factory=config["index_factory"],
                search_params=config["search_params"],
                sampler=config.get("sampler"),  # older indexes only have beam_width
                beam_width=None if config.get("sampler") else config["beam_width"],
                use_references=config["use_references"],
                hybrid_weight=config["hybrid_weight"],
                batch_size=config["batch_size"],
                progress=progress,
            )
        except (KeyError, TypeError, ValueError) as exc:  # ValueError: ConfigError, settings out of range
            raise ModelError(f"damaged: {directory} (index settings: {exc.__class__.__name__}: {exc})") from None
        self.metadata, self.format_version = metadata, version  # the version read, until saved again
        self._source, self._generation = str(directory), generation
        if index_config is not None:
            self.index = VectorIndex.load(directory, index_config)
        if (directory / "visual_ids.npy").is_file():
            from ..persistence import damaged, reading

            with reading(directory / "visual_mean.npy"):
                self.visual_mean = np.load(directory / "visual_mean.npy", allow_pickle=False)
            if self.visual_mean.ndim != 1 or self.visual_mean.dtype.kind != "f":
                raise damaged(directory / "visual_mean.npy", f"shape {self.visual_mean.shape}, not a float vector")
            self.visual = VectorTable.load(directory, "visual", len(self.visual_mean))
        if self.index is not None and len(self.index) != len(metadata):
            raise ModelError(f"damaged: {directory} (index and metadata disagree: {len(self.index)}, {len(metadata)})")
        return self

    def __repr__(self) -> str:
        factory = self.index.factory if self.index is not None else self.index_factory
        return f"Retriever({len(self)} images, embedder={self.embedder.kind}, index={factory!r})"


def _captioner_description(model_dir: str | None) -> dict | None:
    """What the captioner directory says it is (its manifest without checksums, or a version-1
    ``config.json``), kept in the index so it tells which model captioned it; None if unreadable."""
    if not model_dir:
        return None
    for name in ("manifest.json", "config.json"):
        path = Path(model_dir, name)
        if path.is_file():
            try:
                payload = read_json(path)
            except ModelError:
                return None
            return {k: v for k, v in payload.items() if k != "files"} if isinstance(payload, dict) else None
    return None


def _read_legacy_settings(directory: Path) -> tuple[MetadataStore, dict]:
    """Records and settings of a format version 1 index (settings in SQLite, no manifest)."""
    metadata, settings = MetadataStore.read(directory / METADATA_FILE)
    if settings.get("format") != FORMAT:
        raise ModelError(f"{directory}: not a gemcaption index")
    version = settings.get("format_version")
    if version != LEGACY_FORMAT_VERSION:
        raise ModelError(
            f"{directory}: {FORMAT} format version {version!r} without a manifest.json is not "
            f"supported (this gemcaption reads version {LEGACY_FORMAT_VERSION} so, "
            f"{FORMAT_VERSION} with a manifest)"
        )
    return metadata, settings
