"""Fine-tune a captioner on Flickr8k and score it on the dev split.

    python examples/finetune_flickr8k.py --data-dir ../shared/data/flickr8k --epochs 10
    python examples/finetune_flickr8k.py --data-dir ../shared/data/flickr8k --epochs 1 --limit 200   # a quick try

The folder holds ``captions.txt`` (or ``Flickr8k.token.txt``), ``Images/`` and the
``Flickr_8k.*Images.txt`` split lists. Encoder features are cached, so the second run skips the CNN.
"""

from __future__ import annotations

import argparse
import sys

from gemcaption.captioning.captioner import Captioner
from gemcaption.data.loaders import Dataset, load_dataset
from gemcaption.evaluation.captioning import caption_metrics


def first(dataset: Dataset, limit: int | None) -> Dataset:
    return dataset if limit is None else Dataset(dataset.samples[:limit], dataset.name)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="the Flickr8k folder")
    parser.add_argument("--out", default="flickr8k-model", help="where the trained model is saved")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N training images (and N/5 dev)")
    parser.add_argument("--decoder", default="transformer", choices=["transformer", "lstm"])
    parser.add_argument("--embed-dim", type=int, default=256)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--beam", type=int, default=1, help="beam width when scoring (1 = greedy)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)

    dataset = load_dataset(f"flickr8k:{args.data_dir}")
    validation_split = next(s for s in ("dev", "val", "test") if s in dataset.splits)
    train = first(dataset.split("train"), args.limit)
    dev = first(dataset.split(validation_split), None if args.limit is None else max(2, args.limit // 5))
    captioner = Captioner(
        args.decoder,
        encoder="efficientnet_lite0",
        image_size=args.image_size,
        embed_dim=args.embed_dim,
        ff_dim=args.embed_dim,
    )
    if not args.quiet:
        print(
            f"training on {len(train)} images, validating on {len(dev)} ({validation_split}); "
            f"encoder weights: {captioner.encoder.weights_source}",
            file=sys.stderr,
        )
    captioner.fit(train, dev, epochs=args.epochs, batch_size=args.batch_size, verbose=0 if args.quiet else 2)
    captioner.save(args.out)

    generated = captioner.caption(dev.images, beam_width=args.beam, progress=not args.quiet)
    scored = [(list(refs), text) for refs, text in zip(dev.captions, generated) if text is not None]
    figures = caption_metrics([r for r, _ in scored], [t for _, t in scored])
    print(
        f"{validation_split} split, {len(scored)} images: "
        + ", ".join(f"BLEU-{n} {figures[f'bleu{n}']:.3f}" for n in range(1, 5))
        + f", TF-IDF cosine {figures['tfidf_cosine']:.3f}"
    )
    for image, text in list(zip(dev.images, generated))[:3]:
        print(f"  {image}: {text}")
    print(f"model saved to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
