"""Build a search index from Python with :class:`gemcaption.Retriever` and query it by text and image.

    python examples/search_with_retriever.py --model demo-report/model --data demo --text "a blue sapphire ring"
    python examples/search_with_retriever.py --data csv:../shared/data/jewelry/captions.csv --epochs 3 --limit 60 \\
        --text "anillo de plata"

Without ``--model`` a small captioner is first trained on the data's train split (with its learned
caption space, as ``Captioner.fit`` does by default). The index is built over the test split (or the
whole set when it has no test split) and saved with ``--out``. When the captioner has a learned
space the index uses it (text queries through its text encoder, image queries through the image
projection fused with the generated caption); a model trained with ``--no-space`` falls back to
TF-IDF + SVD over the captions.
"""

from __future__ import annotations

import argparse
import random
import sys

from gemcaption.captioning.captioner import Captioner
from gemcaption.data.loaders import Dataset, load_dataset, split_dataset
from gemcaption.retrieval.retriever import Retriever


def show(title: str, hits) -> None:
    print(title)
    for rank, hit in enumerate(hits, 1):
        print(f"  {rank}. {hit.score:.3f}  {hit.caption}  ({hit.image})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="demo", help="flickr8k:PATH, folder:PATH, csv:PATH or demo")
    parser.add_argument("--model", default=None, help="a trained captioner (default: train a small one)")
    parser.add_argument("--epochs", type=int, default=5, help="training epochs when no --model is given")
    parser.add_argument("--limit", type=int, default=None, help="use only N images (a seeded random subset)")
    parser.add_argument("--image-size", type=int, default=224, help="encoder input size when training")
    parser.add_argument("--text", action="append", default=None, help="a text query (repeatable)")
    parser.add_argument("--image", default=None, help="an image query (default: the first indexed image)")
    parser.add_argument("-k", type=int, default=5)
    parser.add_argument("--out", default=None, help="save the index here (then: gemcaption serve --index OUT)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)

    dataset = load_dataset(args.data)
    if args.limit is not None:  # a seeded random subset: catalogues are often sorted by category
        samples = list(dataset.samples)
        random.Random(0).shuffle(samples)
        dataset = Dataset(samples[: args.limit], dataset.name)
    if "test" not in dataset.splits:
        dataset = split_dataset(dataset, (0.8, 0.2), names=("train", "test"))
    train, test = dataset.split("train"), dataset.split("test")

    if args.model:
        captioner = Captioner.load(args.model)
    else:
        captioner = Captioner(
            "transformer", encoder="efficientnet_lite0", image_size=args.image_size, embed_dim=128, ff_dim=256
        )
        captioner.fit(train, epochs=args.epochs, batch_size=16, verbose=0 if args.quiet else 2)

    retriever = Retriever(captioner, model_dir=args.model, progress=not args.quiet)
    retriever.build(test, fit_texts=[c for captions in train.captions for c in captions])
    how = "learned caption space" if retriever.embedder.kind == "caption_space" else "TF-IDF + SVD of the captions"
    print(f"indexed {len(retriever)} images ({how})")

    for text in args.text or [train.captions[0][0]]:
        show(f'text query "{text}":', retriever.search(text, k=args.k))
    image = args.image or test.images[0]
    show(f"image query {image} (captioned, then searched):", retriever.search_image(image, k=args.k))
    if args.out:
        retriever.save(args.out)
        print(f"index saved to {args.out}; search it in a browser with: gemcaption serve --index {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
