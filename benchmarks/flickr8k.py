"""Flickr8k: caption-decoder variants trained on the train split, every figure on the dev split.

Each variant is one change against the baseline (the `gemcaption train` defaults with the
benchmark's embedding size): its best dev loss (plain cross-entropy, also with label smoothing),
best epoch, training seconds, BLEU-1..4, CIDEr-D and TF-IDF cosine for greedy and beam search,
and caption-matching retrieval (image -> caption -> image, text -> image; docs/evaluation.md).
Captions are tokenised by gemcaption.text.tokenize (lower case, punctuation dropped) for every
metric; CIDEr-D takes its IDF from the dev references. The test split is held back by the data
owners, so the dev split serves both for choosing and for the figures: read them as optimistic.

    python benchmarks/flickr8k.py --variants baseline attention_lstm [--limit 2000] [--epochs 15]

Results accumulate: a run replaces the rows of the variants it ran (same --limit) and keeps the
others, so variants can be run one per process. ``--reuse`` evaluates models already trained in
--models-dir. Writes benchmarks/results/flickr8k.{json,md} and flickr8k.curves.png (train and dev
loss and token accuracy per epoch, one line per variant).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from pathlib import Path

from common import RESULTS, ROOT, SHARED, machine, table, write_results

# name -> (what changes against the baseline, decoder config changes, training config changes)
VARIANTS: dict[str, tuple[str, dict, dict]] = {
    "baseline": ("Transformer, current defaults (dropout 0.1, peak LR 1e-3, cosine)", {}, {}),
    "label_smoothing": ("label smoothing 0.1", {}, {"label_smoothing": 0.1}),
    "dropout_0.3": ("dropout 0.3", {"dropout": 0.3}, {}),
    "weight_decay": ("AdamW, weight decay 0.1", {}, {"weight_decay": 0.1}),
    "lr_5e-4": ("peak learning rate 5e-4", {}, {"learning_rate": 5e-4}),
    "regularised": (
        "dropout 0.3 + label smoothing 0.1 + weight decay 0.1",
        {"dropout": 0.3},
        {"label_smoothing": 0.1, "weight_decay": 0.1},
    ),
    "attention_lstm": (
        "attention LSTM decoder (soft attention, Show, Attend and Tell)",
        {"kind": "attention_lstm"},
        {},
    ),
    "attention_lstm_lr_2e-3": (
        "attention LSTM, peak learning rate 2e-3",
        {"kind": "attention_lstm"},
        {"learning_rate": 2e-3},
    ),
    "attention_lstm_regularised": (
        "attention LSTM + dropout 0.3 + label smoothing 0.1",
        {"kind": "attention_lstm", "dropout": 0.3},
        {"label_smoothing": 0.1},
    ),
    "lstm": ("LSTM decoder (mean image feature as initial state)", {"kind": "lstm"}, {}),
}
EARLIER_KEYS = (
    "runs",
    "selected",
    "embedders",
    "seed_003",
    "train_images",
    "dev_images",
    "epochs",
    "embed_dim",
    "machine",
)
EARLIER_COMMAND = (
    "python benchmarks/flickr8k.py --epochs 10 --embed-dim 512 --models-dir runs/flickr8k-512 (earlier version)"
)
CAPTION_COLUMNS = ["bleu1", "bleu2", "bleu3", "bleu4", "cider_d", "tfidf_cosine"]
RETRIEVAL_COLUMNS = ["i2t_r1", "i2t_r10", "i2t_map", "t2i_r1", "t2i_r10", "t2i_map"]


def caption_dev(captioner, dev, beam_width):
    captions = captioner.caption(dev.images, beam_width=beam_width, progress=False)
    kept = [i for i, c in enumerate(captions) if c is not None]
    return [captions[i] for i in kept], [tuple(dev.captions[i]) for i in kept], kept


def train_variant(name, args, train, dev, encoder, weights):
    from gemcaption.captioning.captioner import Captioner
    from gemcaption.captioning.config import CaptionerConfig, DecoderConfig, EncoderConfig, TrainingConfig
    from gemcaption.captioning.saving import is_captioner_directory

    _, decoder_changes, training_changes = VARIANTS[name]
    model_dir = Path(args.models_dir) / (name if not args.limit else f"{name}-limit{args.limit}")
    if args.reuse and is_captioner_directory(model_dir):
        captioner = Captioner.load(model_dir)
        return captioner, captioner.history, captioner.training_config, model_dir
    decoder = DecoderConfig(embed_dim=args.embed_dim, ff_dim=args.embed_dim).replace(**decoder_changes)
    config = CaptionerConfig(encoder=EncoderConfig(encoder, 224, weights), decoder=decoder, min_count=5, seed=0)
    settings = TrainingConfig(epochs=args.epochs, batch_size=args.batch_size, patience=args.patience)
    settings = settings.replace(**training_changes)
    captioner = Captioner(config=config)
    history = captioner.fit(train, dev, config=settings, verbose=2, space=False)  # captions only
    captioner.save(model_dir)
    return captioner, history, settings, model_dir


def evaluate_variant(name, captioner, history, settings, args, dev, embedder, load_before):
    from gemcaption.evaluation.captioning import bleu, cider_d, tfidf_cosine
    from gemcaption.evaluation.protocols import retrieval_figures

    epochs_run = len(history["loss"])
    best = history["best_epoch"]
    row = {
        "variant": name,
        "change": VARIANTS[name][0],
        "decoder": captioner.decoder_name,
        "limit": args.limit,
        "dev_loss": round(min(history["val_loss"]), 4),
        "best_epoch": best,
        "epochs_run": epochs_run,
        "train_seconds": round(history["seconds"], 1),
        # epochs take about the same time, so the time to the best epoch is the share of epochs run
        "seconds_to_best_epoch_estimate": round(history["seconds"] * best / epochs_run, 1),
        "training_config": settings.get_config() if settings is not None else None,
        "decoder_config": captioner.config.decoder.get_config(),
        "history": {k: history[k] for k in ("loss", "val_loss", "masked_accuracy", "val_masked_accuracy")},
        "load_average_1m_before": load_before,
    }
    for beam in (1, args.beam):
        started = time.perf_counter()
        generated, references, kept = caption_dev(captioner, dev, beam)
        figures = {**bleu(references, generated), "cider_d": cider_d(references, generated)["cider_d"]}
        figures["tfidf_cosine"] = tfidf_cosine(references, generated)["tfidf_cosine"]
        if args.retrieval:
            figures.update(retrieval_figures(generated, references, embedder=embedder))
        figures["caption_seconds"] = round(time.perf_counter() - started, 1)
        figures["examples"] = [
            {
                "image": os.path.basename(dev.images[kept[i]]),
                "generated": generated[i],
                "references": list(references[i]),
            }
            for i in range(3)
        ]
        row["greedy" if beam == 1 else f"beam{beam}"] = figures
    row["load_average_1m_after"] = round(os.getloadavg()[0], 2)
    return row


def curves_png(rows) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for row in rows:
        h = row["history"]
        epochs = range(1, len(h["loss"]) + 1)
        label = row["variant"] + (f" (limit {row['limit']})" if row["limit"] else "")
        for ax, key in ((axes[0], "loss"), (axes[1], "masked_accuracy")):
            (line,) = ax.plot(epochs, h[key], "-o", markersize=3, label=f"{label} train")
            ax.plot(epochs, h["val_" + key], "--s", markersize=3, color=line.get_color(), label=f"{label} dev")
    axes[0].set_title("cross-entropy per epoch (train: with label smoothing if used)")
    axes[1].set_title("token accuracy per epoch")
    for ax in axes:
        ax.set_xlabel("epoch")
    axes[1].legend(fontsize=6, ncol=2)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


def markdown(rows, beam, payload) -> str:
    flat = []
    for row in rows:
        for decoding in ("greedy", f"beam{beam}"):
            if decoding in row:
                flat.append({**row, "decoding": decoding, **row[decoding]})
    columns = ["variant", "change", "limit", "decoding", "dev_loss", *CAPTION_COLUMNS]
    columns += ["best_epoch", "epochs_run", "train_seconds", "seconds_to_best_epoch_estimate"]
    has_retrieval = any("i2t_map" in r for r in flat)
    text = (
        f"Flickr8k, dev split; trained on the train split (first `limit` images when a limit is shown, "
        f"dev then its first limit // 6, at least 50). Encoder {payload['encoder']} 224 px; embedding "
        f"{payload['embed_dim']}; up to {payload['epochs']} epochs, early stopping (patience {payload['patience']}) "
        f"on dev loss, best weights kept. dev_loss: plain cross-entropy per real token. Tokenisation for every "
        f"metric: gemcaption.text.tokenize (NFC, lower case, letters/digits, punctuation dropped). BLEU: nltk "
        f"corpus BLEU, no smoothing. CIDEr-D: gemcaption.evaluation.cider_d (COCO toolkit's definition, IDF "
        f"from the dev references). METEOR: {payload['meteor_note']}. Seconds are wall time on a shared 2-core "
        f"machine (load averages in the JSON).\n\n" + table(flat, columns)
    )
    if has_retrieval:
        text += "\n\nCaption-matching retrieval on dev (generated captions against reference captions):\n\n"
        text += table(flat, ["variant", "limit", "decoding", *RETRIEVAL_COLUMNS])
    earlier = payload.get("earlier")
    if earlier and earlier.get("runs"):
        text += (
            f"\n\nEarlier run, kept from the previous version of this script (`{EARLIER_COMMAND}`; "
            f"{earlier.get('train_images')} train / {earlier.get('dev_images')} dev images, embedding "
            f"{earlier.get('embed_dim')}, up to {earlier.get('epochs')} epochs; no CIDEr-D then):\n\n"
        )
        text += table(
            earlier["runs"],
            ["decoder", "beam", "bleu1", "bleu4", "tfidf_cosine", "i2t_map", "t2i_map", "best_epoch", "epochs_run"],
        )
    return text


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(SHARED / "flickr8k"))
    parser.add_argument("--variants", nargs="+", default=["baseline"], choices=sorted(VARIANTS))
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--embed-dim", type=int, default=512)
    parser.add_argument("--beam", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None, help="first N train and N//6 dev images")
    parser.add_argument("--no-retrieval", dest="retrieval", action="store_false", help="skip retrieval figures")
    parser.add_argument("--models-dir", default=str(ROOT.parent / "runs" / "flickr8k"))
    parser.add_argument("--reuse", action="store_true", help="evaluate models already trained in --models-dir")
    parser.add_argument("--results", default="flickr8k", help="results name (e.g. flickr8k-smoke for a smoke run)")
    args = parser.parse_args()

    from gemcaption.captioning.encoders import default_pretrained_encoder
    from gemcaption.data.loaders import Dataset, load_dataset
    from gemcaption.evaluation.captioning import wordnet_available
    from gemcaption.retrieval.embedders import build_embedder

    data = load_dataset(f"flickr8k:{args.data_dir}")
    train, dev = data.split("train"), data.split("dev")
    if args.limit:
        train = Dataset(train.samples[: args.limit], name="flickr8k-train")
        dev = Dataset(dev.samples[: max(50, args.limit // 6)], name="flickr8k-dev")
    encoder, weights = default_pretrained_encoder()
    embedder = build_embedder().fit([c for caps in train.captions for c in caps]) if args.retrieval else None

    path = RESULTS / f"{args.results}.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    rows = [r for r in previous.get("variants", []) if "variant" in r]
    # the figures of the script's previous version (two decoders, no variants) stay until replaced
    earlier = previous.get("earlier") or ({k: previous[k] for k in EARLIER_KEYS if k in previous} or None)
    for name in args.variants:
        load_before = round(os.getloadavg()[0], 2)
        captioner, history, settings, _ = train_variant(name, args, train, dev, encoder, weights)
        row = evaluate_variant(name, captioner, history, settings, args, dev, embedder, load_before)
        rows = [r for r in rows if (r["variant"], r["limit"]) != (name, args.limit)] + [row]
        payload = {
            "variants": rows,
            "encoder": captioner.encoder.name,
            "embed_dim": args.embed_dim,
            "epochs": args.epochs,
            "patience": args.patience,
            "beam": args.beam,
            "train_images": len(train),
            "dev_images": len(dev),
            "meteor_note": "computed" if wordnet_available() else "absent (nltk WordNet data not installed here)",
            "command": "python benchmarks/flickr8k.py " + " ".join(sys.argv[1:]),
            "machine": machine(),
            "earlier": earlier,
        }
        write_results(args.results, payload, markdown(rows, args.beam, payload))
        (RESULTS / f"{args.results}.curves.png").write_bytes(curves_png(rows))


if __name__ == "__main__":
    main()
