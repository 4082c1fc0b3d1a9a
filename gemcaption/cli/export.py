"""``gemcaption export``: write a trained captioner in a format other software serves.

``--format savedmodel`` (the only one so far) writes a TensorFlow SavedModel through
:func:`gemcaption.export.export_savedmodel`; the options are checked before the model loads."""

from __future__ import annotations

import sys

FORMATS = ("savedmodel",)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export", help="write a trained captioner as a TensorFlow SavedModel (for TensorFlow Serving)"
    )
    p.add_argument("--model", required=True, metavar="DIR", help="model directory written by 'gemcaption train'")
    p.add_argument(
        "--out", required=True, metavar="DIR", help="directory for the export (refused if it exists, unless --force)"
    )
    p.add_argument("--format", choices=FORMATS, default="savedmodel", help="export format (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="replace --out if it is an earlier export or empty")
    p.add_argument(
        "--min-length",
        type=int,
        default=1,
        metavar="WORDS",
        help="fewest words before a served caption may end (default: %(default)s)",
    )
    p.add_argument(
        "--max-length",
        type=int,
        default=None,
        metavar="WORDS",
        help="most words in a served caption (default: as many as the model was trained for)",
    )
    p.add_argument(
        "--no-space",
        action="store_true",
        help="leave out the learned caption space (MODEL/space/) even when the model has one",
    )
    p.set_defaults(func=export)


def export(args) -> int:
    from ..captioning.samplers import GreedySampler
    from ..export import check_export_target, export_savedmodel

    GreedySampler(min_length=args.min_length, max_length=args.max_length)  # bad values: one line, exit 2
    check_export_target(args.out, args.force)  # refused before the model loads
    from ..captioning.captioner import Captioner

    captioner = Captioner.load(args.model)
    out = export_savedmodel(
        captioner,
        args.out,
        force=args.force,
        space=False if args.no_space else None,
        min_length=args.min_length,
        max_length=args.max_length,
    )
    if not getattr(args, "quiet", False):
        print(f"exported {args.model} to {out} (TensorFlow SavedModel)", file=sys.stderr)
    print(out)
    return 0
