"""Helpers of benchmarks/gemstones.py for the trust figures and for reusing committed rows.

* Reuse: each result row records a fingerprint of the source files its model's training depends
  on; ``--reuse`` copies a committed row instead of re-training when the fingerprint still matches
  (or, for rows committed before fingerprints existed, when the row is named in
  ``--assume-unchanged``). A reused row is marked ``"reused": {"from", "date", "fingerprint"}``.
* Calibration: a temperature fitted on the inner early-stopping part (never the held-out part);
  ECE before and after on the held-out part; top-3 accuracy.
* Open set: known = held-out gem photos, unknown = Flickr8k dev photos and jewellery photos; two
  scores (max calibrated probability, cosine to class means of Lite0 features), AUROC, and the
  rate of unknowns at the threshold that accepts 95 % of the known early-stopping photos.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from benchmarks.common import ROOT, SHARED

PACKAGE = ROOT / "gemcaption" / "classification"
DESCRIPTOR_CODE = ["base.py", "baselines.py", "descriptors.py", "forest.py"]
CODE = {
    "rf-hist-lbp": DESCRIPTOR_CODE,
    "svm-hist-lbp": DESCRIPTOR_CODE,
    "logreg-lite0": DESCRIPTOR_CODE,
    "svm-lite0": DESCRIPTOR_CODE,
    "logreg-lite0-colour-lbp-tta": DESCRIPTOR_CODE,
    "svm-lite0-colour-lbp-tta": DESCRIPTOR_CODE,
    "cnn-lite0-head": ["base.py", "cnn.py", "keras_parts.py"],
    "gan-ssl": ["base.py", "gan.py", "keras_parts.py"],
    "vae-seed": ["base.py", "vae.py", "vae_classifier.py", "keras_parts.py"],
    "vae-seed-after": ["base.py", "vae.py", "vae_classifier.py", "keras_parts.py"],
    "vae": ["base.py", "feature_vae.py", "vae.py", "baselines.py", "descriptors.py", "keras_parts.py"],
}
LEGACY_NAMES = {"vae-seed": "vae-joint", "vae-seed-after": "vae-after"}  # names of the 2026-11 rows
ACCEPT = 0.95


def fingerprint(name: str) -> str | None:
    """sha256 (16 hex digits) of the source files ``name``'s training depends on (None: not tracked)."""
    files = CODE.get(name)
    if not files:
        return None
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.encode())
        digest.update((PACKAGE / file).read_bytes())
    return digest.hexdigest()[:16]


def reusable_row(name: str, committed: dict, assume_unchanged: set) -> dict | None:
    """The committed row of ``name`` marked as reused, when its model's code has not changed."""
    results = committed.get("results", {})
    old = results.get(name) or results.get(LEGACY_NAMES.get(name, ""))
    if not old or "metrics" not in old:
        return None
    reused = old.get("reused") or {}
    recorded = old.get("fingerprint")
    current = fingerprint(name)
    if recorded is None and name not in assume_unchanged:
        return None
    if recorded is not None and recorded != current:
        return None
    row = {key: value for key, value in old.items() if key != "reused"}
    row["reused"] = {
        "from": "benchmarks/results/gemstones.json",
        "date": reused.get("date") or committed.get("machine", {}).get("date"),
        "load_average_1m": reused.get("load_average_1m", committed.get("machine", {}).get("load_average_1m")),
        "fingerprint": "asserted unchanged (row predates fingerprints)" if recorded is None else recorded,
    }
    return row


def top_k_accuracy(probabilities: np.ndarray, truth: np.ndarray, k: int) -> float:
    order = np.argsort(-probabilities, axis=1)[:, :k]
    return float(np.mean([t in row for t, row in zip(truth, order)]))


def calibration_figures(stop_proba, stop_y, test_proba, test_y) -> tuple[dict, object]:
    """Temperature from the early-stopping part; ECE / NLL before and after on the held-out part."""
    from gemcaption.classification.calibration import TemperatureScaling, negative_log_likelihood
    from gemcaption.evaluation.classification import expected_calibration_error

    scaling = TemperatureScaling().fit(stop_proba, stop_y)
    calibrated = scaling.transform(test_proba)
    return {
        "temperature": scaling.temperature,
        "ece": expected_calibration_error(test_proba, test_y),
        "ece_calibrated": expected_calibration_error(calibrated, test_y),
        "nll": negative_log_likelihood(test_proba, test_y),
        "nll_calibrated": negative_log_likelihood(calibrated, test_y),
    }, scaling


def unknown_images(limit: int = 0) -> dict:
    """Paths of the unknown sets: Flickr8k dev photos and the jewellery product photos (the first
    ``limit`` of each when ``limit`` > 0, for a quick check of the script)."""
    flickr = SHARED / "flickr8k"
    names = [line.strip() for line in (flickr / "Flickr_8k.devImages.txt").read_text().splitlines() if line.strip()]
    jewellery = sorted(str(p) for p in (SHARED / "jewelry" / "images").glob("*.jpg"))
    sets = {"flickr8k-dev": [str(flickr / "Images" / n) for n in names], "jewellery": jewellery}
    return {name: paths[:limit] if limit > 0 else paths for name, paths in sets.items()}


def load_unknown_pixels(size: int, limit: int = 0) -> dict:
    from gemcaption.classification.classifier import load_pixels

    return {name: load_pixels(paths, size, strict=False)[0] for name, paths in unknown_images(limit).items()}


def open_set_report(known_stop: np.ndarray, known_test: np.ndarray, unknown: dict) -> dict:
    """AUROC of known held-out vs each unknown set, and the rates at the 95 %-of-validation threshold."""
    from gemcaption.classification.open_set import auroc, choose_threshold

    threshold = choose_threshold(known_stop, ACCEPT)
    report = {
        "threshold": threshold,
        "accept_on_validation": ACCEPT,
        "unknown_rate_known_held_out": float(np.mean(known_test < threshold)),
    }
    for name, scores in unknown.items():
        report[f"auroc_{name}"] = auroc(known_test, scores)
        report[f"unknown_rate_{name}"] = float(np.mean(scores < threshold))
    all_unknown = np.concatenate(list(unknown.values()))
    report["auroc_all_unknown"] = auroc(known_test, all_unknown)
    return report


def lite0_features(images: np.ndarray) -> np.ndarray:
    from gemcaption.classification.baselines import FeatureExtractor

    extractor = FeatureExtractor(("encoder",), "efficientnet_lite0", "imagenet", 224, cache=True)
    return np.concatenate([extractor(images[i : i + 256]) for i in range(0, len(images), 256)])


def class_mean_scores(data, unknown_pixels: dict) -> dict:
    """Cosine-to-class-mean scores of Lite0 features (means from the inner-fit part)."""
    from gemcaption.classification.open_set import ClassMeans

    pixels = data.pixels(224)
    fit = lite0_features(pixels[data.fit_rows])
    means = ClassMeans().fit(fit, data.y[data.fit_rows])
    return {
        "stop": means.score(lite0_features(pixels[data.stop_rows])),
        "test": means.score(lite0_features(pixels[data.test_rows])),
        "unknown": {name: means.score(lite0_features(p)) for name, p in unknown_pixels.items()},
    }


def path_text(path: Path) -> str:
    return str(path.relative_to(ROOT))
