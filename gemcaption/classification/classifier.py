"""GemClassifier: train on a class-folder dataset, predict stones, describe them in words.

Saved as a directory (atomically, :func:`gemcaption.persistence.save_directory`): ``manifest.json``
(format ``gemcaption-classifier``, version 2, ``kind`` = the model's kind, ``config`` =
``{"labels", "training_seconds"}``) and the model in ``model/`` (its own manifest, see
:mod:`gemcaption.classification.base`). Directories of the previous release (``labels.json`` +
``model/model.json``, format version 1) still load.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.splits import stratified_split
from ..errors import DatasetError, ImageError, ModelError
from ..persistence import has_manifest, read_json, read_manifest, resolve_directory, save_directory
from .base import MODEL_KINDS, Timer, load_model_dir, write_model_dir
from .kinds import CLASSIFIER_KINDS, make_model

FORMAT = "gemcaption-classifier"
FORMAT_VERSION = 2
LEGACY_LABELS_FILE = "labels.json"  # format version 1
MODEL_SUBDIR = "model"
MODEL_CHOICES = tuple(CLASSIFIER_KINDS.names())


@dataclass
class Prediction:
    """One image's predicted class, its probability and the top-k alternatives."""

    label: str
    probability: float
    top_k: list[tuple[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "probability": self.probability,
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

    def __init__(self, model="vae", **options):
        self.model = make_model(model, **options) if isinstance(model, str) else model
        self.labels: list[str] = []
        self.history: dict = {}
        self.training_seconds = None

    @property
    def kind(self) -> str:
        return self.model.kind

    @property
    def image_size(self) -> int:
        return self.model.image_size

    def fit(
        self, train, validation=None, validation_fraction: float = 0.2, seed: int = 0, progress: bool = False
    ) -> dict:
        """Train on a class-folder dataset (Dataset, ``folder:PATH`` spec, or (images, labels)).

        Without ``validation`` a seeded stratified ``validation_fraction`` of ``train`` is held out
        for early stopping (the seed paper's 80/20 of the training set); 0 disables that.
        Returns the training history.
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
        return self.history

    def _require_fitted(self):
        if not self.labels:
            raise ModelError("the classifier is not trained yet: call fit() or GemClassifier.load()")

    def predict_proba(self, images, progress: bool = False) -> np.ndarray:
        """Class probabilities (N, K); columns follow ``self.labels``. Unreadable images raise."""
        self._require_fitted()
        single = isinstance(images, (str, Path, bytes)) or (isinstance(images, np.ndarray) and images.ndim == 3)
        sources = [images] if single else list(images)
        if not sources:
            return np.zeros((0, len(self.labels)))
        pixels, _ = load_pixels(sources, self.image_size, strict=True, progress=progress)
        return self.model.predict_proba(pixels)

    def predict(self, images, top_k: int = 3) -> list[Prediction]:
        """For each image: the most probable class, its probability and the ``top_k`` classes."""
        probabilities = self.predict_proba(images)
        k = max(1, min(int(top_k), len(self.labels)))
        out = []
        for row in probabilities:
            order = np.argsort(-row, kind="stable")[:k]
            top = [(self.labels[i], float(row[i])) for i in order]
            out.append(Prediction(top[0][0], top[0][1], top))
        return out

    def describe(self, images) -> list[str]:
        """Caption from the predicted class: ``"Alexandrite (0.82): <description>"``."""
        captions = []
        for prediction in self.predict(images, top_k=1):
            description = caption_text(prediction.label)
            head = f"{prediction.label} ({prediction.probability:.2f})"
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
        probabilities = self.model.predict_proba(pixels)
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
        return metrics

    def get_config(self) -> dict:
        """What the manifest stores beside the model: the class names and the training time."""
        return {"labels": list(self.labels), "training_seconds": self.training_seconds}

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

        return save_directory(directory, FORMAT, FORMAT_VERSION, self.kind, self.get_config(), write)

    @classmethod
    def load(cls, directory) -> GemClassifier:
        """Load a classifier written by :meth:`save` (or by the previous release)."""
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
        model = load_model_dir(path / MODEL_SUBDIR)
        if model.num_classes != len(labels):
            raise ModelError(f"{directory}: {len(labels)} labels but the model has {model.num_classes} classes")
        classifier = cls(model)
        classifier.labels = [str(label) for label in labels]
        classifier.training_seconds = config.get("training_seconds")
        return classifier

    def __repr__(self) -> str:
        return f"GemClassifier({self.kind!r}, classes={len(self.labels)})"


def _is_classifier_directory(path: Path) -> bool:
    """A directory :meth:`GemClassifier.save` wrote (this release's or the previous one's layout)."""
    return (path / "manifest.json").is_file() or (path / LEGACY_LABELS_FILE).is_file()


__all__ = ["GemClassifier", "Prediction", "make_model", "MODEL_KINDS", "MODEL_CHOICES", "stratified_split"]
