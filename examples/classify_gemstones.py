"""Train a gemstone classifier on class folders, score it on a held-out 20 %, and describe stones in words.

    python examples/classify_gemstones.py --data-dir ../shared/data/gemstones/train
    python examples/classify_gemstones.py --data-dir ../shared/data/gemstones/train --model rf --limit 10

``--data-dir`` holds one folder per class (``Alexandrite/*.jpg``, ...). Models: ``logreg`` (logistic
regression on EfficientNet-Lite0 features + colour histogram + LBP), ``rf``/``svm`` (colour histogram
+ LBP), ``cnn`` (a trained head on the encoder), ``vae`` (the seed paper's VAE), ``gan``.
"""

from __future__ import annotations

import argparse
import sys

from gemcaption.classification import GemClassifier
from gemcaption.data.loaders import Dataset, load_dataset, split_dataset

EPOCH_MODELS = ("cnn", "vae", "gan")


def first_per_class(dataset: Dataset, limit: int | None) -> Dataset:
    """At most ``limit`` images of each class (all when None)."""
    if limit is None:
        return dataset
    counts: dict = {}
    kept = []
    for sample in dataset:
        counts[sample.label] = counts.get(sample.label, 0) + 1
        if counts[sample.label] <= limit:
            kept.append(sample)
    return Dataset(kept, dataset.name)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="a folder of class folders")
    parser.add_argument("--model", default="logreg", choices=["logreg", "rf", "svm", "cnn", "vae", "gan"])
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (cnn, vae, gan)")
    parser.add_argument("--limit", type=int, default=None, help="use at most N images per class")
    parser.add_argument("--out", default=None, help="save the classifier here")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)

    dataset = first_per_class(load_dataset(f"folder:{args.data_dir}"), args.limit)
    dataset = split_dataset(dataset, (0.8, 0.2), names=("train", "test"), seed=0)
    train, test = dataset.split("train"), dataset.split("test")
    options = {"epochs": args.epochs} if args.epochs is not None and args.model in EPOCH_MODELS else {}
    classifier = GemClassifier(args.model, **options)
    if not args.quiet:
        print(
            f"{args.model}: training on {len(train)} images of {len(train.labels)} classes, testing on {len(test)}",
            file=sys.stderr,
        )
    classifier.fit(train, progress=not args.quiet)
    figures = classifier.evaluate(test, progress=not args.quiet)
    print(
        f"test accuracy {figures['accuracy']:.3f} on {figures['evaluated']} images "
        f"(chance {1 / len(classifier.labels):.3f})"
    )
    for image, text in zip(test.images[:3], classifier.describe(test.images[:3])):
        print(f"  {image}: {text}")
    if args.out:
        classifier.save(args.out)
        print(f"classifier saved to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
