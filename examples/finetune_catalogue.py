"""Fine-tune a captioner on your own catalogue: a CSV of ``image,caption`` rows (any language).

    python examples/finetune_catalogue.py --csv ../shared/data/jewelry/captions.csv --epochs 20
    python examples/finetune_catalogue.py --csv ../shared/data/jewelry/captions.csv --epochs 1 --limit 40

Extra columns: ``label`` (e.g. the product category) and ``split`` (train/val/test) are used when
present; without a split column a seeded 80/20 split by image is made. Image paths are relative to
the CSV's folder or its ``images/`` subfolder. The shared jewellery set has Spanish captions.
The model directory also holds the learned caption space that ``gemcaption index build`` then uses
for search (``captioner.space``; trained after the decoder from the same cached features).
"""

from __future__ import annotations

import argparse
import random
import sys

from gemcaption.captioning.captioner import Captioner
from gemcaption.data.loaders import Dataset, load_dataset, split_dataset
from gemcaption.evaluation.captioning import caption_metrics


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", required=True, help="catalogue CSV with image,caption columns")
    parser.add_argument("--out", default="catalogue-model", help="where the trained model is saved")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--limit", type=int, default=None, help="use only N images (a seeded random subset)")
    parser.add_argument("--val-fraction", type=float, default=0.2, help="held out when the CSV has no split column")
    parser.add_argument("--embed-dim", type=int, default=256)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)

    dataset = load_dataset(f"csv:{args.csv}")
    if args.limit is not None:  # a seeded random subset: catalogues are often sorted by category
        samples = list(dataset.samples)
        random.Random(0).shuffle(samples)
        dataset = Dataset(samples[: args.limit], dataset.name)
    if set(dataset.splits) <= {"train"}:
        dataset = split_dataset(dataset, {"train": 1 - args.val_fraction, "val": args.val_fraction}, seed=0)
    validation_split = next((s for s in ("val", "dev", "test") if s in dataset.splits), None)
    train = dataset.split("train")
    validation = dataset.split(validation_split) if validation_split else None
    captioner = Captioner(
        "transformer",
        encoder="efficientnet_lite0",
        image_size=args.image_size,
        embed_dim=args.embed_dim,
        ff_dim=args.embed_dim,
        min_count=1,
    )
    if not args.quiet:
        print(
            f"training on {len(train)} images ({train.caption_count} captions), validating on "
            f"{len(validation) if validation else 0}; encoder: {captioner.encoder.weights_source}",
            file=sys.stderr,
        )
    captioner.fit(train, validation, epochs=args.epochs, batch_size=args.batch_size, verbose=0 if args.quiet else 2)
    captioner.save(args.out)

    if validation is not None and len(validation):
        generated = captioner.caption(validation.images, progress=not args.quiet)
        pairs = [(list(refs), text) for refs, text in zip(validation.captions, generated) if text is not None]
        figures = caption_metrics([r for r, _ in pairs], [t for _, t in pairs])
        print(
            f"{validation_split}: {len(pairs)} images, BLEU-1 {figures['bleu1']:.3f}, BLEU-4 {figures['bleu4']:.3f}, "
            f"TF-IDF cosine {figures['tfidf_cosine']:.3f}"
        )
        for image, text, refs in list(zip(validation.images, generated, validation.captions))[:3]:
            print(f"  {image}\n    generated: {text}\n    true:      {' | '.join(refs)}")
    if captioner.space is not None:
        h, fusion = captioner.space.history, captioner.space.fusion
        print(
            f"caption space: best epoch {h['best_epoch']} of {h['epochs_run']}, {h['seconds']:.0f} s; "
            f"fusion weights for the index: {fusion.get_config() if fusion else 'default'}"
        )
    print(f"model saved to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
