"""Where a training step's time goes: seconds per batch of 64 Flickr8k images (5 captions each).

Complements train_speed.py. It times, on the same batch, with the product's default decoder
size (Transformer, embedding 512, feed-forward 512, a 100-cell feature grid as from
EfficientNetB0 at 299 px):

- ``gemcaption``: one training step over all five captions (the step ``Captioner.fit`` runs);
- ``gemcaption, 16-word output``: the same step with the vocabulary cut to 16 words, which
  makes the output layer nearly free: what is left is the image side and the token layers;
- ``naive``: five compiled steps, one per caption, over full-length logits (the Keras example's
  loop without its CNN pass, which train_speed.py measures).

Captions are real Flickr8k train captions (their lengths decide how much padding there is);
the feature grids are random numbers, which changes no timing.

    python benchmarks/train_step_cost.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import SHARED, machine, table, write_results


def seconds(fn, repeats):
    fn()  # compile
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - started) / repeats


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(SHARED / "flickr8k"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--embed-dim", type=int, default=512)
    parser.add_argument("--grid", type=int, default=100, help="feature grid cells (100 = B0 at 299 px)")
    args = parser.parse_args()

    import keras
    from train_speed import naive_step

    from gemcaption.captioning.decoders import build_decoder
    from gemcaption.captioning.training import caption_array
    from gemcaption.captioning.vocabulary import Vocabulary
    from gemcaption.data.loaders import load_dataset

    train = list(load_dataset(f"flickr8k:{args.data_dir}").split("train"))
    vocabulary = Vocabulary.build((c for s in train for c in s.captions), 10_000, 1)
    batch = train[:64]
    tokens = caption_array([s.captions for s in batch], vocabulary, 25)
    features = np.random.default_rng(0).normal(size=(len(batch), args.grid, 1280)).astype("float32")
    inputs, targets = (features, tokens[:, :, :-1]), tokens[:, :, 1:]

    def decoder(vocab_size):
        model = build_decoder(
            "transformer", vocab_size=vocab_size, seq_len=25, embed_dim=args.embed_dim, ff_dim=args.embed_dim
        )
        model.compile(optimizer=keras.optimizers.Adam(1e-4))
        return model

    full = decoder(len(vocabulary))
    small = decoder(16)
    small_tokens = np.where(tokens > 0, tokens % 15 + 1, 0)  # same padding, ids that fit 16 words
    small_inputs, small_targets = (features, small_tokens[:, :, :-1]), small_tokens[:, :, 1:]
    plain = decoder(len(vocabulary))
    plain(inputs)  # build it, so the naive step's optimizer knows its variables
    step = naive_step(plain)

    def naive():
        for k in range(tokens.shape[1]):
            step(features, tokens[:, k : k + 1, :-1], tokens[:, k : k + 1, 1:])

    rows = [
        {
            "step": "gemcaption",
            "vocabulary": len(vocabulary),
            "seconds_per_batch": seconds(lambda: full.train_on_batch(inputs, targets), args.repeats),
        },
        {
            "step": "gemcaption, 16-word output",
            "vocabulary": 16,
            "seconds_per_batch": seconds(lambda: small.train_on_batch(small_inputs, small_targets), args.repeats),
        },
        {
            "step": "naive: 5 steps, full logits",
            "vocabulary": len(vocabulary),
            "seconds_per_batch": seconds(naive, args.repeats),
        },
    ]
    real = int(np.count_nonzero(targets))
    payload = {
        "data": "Flickr8k train, first 64 images x 5 captions; random feature grids",
        "embed_dim": args.embed_dim,
        "grid": args.grid,
        "real_target_tokens": real,
        "target_positions": int(targets.size),
        "repeats": args.repeats,
        "command": "python benchmarks/train_step_cost.py",
        "rows": rows,
        "machine": machine(),
    }
    md = (
        f"One batch of 64 Flickr8k train images x 5 captions ({real} real target tokens of {targets.size} "
        f"positions), Transformer, embedding {args.embed_dim}, {args.grid}-cell feature grid; mean of "
        f"{args.repeats} steps after a compiling one.\n\n" + table(rows, ["step", "vocabulary", "seconds_per_batch"])
    )
    write_results("train_step_cost", payload, md)


if __name__ == "__main__":
    main()
