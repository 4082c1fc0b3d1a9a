"""Flickr8k: train both decoders on the train split, select on dev, report every figure on dev.

Captioning (BLEU-1..4, TF-IDF cosine) and retrieval (image->caption->image and text->image:
R@1/5/10, mAP, median rank, with chance levels) follow docs/evaluation.md. The test split is held
back by the data owners, so the dev split serves both for selection and for the reported figures:
treat them as optimistic by the amount model selection can add. Seed paper 003's figures are
printed beside ours.

    python benchmarks/flickr8k.py [--data-dir ../shared/data/flickr8k] [--epochs 15] [--limit N]

On 2 cores the two decoders can train in parallel processes, then be evaluated together:
    python benchmarks/flickr8k.py --train-only --decoders transformer &
    python benchmarks/flickr8k.py --train-only --decoders lstm; wait
    python benchmarks/flickr8k.py --reuse
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import ROOT, SHARED, machine, table, write_results

SEED_003 = {  # seed paper 003, Flickr8k retrieval figures
    "lstm": {"map": 0.0052, "r1": 0.0013, "r5": 0.0039, "r10": 0.0046},
    "transformer": {"map": 0.0045, "r1": 0.0, "r5": 0.0026, "r10": 0.0052},
}
RANKS = ("r1", "r5", "r10", "map", "medr")


def caption_dev(captioner, dev, beam_width):
    captions = captioner.caption(dev.images, beam_width=beam_width, progress=True)
    kept = [i for i, c in enumerate(captions) if c is not None]
    return [captions[i] for i in kept], [tuple(dev.captions[i]) for i in kept]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(SHARED / "flickr8k"))
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--embed-dim", type=int, default=512)
    parser.add_argument("--beam", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None, help="first N train and N//6 dev images (smoke runs)")
    parser.add_argument("--decoders", nargs="+", default=["transformer", "lstm"])
    parser.add_argument("--models-dir", default=str(ROOT / "runs" / "flickr8k"))
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="load models already trained into --models-dir (e.g. by parallel --train-only runs)",
    )
    parser.add_argument("--train-only", action="store_true", help="train and save the models, no evaluation")
    args = parser.parse_args()

    from gemcaption.captioning.captioner import Captioner
    from gemcaption.captioning.encoders import default_pretrained_encoder
    from gemcaption.captioning.saving import is_captioner_directory
    from gemcaption.data.loaders import Dataset, load_dataset
    from gemcaption.evaluation.captioning import bleu, tfidf_cosine
    from gemcaption.evaluation.protocols import retrieval_figures
    from gemcaption.retrieval.embedders import MeanTokenEmbedder, build_embedder

    data = load_dataset(f"flickr8k:{args.data_dir}")
    train, dev = data.split("train"), data.split("dev")
    if args.limit:
        train = Dataset(train.samples[: args.limit], name="flickr8k-train")
        dev = Dataset(dev.samples[: max(50, args.limit // 6)], name="flickr8k-dev")
    train_refs = [c for caps in train.captions for c in caps]
    encoder, weights = default_pretrained_encoder()
    runs, models = [], {}
    for name in args.decoders:
        model_dir = Path(args.models_dir) / name
        if args.reuse and is_captioner_directory(model_dir):
            captioner = Captioner.load(model_dir)
            history = captioner.history
            seconds = history["seconds"]
        else:
            captioner = Captioner(
                name,
                encoder=encoder,
                image_size=224,
                weights=weights,
                min_count=5,
                embed_dim=args.embed_dim,
                ff_dim=args.embed_dim,
                seed=0,
            )
            started = time.perf_counter()
            history = captioner.fit(train, dev, epochs=args.epochs, batch_size=args.batch_size, patience=3, verbose=2)
            seconds = time.perf_counter() - started
            captioner.save(model_dir)
        models[name] = captioner
        if args.train_only:
            continue
        embedder = build_embedder().fit(train_refs)
        for beam in (1, args.beam):
            generated, references = caption_dev(captioner, dev, beam)
            row = {
                "decoder": name,
                "beam": beam,
                "epochs_run": len(history["loss"]),
                "best_epoch": history["best_epoch"],
                "train_seconds": round(seconds, 1),
                "best_val_loss": min(history["val_loss"]),
            }
            row.update(bleu(references, generated))
            row["tfidf_cosine"] = tfidf_cosine(references, generated)["tfidf_cosine"]
            row.update(retrieval_figures(generated, references, embedder=embedder))
            row["examples"] = [
                {"image": dev.images[i], "generated": generated[i], "references": list(references[i])} for i in range(3)
            ]
            runs.append(row)

    if args.train_only:
        return

    def score(row):  # selection on dev: mean of the two retrieval mAPs
        return (row["i2t_map"] + row["t2i_map"]) / 2

    best = max(runs, key=score)
    # caption embedders compared on the selected model's dev captions
    captioner = models[best["decoder"]]
    generated, references = caption_dev(captioner, dev, best["beam"])
    embedders = {
        "tfidf_svd (256-d)": build_embedder().fit(train_refs),
        "tfidf_svd (512-d, uni+bigrams)": build_embedder(dim=512, ngram_max=2).fit(train_refs),
        "mean_tokens (decoder embeddings)": MeanTokenEmbedder.from_captioner(captioner).fit(train_refs),
    }
    embedder_rows = []
    for label, embedder in embedders.items():
        figures = retrieval_figures(generated, references, embedder=embedder)
        embedder_rows.append({"embedder": label, **{k: v for k, v in figures.items() if not k.endswith("_chance")}})

    columns = [
        "decoder",
        "beam",
        "bleu1",
        "bleu4",
        "tfidf_cosine",
        "i2t_r1",
        "i2t_r5",
        "i2t_r10",
        "i2t_map",
        "i2t_medr",
        "t2i_r1",
        "t2i_r5",
        "t2i_r10",
        "t2i_map",
        "t2i_medr",
        "train_seconds",
        "epochs_run",
    ]
    seed_rows = [{"model": f"seed 003 {k}", **v} for k, v in SEED_003.items()]
    chance = {k: runs[0][f"{k}_chance"] for k in ("i2t_r1", "i2t_r10", "i2t_map", "i2t_medr", "t2i_r1", "t2i_map")}
    md = (
        f"Flickr8k, trained on {len(train)} train images, figures on {len(dev)} dev images. Encoder "
        f"{captioner.encoder.name} 224 px ({captioner.encoder.weights_source}); embedding {args.embed_dim}; "
        f"up to {args.epochs} epochs, early stopping (patience 3) on dev loss. Selected: {best['decoder']} "
        f"beam {best['beam']} (best mean retrieval mAP on dev).\n\n"
        + table(runs, columns)
        + "\n\nSeed paper 003 as published (its retrieval protocol is not specified beyond Flickr8k):\n\n"
        + table(seed_rows, ["model", "r1", "r5", "r10", "map"])
        + "\n\nChance: "
        + ", ".join(f"{k} {v:.4g}" for k, v in chance.items())
        + "\n\nCaption embedders on the selected model's dev captions:\n\n"
        + table(embedder_rows, ["embedder", "i2t_r1", "i2t_r10", "i2t_map", "t2i_r1", "t2i_r10", "t2i_map"])
    )
    write_results(
        "flickr8k",
        {
            "runs": runs,
            "selected": {"decoder": best["decoder"], "beam": best["beam"]},
            "embedders": embedder_rows,
            "seed_003": SEED_003,
            "train_images": len(train),
            "dev_images": len(dev),
            "epochs": args.epochs,
            "embed_dim": args.embed_dim,
            "machine": machine(),
        },
        md,
    )


if __name__ == "__main__":
    main()
