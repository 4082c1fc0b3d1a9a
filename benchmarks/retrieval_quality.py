"""Retrieval quality of the learned caption-embedding space against caption matching, CCA and visual-only cosine.

One table per data set, chance beside every figure (docs/evaluation.md):

* Flickr8k dev (1,000 images, 5,000 captions): text -> image (t2i), annotation (image -> its 5
  captions among 5,000: ann) and image -> caption -> image (i2t) R@1/5/10, mAP, median rank for
  caption matching (a trained captioner's generated captions, TF-IDF + SVD, today's default; needs
  ``--captioner``), regularised CCA (TF-IDF-SVD text x mean image features), every learned-space
  variant, and the chosen fusion (image projection + generated-caption embedding, weights chosen on dev).
* Jewellery catalogue (271 photos, Spanish captions): a photo queried by itself (self@1), and
  same-category leave-one-out R@1 / mAP, for visual-only cosine, the space's image projection and the
  fused index vector (projection + reference captions); the space is trained on the catalogue.
* Gemstones (68 classes, shared train photos, seeded 75/25 split): the space is trained on the
  train part (captions from the gemstone table); same-class leave-one-out mAP on the held-out part for
  visual-only cosine, caption-only (the space's text embedding of the class description the space
  itself predicts for the photo) and the image projection.

    python benchmarks/retrieval_quality.py [--captioner /work/runs/space/captioner] [--quick]

Features come from the feature cache (warm it once: the first CNN pass over 8,000 images takes minutes).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
from common import SHARED, machine, table, write_results

RANKS = ("r1", "r5", "r10", "map", "medr")

FLICKR_VARIANTS = {  # name -> SpaceConfig settings (hard_negative_weight 0 unless given); the best is the default
    "mean words, mean grid, fixed T=0.07": {},
    "mean words, learned T": {"learn_temperature": True},
    "mean words + hard negatives": {"hard_negative_weight": 0.5},
    "mean words, init from TF-IDF-SVD word vectors": {"word_dim": 256, "init": "lsa"},
    "Transformer words": {"text_encoder": "transformer"},
    "GRU words": {"text_encoder": "gru"},
    "mean words, attention pooling": {"image_pooling": "attention"},
    "mean words + hard negatives, dropout 0.5, weight decay 0.2": {
        "hard_negative_weight": 0.5,
        "dropout": 0.5,
        "weight_decay": 0.2,
    },
    "mean words + hard negatives, wide (dim 512, hidden 2048)": {
        "hard_negative_weight": 0.5,
        "dim": 512,
        "hidden_dim": 2048,
    },
    "mean words + hard negatives, seed 1": {"hard_negative_weight": 0.5, "seed": 1},
}
ENSEMBLES = {  # name -> variants whose unit vectors are concatenated (cosine = mean of their cosines)
    "ensemble of two seeds (mean words + hard negatives, seeds 0 and 1)": (
        "mean words + hard negatives",
        "mean words + hard negatives, seed 1",
    ),
}


def log(*parts) -> None:
    print(*parts, file=sys.stderr, flush=True)


def grids_of(images):
    from gemcaption.captioning.encoders import build_encoder, default_pretrained_encoder
    from gemcaption.captioning.features import extract_features

    name, weights = default_pretrained_encoder()
    grids, kept = extract_features(build_encoder(name, 224, weights), images, progress=False)
    return grids.astype(np.float16), kept


def unit(x):
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def flat(captions):
    return [c for caps in captions for c in caps], [i for i, caps in enumerate(captions) for _ in caps]


def pick(figures: dict, prefixes=("t2i", "ann", "i2t")) -> dict:
    return {f"{p}_{k}": figures[f"{p}_{k}"] for p in prefixes for k in RANKS if f"{p}_{k}" in figures}


def chance_of(figures: dict, prefixes=("t2i", "ann", "i2t")) -> dict:
    return {f"{p}_{k}": figures[f"{p}_{k}_chance"] for p in prefixes for k in RANKS if f"{p}_{k}_chance" in figures}


def lsa_word_vectors(tfidf) -> tuple[list[str], np.ndarray]:
    """(words, vectors): each word's idf-weighted column of the TF-IDF + SVD components."""
    terms = sorted(tfidf.vocabulary, key=tfidf.vocabulary.get)
    return terms, (tfidf.components * tfidf.idf[None, :]).T


# -- Flickr8k ---------------------------------------------------------------------------------------
def flickr(args) -> dict:
    from gemcaption.data.loaders import load_dataset
    from gemcaption.evaluation.protocols import cross_modal_figures, retrieval_figures
    from gemcaption.retrieval.embedders import build_embedder
    from gemcaption.space import CaptionSpace, SpaceConfig
    from gemcaption.space.cca import RegularizedCCA
    from gemcaption.space.fusion import Fusion, choose_weights

    data = load_dataset(f"flickr8k:{args.data / 'flickr8k'}")
    train, dev = data.split("train"), data.split("dev")
    if args.quick:
        train.samples, dev.samples = train.samples[:1200], dev.samples[:300]
    train_grids, kept = grids_of(train.images)
    train_caps = [list(train.captions[i]) for i in kept]
    dev_grids, kept = grids_of(dev.images)
    dev_caps = [list(dev.captions[i]) for i in kept]
    dev_texts, owners = flat(dev_caps)
    log(f"flickr8k: {len(train_caps)} train, {len(dev_caps)} dev images")
    rows, chance = [], None
    tfidf = build_embedder().fit(flat(train_caps)[0])

    generated = None
    if args.captioner:
        from gemcaption.captioning.captioner import Captioner

        captioner = Captioner.load(args.captioner)
        generated = captioner.caption_features(dev_grids.astype(np.float32), "greedy")
        figures = retrieval_figures(generated, dev_caps, embedder=tfidf)
        gen_vectors = tfidf.transform(generated)
        ann = cross_modal_figures(gen_vectors, tfidf.transform(dev_texts), owners)
        figures.update({k: v for k, v in ann.items() if k.startswith("ann_")})
        rows.append({"method": "caption matching (TF-IDF+SVD of generated captions)", **pick(figures)})

    started = time.perf_counter()
    train_texts, train_owners = flat(train_caps)
    cca = RegularizedCCA(dim=args.cca_dim, reg=0.1, power=4.0)
    cca.fit(tfidf.transform(train_texts), train_grids.astype(np.float32).mean(axis=1)[train_owners])
    cca_seconds = time.perf_counter() - started
    dev_mean = dev_grids.astype(np.float32).mean(axis=1)
    cca_images = cca.transform_image(dev_mean)
    figures = cross_modal_figures(cca_images, cca.transform_text(tfidf.transform(dev_texts)), owners, cca_images)
    chance = chance_of(figures)
    rows.append(
        {
            "method": f"CCA ({args.cca_dim}-d, TF-IDF-SVD x mean features)",
            **pick(figures),
            "train_seconds": round(cca_seconds, 1),
        }
    )

    spaces = {}
    variants = dict(FLICKR_VARIANTS)
    if args.captioner:
        variants["mean words, init from decoder"] = {"word_dim": captioner.config.decoder.embed_dim, "init": "decoder"}
    for name, settings in variants.items():
        if args.only and name not in args.only:
            continue
        settings = dict(settings)
        init = settings.pop("init", None)
        # the variants of the committed run had no hard negatives unless they say so (the default now has them)
        config = SpaceConfig(epochs=args.epochs, **{"hard_negative_weight": 0.0, **settings})
        word_vectors = None
        if init == "decoder":
            layer = captioner.decoder.token_embedding
            word_vectors = (list(captioner.vocabulary.words), np.asarray(layer.embeddings.numpy()))
        elif init == "lsa":  # the TF-IDF + SVD word vectors of the train captions
            word_vectors = lsa_word_vectors(tfidf)
        log(f"training space: {name}")
        space = CaptionSpace.fit(train_grids, train_caps, dev_grids, dev_caps, config, word_vectors=word_vectors)
        spaces[name] = space
        images = space.embed_images(dev_grids)
        figures = cross_modal_figures(images, space.embed_texts(dev_texts), owners, images)
        h = space.history
        rows.append(
            {
                "method": f"space: {name}",
                **pick(figures),
                "train_seconds": round(h["seconds"], 1),
                "epochs_run": h["epochs_run"],
                "best_epoch": h["best_epoch"],
                "temperature": round(h["temperature"][h["best_epoch"] - 1], 4),
            }
        )
        log(table(rows[-1:], ["method", "t2i_r1", "t2i_r5", "t2i_r10", "ann_r1", "ann_r10", "i2t_map"]))
    for name, members in ENSEMBLES.items():
        if not all(m in spaces for m in members):
            continue
        images = np.concatenate([spaces[m].embed_images(dev_grids) for m in members], axis=1) / np.sqrt(len(members))
        texts = np.concatenate([spaces[m].embed_texts(dev_texts) for m in members], axis=1) / np.sqrt(len(members))
        figures = cross_modal_figures(images, texts, owners, images)
        seconds = sum(spaces[m].history["seconds"] for m in members)
        rows.append({"method": f"space: {name}", **pick(figures), "train_seconds": round(seconds, 1)})
        log(table(rows[-1:], ["method", "t2i_r1", "t2i_r5", "t2i_r10", "ann_r1", "ann_r10", "i2t_map"]))
    if args.captioner and getattr(captioner, "space", None) is not None:
        rows.extend(trained_space_rows(captioner, dev_grids, dev_texts, owners, generated))
    if args.merge:
        rows.extend(earlier_rows(rows))
    space_rows = [r for r in rows if r["method"].startswith("space: ") and r["method"][7:] in spaces]
    best_row = max(space_rows, key=lambda r: r["t2i_r1"] + r["t2i_r5"] + r["t2i_r10"])
    best_name = best_row["method"][len("space: ") :]
    space = spaces[best_name]
    fusion_out = {"variant": best_name}
    if generated is not None:
        projection = space.embed_images(dev_grids)
        gen = space.embed_texts(generated)
        captions = space.embed_texts(dev_texts)

        def score(f: Fusion) -> float:
            figs = cross_modal_figures(f.gallery(projection, gen), captions, owners, f.image_query(projection, gen))
            return figs["t2i_r1"] + figs["t2i_r5"] + figs["t2i_r10"] + 3 * figs["i2t_map"]

        grid = [Fusion(1.0, g, 0.0, q) for g in (0.0, 0.1, 0.2, 0.3, 0.5) for q in (0.0, 0.1, 0.2, 0.3, 0.5)]
        chosen, _ = choose_weights(score, grid)
        figures = cross_modal_figures(
            chosen.gallery(projection, gen), captions, owners, chosen.image_query(projection, gen)
        )
        rows.append(
            {
                "method": f"fusion: {best_name} + generated caption "
                f"(gallery g={chosen.generated}, query q={chosen.query_generated})",
                **pick(figures),
            }
        )
        fusion_out["weights"] = chosen.get_config()
    if args.save_space:
        space.save(args.save_space)
    log(f"best variant: {best_name}")
    return {
        "rows": rows,
        "chance": chance,
        "best_variant": best_name,
        "fusion": fusion_out,
        "train_images": len(train_caps),
        "dev_images": len(dev_caps),
        "dev_captions": len(dev_texts),
        "history": {name: s.history for name, s in spaces.items()},
        "captioner": describe_captioner(captioner) if args.captioner else None,
    }


def trained_space_rows(captioner, dev_grids, dev_texts, owners, generated) -> list[dict]:
    """Rows of the space ``gemcaption train`` trained with the captioner (early-stopped on dev) and of
    the fusion it chose on dev at train time: gallery = projection + generated caption, image query =
    projection + generated caption (reference captions are the text queries, so none in the gallery)."""
    from gemcaption.evaluation.protocols import cross_modal_figures

    space = captioner.space
    projection = space.embed_images(dev_grids)
    captions = space.embed_texts(dev_texts)
    figures = cross_modal_figures(projection, captions, owners, projection)
    h = space.history
    rows = [
        {
            "method": "space trained by gemcaption train "
            f"(defaults; best epoch {h['best_epoch']} of {h['epochs_run']})",
            **pick(figures),
            "train_seconds": round(h["seconds"], 1),
        }
    ]
    if space.fusion is not None:
        fusion, gen = space.fusion, space.embed_texts(generated)
        gallery, queries = fusion.gallery(projection, gen), fusion.image_query(projection, gen)
        figures = cross_modal_figures(gallery, captions, owners, queries)
        rows.append(
            {
                "method": "index vectors with the fusion gemcaption train chose on dev "
                f"(gallery: projection + {fusion.generated:g} x generated caption; "
                f"image query: projection + {fusion.query_generated:g} x generated caption)",
                **pick(figures),
            }
        )
    return rows


def describe_captioner(captioner) -> str:
    h = captioner.history
    return (
        f"{captioner.model_dir}: {captioner.decoder_name}, embedding {captioner.config.decoder.embed_dim}, "
        f"{h.get('best_epoch')} of {len(h.get('loss', []))} epochs, {round(h.get('seconds', 0))} s"
    )


def earlier_rows(rows: list[dict]) -> list[dict]:
    """The Flickr8k rows of the committed JSON whose method this run did not measure, marked as such."""
    earlier = committed()
    measured = {r["method"] for r in rows}
    kept = []
    load = earlier.get("machine_before", {}).get("load_average_1m")
    for row in earlier.get("flickr8k", {}).get("rows", []):
        if row["method"] not in measured:
            kept.append({**row, "earlier_run": row.get("earlier_run") or f"{earlier.get('command', '')} (load {load})"})
    return kept


# -- jewellery ---------------------------------------------------------------------------------------
def jewellery(args) -> dict:
    from gemcaption.evaluation.protocols import category_figures
    from gemcaption.evaluation.retrieval import retrieval_metrics
    from gemcaption.space import CaptionSpace, SpaceConfig
    from gemcaption.space.fusion import Fusion

    folder = args.data / "jewelry"
    captions: dict[str, list[str]] = {}
    category: dict[str, str] = {}
    with open(folder / "captions.csv", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            captions.setdefault(row["image"], []).append(row["caption"])
            if row["granularity"] == "category":
                category[row["image"]] = row["caption"]
    names = sorted(n for n in captions if (folder / "images" / n).is_file())
    grids, kept = grids_of([str(folder / "images" / n) for n in names])
    names = [names[i] for i in kept]
    caps = [captions[n] for n in names]
    labels = [category.get(n, "?") for n in names]
    started = time.perf_counter()
    config = SpaceConfig(epochs=40, batch_size=64, patience=40, min_count=1)
    space = CaptionSpace.fit(grids, caps, None, None, config, verbose=0)
    seconds = time.perf_counter() - started
    visual = unit(grids.astype(np.float32).mean(axis=1))
    projection = space.embed_images(grids)
    references = unit(np.stack([space.embed_texts(c).mean(axis=0) for c in caps]))
    fused = Fusion(1.0, 0.0, 1.0, 0.0)
    vectors = {
        "visual-only cosine (mean features)": (visual, visual),
        "space: image projection": (projection, projection),
        "space: index vector (projection + reference captions), image query": (
            fused.gallery(projection, reference=references),
            fused.image_query(projection),
        ),
    }
    rows = []
    n = len(names)
    for method, (gallery, queries) in vectors.items():
        self_scores = retrieval_metrics(queries @ gallery.T, np.eye(n, dtype=bool))
        row = {"method": method, "self_r1": self_scores["r1"], "self_medr": self_scores["medr"]}
        scores = queries @ gallery.T
        np.fill_diagonal(scores, -np.inf)
        row.update(category_figures_scores(scores, labels))
        rows.append(row)
    if args.jewellery_model:
        rows.append(product_index_row(args.jewellery_model, folder, names, caps, labels))
    text = space.embed_texts(sorted(set(labels)))
    return {
        "rows": rows,
        "images": n,
        "categories": sorted(set(labels)),
        "train_seconds": round(seconds, 1),
        "chance": {"self_r1": 1 / n, **category_chance(labels)},
        "text_queries": {
            lab: int(np.argmax(text[i] @ fused.gallery(projection, reference=references).T))
            for i, lab in enumerate(sorted(set(labels)))
        },
        "_unused": category_figures.__name__,
    }


def product_index_row(model_dir, folder, names, caps, labels) -> dict:
    """The product end to end: a model trained by ``gemcaption train`` on the catalogue (its space and
    the fusion it chose), a :class:`Retriever` index of every photo with its captions, and every
    photo searched by itself (``Retriever.search_image``: projection fused with its generated caption)."""
    from gemcaption.captioning.captioner import Captioner
    from gemcaption.retrieval.retriever import Retriever

    captioner = Captioner.load(model_dir)
    retriever = Retriever(captioner, progress=False)
    paths = [str(folder / "images" / n) for n in names]
    ids = retriever.add(paths, captions=caps, labels=labels)
    n = len(paths)
    hits = retriever.search_image(paths, k=n)
    ranks, scores = [], np.full((n, n), -10.0)
    position = {item: row for row, item in enumerate(ids)}
    for row, found in enumerate(hits):
        order = [h.id for h in found]
        ranks.append(order.index(ids[row]) + 1 if ids[row] in order else n + 1)
        for h in found:
            scores[row, position[h.id]] = h.score
    np.fill_diagonal(scores, -np.inf)
    fusion = retriever.embedder.fusion.get_config() if hasattr(retriever.embedder, "fusion") else None
    return {
        "method": f"product index: gemcaption train model ({retriever.embedder.kind}, fusion {fusion}), "
        "Retriever.search_image",
        "self_r1": float(np.mean(np.asarray(ranks) == 1)),
        "self_medr": float(np.median(ranks)),
        **category_figures_scores(scores, labels),
    }


def category_figures_scores(scores, labels) -> dict:
    from gemcaption.evaluation.retrieval import category_retrieval_metrics

    scores = np.where(np.isinf(scores), -10.0, scores)
    m = category_retrieval_metrics(scores, labels)
    return {"cat_r1": m["r1"], "cat_map": m["map"], "cat_p10": m["p10"]}


def category_chance(labels) -> dict:
    from gemcaption.evaluation.retrieval import category_retrieval_metrics

    m = category_retrieval_metrics(np.zeros((len(labels), len(labels))), labels)
    return {"cat_r1": m["chance_r1"], "cat_map": m["chance_map"], "cat_p10": m["chance_p10"]}


# -- gemstones ---------------------------------------------------------------------------------------
def gemstones(args) -> dict:
    from gemcaption.data.loaders import load_dataset
    from gemcaption.space import CaptionSpace, SpaceConfig

    data = load_dataset(f"folder:{args.data / 'gemstones' / 'train'}")
    grids, kept = grids_of(data.images)
    labels = [data.samples[i].label for i in kept]
    caps = [list(data.samples[i].captions) for i in kept]
    rng = np.random.default_rng(0)
    test = np.zeros(len(labels), bool)
    for label in sorted(set(labels)):
        rows = [i for i, lab in enumerate(labels) if lab == label]
        test[rng.permutation(rows)[: max(2, len(rows) // 4)]] = True
    train_idx, test_idx = np.flatnonzero(~test), np.flatnonzero(test)
    test_labels = [labels[i] for i in test_idx]
    started = time.perf_counter()
    config = SpaceConfig(epochs=30, batch_size=128, patience=30)
    space = CaptionSpace.fit(grids[train_idx], [caps[i] for i in train_idx], None, None, config, verbose=0)
    seconds = time.perf_counter() - started
    visual = unit(grids[test_idx].astype(np.float32).mean(axis=1))
    projection = space.embed_images(grids[test_idx])
    # class prediction through the space: nearest class description
    classes = sorted(set(labels))
    descriptions = {lab: caps[labels.index(lab)][0] for lab in classes}
    text = space.embed_texts([descriptions[c] for c in classes])
    predicted = np.argmax(projection @ text.T, axis=1)
    caption_vectors = text[predicted]  # the description of the class the space predicts, as a caption would be
    rows = []
    for method, vectors in {
        "visual-only cosine (mean features)": visual,
        "caption-only (space text of the predicted class description)": caption_vectors,
        "space: image projection": projection,
        "space: projection + predicted description": unit(projection + caption_vectors),
    }.items():
        scores = vectors @ vectors.T
        np.fill_diagonal(scores, -np.inf)
        rows.append({"method": method, **category_figures_scores(scores, test_labels)})
    accuracy = float(np.mean([classes[p] == lab for p, lab in zip(predicted, test_labels)]))
    return {
        "rows": rows,
        "train_images": int(len(train_idx)),
        "test_images": int(len(test_idx)),
        "classes": len(classes),
        "train_seconds": round(seconds, 1),
        "zero_shot_accuracy": accuracy,
        "chance": category_chance(test_labels),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED)
    parser.add_argument(
        "--captioner", default=None, help="a captioner trained on Flickr8k train (caption matching, fusion)"
    )
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--cca-dim", type=int, default=128)
    parser.add_argument("--sets", nargs="+", default=["jewellery", "gemstones", "flickr8k"])
    parser.add_argument("--only", nargs="*", default=None, help="train only these Flickr8k variants")
    parser.add_argument("--save-space", default=None, help="save the best Flickr8k space here")
    parser.add_argument("--quick", action="store_true", help="1,200 train / 300 dev images (smoke run)")
    parser.add_argument(
        "--jewellery-model", default=None, help="a model gemcaption train made on the catalogue (product index row)"
    )
    parser.add_argument(
        "--merge", action="store_true", help="keep the committed Flickr8k rows of methods this run does not measure"
    )
    parser.add_argument("--name", default="retrieval_quality")
    args = parser.parse_args()
    payload = {"command": " ".join(["python"] + sys.argv), "machine_before": machine()}
    cols = [
        "method",
        "t2i_r1",
        "t2i_r5",
        "t2i_r10",
        "t2i_medr",
        "ann_r1",
        "ann_r5",
        "ann_r10",
        "ann_medr",
        "i2t_r1",
        "i2t_r10",
        "i2t_map",
        "train_seconds",
    ]
    sections = {}

    def flickr_md(out):
        rows = [{**r, "method": r["method"] + (" (earlier run)" if r.get("earlier_run") else "")} for r in out["rows"]]
        earlier = sorted({r["earlier_run"] for r in out["rows"] if r.get("earlier_run")})
        return (
            f"## Flickr8k dev ({out['dev_images']} images, {out['dev_captions']} captions; trained on "
            f"{out['train_images']} train images)\n\n"
            + table(rows + [{"method": "chance", **out["chance"]}], cols)
            + f"\n\nBest space variant (dev t2i R@1+5+10): {out['best_variant']}. "
            + "Selection and figures are both on dev (the space's early stopping and the fusion weights too). "
            + "Caption matching and fusion rows use the captioner given with --captioner"
            + (f" ({out['captioner']})" if out.get("captioner") else "")
            + "."
            + (f" Rows marked (earlier run) are from: {'; '.join(earlier)}." if earlier else "")
        )

    def jewellery_md(out):
        return (
            f"## Jewellery catalogue ({out['images']} photos, categories {', '.join(out['categories'])}; space trained "
            f"on the catalogue in {out['train_seconds']} s)\n\n"
            + table(
                out["rows"] + [{"method": "chance", **out["chance"]}],
                ["method", "self_r1", "self_medr", "cat_r1", "cat_map", "cat_p10"],
            )
        )

    def gemstones_md(out):
        return (
            f"## Gemstones ({out['classes']} classes; space trained on {out['train_images']} photos in "
            f"{out['train_seconds']} s, same-class leave-one-out on {out['test_images']} held-out photos)\n\n"
            + table(out["rows"] + [{"method": "chance", **out["chance"]}], ["method", "cat_r1", "cat_map", "cat_p10"])
            + "\n\nZero-shot class accuracy through the space (nearest class description): "
            + f"{out['zero_shot_accuracy']:.3f}"
        )

    runners = {
        "flickr8k": (flickr, flickr_md),
        "jewellery": (jewellery, jewellery_md),
        "gemstones": (gemstones, gemstones_md),
    }
    if args.merge:  # the committed sections this run does not measure again stay, with their command
        earlier = committed()
        for name, (_, describe) in runners.items():
            if name not in args.sets and name in earlier:
                section = earlier[name]
                loads = section.get("load_average_1m") or [
                    earlier.get(k, {}).get("load_average_1m") for k in ("machine_before", "machine_after")
                ]
                payload[name] = {
                    **section,
                    "command": section.get("command") or earlier.get("command"),
                    "load_average_1m": loads,
                }
                sections[name] = (
                    describe(payload[name])
                    + f"\n\n(Measured by: `{payload[name]['command']}`; load average {loads[0]} before, "
                    + f"{loads[1]} after.)"
                )
    for name in args.sets:
        run, describe = runners[name]
        payload[name] = run(args)
        sections[name] = describe(payload[name])
        finish(args, payload, [sections[n] for n in runners if n in sections])


def committed() -> dict:
    """The committed benchmarks/results/retrieval_quality.json (empty when there is none)."""
    import json

    path = Path(__file__).parent / "results" / "retrieval_quality.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def finish(args, payload: dict, md: list[str]) -> None:
    """Write the JSON and the markdown of what has been measured so far."""
    payload["machine_after"] = machine()
    md = md + [
        f"Command: `{payload['command']}`; load average {payload['machine_before']['load_average_1m']} before, "
        f"{payload['machine_after']['load_average_1m']} after ({payload['machine_after']['cpus']} CPUs)."
    ]
    write_results(args.name, payload, "\n\n".join(md))


if __name__ == "__main__":
    main()
