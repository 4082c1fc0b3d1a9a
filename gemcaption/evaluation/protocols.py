"""The evaluation protocols behind ``gemcaption evaluate`` and the benchmarks (text: docs/evaluation.md).

On one split of a dataset, every readable image is captioned once (``beam_width``), then:

* captioning: corpus BLEU-1..4 and TF-IDF cosine of the generated captions against the references;
* ``i2t`` (image -> caption -> image): each image is a query; its generated caption's embedding is
  ranked against the gallery of the split's images, each represented by the L2-normalised mean of
  its reference captions' embeddings; relevant = the query image itself;
* ``t2i`` (text -> image): each reference caption is a query against the gallery of the split's
  images represented by their generated captions' embeddings; relevant = the caption's own image;
* ``cat`` (when the images have labels): leave-one-out within the split, images represented by
  their generated captions' embeddings; relevant = same label; mAP and precision@10.

:func:`cross_modal_figures` scores a joint text/image space (:mod:`gemcaption.space`) directly:
``t2i`` (each reference caption ranks the N images), ``ann`` (annotation: each image ranks all the
5N reference captions; relevant = its own, usually 5) and, when image query vectors are given,
``i2t`` (each image query ranks the N images represented by their reference captions).
:func:`category_figures` is leave-one-out same-label retrieval over any image vectors.

Embeddings come from the retriever's caption embedder (cosine = dot product), fitted on the
dataset's ``train`` split reference captions, or, when there is none, on the evaluated split's
references (said in ``embedder_fitted_on``). Every ranking figure has its chance level beside it
(``<name>_chance``): the expectation under a uniformly random ranking.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

from ..data.types import Dataset
from ..errors import DatasetError
from ..retrieval.embedders import build_embedder, embed_groups
from .captioning import bleu, tfidf_cosine
from .retrieval import category_retrieval_metrics, retrieval_metrics, same_item_relevance

RANK_KEYS = ("r1", "r5", "r10", "map", "medr")


def _prefixed(prefix: str, metrics: dict, keys) -> dict:
    out = {}
    for key in keys:
        out[f"{prefix}_{key}"] = metrics[key]
        out[f"{prefix}_{key}_chance"] = metrics[f"chance_{key}"]
    return out


def retrieval_figures(
    generated: Sequence[str],
    references: Sequence[Sequence[str]] | None = None,
    labels: Sequence[Hashable | None] | None = None,
    embedder: Any = None,
) -> dict:
    """``i2t_*``, ``t2i_*`` (when ``references``) and ``cat_*`` (when ``labels``) for one split.

    ``generated[i]`` is image i's generated caption, ``references[i]`` its reference captions,
    ``labels[i]`` its label; ``embedder`` is a fitted caption embedder (default: TF-IDF + SVD
    fitted on the references, or on the generated captions when there are none).
    """
    generated = list(generated)
    if not generated:
        raise DatasetError("no captioned images to evaluate")
    groups = [list(r) for r in references] if references is not None else []
    has_refs = references is not None and all(groups)
    if embedder is None:
        embedder = build_embedder().fit([c for group in groups for c in group] if has_refs else generated)
    out: dict = {}
    generated_vectors = embedder.transform(generated)
    if has_refs:
        references = groups
        gallery = embed_groups(embedder, groups)
        items = list(range(len(generated)))
        i2t = retrieval_metrics(generated_vectors @ gallery.T, same_item_relevance(items, items))
        owners = [i for i, refs in enumerate(references) for _ in refs]
        query_vectors = embedder.transform([c for refs in references for c in refs])
        t2i = retrieval_metrics(query_vectors @ generated_vectors.T, same_item_relevance(owners, items))
        out.update(_prefixed("i2t", i2t, RANK_KEYS))
        out.update(_prefixed("t2i", t2i, RANK_KEYS))
        out["t2i_queries"] = t2i["n_queries"]
    if labels is not None and all(label is not None for label in labels) and len(set(labels)) < len(labels):
        cat = category_retrieval_metrics(generated_vectors @ generated_vectors.T, list(labels))
        out.update(_prefixed("cat", cat, ("map", "p10")))
        out["cat_queries"] = cat["n_queries"]  # images whose label occurs at least twice
    return out


def _embedder_texts(dataset, split: str, references, generated) -> tuple[list[str], str]:
    """The captions the default embedder is fitted on, and a note saying which they are."""
    train = [c for refs in dataset.split("train").captions for c in refs] if "train" in dataset.splits else []
    if train:
        return train, "train references"
    if references is not None:
        return [c for refs in references for c in refs], f"{split} references"
    return list(generated), f"{split} generated"


def evaluate_split(
    captioner: Any,
    dataset: Dataset,
    split: str = "test",
    beam_width: int = 1,
    embedder: Any = None,
    progress: bool = True,
    sampler: Any = None,
) -> dict:
    """Captioning and retrieval figures of ``captioner`` on ``dataset.split(split)`` (module doc).

    ``sampler`` (a :mod:`gemcaption.captioning.samplers` object or spec) overrides ``beam_width``."""
    if split not in set(dataset.splits):
        raise DatasetError(f"dataset {dataset.name!r} has no split {split!r} (splits: {sorted(dataset.splits)})")
    part = dataset.split(split)
    if sampler is None:
        captions = captioner.caption(part.images, beam_width=beam_width, progress=progress)
    else:
        captions = captioner.caption(part.images, sampler=sampler, progress=progress)
        beam_width = int(getattr(sampler, "width", 1))  # greedy: 1
    kept = [i for i, text in enumerate(captions) if text is not None]
    if not kept:
        raise DatasetError(f"none of the {len(part)} images of split {split!r} could be read")
    generated = [captions[i] for i in kept]
    references = [tuple(part.captions[i]) for i in kept]
    labels = [part.samples[i].label for i in kept]
    has_refs = all(len(r) for r in references)
    fitted_on = "given"
    if embedder is None:
        fit_texts, fitted_on = _embedder_texts(dataset, split, references if has_refs else None, generated)
        embedder = build_embedder().fit(fit_texts)
    figures = {"split": split, "images": len(part), "unreadable": len(part) - len(kept), "beam_width": beam_width}
    if has_refs:
        figures.update(bleu(references, generated))
        figures["tfidf_cosine"] = tfidf_cosine(references, generated)["tfidf_cosine"]
    figures.update(retrieval_figures(generated, references if has_refs else None, labels, embedder))
    figures["embedder"] = embedder.get_config()["kind"]
    figures["embedder_fitted_on"] = fitted_on
    return figures


def format_report(figures: dict) -> str:
    """The figures as aligned ``name  value  (chance)`` lines."""
    lines = []
    for key, value in figures.items():
        if key.endswith("_chance"):
            continue
        chance = figures.get(f"{key}_chance")
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        lines.append(f"{key:20s} {shown:>10s}" + (f"   (chance {chance:.4f})" if chance is not None else ""))
    return "\n".join(lines)


def cross_modal_figures(
    image_vectors, caption_vectors, owners: Sequence[int], query_vectors=None, gallery_vectors=None
) -> dict:
    """``t2i_*`` and ``ann_*`` (annotation) figures of a joint space, with chance levels; ``i2t_*`` too
    when ``query_vectors`` (one per image) are given.

    ``image_vectors`` (N, D) represent the images for text queries, ``caption_vectors`` (M, D) the
    reference captions, ``owners[m]`` the image of caption m. For ``i2t`` the gallery is
    ``gallery_vectors`` (default: the normalised mean of each image's caption vectors).
    """
    import numpy as np

    images = np.asarray(image_vectors, np.float32)
    captions = np.asarray(caption_vectors, np.float32)
    owners = list(owners)
    items = list(range(len(images)))
    out: dict = {}
    t2i = retrieval_metrics(captions @ images.T, same_item_relevance(owners, items))
    out.update(_prefixed("t2i", t2i, RANK_KEYS))
    ann = retrieval_metrics(images @ captions.T, same_item_relevance(items, owners))
    out.update(_prefixed("ann", ann, RANK_KEYS))
    if query_vectors is not None:
        if gallery_vectors is None:
            sums = np.zeros_like(images)
            np.add.at(sums, np.asarray(owners), captions)
            gallery_vectors = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
        scores = np.asarray(query_vectors, np.float32) @ np.asarray(gallery_vectors, np.float32).T
        out.update(_prefixed("i2t", retrieval_metrics(scores, same_item_relevance(items, items)), RANK_KEYS))
    return out


def category_figures(vectors, labels: Sequence[Hashable], prefix: str = "cat") -> dict:
    """Leave-one-out same-label retrieval of unit ``vectors``: ``<prefix>_r1``, ``_r10``, ``_map``, ``_p10``..."""
    import numpy as np

    vectors = np.asarray(vectors, np.float32)
    metrics = category_retrieval_metrics(vectors @ vectors.T, list(labels))
    out = _prefixed(prefix, metrics, ("r1", "r5", "r10", "map", "p10"))
    out[f"{prefix}_queries"] = metrics["n_queries"]
    return out
