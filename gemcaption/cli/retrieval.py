"""``gemcaption index build|sync|add|remove|info``, ``gemcaption search`` and ``gemcaption evaluate``.

Commands that take several images (``index build --images``, ``index add``) and ``index sync``
report each bad image on its own line, process the rest and exit with status 1; ``index remove``
does the same for unknown ids and paths. Every option is checked before any image is captioned."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

from ..errors import ConfigError, DatasetError, ModelError
from .arguments import add_limit_option, real, whole
from .captioning import add_sampler_options, sampler_from_args
from .inputs import expand_images, image_problem, report_problems

WAIT_SECONDS = 60.0  # default of ``index sync|add|remove --wait``


def register(subparsers):
    index = subparsers.add_parser("index", help="build, sync and change a search index of images")
    actions = index.add_subparsers(dest="index_command", metavar="ACTION")
    index.set_defaults(func=lambda args: _usage(index))

    p = actions.add_parser("build", help="caption and index a dataset split, or image files and folders")
    p.add_argument("--model", required=True, help="captioner directory written by 'gemcaption train'")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="flickr8k:PATH, folder:PATH, csv:PATH or demo")
    source.add_argument(
        "--images", nargs="+", metavar="PATH", help="image files and folders (folders are searched recursively)"
    )
    p.add_argument("--split", default=None, help="index only this split of --data (default: all of it)")
    p.add_argument("--allow-outside", action="store_true", help="accept image paths outside the manifest's folder")
    p.add_argument(
        "--out", required=True, help="index directory to write (refused if it exists and is not empty, unless --force)"
    )
    p.add_argument("--force", action="store_true", help="replace --out when it already holds an index")
    p.add_argument("--factory", default="auto", help="'auto' or a FAISS index-factory string, e.g. HNSW32")
    add_sampler_options(p)  # --beam, --length-penalty, --min-length, --max-length: how images are captioned
    p.add_argument("--dim", type=whole(1), default=256, help="caption embedding dimension (TF-IDF + SVD)")
    p.add_argument("--no-references", action="store_true", help="embed only generated captions, not the dataset's")
    p.add_argument(
        "--hybrid",
        type=real(0.0, 1.0),
        default=0.0,
        metavar="W",
        help="weight of visual similarity in image-query scores, below 1 (0 = captions only)",
    )
    p.add_argument("--batch-size", type=whole(1), default=32, help="images captioned at once")
    add_limit_option(p, "--data or --images")
    p.add_argument("--seed", type=whole(0), default=0, help="random seed of --limit")
    p.add_argument(
        "--distributed",
        action="store_true",
        help='caption shards of the images on a Dask cluster (needs pip install "gemcaption[distributed]"); '
        "a re-run of a failed build computes only the missing shards",
    )
    p.add_argument("--workers", type=whole(1), default=2, help="local worker processes of --distributed (default 2)")
    p.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="Dask scheduler of --distributed, e.g. tcp://host:8786 "
        "(default: start a local cluster of --workers processes)",
    )
    p.add_argument("--shard-size", type=whole(1), default=256, help="images per shard of --distributed (default 256)")
    p.set_defaults(func=build)

    p = actions.add_parser("sync", help="make an index match a folder: add new and changed images, drop deleted ones")
    p.add_argument("index", metavar="IDX")
    p.add_argument("folder", metavar="DIR")
    p.add_argument("--model", default=None, help="captioner directory (default: the one the index was built with)")
    _add_wait_option(p)
    p.set_defaults(func=sync)

    p = actions.add_parser("add", help="add image files and folders to an index (already indexed ones are skipped)")
    p.add_argument("index", metavar="IDX")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--model", default=None, help="captioner directory (default: the one the index was built with)")
    _add_wait_option(p)
    p.set_defaults(func=add)

    p = actions.add_parser("remove", help="remove images from an index by id or by path")
    p.add_argument("index", metavar="IDX")
    p.add_argument(
        "items", nargs="+", metavar="ID|PATH", help="an image id, or an image path (a folder: every image below it)"
    )
    _add_wait_option(p)
    p.set_defaults(func=remove)

    p = actions.add_parser("info", help="size, index type and settings of an index")
    p.add_argument("index", metavar="IDX")
    p.set_defaults(func=info)

    p = subparsers.add_parser("search", help="search an index by image or by text")
    p.add_argument("--index", required=True, metavar="IDX", help="index directory")
    query = p.add_mutually_exclusive_group(required=True)
    query.add_argument("--image", help="query image path")
    query.add_argument("--text", help="query text")
    p.add_argument("-k", type=whole(1), default=10, help="number of hits")
    p.add_argument("--model", default=None, help="captioner directory (default: the one the index was built with)")
    p.add_argument("--json", action="store_true", help='print a JSON list of {"id", "image", "score", "caption"}')
    p.set_defaults(func=search)

    p = subparsers.add_parser("evaluate", help="captioning and retrieval figures of a model on a dataset split")
    p.add_argument("--model", required=True, metavar="DIR", help="captioner directory written by 'gemcaption train'")
    p.add_argument("--data", required=True, metavar="SPEC", help="flickr8k:PATH, folder:PATH, csv:PATH or demo")
    p.add_argument(
        "--split",
        default="test",
        metavar="NAME",
        help="split to score; a split the data lacks is taken from the split 'train' saved with the model "
        "(--split val: the images it held out)",
    )
    p.add_argument("--allow-outside", action="store_true", help="accept image paths outside the manifest's folder")
    add_sampler_options(p)  # --beam, --length-penalty, --min-length, --max-length: how the split is captioned
    add_limit_option(p, "the split", "with 0")
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


def _check_model(model_dir) -> Path:
    """``model_dir`` if it is a captioner directory (a cheap check, before any work), else ModelError."""
    from ..captioning.saving import is_captioner_directory

    model_dir = Path(model_dir)
    if not is_captioner_directory(model_dir):
        raise ModelError(f"{model_dir}: not a gemcaption model directory (no manifest.json or config.json)")
    return model_dir


def _load_captioner(model_dir):
    from ..captioning.captioner import Captioner

    return Captioner.load(_check_model(model_dir))


def _image_list(args) -> tuple[list[str], list[str]]:
    """(images, problems) of ``index build --images`` after ``--limit`` (a seeded sample, in order)."""
    import random

    images, problems = expand_images(args.images)
    if args.limit is not None and args.limit < len(images):
        keep = set(random.Random(args.seed).sample(range(len(images)), args.limit))
        images = [image for i, image in enumerate(images) if i in keep]
    return images, problems


def training_captions(dataset) -> list[str] | None:
    """Reference captions of the dataset's 'train' split, if it has one with captions."""
    if "train" not in set(dataset.splits):
        return None
    texts = [c for captions in dataset.split("train").captions for c in captions]
    return texts or None


def check_out(out, force: bool) -> None:
    """Refuse (ConfigError) an existing ``--out``, unless it is empty, or holds an index and ``force``."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{out}: exists and is not a directory")
    if not path.is_dir() or not any(path.iterdir()):
        return
    if not force:
        raise ConfigError(f"{out}: exists; pass --force to replace it, or choose a new --out")
    if not _is_index(path):
        raise ConfigError(f"{out}: exists and is not a gemcaption index; refusing to replace it, even with --force")


def _is_index(path: Path) -> bool:
    from ..persistence import read_json
    from ..retrieval.retriever import FORMAT, METADATA_FILE

    if (path / "manifest.json").is_file():
        try:
            payload = read_json(path / "manifest.json")
        except ModelError:
            return False
        return isinstance(payload, dict) and payload.get("format") == FORMAT
    return (path / METADATA_FILE).is_file()  # format version 1: no manifest


def check_factory(factory: str, dim: int, images: int) -> None:
    """Refuse (ConfigError) a FAISS factory string FAISS cannot build or, for up to 10,000 images,
    cannot train on that many vectors: before any image is captioned."""
    if factory == "auto":
        return
    import faiss
    import numpy as np

    try:
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError:
        raise ConfigError(f"--factory {factory!r}: not an index-factory string FAISS can build") from None
    if not index.is_trained and 0 < images <= 10_000:
        sample = np.random.default_rng(0).standard_normal((images, dim)).astype(np.float32)
        try:
            index.train(sample)
        except RuntimeError:
            raise ConfigError(f"--factory {factory!r}: cannot be trained on {images} images (too few)") from None


def add_reporting(retriever, images: list[str], data=None) -> tuple[list[int | None], list[str]]:
    """``retriever.add(data)`` (default: the ``images``; else a Dataset of those images): one id or
    None per image, and a problem line per unreadable image, which replace the library's warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ids = retriever.add(images if data is None else data)
    from ..data.images import SkippedImageWarning

    for warning in caught:
        if not str(warning.message).startswith("skipping ") and not issubclass(warning.category, SkippedImageWarning):
            warnings.warn(warning.message, warning.category, stacklevel=2)
    return ids, [image_problem(image) for image, item_id in zip(images, ids) if item_id is None]


def build(args) -> int:
    from ..retrieval.embedders import default_embedder
    from ..retrieval.retriever import Retriever

    sampler = sampler_from_args(args)  # bad values fail before the model loads
    check_out(args.out, args.force)
    if args.hybrid >= 1.0:
        raise ConfigError(f"--hybrid must be below 1, got {args.hybrid:g}")
    problems: list[str] = []
    if args.images:
        images, problems = _image_list(args)
        if not images:
            report_problems(problems, len(problems))
            raise DatasetError("no images to index")
        count, inputs = len(images), len(images) + len(problems)
    else:
        from ..data.loaders import load_dataset
        from ..data.splits import limit_dataset

        dataset = load_dataset(args.data, allow_outside=args.allow_outside)
        part = dataset.split(args.split) if args.split else dataset
        if len(part) == 0:
            raise DatasetError(f"dataset {args.data!r} has no images in split {args.split!r}")
        part = limit_dataset(part, args.limit, args.seed)
        count = inputs = len(part)
    check_factory(args.factory, args.dim, count)
    if args.distributed:
        from ..distributed import require_dask

        require_dask()  # without the extra: one line naming it
        return _build_distributed(
            args, dataset if not args.images else None, part if not args.images else images, problems, inputs
        )
    captioner = _load_captioner(args.model)  # a missing model: one line, still before any captioning
    retriever = Retriever(
        captioner,
        default_embedder(captioner, dim=args.dim),  # the model's learned space if it has one, else TF-IDF + SVD
        model_dir=args.model,
        index_factory=args.factory,
        sampler=sampler,
        use_references=not args.no_references,
        hybrid_weight=args.hybrid,
        batch_size=args.batch_size,
        progress=not args.quiet,
    )
    if args.images:
        _, unreadable = add_reporting(retriever, images)  # a new retriever: the same as build(images)
    else:
        texts = training_captions(dataset)
        if texts:
            retriever.fit_embedder(texts)
        _, unreadable = add_reporting(retriever, [str(s.image) for s in part.samples], part)  # = build(part)
    problems += unreadable
    retriever.save(args.out)
    _say(args, f"indexed {len(retriever)} images ({retriever.index.factory if retriever.index else 'empty'})")
    _say(args, f"caption embedder: {_embedder_description(retriever.embedder)}")
    print(args.out)
    return 1 if report_problems(problems, inputs) else 0


def _build_distributed(args, dataset, data, problems: list[str], inputs: int) -> int:
    """``index build --distributed``: workers load the model from ``--model`` and caption the shards."""
    from ..distributed import build_index
    from ..retrieval.embedders import default_embedder
    from ..retrieval.retriever import Retriever

    model_dir = _check_model(args.model).absolute()
    retriever = Retriever(
        None,
        default_embedder(None, model_dir, dim=args.dim),
        model_dir=model_dir,
        index_factory=args.factory,
        sampler=sampler_from_args(args),
        use_references=not args.no_references,
        hybrid_weight=args.hybrid,
        batch_size=args.batch_size,
        progress=not args.quiet,
    )
    fit_texts = training_captions(dataset) if dataset is not None else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # unreadable images: reported below, from the ids
        report = build_index(
            retriever,
            data,
            args.out,
            fit_texts=fit_texts,
            scheduler=args.scheduler,
            workers=args.workers,
            shard_size=args.shard_size,
            progress=not args.quiet,
        )
    for warning in caught:
        if not str(warning.message).startswith("skipping "):
            warnings.warn(warning.message, warning.category, stacklevel=2)
    _say(args, report.summary())
    if not report.complete:
        for name, error in report.failed:
            print(f"gemcaption: error: {name}: {error}", file=sys.stderr)
        print(
            f"gemcaption: {len(report.failed)} of {report.shards} shards failed; run the same command again "
            "to compute only those",
            file=sys.stderr,
        )
        return 1
    sources = [str(s.image) for s in data.samples] if dataset is not None else data
    problems += [image_problem(source) for source, item_id in zip(sources, report.ids) if item_id is None]
    _say(args, f"indexed {len(retriever)} images ({retriever.index.factory if retriever.index else 'empty'})")
    _say(args, f"caption embedder: {_embedder_description(retriever.embedder)}")
    print(args.out)
    return 1 if report_problems(problems, inputs) else 0


def _embedder_description(embedder) -> str:
    fusion = getattr(embedder, "fusion", None)
    if fusion is None:
        return f"{embedder.kind} (the model has no learned space)"
    return f"the model's learned space, fusion weights {fusion.get_config()}"


def sync(args) -> int:
    from ..retrieval.retriever import Retriever

    folder = Path(args.folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder}: not a folder")
    if not Path(args.index).is_dir():
        raise ConfigError(
            f"{args.index}: no such index; make one first: gemcaption index build --model DIR --images {folder} "
            f"--out {args.index}"
        )
    with Retriever.edit(args.index, model_dir=args.model, progress=not args.quiet, timeout=_wait(args)) as retriever:
        report = retriever.sync(folder)
    print(report.summary())
    _say(args, f"captioned {report.captioned} images; the index holds {len(retriever)}")
    files = report.unchanged + len(report.added) + len(report.changed) + len(report.moved) + len(report.duplicates)
    problems = [image_problem(path) for path, _ in report.failed]
    return 1 if report_problems(problems, files + len(problems)) else 0


def add(args) -> int:
    from ..retrieval.retriever import Retriever

    images, problems = expand_images(args.images)
    with Retriever.edit(args.index, model_dir=args.model, progress=not args.quiet, timeout=_wait(args)) as retriever:
        before = len(retriever)
        ids, unreadable = add_reporting(retriever, images) if images else ([], [])
    for image, item_id in zip(images, ids):
        if item_id is not None:
            print(f"{item_id}\t{image}")
    _say(args, f"added {len(retriever) - before} new images; the index holds {len(retriever)}")
    return 1 if report_problems(problems + unreadable, len(images) + len(problems)) else 0


def remove(args) -> int:
    from ..retrieval.retriever import Retriever
    from ..retrieval.sync import ids_for_paths

    ids: list[int] = []
    unknown: list[str] = []
    with Retriever.edit(args.index, progress=not args.quiet, timeout=_wait(args)) as retriever:
        for item in args.items:  # digits only: an id (write ./12 for a file named 12)
            if item.isdigit():
                found = [int(item)] if int(item) in retriever else []
                why = "no image with this id"
            else:
                found = ids_for_paths(retriever, [item])[0]
                why = "no image indexed at this path"
            ids += [i for i in found if i not in ids]
            if not found:
                unknown.append(f"{item}: {why} in {args.index}")
        paths = {i: retriever.get(i).image for i in ids}
        retriever.remove(ids)
    for item_id in ids:
        print(f"{item_id}\t{paths[item_id] or '-'}")
    _say(args, f"removed {len(ids)} images; the index holds {len(retriever)}")
    return 1 if report_problems(unknown, len(args.items)) else 0


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
    from .evaluation_split import split_to_evaluate

    sampler = sampler_from_args(args)  # a bad value fails before any data or model is read
    dataset = load_dataset(args.data, allow_outside=args.allow_outside)
    dataset = split_to_evaluate(dataset, args.split, args.model, args.limit, data=args.data)  # before the model loads
    captioner = _load_captioner(args.model)
    figures = evaluate_split(captioner, dataset, split=args.split, sampler=sampler, progress=not args.quiet)
    print(json.dumps(figures, indent=1) if args.json else format_report(figures))
    return 0
