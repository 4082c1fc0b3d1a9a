"""``gemcaption index build|add|remove|info``, ``gemcaption search`` and ``gemcaption evaluate``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import ConfigError, DatasetError, ModelError
from .captioning import add_sampler_options, sampler_from_args

WAIT_SECONDS = 60.0  # default of ``index add|remove --wait``


def register(subparsers):
    index = subparsers.add_parser("index", help="build and change a search index of images")
    actions = index.add_subparsers(dest="index_command", metavar="ACTION")
    index.set_defaults(func=lambda args: _usage(index))

    p = actions.add_parser("build", help="caption and index a dataset split or a folder of images")
    p.add_argument("--model", required=True, help="captioner directory written by 'gemcaption train'")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="flickr8k:PATH, folder:PATH, csv:PATH or demo")
    source.add_argument("--images", help="a folder of images (searched recursively)")
    p.add_argument("--split", default=None, help="index only this split of --data (default: all of it)")
    p.add_argument("--allow-outside", action="store_true", help="accept image paths outside the manifest's folder")
    p.add_argument("--out", required=True, help="index directory to write")
    p.add_argument("--factory", default="auto", help="'auto' or a FAISS index-factory string, e.g. HNSW32")
    add_sampler_options(p)  # --beam, --length-penalty, --min-length, --max-length: how images are captioned
    p.add_argument("--dim", type=int, default=256, help="caption embedding dimension (TF-IDF + SVD)")
    p.add_argument("--no-references", action="store_true", help="embed only generated captions, not the dataset's")
    p.add_argument(
        "--hybrid",
        type=float,
        default=0.0,
        metavar="W",
        help="weight of visual similarity in image-query scores (0 = captions only)",
    )
    p.add_argument("--batch-size", type=int, default=32)
    p.set_defaults(func=build)

    p = actions.add_parser("add", help="add images to an index (already indexed ones are skipped)")
    p.add_argument("index", metavar="IDX")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--model", default=None, help="captioner directory (default: the one the index was built with)")
    _add_wait_option(p)
    p.set_defaults(func=add)

    p = actions.add_parser("remove", help="remove images from an index by id")
    p.add_argument("index", metavar="IDX")
    p.add_argument("ids", nargs="+", type=int, metavar="ID")
    _add_wait_option(p)
    p.set_defaults(func=remove)

    p = actions.add_parser("info", help="size, index type and settings of an index")
    p.add_argument("index", metavar="IDX")
    p.set_defaults(func=info)

    p = subparsers.add_parser("search", help="search an index by image or by text")
    p.add_argument("--index", required=True, metavar="IDX")
    query = p.add_mutually_exclusive_group(required=True)
    query.add_argument("--image", help="query image path")
    query.add_argument("--text", help="query text")
    p.add_argument("-k", type=int, default=10, help="number of hits (default 10)")
    p.add_argument("--model", default=None, help="captioner directory (default: the one the index was built with)")
    p.add_argument("--json", action="store_true", help='print a JSON list of {"id", "image", "score", "caption"}')
    p.set_defaults(func=search)

    p = subparsers.add_parser("evaluate", help="captioning and retrieval figures of a model on a dataset split")
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True, help="flickr8k:PATH, folder:PATH, csv:PATH or demo")
    p.add_argument("--split", default="test")
    p.add_argument("--allow-outside", action="store_true", help="accept image paths outside the manifest's folder")
    p.add_argument("--beam", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print one JSON object of figures")
    p.set_defaults(func=evaluate)


def _add_wait_option(parser) -> None:
    parser.add_argument(
        "--wait",
        type=float,
        default=WAIT_SECONDS,
        metavar="SECONDS",
        help=f"how long to wait for another process writing the index (default {WAIT_SECONDS:g})",
    )


def _wait(args) -> float:
    if args.wait < 0:
        raise ConfigError("--wait must be at least 0 seconds")
    return args.wait


def _usage(parser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _say(args, message: str) -> None:
    if not getattr(args, "quiet", False):
        print(message, file=sys.stderr)


def _load_captioner(model_dir):
    from ..captioning.captioner import Captioner
    from ..captioning.saving import is_captioner_directory

    model_dir = Path(model_dir)
    if not is_captioner_directory(model_dir):
        raise ModelError(f"{model_dir}: not a gemcaption model directory (no manifest.json or config.json)")
    return Captioner.load(model_dir)


def image_files(folder) -> list[str]:
    """Image files below ``folder`` (by extension), sorted."""
    from ..data.images import has_image_extension

    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder}: not a folder")
    files = sorted(str(p) for p in folder.rglob("*") if p.is_file() and has_image_extension(p))
    if not files:
        raise DatasetError(f"{folder}: no image files found")
    return files


def training_captions(dataset) -> list[str] | None:
    """Reference captions of the dataset's 'train' split, if it has one with captions."""
    if "train" not in set(dataset.splits):
        return None
    texts = [c for captions in dataset.split("train").captions for c in captions]
    return texts or None


def build(args) -> int:
    from ..retrieval.embedders import build_embedder
    from ..retrieval.retriever import Retriever

    sampler = sampler_from_args(args)  # a bad value fails before the model loads
    captioner = _load_captioner(args.model)
    retriever = Retriever(
        captioner,
        build_embedder(dim=args.dim),
        model_dir=args.model,
        index_factory=args.factory,
        sampler=sampler,
        use_references=not args.no_references,
        hybrid_weight=args.hybrid,
        batch_size=args.batch_size,
        progress=not args.quiet,
    )
    if args.images:
        retriever.build(image_files(args.images))
    else:
        from ..data.loaders import load_dataset

        dataset = load_dataset(args.data, allow_outside=args.allow_outside)
        part = dataset.split(args.split) if args.split else dataset
        if len(part) == 0:
            raise DatasetError(f"dataset {args.data!r} has no images in split {args.split!r}")
        retriever.build(part, fit_texts=training_captions(dataset))
    retriever.save(args.out)
    _say(args, f"indexed {len(retriever)} images ({retriever.index.factory if retriever.index else 'empty'})")
    print(args.out)
    return 0


def add(args) -> int:
    from ..retrieval.retriever import Retriever

    with Retriever.edit(args.index, model_dir=args.model, progress=not args.quiet, timeout=_wait(args)) as retriever:
        before = len(retriever)
        ids = retriever.add(args.images)
    for image, item_id in zip(args.images, ids):
        print(f"{item_id if item_id is not None else '-'}\t{image}")
    _say(args, f"added {len(retriever) - before} new images; the index holds {len(retriever)}")
    return 0 if all(i is not None for i in ids) else 1


def remove(args) -> int:
    from ..retrieval.retriever import Retriever

    with Retriever.edit(args.index, progress=not args.quiet, timeout=_wait(args)) as retriever:
        removed = retriever.remove(args.ids)
    _say(args, f"removed {removed} of {len(args.ids)} ids; the index holds {len(retriever)}")
    return 0


def info(args) -> int:
    from ..retrieval.retriever import Retriever

    retriever = Retriever.load(args.index, progress=False)
    from ..retrieval.retriever import FORMAT

    print(
        json.dumps(
            {
                "images": len(retriever),
                "index": retriever.index.factory if retriever.index else None,
                "format": FORMAT,
                "format_version": retriever.format_version,
                **retriever.get_config(),
            },
            indent=1,
            ensure_ascii=False,
        )
    )
    return 0


def search(args) -> int:
    from ..retrieval.retriever import Retriever

    if args.k < 1:
        raise ConfigError("-k must be at least 1")
    retriever = Retriever.load(args.index, model_dir=args.model, progress=not args.quiet)
    hits = retriever.search_image(args.image, args.k) if args.image else retriever.search_text(args.text, args.k)
    if not args.image and not retriever.knows_words(args.text):
        print(f"gemcaption: warning: no word of {args.text!r} is known to the index; no hits", file=sys.stderr)
    rows = [{"id": h.id, "image": h.image, "score": round(h.score, 6), "caption": h.caption} for h in hits]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
    else:
        for rank, row in enumerate(rows, 1):
            print(f"{rank:3d}  {row['score']:.4f}  {row['id']:6d}  {row['image']}  {row['caption']}")
        if not rows:
            _say(args, "no hits (the index is empty)")
    return 0


def evaluate(args) -> int:
    from ..data.loaders import load_dataset
    from ..evaluation.protocols import evaluate_split, format_report

    captioner = _load_captioner(args.model)
    dataset = load_dataset(args.data, allow_outside=args.allow_outside)
    figures = evaluate_split(captioner, dataset, split=args.split, beam_width=args.beam, progress=not args.quiet)
    print(json.dumps(figures, indent=1) if args.json else format_report(figures))
    return 0
