"""Training and decoding speed of gemcaption against the naive approach, on Flickr8k train.

gemcaption: cached encoder features (the CNN ran once per image, before the timed epoch), one
optimizer step per batch of images with all five captions, the output layer and every
position-wise layer run only on real tokens; the timed epoch is the Keras ``fit`` call inside
``Captioner.fit`` for one epoch: it includes compiling the training step and validating on 64
images. What ``Captioner.fit`` does once before it (reading the feature cache, building the
vocabulary) is reported apart as ``fit_setup_seconds``.

Naive, as the public Keras captioning example trains: for every batch the images are read and
the encoder re-runs on them, then each caption index gets its own optimizer step, a compiled
step over full-length logits with the masked loss. It uses the same decoder and vocabulary.
The naive epoch is timed on ``--naive-batches`` batches (after one warm-up batch) and
extrapolated to a full epoch. Unlike the Keras example it does not augment the images, which
would only make it slower.

Decoding: batched greedy decoding with incremental state against one image at a time
re-running the whole prefix through the decoder for every token, both from the same
precomputed features, with the same trained decoder.

Two configurations by default: ``defaults`` is the product's defaults and the Keras
example's set-up (EfficientNetB0 at 299 px, embedding 512, feed-forward 512, vocabulary up
to 10,000 words); its encoder has random weights because ImageNet weights cannot be downloaded
here, which changes no timing. ``lite0-224`` is the configuration of the Flickr8k quality
benchmark (pretrained EfficientNet-Lite0 at 224 px, embedding 256, words seen 5 times).

    python benchmarks/train_speed.py [--configs defaults lite0-224] [--limit N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import SHARED, machine, table, write_results

CONFIGS = {
    "defaults": {
        "encoder": "efficientnetb0",
        "image_size": 299,
        "weights": None,
        "embed_dim": 512,
        "ff_dim": 512,
        "min_count": 1,
    },
    "lite0-224": {
        "encoder": "efficientnet_lite0",
        "image_size": 224,
        "weights": "imagenet",
        "embed_dim": 256,
        "ff_dim": 256,
        "min_count": 5,
    },
}


def naive_step(decoder, learning_rate=1e-4):
    """A compiled training step over full-length logits for one caption per image, with its own
    Adam optimizer: what the Keras example runs once per caption index. ``decoder`` must be built."""
    import keras
    import tensorflow as tf

    from gemcaption.captioning.training import masked_loss

    optimizer = keras.optimizers.Adam(learning_rate)
    optimizer.build(decoder.trainable_variables)

    @tf.function
    def step(grids, tokens_in, targets):
        with tf.GradientTape() as tape:
            loss = masked_loss(targets, decoder((grids, tokens_in), training=True))
        optimizer.apply(tape.gradient(loss, decoder.trainable_variables), decoder.trainable_variables)
        return loss

    return step


def naive_epoch(captioner, samples, tokens, batch_size, n_batches):
    """Extrapolated seconds per epoch of the naive loop, and the share spent reading + encoding."""
    from gemcaption.data.images import load_images

    encoder, step = captioner.encoder, naive_step(captioner.decoder)
    encode_times, step_times = [], []
    for b in range(n_batches + 1):  # the first batch compiles and is not counted
        chosen = list(range(b * batch_size, min((b + 1) * batch_size, len(samples))))
        started = time.perf_counter()
        pixels, kept = load_images([samples[i].image for i in chosen], encoder.image_size)
        grids = encoder.features(pixels, batch_size=batch_size)
        encoded = time.perf_counter()
        batch_tokens = tokens[chosen][kept]
        for k in range(batch_tokens.shape[1]):  # one optimizer step per caption
            step(grids, batch_tokens[:, k : k + 1, :-1], batch_tokens[:, k : k + 1, 1:])
        finished = time.perf_counter()
        if b:
            encode_times.append(encoded - started)
            step_times.append(finished - encoded)
    batches = int(np.ceil(len(samples) / batch_size))
    return float(np.mean(encode_times)) * batches, float(np.mean(step_times)) * batches


def naive_decode(decoder, features, vocabulary, seq_len):
    """One image at a time, re-running the full decoder on the whole prefix for every new token."""
    captions = []
    for grid in features:
        tokens = np.zeros((1, 1, seq_len - 1), np.int32)
        tokens[0, 0, 0] = vocabulary.start_id
        for position in range(seq_len - 2):
            logits = decoder((grid[None], tokens), training=False)
            nxt = int(np.argmax(np.asarray(logits)[0, 0, position]))
            tokens[0, 0, position + 1] = nxt
            if nxt == vocabulary.end_id:
                break
        captions.append(vocabulary.decode(tokens[0, 0, 1:]))
    return captions


def measure(name, train, args):
    from gemcaption.captioning.captioner import Captioner
    from gemcaption.captioning.encoders import default_pretrained_encoder
    from gemcaption.captioning.training import caption_array

    config = dict(CONFIGS[name])
    if config["encoder"] == "efficientnet_lite0":
        config["encoder"], config["weights"] = default_pretrained_encoder()
    captioner = Captioner("transformer", **config)
    started = time.perf_counter()
    grids, kept = captioner.encode([s.image for s in train], progress=True)
    extraction = time.perf_counter() - started
    train = [train[i] for i in kept]

    started = time.perf_counter()
    history = captioner.fit(train, train[:64], epochs=1, batch_size=args.batch_size, patience=5, verbose=2)
    fast = history["seconds"]  # the Keras fit call: compiling, one epoch, validating on 64 images
    setup = time.perf_counter() - started - fast  # once per fit: reading the feature cache, the vocabulary
    tokens = caption_array([s.captions for s in train], captioner.vocabulary, captioner.seq_len)
    encode_part, step_part = naive_epoch(captioner, train, tokens, args.batch_size, args.naive_batches)
    naive = encode_part + step_part

    feats = grids[: args.decode_images]
    captioner.caption_features(feats[:8])  # compile the step function outside the timing
    started = time.perf_counter()
    captioner.caption_features(feats, batch_size=64)
    batched = len(feats) / (time.perf_counter() - started)
    few = grids[: args.naive_decode_images]
    naive_decode(captioner.decoder, few[:1], captioner.vocabulary, captioner.seq_len)
    started = time.perf_counter()
    naive_decode(captioner.decoder, few, captioner.vocabulary, captioner.seq_len)
    one_by_one = len(few) / (time.perf_counter() - started)
    encoder = captioner.encoder
    return {
        "config": name,
        "encoder": encoder.name,
        "image_size": encoder.image_size,
        "weights": encoder.weights_source,
        "embed_dim": config["embed_dim"],
        "ff_dim": config["ff_dim"],
        "vocabulary": len(captioner.vocabulary),
        "images": len(train),
        "feature_cache_read_seconds": extraction,
        "fit_setup_seconds": setup,
        "epoch_seconds": fast,
        "naive_epoch_seconds": naive,
        "naive_read_and_encode_seconds": encode_part,
        "naive_decoder_steps_seconds": step_part,
        "training_speedup": naive / fast,
        "captions_per_second": batched,
        "naive_captions_per_second": one_by_one,
        "decoding_speedup": batched / one_by_one,
        "load_average_1m": machine()["load_average_1m"],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(SHARED / "flickr8k"))
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--naive-batches", type=int, default=8)
    parser.add_argument("--decode-images", type=int, default=256)
    parser.add_argument("--naive-decode-images", type=int, default=16)
    args = parser.parse_args()

    from gemcaption.data.loaders import load_dataset

    train = list(load_dataset(f"flickr8k:{args.data_dir}").split("train"))[: args.limit]
    rows = [measure(name, train, args) for name in args.configs]
    payload = {
        "data": f"Flickr8k train split, {len(train)} images x 5 captions",
        "decoder": "transformer",
        "batch_size": args.batch_size,
        "naive_epoch_extrapolated_from_batches": args.naive_batches,
        "naive_decode_images": args.naive_decode_images,
        "decode_images": args.decode_images,
        "command": "python benchmarks/train_speed.py --configs "
        + " ".join(args.configs)
        + (f" --limit {args.limit}" if args.limit else ""),
        "rows": rows,
        "machine": machine(),
    }
    columns = [
        "config",
        "encoder",
        "image_size",
        "embed_dim",
        "vocabulary",
        "fit_setup_seconds",
        "epoch_seconds",
        "naive_epoch_seconds",
        "naive_read_and_encode_seconds",
        "training_speedup",
        "captions_per_second",
        "naive_captions_per_second",
        "decoding_speedup",
        "load_average_1m",
    ]
    md = (
        f"Flickr8k train ({len(train)} images x 5 captions), Transformer decoder, batch {args.batch_size}. "
        f"Seconds per training epoch (gemcaption: one measured epoch, compile included, once-per-fit set-up "
        f"apart; naive: extrapolated from "
        f"{args.naive_batches} batches) and greedy captions per second (naive: {args.naive_decode_images} "
        f"images one at a time). `defaults` has a random-weight encoder (no download here; same timing).\n\n"
        + table(rows, columns)
    )
    write_results("train_speed", payload, md)


if __name__ == "__main__":
    main()
