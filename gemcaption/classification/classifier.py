"""GemClassifier: train on a class-folder dataset, predict stones, describe them in words.

Saved as a directory (atomically, :func:`gemcaption.persistence.save_directory`): ``manifest.json``
(format ``gemcaption-classifier``, version 2, ``kind`` = the model's kind, ``config`` =
``{"labels", "training_seconds", "calibration", "open_set"}``) and the model in ``model/`` (its own
manifest, see :mod:`gemcaption.classification.base`). Directories of the previous release
(``labels.json`` + ``model/model.json``, format version 1) still load; so do directories saved
before calibration (temperature 1, no unknown flag).

Training holds out a validation part of the training data; on it a temperature is fitted
(:mod:`gemcaption.classification.calibration`) and the open-set threshold chosen
(:mod:`gemcaption.classification.open_set`), so that 95 % of the known validation stones are
accepted. The open-set score is, by default (``open_set="features"``), the cosine between a photo's
EfficientNet-Lite0 features and the nearest class mean of the training photos (means saved in
``open_set.npz``), which tells gem photos from other photos far better than the top probability;
``open_set="probability"`` uses the calibrated top probability instead, ``None`` flags nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.splits import stratified_split
from ..errors import ConfigError, DatasetError, ImageError, ModelError
from ..persistence import has_manifest, read_json, read_manifest, resolve_directory, save_directory
from .base import MODEL_KINDS, Timer, load_model_dir, write_model_dir
from .calibration import TemperatureScaling
from .kinds import CLASSIFIER_KINDS, make_model
from .open_set import ClassMeans, OpenSetRule, max_probability

FORMAT = "gemcaption-classifier"
FORMAT_VERSION = 2
LEGACY_LABELS_FILE = "labels.json"  # format version 1
MODEL_SUBDIR = "model"
MODEL_CHOICES = tuple(CLASSIFIER_KINDS.names())
OPEN_SET_FILE = "open_set.npz"
OPEN_SET_MODES = ("features", "probability", None)
OPEN_SET_ENCODER = ("efficientnet_lite0", "imagenet", 224)  # encoder, weights, image size of the class means


@dataclass
class Prediction:
    """One image's predicted class, its calibrated probability, the top-k alternatives, and whether
    the photo looks like none of the known stones (``unknown``)."""

    label: str
    probability: float
    top_k: list[tuple[str, float]] = field(default_factory=list)
    unknown: bool = False

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "probability": self.probability,
            "unknown": self.unknown,
            "top_k": [{"label": label, "probability": p} for label, p in self.top_k],
        }


def describe_label(label: str) -> str:
    """The gemstone description table's text for ``label`` ('' when the stone is not in it)."""
    try:
        from ..data.gemstones import describe_gemstone

        return str(describe_gemstone(label) or "")
    except (KeyError, LookupError, ValueError, ImportError):
        return ""


def caption_text(label: str) -> str:
    """The description without a leading repetition of the class name
    (``"alexandrite, a colour-change ..."`` -> ``"a colour-change ..."``)."""
    description = describe_label(label)
    name = str(label).strip().lower()
    if name and description.lower().startswith(name):
        rest = description[len(name) :].lstrip(" ,;:-")
        if rest:
            return rest
    return description


def dataset_items(data) -> tuple[list, list[str]]:
    """(images, labels) of a Dataset, a ``load_dataset`` spec string, or an (images, labels) pair."""
    if isinstance(data, (str, Path)):
        from ..data.loaders import load_dataset

        spec = str(data)
        data = load_dataset(spec if ":" in spec else f"folder:{spec}")
    if isinstance(data, tuple) and len(data) == 2:
        images, labels = list(data[0]), [str(label) for label in data[1]]
    else:
        samples = list(getattr(data, "samples", data))
        images = [sample.image for sample in samples]
        labels = [sample.label for sample in samples]
    if not images:
        raise DatasetError("the dataset has no images")
    if any(label is None for label in labels):
        raise DatasetError("every training image needs a class label (use a folder:PATH dataset)")
    if len(images) != len(labels):
        raise DatasetError(f"{len(images)} images but {len(labels)} labels")
    return images, labels


def load_pixels(sources, size: int, strict: bool, progress: bool = False):
    """uint8 (N, size, size, 3) and the kept indices; ``strict`` raises on the first bad image."""
    import warnings

    from ..data.images import load_image, load_images

    sources = list(sources)
    with warnings.catch_warnings():
        if strict:  # the error below names the file; no need for the skip warnings too
            warnings.simplefilter("ignore")
        pixels, kept = load_images(sources, size, progress=progress)
    if strict and len(kept) != len(sources):
        bad = sorted(set(range(len(sources))) - set(kept))[0]
        load_image(sources[bad])  # raises ImageError naming the file
        raise ImageError(f"could not read image {sources[bad]!r}")
    if not kept:
        raise ImageError("none of the images could be read")
    return np.asarray(pixels, np.uint8), list(kept)


class GemClassifier:
    """Classify gemstone photos and describe the predicted stone.

    >>> clf = GemClassifier("logreg")                       # or vae, cnn, svm, rf, gan
    >>> clf.fit("folder:../shared/data/gemstones/train")     # doctest: +SKIP
    >>> clf.describe(["stone.jpg"])                          # doctest: +SKIP
    ['Alexandrite (0.82): a colour-change chrysoberyl, ...']
    """

    def __init__(self, model="vae", open_set: str | None = "features", **options):
        if open_set not in OPEN_SET_MODES:
            raise ConfigError(f"open_set must be one of {list(OPEN_SET_MODES)}, got {open_set!r}")
        self.open_set_mode = open_set
        self.class_means: ClassMeans | None = None
        self.model = make_model(model, **options) if isinstance(model, str) else model
        self.labels: list[str] = []
        self.history: dict = {}
        self.training_seconds = None
        self.calibration = TemperatureScaling(1.0)
        self.open_set: OpenSetRule | None = None
        self.calibration_report: dict = {}

    @property
    def kind(self) -> str:
        return self.model.kind

    @property
    def image_size(self) -> int:
        return self.model.image_size

    def fit(
        self,
        train,
        validation=None,
        validation_fraction: float = 0.2,
        seed: int = 0,
        progress: bool = False,
        accept: float = 0.95,
    ) -> dict:
        """Train on a class-folder dataset (Dataset, ``folder:PATH`` spec, or (images, labels)).

        Without ``validation`` a seeded stratified ``validation_fraction`` of ``train`` is held out
        for early stopping (the seed paper's 80/20 of the training set); 0 disables that. The same
        validation part fits the temperature and the open-set threshold (``accept``: share of known
        validation stones accepted); without one the probabilities stay uncalibrated and nothing
        is flagged unknown. Returns the training history.
        """
        images, labels = dataset_items(train)
        self.labels = sorted(set(labels))
        if len(self.labels) < 2:
            raise DatasetError(f"need at least two classes, found {self.labels}")
        index = {label: i for i, label in enumerate(self.labels)}
        pixels, kept = load_pixels(images, self.image_size, strict=False, progress=progress)
        y = np.array([index[labels[i]] for i in kept])
        val = None
        if validation is not None:
            val_images, val_labels = dataset_items(validation)
            unknown = sorted(set(val_labels) - set(self.labels))
            if unknown:
                raise DatasetError(f"validation classes not in training: {unknown[:5]}")
            val_pixels, val_kept = load_pixels(val_images, self.image_size, strict=False)
            val = (val_pixels, np.array([index[val_labels[i]] for i in val_kept]))
        elif validation_fraction > 0:
            fit_rows, val_rows = stratified_split(y.tolist(), validation_fraction, seed)
            if val_rows:
                val = (pixels[val_rows], y[val_rows])
                pixels, y = pixels[fit_rows], y[fit_rows]
        with Timer() as timer:
            self.history = self.model.fit(pixels, y, len(self.labels), validation=val)
        self.training_seconds = timer.seconds
        self.calibration, self.open_set, self.calibration_report = TemperatureScaling(1.0), None, {}
        self.class_means = None
        if val is not None:
            self.calibrate(self.model.predict_proba(val[0]), val[1], accept)
            if self.open_set_mode == "features":
                self.class_means = ClassMeans().fit(self.open_set_features(pixels), y)
                scores = self.class_means.score(self.open_set_features(val[0]))
                self.open_set = OpenSetRule("class_mean_cosine", accept=accept).fit(scores)
            elif self.open_set_mode is None:
                self.open_set = None
        return self.history

    @staticmethod
    def open_set_features(pixels: np.ndarray) -> np.ndarray:
        """Pooled EfficientNet-Lite0 features (224 px, through the feature cache) of uint8 images."""
        from .baselines import FeatureExtractor

        name, weights, size = OPEN_SET_ENCODER
        if pixels.shape[1] != size:
            from PIL import Image

            pixels = np.stack(
                [np.asarray(Image.fromarray(p).resize((size, size), Image.Resampling.BICUBIC)) for p in pixels]
            )
        extractor = FeatureExtractor(("encoder",), name, weights, size, cache=True)
        return np.concatenate([extractor(pixels[i : i + 256]) for i in range(0, len(pixels), 256)])

    def open_set_scores(self, pixels: np.ndarray, calibrated: np.ndarray) -> np.ndarray:
        """The open-set score of each image (higher = more like a known stone)."""
        if self.open_set is not None and self.open_set.score == "class_mean_cosine":
            if self.class_means is None:
                raise ModelError("the open-set class means are missing")
            return self.class_means.score(self.open_set_features(pixels))
        return max_probability(calibrated)

    def calibrate(self, probabilities, labels, accept: float = 0.95) -> dict:
        """Fit the temperature and the open-set threshold on validation probabilities (uncalibrated,
        columns = ``self.labels``) and labels (indices); returns ECE and NLL before and after."""
        from ..evaluation.classification import expected_calibration_error
        from .calibration import negative_log_likelihood

        probabilities, labels = np.asarray(probabilities, np.float64), np.asarray(labels, np.int64)
        self.calibration = TemperatureScaling().fit(probabilities, labels)
        calibrated = self.calibration.transform(probabilities)
        self.open_set = OpenSetRule("max_probability", accept=accept).fit(max_probability(calibrated))
        self.calibration_report = {
            "validation_images": len(labels),
            "temperature": self.calibration.temperature,
            "ece_before": expected_calibration_error(probabilities, labels),
            "ece_after": expected_calibration_error(calibrated, labels),
            "nll_before": negative_log_likelihood(probabilities, labels),
            "nll_after": negative_log_likelihood(calibrated, labels),
        }
        return self.calibration_report

    def _require_fitted(self):
        if not self.labels:
            raise ModelError("the classifier is not trained yet: call fit() or GemClassifier.load()")

    def predict_proba(self, images, progress: bool = False, calibrated: bool = True) -> np.ndarray:
        """Class probabilities (N, K), calibrated unless ``calibrated=False``; columns follow
        ``self.labels``. Unreadable images raise."""
        self._require_fitted()
        single = isinstance(images, (str, Path, bytes)) or (isinstance(images, np.ndarray) and images.ndim == 3)
        sources = [images] if single else list(images)
        if not sources:
            return np.zeros((0, len(self.labels)))
        pixels, _ = load_pixels(sources, self.image_size, strict=True, progress=progress)
        probabilities = self.model.predict_proba(pixels)
        return self.calibration.transform(probabilities) if calibrated else probabilities

    def _predictions(self, pixels: np.ndarray, top_k: int) -> list[Prediction]:
        probabilities = self.calibration.transform(self.model.predict_proba(pixels))
        k = max(1, min(int(top_k), len(self.labels)))
        unknown = (
            self.open_set.is_unknown(self.open_set_scores(pixels, probabilities))
            if self.open_set is not None and len(probabilities)
            else np.zeros(len(probabilities), bool)
        )
        out = []
        for row, flag in zip(probabilities, unknown):
            order = np.argsort(-row, kind="stable")[:k]
            top = [(self.labels[i], float(row[i])) for i in order]
            out.append(Prediction(top[0][0], top[0][1], top, bool(flag)))
        return out

    def predict(self, images, top_k: int = 3) -> list[Prediction]:
        """For each image: the most probable class, its calibrated probability, the ``top_k``
        classes and the unknown flag. Unreadable images raise (see :meth:`predict_sources`)."""
        self._require_fitted()
        single = isinstance(images, (str, Path, bytes)) or (isinstance(images, np.ndarray) and images.ndim == 3)
        sources = [images] if single else list(images)
        if not sources:
            return []
        pixels, _ = load_pixels(sources, self.image_size, strict=True)
        return self._predictions(pixels, top_k)

    def predict_sources(self, sources, top_k: int = 3) -> list[Prediction | ImageError]:
        """Like :meth:`predict` for a list of images, but an unreadable image gives its
        :class:`~gemcaption.errors.ImageError` in its place instead of stopping the others."""
        import warnings

        from ..data.images import load_image, load_images

        self._require_fitted()
        sources = list(sources)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # each failure is returned below, naming its file
            pixels, kept = load_images(sources, self.image_size)
        results: list[Prediction | ImageError] = []
        for index, source in enumerate(sources):
            if index in kept:
                continue
            try:
                load_image(source)
                error = ImageError(f"could not read image {source!r}")
            except ImageError as exc:
                error = exc
            results.append(error)
        errors = iter(results)
        predictions = iter(self._predictions(pixels, top_k) if kept else [])
        kept_set = set(kept)
        return [next(predictions) if i in kept_set else next(errors) for i in range(len(sources))]

    def describe(self, images) -> list[str]:
        """Caption from the predicted class: ``"Alexandrite (0.82): <description>"``."""
        captions = []
        for prediction in self.predict(images, top_k=1):
            description = caption_text(prediction.label)
            head = f"{prediction.label} ({prediction.probability:.2f})"
            if prediction.unknown:
                captions.append(f"unknown: not like any known stone (closest {head})")
                continue
            captions.append(f"{head}: {description}" if description else head)
        return captions

    def evaluate(self, data, progress: bool = False) -> dict:
        """Accuracy, macro and per-class precision / recall / F1, confusion matrix, and the mean
        TF-IDF cosine between the predicted and the true class description."""
        from ..evaluation.captioning import pairwise_tfidf_cosine
        from ..evaluation.classification import classification_metrics

        self._require_fitted()
        images, labels = dataset_items(data)
        pixels, kept = load_pixels(images, self.image_size, strict=False, progress=progress)
        probabilities = self.calibration.transform(self.model.predict_proba(pixels))
        y_true = [labels[i] for i in kept]
        y_pred = [self.labels[i] for i in probabilities.argmax(axis=1)]
        metrics = classification_metrics(y_true, y_pred, sorted(set(self.labels) | set(y_true)))
        descriptions = {label: describe_label(label) for label in set(y_true) | set(y_pred)}
        corpus = [d for d in descriptions.values() if d]
        if corpus:
            similarity = pairwise_tfidf_cosine(
                [descriptions[t] for t in y_true], [descriptions[p] for p in y_pred], corpus=corpus
            )
            metrics["tfidf_similarity"] = float(similarity.mean())
        metrics["evaluated"] = len(kept)
        known = [i for i, label in enumerate(y_true) if label in self.labels]
        if known:
            from ..evaluation.classification import expected_calibration_error

            index = {label: i for i, label in enumerate(self.labels)}
            metrics["ece"] = expected_calibration_error(probabilities[known], [index[y_true[i]] for i in known])
        if self.open_set is not None:
            scores = self.open_set_scores(pixels, probabilities)
            metrics["unknown_rate"] = float(np.mean(self.open_set.is_unknown(scores)))
        return metrics

    def get_config(self) -> dict:
        """What the manifest stores beside the model: the class names, the training time, the
        calibration (temperature and its validation report) and the open-set rule."""
        config: dict = {"labels": list(self.labels), "training_seconds": self.training_seconds}
        if self.calibration_report:  # calibrated on a validation part (absent: temperature 1)
            config["calibration"] = {**self.calibration.get_config(), "report": self.calibration_report}
        if self.open_set is not None:
            config["open_set"] = self.open_set.get_config()
        return config

    def save(self, directory) -> Path:
        """Write the manifest and the model (``model/``) into ``directory``, atomically: a crash
        during the save leaves the previous classifier there, loadable."""
        self._require_fitted()
        target = Path(directory)
        if target.is_dir() and any(target.iterdir()) and not _is_classifier_directory(target):
            raise ModelError(
                f"{target} exists and is not a GemClassifier directory: saving would replace it "
                "with everything in it; choose a new or empty directory"
            )

        def write(staged: Path) -> None:
            if hasattr(self.model, "write_files"):
                write_model_dir(self.model, staged / MODEL_SUBDIR)
            else:  # a model class of its own, with only save()
                self.model.save(staged / MODEL_SUBDIR)
            if self.class_means is not None:
                np.savez(staged / OPEN_SET_FILE, **self.class_means.arrays())

        return save_directory(directory, FORMAT, FORMAT_VERSION, self.kind, self.get_config(), write)

    @classmethod
    def load(cls, directory, trust: bool = False) -> GemClassifier:
        """Load a classifier written by :meth:`save` (or by the previous release).

        ``trust=True`` also reads the joblib files of models saved by the previous release (they can
        run code: only for directories you made); without it they are refused with one ModelError.
        """
        path = resolve_directory(directory, must_exist=False)
        if has_manifest(path):
            config = read_manifest(path, FORMAT, (FORMAT_VERSION,)).config
        elif (path / LEGACY_LABELS_FILE).is_file():
            config = read_json(path / LEGACY_LABELS_FILE)
        else:
            raise ModelError(f"{directory}: not a GemClassifier directory (no manifest.json)")
        labels = config.get("labels") if isinstance(config, dict) else None
        if not isinstance(labels, list) or not labels:
            raise ModelError(f"damaged: {path} (no class labels)")
        model = load_model_dir(path / MODEL_SUBDIR, trust=trust)
        if model.num_classes != len(labels):
            raise ModelError(f"{directory}: {len(labels)} labels but the model has {model.num_classes} classes")
        classifier = cls(model)
        classifier.labels = [str(label) for label in labels]
        classifier.training_seconds = config.get("training_seconds")
        try:
            calibration = config.get("calibration") or None
            classifier.calibration = TemperatureScaling.from_config(calibration)
            classifier.calibration_report = dict((calibration or {}).get("report") or {})
            classifier.open_set = OpenSetRule.from_config(config.get("open_set"))
            if classifier.open_set is not None and classifier.open_set.score == "class_mean_cosine":
                with np.load(path / OPEN_SET_FILE, allow_pickle=False) as arrays:
                    classifier.class_means = ClassMeans(arrays["center"], arrays["means"])
        except (KeyError, TypeError, ValueError, OSError) as exc:
            raise ModelError(f"damaged: {path} (calibration / open set: {exc})") from None
        return classifier

    def __repr__(self) -> str:
        return f"GemClassifier({self.kind!r}, classes={len(self.labels)})"


def _is_classifier_directory(path: Path) -> bool:
    """A directory :meth:`GemClassifier.save` wrote (this release's or the previous one's layout)."""
    return (path / "manifest.json").is_file() or (path / LEGACY_LABELS_FILE).is_file()


__all__ = ["GemClassifier", "Prediction", "make_model", "MODEL_KINDS", "MODEL_CHOICES", "stratified_split"]
