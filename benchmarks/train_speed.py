"""Training and decoding speed of gemcaption against the naive approach, on Flickr8k train.

gemcaption: cached encoder features (the CNN ran once per image, before the timed epoch) and
one optimizer step per batch of images with all five captions; the timed epoch includes
compiling the training step. Naive, as in the public Keras
captioning example: the encoder re-runs on every batch and each caption index gets its own
optimizer step. The naive epoch is timed on ``--naive-batches`` batches and extrapolated to a
full epoch (stated in the output). Decoding: batched greedy decoding with incremental state
against one image at a time re-running the whole prefix through the decoder for every token,
both from the same precomputed features, with the same trained Transformer.

    python benchmarks/train_speed.py [--data-dir ../shared/data/flickr8k] [--limit N]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from common import SHARED, machine, table, write_results


def naive_epoch_seconds(captioner, samples, tokens, batch_size, n_batches):
    """Seconds per epoch of the naive loop, timed on ``n_batches`` batches and extrapolated."""
    from gemcaption.images import load_images

    decoder, encoder = captioner.decoder, captioner.encoder
    per_batch = []
    for b in range(n_batches + 1):  # the first batch warms up and is not counted
        chosen = range(b * batch_size, min((b + 1) * batch_size, len(samples)))
        started = time.perf_counter()
        pixels, kept = load_images([samples[i].image for i in chosen], encoder.image_size)
        grids = encoder.features(pixels, batch_size=batch_size)
        batch_tokens = tokens[list(chosen)][kept]
        for k in range(batch_tokens.shape[1]):  # one optimizer step per caption
            one = batch_tokens[:, k:k + 1]
            decoder.train_on_batch((grids, one[:, :, :-1]), one[:, :, 1:])
        if b:
            per_batch.append(time.perf_counter() - started)
    return float(np.mean(per_batch)) * int(np.ceil(len(samples) / batch_size))


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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(SHARED / "flickr8k"))
    parser.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--naive-batches", type=int, default=8)
    parser.add_argument("--embed-dim", type=int, default=256)
    parser.add_argument("--decode-images", type=int, default=256)
    parser.add_argument("--naive-decode-images", type=int, default=16)
    args = parser.parse_args()

    from gemcaption.captioner import Captioner
    from gemcaption.datasets import load_dataset
    from gemcaption.encoders import default_pretrained_encoder
    from gemcaption.training import caption_array

    train = list(load_dataset(f"flickr8k:{args.data_dir}").split("train"))[: args.limit]
    encoder_name, weights = default_pretrained_encoder()
    captioner = Captioner("transformer", encoder=encoder_name, image_size=224, weights=weights, min_count=5,
                          embed_dim=args.embed_dim, ff_dim=args.embed_dim)
    started = time.perf_counter()
    grids, kept = captioner.encode([s.image for s in train], progress=True)
    extraction = time.perf_counter() - started
    train = [train[i] for i in kept]

    # gemcaption: one full epoch on cached features (the time includes compiling the train step)
    fast_epoch = time.perf_counter()
    captioner.fit(train, train[:64], epochs=1, batch_size=args.batch_size, patience=5, verbose=2)
    fast_epoch = time.perf_counter() - fast_epoch
    tokens = caption_array([s.captions for s in train], captioner.vocabulary, captioner.seq_len)
    naive = naive_epoch_seconds(captioner, train, tokens, args.batch_size, args.naive_batches)

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

    rows = [
        {"what": "training, seconds per epoch", "gemcaption": fast_epoch, "naive": naive, "speed-up": naive / fast_epoch},
        {"what": "greedy decoding, captions per second", "gemcaption": batched, "naive": one_by_one,
         "speed-up": batched / one_by_one},
    ]
    payload = {
        "data": f"Flickr8k train split, {len(train)} images x 5 captions", "encoder": captioner.encoder.name,
        "weights": captioner.encoder.weights_source, "decoder": "transformer", "batch_size": args.batch_size,
        "vocabulary": len(captioner.vocabulary), "feature_cache_read_seconds": extraction,
        "naive_epoch_extrapolated_from_batches": args.naive_batches,
        "decode_images": len(feats), "naive_decode_images": len(few), "rows": rows,
        "embed_dim": args.embed_dim, "machine": machine(),
    }
    md = (f"Flickr8k train ({len(train)} images), {captioner.encoder.name} 224 px, Transformer decoder, "
          f"embedding {args.embed_dim}, batch {args.batch_size}. Loading the cached features of all images: "
          f"{extraction:.0f} s (includes the one-time CNN pass for any image not yet cached). Naive epoch extrapolated "
          f"from {args.naive_batches} batches; naive decoding timed on {len(few)} images.\n\n"
          + table(rows, ["what", "gemcaption", "naive", "speed-up"]))
    write_results("train_speed", payload, md)


if __name__ == "__main__":
    main()
