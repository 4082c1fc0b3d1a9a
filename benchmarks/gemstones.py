"""Gemstone classification on the 68-class set: the seed's VAE against honest baselines.

    .venv/bin/python benchmarks/gemstones.py [--data ../shared/data/gemstones/train] [--quick]

Protocol: byte-identical photos are removed first (first file of each group kept), then a seeded
stratified 80/20 split gives the training part and the held-out validation part on which every
figure is measured. Models that stop early (VAE, GAN, CNN head) and the C values of the logistic
regressions / SVMs are chosen on a further seeded stratified 20 % of the training part (the seed
paper's 80/20 of train); the scikit-learn models are then refitted on the whole training part.
Writes benchmarks/results/gemstones.{json,md}, docs/results-gemstones.md and the pictures
docs/images/gemstones-*.png. Published anchor: Random Forest on colour histogram + LBP, 69.4 %
test accuracy (Chow & Reyes-Aldasoro 2022, 68 classes).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import gemstones_trust as trust
from benchmarks.common import RESULTS, ROOT, SHARED, machine, table

PUBLISHED_RF = 0.694
DOCS = ROOT / "docs"
IMAGES = DOCS / "images"
PARTIAL = RESULTS / "gemstones_partial.json"
PROBABILITIES = Path("/tmp/gemcaption-gemstones-probabilities.npz")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class Data:
    """The deduplicated, split gemstone set; pixels loaded once per image size."""

    def __init__(self, folder: Path, seed: int, classes: int = 0):
        from gemcaption.data.loaders import load_dataset
        from gemcaption.data.splits import find_duplicates, stratified_split

        dataset = load_dataset(f"folder:{folder}")
        samples = dataset.samples
        if classes:  # a subset of the classes, for a quick check of the script
            chosen = set(dataset.labels[:classes])
            samples = [s for s in samples if s.label in chosen]
        images = [s.image for s in samples]
        labels = [s.label for s in samples]
        keep, groups = find_duplicates(images)
        self.duplicate_groups = [[f"{labels[i]}/{Path(images[i]).name}" for i in g] for g in groups]
        self.cross_class_groups = sum(len({labels[i] for i in g}) > 1 for g in groups)
        self.total = len(images)
        self.images = [images[i] for i in keep]
        self.labels = sorted(set(labels))
        index = {label: i for i, label in enumerate(self.labels)}
        self.y = np.array([index[labels[i]] for i in keep])
        self.train_rows, self.test_rows = stratified_split(self.y, 0.2, seed)
        inner_fit, inner_stop = stratified_split(self.y[self.train_rows], 0.2, seed)
        self.fit_rows = [self.train_rows[i] for i in inner_fit]
        self.stop_rows = [self.train_rows[i] for i in inner_stop]
        self._pixels: dict[int, np.ndarray] = {}

    def pixels(self, size: int) -> np.ndarray:
        if size not in self._pixels:
            from gemcaption.classification.classifier import load_pixels

            started = time.perf_counter()
            pixels, kept = load_pixels(self.images, size, strict=True)
            self._pixels[size] = pixels
            log(f"loaded {len(kept)} images at {size}px in {time.perf_counter() - started:.0f}s")
        return self._pixels[size]

    def part(self, rows, size):
        return self.pixels(size)[rows], self.y[rows]


def score(data: Data, probabilities: np.ndarray) -> dict:
    """Metrics of held-out probabilities, plus the seed's TF-IDF description similarity."""
    from gemcaption.classification.classifier import describe_label
    from gemcaption.evaluation.captioning import pairwise_tfidf_cosine
    from gemcaption.evaluation.classification import classification_metrics

    y_true = [data.labels[i] for i in data.y[data.test_rows]]
    y_pred = [data.labels[i] for i in probabilities.argmax(1)]
    metrics = classification_metrics(y_true, y_pred, data.labels)
    descriptions = {label: describe_label(label) for label in data.labels}
    similarity = pairwise_tfidf_cosine(
        [descriptions[t] for t in y_true], [descriptions[p] for p in y_pred], corpus=list(descriptions.values())
    )
    metrics["tfidf_similarity"] = float(similarity.mean())
    truth = data.y[data.test_rows]
    metrics["top5_accuracy"] = trust.top_k_accuracy(probabilities, truth, 5)
    metrics["top3_accuracy"] = trust.top_k_accuracy(probabilities, truth, 3)
    return metrics


def choose_c(data: Data, make, grid, size) -> tuple[float, dict]:
    """Pick C by accuracy on the early-stopping split (never on the held-out validation part)."""
    x_fit, y_fit = data.part(data.fit_rows, size)
    x_stop, y_stop = data.part(data.stop_rows, size)
    scores, stop_proba = {}, {}
    for c in grid:
        model = make(c)
        model.fit(x_fit, y_fit, len(data.labels))
        stop_proba[c] = model.predict_proba(x_stop)
        scores[c] = float(np.mean(stop_proba[c].argmax(1) == y_stop))
        log(f"  C={c}: inner validation accuracy {scores[c]:.3f}")
    best = max(grid, key=lambda c: (scores[c], -grid.index(c)))
    return best, scores, stop_proba[best]


def run_sklearn(data, name, make, size, grid=None):
    """scikit-learn model: choose C on the inner split if a grid is given, fit on all training."""
    info = {}
    started = time.perf_counter()
    c = None
    if grid:
        c, info["c_scores"], stop_proba = choose_c(data, make, grid, size)
        info["c"] = c
    else:  # the inner model only gives the early-stopping probabilities the temperature is fitted on
        inner = make(None)
        inner.fit(*data.part(data.fit_rows, size), len(data.labels))
        stop_proba = inner.predict_proba(data.part(data.stop_rows, size)[0])
    model = make(c)
    x_train, y_train = data.part(data.train_rows, size)
    fit_started = time.perf_counter()
    model.fit(x_train, y_train, len(data.labels))
    info["final_fit_seconds"] = time.perf_counter() - fit_started
    info["training_seconds"] = time.perf_counter() - started
    return model, info, stop_proba


def run_keras(data, name, model, size):
    """Keras model: fit on the inner-fit part, early stopping on the inner-stop part."""
    started = time.perf_counter()
    history = model.fit(*data.part(data.fit_rows, size), len(data.labels), validation=data.part(data.stop_rows, size))
    info = {"training_seconds": time.perf_counter() - started}
    epochs = history.get("loss") or history.get("accuracy") or []
    info["epochs"] = len(epochs)
    if "val_accuracy" in history:
        info["best_inner_val_accuracy"] = max(history["val_accuracy"])
    return model, info, history, model.predict_proba(data.part(data.stop_rows, size)[0])


def warm_features(data: Data, encoder_name: str, size: int, views) -> float:
    """Run the encoder once over every image and view so the heads only read the feature cache."""
    from gemcaption.classification.baselines import FeatureExtractor, apply_view

    extractor = FeatureExtractor(("encoder",), encoder_name, "imagenet", size, cache=True, progress=False)
    started = time.perf_counter()
    pixels = data.pixels(size)
    for view in views:
        for start in range(0, len(pixels), 256):
            extractor(apply_view(pixels[start : start + 256], view))
        log(f"  {encoder_name} features, view {view}: done at {time.perf_counter() - started:.0f}s")
    return time.perf_counter() - started


def save_pictures(data: Data, vae, results: dict, trust_curves: dict, open_set_scores: dict) -> dict:
    """The feature VAE's reconstructions and latent map, the reliability diagram, the open-set
    score histograms, and the best model's confusion matrix."""
    from gemcaption.classification.feature_vae import resize_batch
    from gemcaption.classification.plots import (
        save_confusion_matrix,
        save_latent_projection,
        save_reconstruction_grid,
        save_reliability_diagram,
        save_score_histograms,
    )

    IMAGES.mkdir(parents=True, exist_ok=True)
    written = {}
    if vae is not None:
        x_test, _ = data.part(data.test_rows, vae.image_size)
        rng = np.random.default_rng(0)
        pick = rng.choice(len(x_test), 10, replace=False)
        decoded = vae.reconstruct(x_test[pick])
        originals = np.rint(resize_batch(x_test[pick], decoded.shape[1]) * 255).astype(np.uint8)
        path = IMAGES / "gemstones-feature-vae-reconstructions.png"
        save_reconstruction_grid(originals, decoded, path, columns=10)
        written["vae_reconstructions"] = trust.path_text(path)
        latent = vae.encode(data.pixels(vae.image_size))
        path = IMAGES / "gemstones-feature-vae-latent-tsne.png"
        save_latent_projection(
            latent,
            [data.labels[i] for i in data.y],
            path,
            method="tsne",
            title="feature VAE latent means of all photos (t-SNE), coloured by class (68)",
        )
        written["vae_latent"] = trust.path_text(path)
    for name, curves in trust_curves.items():
        path = IMAGES / f"gemstones-reliability-{name}.png"
        save_reliability_diagram(curves, path, title=f"{name}: held-out photos, 15 bins")
        written[f"reliability_{name}"] = trust.path_text(path)
    for name, (groups, threshold) in open_set_scores.items():
        path = IMAGES / f"gemstones-open-set-{name}.png"
        save_score_histograms(groups, threshold, path, title=f"open set: {name}")
        written[f"open_set_{name}"] = trust.path_text(path)
    scored = [(r["metrics"]["accuracy"], name) for name, r in results.items() if "metrics" in r and "reused" not in r]
    for label, name in (("best", max(scored)[1] if scored else None), ("vae", "vae")):
        if name and "metrics" in results.get(name, {}):
            metrics = results[name]["metrics"]
            path = IMAGES / f"gemstones-confusion-{name}.png"
            save_confusion_matrix(metrics["confusion_matrix"], metrics["labels"], path)
            written[f"confusion_{label}"] = trust.path_text(path)
    return written


COLUMNS = ["model", "features", "accuracy", "macro F1", "top-3", "ECE", "ECE cal.", "T", "train s", "run"]
DEFAULT = "logreg-lite0-colour-lbp-tta"  # what GemClassifier("logreg") trains


def row(name, result):
    m = result["metrics"]
    calibration = result.get("calibration") or {}

    def rounded(value):
        return "n/m" if value is None else round(value, 4)

    reused = result.get("reused")
    return {
        "model": f"{name} (default)" if name == DEFAULT else name,
        "features": result["features"],
        "accuracy": round(m["accuracy"], 4),
        "macro F1": round(m["macro_f1"], 4),
        "top-3": rounded(m.get("top3_accuracy")),
        "ECE": rounded(calibration.get("ece")),
        "ECE cal.": rounded(calibration.get("ece_calibrated")),
        "T": rounded(calibration.get("temperature")),
        "train s": round(result.get("training_seconds", 0.0), 1),
        "run": f"reused ({reused['date']})" if reused else "this run",
    }


def percent(value) -> str:
    return f"{100 * value:.1f} %"


def trust_lines(results: dict) -> list[str]:
    """The calibration and open-set section of the docs."""
    lines = ["", "## Confidence and unknown photos", ""]
    for name in (DEFAULT, "vae"):
        calibration = results.get(name, {}).get("calibration")
        if calibration:
            lines.append(
                f"- **{name}**: ECE {calibration['ece']:.3f} before, {calibration['ece_calibrated']:.3f} after "
                f"temperature scaling (T = {calibration['temperature']:.2f}, fitted on the early-stopping "
                f"part); NLL {calibration['nll']:.3f} -> {calibration['nll_calibrated']:.3f}."
            )
    reports = []
    for name in (DEFAULT, "vae"):
        report = (results.get(name, {}).get("open_set") or {}).get("max_probability")
        if report:
            reports.append((f"{name}, max calibrated probability", report))
    if "_open_set_class_means" in results:
        reports.append(("Lite0 features, cosine to the nearest class mean", results["_open_set_class_means"]))
    if reports:
        lines += [
            "",
            "Known = the held-out gem photos; unknown = the 1,000 Flickr8k dev photos and the 271 "
            "jewellery product photos. The threshold accepts 95 % of the known early-stopping photos "
            "(chosen without any unknown photo); the rates are the shares flagged *unknown* at it.",
            "",
            "| score | AUROC Flickr8k | AUROC jewellery | unknown rate: known held-out | Flickr8k | jewellery |",
            "|---|---|---|---|---|---|",
        ]
        for label, r in reports:
            lines.append(
                f"| {label} | {r['auroc_flickr8k-dev']:.3f} | {r['auroc_jewellery']:.3f} | "
                f"{percent(r['unknown_rate_known_held_out'])} | {percent(r['unknown_rate_flickr8k-dev'])} | "
                f"{percent(r['unknown_rate_jewellery'])} |"
            )
        lines += [
            "",
            "`GemClassifier` and `gemcaption classify predict` use the max calibrated probability "
            "(it needs no second model); the class-mean score is measured here for comparison.",
        ]
    return lines


def write_docs(payload: dict) -> Path:
    """docs/results-gemstones.md from the benchmark JSON: protocol, table, pictures, notes."""
    protocol, results = payload["protocol"], payload["results"]
    rows = [row(name, r) for name, r in results.items() if not name.startswith("_") and "metrics" in r]
    best = max(rows, key=lambda r: r["accuracy"]) if rows else None
    rf = results.get("rf-hist-lbp", {}).get("metrics")
    features = results.get("_feature_extraction")
    lines = [
        "# Gemstone classification (68 classes)",
        "",
        "Produced by `.venv/bin/python benchmarks/gemstones.py` "
        f"(raw figures: `benchmarks/results/gemstones.json`; machine: {payload['machine']['cpus']} CPUs, "
        f"load average {payload['machine']['load_average_1m']} at the end, {payload['machine']['date']}).",
        "",
        "## Protocol",
        "",
        f"- Data: `{protocol['data']}`, {protocol['photos']} photos in {protocol['classes']} class folders.",
        f"- Duplicates: {protocol['photos'] - protocol['after_deduplication']} byte-identical copies in "
        f"{len(protocol['duplicate_groups'])} groups ({protocol['cross_class_duplicate_groups']} groups span "
        "two classes) were removed before splitting, so no photo is both trained on and tested on.",
        f"- Split (seed {protocol['seed']}): stratified 80/20 into training ({protocol['train']}) and a "
        f"held-out validation part ({protocol['held_out_validation']}); **every figure below is measured on "
        "the held-out part**. Inside the training part a further stratified 20 % "
        f"({protocol['early_stopping']} photos) decides early stopping (VAE, GAN, CNN head) and the "
        "regularisation C of the SVMs and logistic regressions (grid in the JSON); the scikit-learn "
        "models are then refitted on the whole training part.",
        f"- Caps: the seed's VAE at most {protocol['vae_max_epochs']} epochs, GAN at most "
        f"{protocol['gan_max_epochs']} epochs, both with early stopping on the inner split (the seed's "
        "100-epoch default is the library default; the cap keeps this CPU benchmark within an hour).",
        "- Calibration: each model's temperature is fitted on its predictions for the inner "
        "early-stopping part (never the held-out part); *ECE* is the expected calibration error "
        "(15 equal-width bins) of the raw held-out probabilities, *ECE cal.* after dividing the "
        "log-probabilities by *T*. Calibration does not change the predicted class.",
        "- Reused rows: `--reuse` copies a committed row when the source files its model's training "
        "depends on are unchanged (a fingerprint stored with each row); rows committed before "
        "fingerprints existed are reused only when named with `--assume-unchanged`. Their *run* column "
        "gives the original date; *n/m* = not measured in that run (the probabilities were not kept).",
        "- TF-IDF sim.: the seed's caption score, mean cosine similarity of TF-IDF vectors between the "
        "description of the predicted class and that of the true class (1 when right, partial credit "
        "for a similar stone).",
    ]
    if features:
        lines.append(
            f"- Encoder features ({features['encoder']}, {features['image_size']} px, views "
            f"{', '.join(features['views'])}) were extracted once for all photos in "
            f"{features['seconds']:.0f} s and cached; the training times of the feature "
            "models below exclude that."
        )
    lines += ["", "## Results", "", table(rows, COLUMNS), ""]
    reused = sorted({r["reused"]["date"] for r in results.values() if isinstance(r, dict) and r.get("reused")})
    if reused:
        lines.append(f"Rows marked *reused* were trained on {', '.join(reused)} (same split, same protocol).")
        lines.append("")
    if best:
        lines.append(
            f"Best: **{best['model']}** with {percent(best['accuracy'])} accuracy (macro F1 {best['macro F1']:.3f})."
        )
    if rf:
        lines.append(
            f"The published anchor (Chow & Reyes-Aldasoro 2022, Random Forest on colour "
            f"histogram + LBP, their own split) is {percent(PUBLISHED_RF)}; our Random Forest on "
            f"our histogram + LBP reaches {percent(rf['accuracy'])} on this split."
        )
    lines += trust_lines(results)
    notes = payload.get("notes") or []
    if notes:
        lines += ["", "Run notes:", ""] + [f"- {note}" for note in notes]
    failed = payload.get("failed") or {}
    if failed:
        lines += ["", "Models that failed: " + "; ".join(f"{k}: {v}" for k, v in failed.items())]
    lines += [
        "",
        "## Models",
        "",
        "| name | what |",
        "|---|---|",
        "| rf-hist-lbp / svm-hist-lbp | Random Forest (500 trees) / RBF SVM on a joint 8x8x8 RGB histogram "
        "+ rotation-invariant uniform LBP at radii 1, 2, 3 (numpy), 128 px |",
        "| logreg-lite0 / svm-lite0 | logistic regression / RBF SVM on mean-pooled EfficientNet-Lite0 "
        "(ImageNet) features, 224 px |",
        "| *-lite0-colour-lbp-tta | the same on Lite0 features + RGB histogram + LBP + a 12x4x4 HSV "
        "histogram of the foreground pixels (backdrop colour estimated from the image border and "
        "masked out); all square-rooted and standardised; horizontally flipped copies added in "
        "training and averaged at test time |",
        "| cnn-lite0-head | Lite0 backbone (frozen) + dropout + softmax head trained with Adam, early "
        "stopping; `fine_tune_layers` can also train the top backbone layers (not benchmarked: CPU) |",
        "| ensemble | mean of the probabilities of the Lite0 + colour + LBP models and the CNN "
        "head (members fixed before running; the ones that finished are listed in the row) |",
        "| gan-ssl | semi-supervised DCGAN (Salimans et al. 2016): discriminator with K logits read as "
        "K+1 classes (fake logit 0), feature-matching generator; the discriminator classifies |",
        '| vae | `GemClassifier("vae")`: a VAE whose encoder is the pretrained Lite0 encoder: its pooled '
        "features + the colour descriptors (standardised) -> dense 512 -> z_mean / z_log_var (128), "
        "reparameterisation, deconv decoder reconstructing the photo at 64 px, loss = MSE + beta KL + "
        "cross-entropy of the classifier on z_mean (trained jointly, early stopping on the inner split), "
        "flips |",
        '| vae-seed / vae-seed-after | `GemClassifier("vae-seed")`, the seed\'s VAE (128 px, [0, 1], '
        "random rotation / flips / zoom, conv encoder to z_mean / z_log_var, reparameterisation, deconv "
        "decoder, loss = MSE + beta KL) with the classifier on z_mean trained jointly, or after on the "
        "frozen latent means (in the 2026-11 run these rows were called vae-joint / vae-after) |",
        "",
        "EfficientNetB0 with ImageNet weights is not in the table: Keras downloads those weights and "
        "this machine has no internet access (a random-weight B0 is not a meaningful baseline).",
    ]
    pictures = payload.get("pictures") or {}
    if pictures:
        lines += ["", "## Pictures", ""]
        captions = {
            "vae_reconstructions": "feature VAE: held-out photos at 64 px (top) and the decoding of their z_mean",
            "vae_latent": "feature VAE latent means of all photos, t-SNE, coloured by class",
            "vae_seed_reconstructions": "the seed's VAE: held-out photos and their reconstructions (2026-11 run)",
            "vae_seed_latent": "the seed's VAE latent means, t-SNE (2026-11 run)",
            "confusion_best": "confusion matrix of the best model of this run (rows: true class)",
            "confusion_vae": "confusion matrix of the feature VAE",
            f"reliability_{DEFAULT}": f"reliability diagram of {DEFAULT} before and after temperature scaling",
            "reliability_vae": "reliability diagram of the feature VAE before and after temperature scaling",
            f"open_set_{DEFAULT}-max-probability": f"open set: max calibrated probability of {DEFAULT}",
            "open_set_vae-max-probability": "open set: max calibrated probability of the feature VAE",
            "open_set_lite0-class-means": "open set: cosine to the nearest class mean of Lite0 features",
        }
        for key, path in pictures.items():
            relative = Path(path).relative_to("docs") if path.startswith("docs/") else Path(path)
            lines.append(f"![{captions.get(key, key)}]({relative.as_posix()})")
            lines.append("")
    lines += [
        "## Running the models yourself",
        "",
        "```python",
        "from gemcaption.classification import GemClassifier",
        "",
        'clf = GemClassifier("logreg")  # or "vae", "vae-seed", "cnn", "svm", "rf", "gan"',
        'clf.fit("folder:../shared/data/gemstones/train")  # holds out 20 % for early stopping / checks',
        "# the same 20 % fits the temperature and the unknown threshold (95 % of known stones accepted)",
        'print(clf.describe(["stone.jpg"]))  # ["Alexandrite (0.82): a colour-change chrysoberyl, ..."]',
        'clf.save("gem-model")',
        "```",
        "",
        "or `gemcaption classify train --data folder:PATH --model logreg --out DIR` (80/20 test split, "
        "metrics.json and confusion_matrix.png in DIR) and `gemcaption classify predict --model DIR "
        "[--json] IMAGE|FOLDER...` (class, calibrated probability, top-k, unknown flag, description; "
        "an unreadable file is reported on stderr, the others are still predicted, exit status 1).",
        "",
        "Saved models: the VAEs, GAN and CNN head are `.keras` files (loaded with `safe_mode=True`); "
        "logistic regression, the Random Forest and the SVM are plain arrays (`.npz`, loaded without "
        "pickle). Nothing loaded from a model directory runs code.",
        "",
    ]
    path = DOCS / "results-gemstones.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(SHARED / "gemstones" / "train"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--views",
        default="identity,hflip",
        help="image views for the encoder-feature models (training copies + test-time average)",
    )
    parser.add_argument("--vae-epochs", type=int, default=40, help="maximum VAE epochs (early stopping applies)")
    parser.add_argument("--gan-epochs", type=int, default=60, help="maximum GAN epochs (early stopping applies)")
    parser.add_argument("--only", default="", help="comma-separated model names to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="tiny settings to check the script runs")
    parser.add_argument("--classes", type=int, default=0, help="use only the first N classes (0 = all)")
    parser.add_argument(
        "--partial",
        default=str(PARTIAL),
        help="per-model results so far (read with --only, rewritten after each model)",
    )
    parser.add_argument("--drop", default="", help="comma-separated result names to forget (stale runs)")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="copy committed rows of benchmarks/results/gemstones.json whose model code is unchanged "
        "(same source fingerprint) instead of re-training them; they are marked as reused, with their date",
    )
    parser.add_argument(
        "--assume-unchanged",
        default="",
        help="with --reuse: comma-separated rows committed before fingerprints existed to reuse anyway",
    )
    parser.add_argument("--unknown-limit", type=int, default=0, help="use only N photos of each unknown set (checks)")
    parser.add_argument(
        "--open-set",
        default=f"{DEFAULT},vae",
        help="models whose known-vs-unknown (Flickr8k dev, jewellery) separation is measured",
    )
    parser.add_argument(
        "--docs-only",
        action="store_true",
        help="only rewrite docs/results-gemstones.md from benchmarks/results/gemstones.json",
    )
    args = parser.parse_args(argv)
    if args.docs_only:
        print(write_docs(json.loads((RESULTS / "gemstones.json").read_text())).read_text())
        return 0

    from gemcaption.classification.baselines import DescriptorClassifier
    from gemcaption.classification.cnn import CNNClassifier
    from gemcaption.classification.feature_vae import FeatureVAEClassifier
    from gemcaption.classification.gan import GANClassifier
    from gemcaption.classification.vae_classifier import VAEClassifier

    views = tuple(args.views.split(","))
    data = Data(Path(args.data), args.seed, args.classes)
    log(
        f"{data.total} photos, {len(data.images)} after removing {data.total - len(data.images)} "
        f"duplicates ({len(data.duplicate_groups)} groups, {data.cross_class_groups} across classes); "
        f"{len(data.labels)} classes; train {len(data.train_rows)} (inner fit {len(data.fit_rows)}, "
        f"early stopping {len(data.stop_rows)}), held-out validation {len(data.test_rows)}"
    )
    quick = args.quick
    vae_epochs = 2 if quick else args.vae_epochs
    gan_epochs = 2 if quick else args.gan_epochs
    trees = 50 if quick else 500
    lite = "efficientnet_lite0"
    handcrafted = ("handcrafted",)
    combo = ("encoder", "handcrafted", "foreground")

    def descriptor(kind, features, size, use_views=False):
        def make(c):
            options = {"svm_c": c} if kind == "svm" and c else ({"logreg_c": c} if c else {})
            return DescriptorClassifier(
                kind,
                features=features,
                encoder=lite,
                image_size=size,
                views=views if use_views else ("identity",),
                n_estimators=trees,
                seed=args.seed,
                **options,
            )

        return make

    logreg_grid, svm_grid = [0.01, 0.1, 1.0], [1.0, 10.0, 100.0]
    plan = [
        ("rf-hist-lbp", "RGB histogram + LBP", "sk", descriptor("rf", handcrafted, 128), 128, None),
        ("svm-hist-lbp", "RGB histogram + LBP", "sk", descriptor("svm", handcrafted, 128), 128, svm_grid),
        ("features", None, "warm", None, 224, None),
        ("logreg-lite0", "EfficientNet-Lite0 pooled", "sk", descriptor("logreg", ("encoder",), 224), 224, logreg_grid),
        ("svm-lite0", "EfficientNet-Lite0 pooled", "sk", descriptor("svm", ("encoder",), 224), 224, svm_grid),
        (
            "logreg-lite0-colour-lbp-tta",
            "Lite0 + RGB hist. + LBP + foreground HSV hist., flips",
            "sk",
            descriptor("logreg", combo, 224, True),
            224,
            logreg_grid,
        ),
        (
            "svm-lite0-colour-lbp-tta",
            "Lite0 + RGB hist. + LBP + foreground HSV hist., flips",
            "sk",
            descriptor("svm", combo, 224, True),
            224,
            svm_grid,
        ),
        (
            "cnn-lite0-head",
            "Lite0 + trained softmax head, flips",
            "keras",
            lambda: CNNClassifier(
                encoder=lite, image_size=224, views=views, seed=args.seed, epochs=20 if quick else 300
            ),
            224,
            None,
        ),
        (
            "gan-ssl",
            "semi-supervised DCGAN discriminator, 64 px",
            "keras",
            lambda: GANClassifier(
                image_size=64, filters=(32, 64, 128, 256), epochs=gan_epochs, patience=12, batch_size=32, seed=args.seed
            ),
            64,
            None,
        ),
        (
            "vae",
            "VAE over Lite0 + colour features (224 px), decoder to 64 px, classifier on z_mean, flips",
            "keras",
            lambda: FeatureVAEClassifier(epochs=8 if quick else 200, patience=20, seed=args.seed),
            224,
            None,
        ),
        (
            "vae-seed",
            "seed's pixel VAE 128 px, classifier on z_mean trained jointly",
            "keras",
            lambda: VAEClassifier(
                image_size=128,
                latent_dim=64,
                filters=(16, 32, 64, 128),
                classifier_mode="joint",
                epochs=vae_epochs,
                patience=8,
                seed=args.seed,
            ),
            128,
            None,
        ),
        (
            "vae-seed-after",
            "seed's pixel VAE 128 px, classifier on frozen z_mean after",
            "keras",
            lambda: VAEClassifier(
                image_size=128,
                latent_dim=64,
                filters=(16, 32, 64, 128),
                classifier_mode="after",
                epochs=vae_epochs,
                patience=8,
                seed=args.seed,
            ),
            128,
            None,
        ),
        (
            "ensemble",
            "mean of the Lite0 + colour models, the CNN head and the feature VAE",
            "ensemble",
            ["logreg-lite0-colour-lbp-tta", "svm-lite0-colour-lbp-tta", "cnn-lite0-head", "vae"],
            224,
            None,
        ),
    ]
    only = set(filter(None, args.only.split(",")))
    partial = Path(args.partial)
    probabilities_path = PROBABILITIES.with_name(f"{PROBABILITIES.stem}-{partial.stem}.npz")
    results: dict = json.loads(partial.read_text()) if only and partial.exists() else {}
    probabilities: dict = {}
    if only and probabilities_path.exists():
        with np.load(probabilities_path) as stored:
            probabilities = {key: stored[key] for key in stored.files}
    for name in filter(None, args.drop.split(",")):
        results.pop(name, None)
        probabilities.pop(name, None)
    committed_path = RESULTS / "gemstones.json"
    committed = json.loads(committed_path.read_text()) if args.reuse and committed_path.exists() else {}
    assume_unchanged = set(filter(None, args.assume_unchanged.split(",")))
    open_set_models = set(filter(None, args.open_set.split(",")))
    unknown_pixels: dict = {}
    trust_curves: dict = {}
    open_set_pictures: dict = {}
    vae_model = None
    for name, features, family, make, size, grid in plan:
        if only and name not in only and family != "warm":
            continue
        reused = trust.reusable_row(name, committed, assume_unchanged) if committed else None
        if reused is not None:
            log(f"== {name}: reused from {reused['reused']['date']} ({reused['reused']['fingerprint']})")
            results[name] = reused
            continue
        log(f"== {name}")
        try:
            if family == "warm":
                results["_feature_extraction"] = {
                    "encoder": lite,
                    "image_size": size,
                    "views": list(views),
                    "seconds": warm_features(data, lite, size, views),
                }
                continue
            if family == "ensemble":
                members = [m for m in make if m in probabilities]
                if len(members) < 2:
                    log("  skipped: fewer than two members ran")
                    continue
                proba = np.mean([probabilities[m] for m in members], axis=0)
                stop_proba = np.mean([probabilities[f"{m}@stop"] for m in members], axis=0)
                result = {
                    "features": "mean probability of " + " + ".join(members),
                    "members": members,
                    "training_seconds": sum(results[m]["training_seconds"] for m in members),
                }
                model = None
            else:
                if family == "sk":
                    model, result, stop_proba = run_sklearn(data, name, make, size, grid)
                else:
                    model, result, history, stop_proba = run_keras(data, name, make(), size)
                    result["history_tail"] = {k: v[-3:] for k, v in history.items() if isinstance(v, list)}
                result["features"] = features
                started = time.perf_counter()
                proba = model.predict_proba(data.part(data.test_rows, size)[0])
                result["predict_seconds"] = time.perf_counter() - started
                result["config"] = model.config()
                result["fingerprint"] = trust.fingerprint(name)
                if name == "vae":
                    vae_model = model
            probabilities[name], probabilities[f"{name}@stop"] = proba, stop_proba
            result["metrics"] = score(data, proba)
            result["calibration"], scaling = trust.calibration_figures(
                stop_proba, data.y[data.stop_rows], proba, data.y[data.test_rows]
            )
            if name in (DEFAULT, "vae"):
                from gemcaption.evaluation.classification import reliability_bins

                calibration = result["calibration"]
                truth = data.y[data.test_rows]
                trust_curves[name] = {
                    f"before (ECE {calibration['ece']:.3f})": reliability_bins(proba, truth),
                    f"after, T={scaling.temperature:.2f} (ECE {calibration['ece_calibrated']:.3f})": reliability_bins(
                        scaling.transform(proba), truth
                    ),
                }
            if model is not None and name in open_set_models:
                from gemcaption.classification.open_set import max_probability

                if not unknown_pixels:
                    unknown_pixels = trust.load_unknown_pixels(224, args.unknown_limit)
                known_stop = max_probability(scaling.transform(stop_proba))
                known_test = max_probability(scaling.transform(proba))
                unknown = {
                    k: max_probability(scaling.transform(model.predict_proba(v))) for k, v in unknown_pixels.items()
                }
                result["open_set"] = {"max_probability": trust.open_set_report(known_stop, known_test, unknown)}
                open_set_pictures[f"{name}-max-probability"] = (
                    {"known (held-out gems)": known_test, **unknown},
                    result["open_set"]["max_probability"]["threshold"],
                )
                log(f"  open set (max probability): {result['open_set']['max_probability']}")
            results[name] = result
            log(
                f"  accuracy {result['metrics']['accuracy']:.3f}, macro F1 "
                f"{result['metrics']['macro_f1']:.3f}, ECE {result['calibration']['ece']:.3f} -> "
                f"{result['calibration']['ece_calibrated']:.3f}, {result.get('training_seconds', 0):.0f}s"
            )
        except Exception as exc:  # record and go on: one failing model must not lose the others
            traceback.print_exc()
            results[name] = {"features": features, "error": f"{type(exc).__name__}: {exc}"}
        RESULTS.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps(results, indent=2, default=str))
        np.savez(probabilities_path, **probabilities)

    if open_set_models:
        if not unknown_pixels:
            unknown_pixels = trust.load_unknown_pixels(224, args.unknown_limit)
        scores = trust.class_mean_scores(data, unknown_pixels)
        results["_open_set_class_means"] = {
            "score": "cosine to the class means of Lite0 features (means from the inner-fit part)",
            **trust.open_set_report(scores["stop"], scores["test"], scores["unknown"]),
        }
        open_set_pictures["lite0-class-means"] = (
            {"known (held-out gems)": scores["test"], **scores["unknown"]},
            results["_open_set_class_means"]["threshold"],
        )
        log(f"  open set (class means): {results['_open_set_class_means']}")
    pictures = (
        save_pictures(data, vae_model, results, trust_curves, open_set_pictures) if not (quick or args.classes) else {}
    )
    previous = RESULTS / "gemstones.json"
    if previous.exists() and not (quick or args.classes):
        old = json.loads(previous.read_text()).get("pictures", {})
        pictures = {**{k: v for k, v in old.items() if (ROOT / v).exists() and "confusion" not in k}, **pictures}
        for key, file in (("vae_seed_reconstructions", "reconstructions"), ("vae_seed_latent", "latent-tsne")):
            seed_picture = IMAGES / f"gemstones-vae-{file}.png"
            if seed_picture.exists() and seed_picture.as_posix() not in {
                (ROOT / v).as_posix() for v in pictures.values()
            }:
                pictures[key] = trust.path_text(seed_picture)
    rows = [row(name, r) for name, r in results.items() if not name.startswith("_") and "metrics" in r]
    failed = {name: r["error"] for name, r in results.items() if "error" in r}
    markdown = table(rows, COLUMNS)
    payload = {
        "protocol": {
            "data": str(args.data),
            "photos": data.total,
            "after_deduplication": len(data.images),
            "duplicate_groups": data.duplicate_groups,
            "cross_class_duplicate_groups": data.cross_class_groups,
            "classes": len(data.labels),
            "train": len(data.train_rows),
            "inner_fit": len(data.fit_rows),
            "early_stopping": len(data.stop_rows),
            "held_out_validation": len(data.test_rows),
            "seed": args.seed,
            "views": list(views),
            "vae_max_epochs": vae_epochs,
            "gan_max_epochs": gan_epochs,
            "published_rf_accuracy": PUBLISHED_RF,
            "quick": quick,
        },
        "machine": machine(),
        "results": results,
        "failed": failed,
        "pictures": pictures,
    }
    name = "gemstones_quick" if quick or args.classes else "gemstones"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2, default=str))
    (RESULTS / f"{name}.md").write_text(markdown + "\n")
    if name == "gemstones":
        write_docs(payload)
    print(markdown)
    if failed:
        print("failed:", json.dumps(failed, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
