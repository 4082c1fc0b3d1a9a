"""Baselines on the same split as the VAE: scikit-learn classifiers on descriptors, and a CNN.

* :class:`DescriptorClassifier` – Random Forest, SVM or logistic regression on any mix of the
  hand-crafted descriptor (RGB colour histogram + LBP, as in Chow & Reyes-Aldasoro 2022) and pooled
  features of a pretrained encoder (EfficientNet-Lite0 or EfficientNetB0).
* :class:`CNNClassifier` – an EfficientNet backbone with a trained softmax head; optionally the top
  layers of the backbone are fine-tuned too.

Both can add flipped / rotated copies of the training images ("views") and average the predicted
probabilities over the same views at test time (test-time augmentation).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.svm import SVC

from ..errors import ConfigError, DatasetError, GemcaptionError, ModelError
from ..persistence import damaged, read_json, reading, write_json
from .base import (
    SavedModel,
    check_images,
    check_labels,
    config_from_model_file,
    saved_num_classes,
    softmax,
    trusting,
)
from .descriptors import foreground_color_histogram, handcrafted_features
from .forest import ForestArrays, forest_arrays
from .svm_arrays import SVMArrays, svm_arrays

VIEWS = {
    "identity": lambda x: x,
    "hflip": lambda x: x[:, :, ::-1],
    "vflip": lambda x: x[:, ::-1],
    "rot90": lambda x: np.rot90(x, 1, axes=(1, 2)),
}
FEATURE_SETS = ("handcrafted", "encoder", "foreground")
LOGREG_FILE = "logreg.npz"
FOREST_FILE = "forest.npz"
SVM_FILE = "svm.npz"  # arrays; the kernel parameters are in SVM_PARAMS_FILE
SVM_PARAMS_FILE = "svm.json"
JOBLIB_FILE = "estimator.joblib"  # pickled by earlier releases (SVM; RF in format version 1): needs trust
LOGREG_ARRAYS = ("mean", "scale", "coef", "intercept", "classes")


def make_encoder(name: str, image_size: int, weights):
    """Build an encoder through :func:`gemcaption.captioning.encoders.build_encoder` (tests replace this)."""
    from ..captioning.encoders import build_encoder

    return build_encoder(name, image_size=image_size, weights=weights)


_ENCODERS: dict = {}
_HANDCRAFTED_ROWS: dict = {}  # in-process memo of descriptor rows by pixel hash
_HANDCRAFTED_LIMIT = 50_000


def shared_encoder(name: str, image_size: int, weights):
    """One encoder per (name, size, weights) per process: building one loads its weights."""
    key = (name, int(image_size), str(weights))
    if key not in _ENCODERS:
        _ENCODERS[key] = make_encoder(name, image_size, weights)
    return _ENCODERS[key]


def apply_view(images: np.ndarray, view: str) -> np.ndarray:
    """A flipped / rotated copy of a batch of square images."""
    if view not in VIEWS:
        raise ConfigError(f"unknown view {view!r}; choose from {sorted(VIEWS)}")
    return np.ascontiguousarray(VIEWS[view](images))


class FeatureExtractor:
    """Turns uint8 images into one feature row per image: hand-crafted and/or encoder features."""

    def __init__(
        self,
        features=("encoder", "handcrafted"),
        encoder="efficientnet_lite0",
        encoder_weights="imagenet",
        image_size=224,
        cache=True,
        progress=False,
    ):
        features = tuple(features)
        unknown = [f for f in features if f not in FEATURE_SETS]
        if not features or unknown:
            raise ConfigError(f"features must be a non-empty subset of {FEATURE_SETS}, got {features}")
        self.features = features
        self.encoder_name = encoder if isinstance(encoder, str) else encoder.name
        self._encoder = None if isinstance(encoder, str) else encoder
        self.encoder_weights = encoder_weights
        self.image_size = int(self._encoder.image_size if self._encoder is not None else image_size)
        self.cache = cache
        self.progress = progress

    @property
    def encoder(self):
        if self._encoder is None:
            self._encoder = shared_encoder(self.encoder_name, self.image_size, self.encoder_weights)
        return self._encoder

    def get_config(self) -> dict:
        return {
            "features": list(self.features),
            "encoder": self.encoder_name,
            "encoder_weights": (str(self.encoder_weights) if self.encoder_weights is not None else None),
            "image_size": self.image_size,
        }

    def encoder_features(self, images: np.ndarray) -> np.ndarray:
        """Pooled encoder features (N, C), through the shared disk cache when enabled."""
        if self.cache:
            from ..captioning.features import pooled_features

            pooled, kept = pooled_features(self.encoder, list(images), progress=self.progress)
            if len(kept) != len(images):
                raise ModelError("the encoder could not read some in-memory images")
            return pooled
        return self.encoder.pooled_features(images, progress=self.progress)

    def handcrafted(self, images: np.ndarray, kind: str = "handcrafted") -> np.ndarray:
        """Colour histogram + LBP rows (or foreground HSV histograms), memoised per image content
        within this process."""
        import hashlib

        describe = handcrafted_features if kind == "handcrafted" else foreground_color_histogram
        digests = [kind + hashlib.sha1(image.tobytes()).hexdigest() for image in images]
        missing = [i for i, d in enumerate(digests) if d not in _HANDCRAFTED_ROWS]
        if missing:
            if len(_HANDCRAFTED_ROWS) + len(missing) > _HANDCRAFTED_LIMIT:
                _HANDCRAFTED_ROWS.clear()
            rows = describe(images[missing])
            found = {digests[i]: row for i, row in zip(missing, rows)}
            _HANDCRAFTED_ROWS.update(found)
        else:
            found = {}
        return np.stack([found[d] if d in found else _HANDCRAFTED_ROWS[d] for d in digests])

    def __call__(self, images: np.ndarray) -> np.ndarray:
        parts = []
        if "encoder" in self.features:
            parts.append(self.encoder_features(images))
        if "handcrafted" in self.features:
            # square root: Hellinger mapping of the histograms, better for linear models and SVMs
            parts.append(np.sqrt(self.handcrafted(images)))
        if "foreground" in self.features:
            parts.append(np.sqrt(self.handcrafted(images, "foreground")))
        return np.concatenate(parts, axis=1).astype(np.float32)


class DescriptorClassifier(SavedModel):
    """A scikit-learn classifier (``rf``, ``svm`` or ``logreg``) on image descriptors.

    ``features``: any of ``"handcrafted"`` (colour histogram + LBP), ``"encoder"`` (pooled encoder
    features) and ``"foreground"`` (HSV histogram of the stone's pixels, backdrop masked out).
    ``views``: image copies added in training and averaged at test time.
    All three are saved as plain arrays (``.npz`` read with ``allow_pickle=False``; see
    :mod:`gemcaption.classification.forest` and :mod:`gemcaption.classification.svm_arrays`, whose
    kernel parameters go to ``svm.json``). Directories of earlier releases holding a pickled
    ``estimator.joblib`` load only with ``trust=True``; saving such a model again writes arrays.
    """

    kind = "descriptor"

    def __init__(
        self,
        classifier="rf",
        features=("handcrafted",),
        encoder="efficientnet_lite0",
        encoder_weights="imagenet",
        image_size=None,
        views=("identity",),
        n_estimators=500,
        svm_c=10.0,
        logreg_c=1.0,
        seed=0,
        cache=True,
        progress=False,
    ):
        if classifier not in ("rf", "svm", "logreg"):
            raise ConfigError(f"classifier must be 'rf', 'svm' or 'logreg', got {classifier!r}")
        for view in views:
            apply_view(np.zeros((1, 2, 2, 3), np.uint8), view)  # validates the name
        features = tuple(features)
        if image_size is None:
            image_size = 224 if "encoder" in features else 128
        self.classifier = classifier
        self.views = tuple(views)
        self.n_estimators = int(n_estimators)
        self.svm_c = float(svm_c)
        self.logreg_c = float(logreg_c)
        self.seed = seed
        self.extractor = FeatureExtractor(features, encoder, encoder_weights, image_size, cache, progress)
        self.image_size = self.extractor.image_size
        self.num_classes = None
        self.model = None

    def get_config(self) -> dict:
        """The constructor arguments (JSON-able) that rebuild this model untrained."""
        return {
            "classifier": self.classifier,
            **self.extractor.get_config(),
            "views": list(self.views),
            "n_estimators": self.n_estimators,
            "svm_c": self.svm_c,
            "logreg_c": self.logreg_c,
            "seed": self.seed,
        }

    def _features_of_views(self, images):
        return [self.extractor(apply_view(images, view)) for view in self.views]

    def _estimator(self, y):
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        if self.classifier == "rf":
            return RandomForestClassifier(n_estimators=self.n_estimators, random_state=self.seed, n_jobs=2)
        if self.classifier == "svm":
            smallest = int(np.bincount(y)[np.unique(y)].min())
            if smallest < 2:
                raise DatasetError(
                    "the SVM needs at least 2 training images per class "
                    "(its probabilities are fitted by internal cross-validation)"
                )
            return make_pipeline(StandardScaler(), _svm_with_probabilities(self.svm_c, self.seed))
        return make_pipeline(StandardScaler(), LogisticRegression(C=self.logreg_c, max_iter=2000))

    def fit(self, images, labels, num_classes, validation=None):
        """Train on uint8 images (N, S, S, 3) and labels 0..K-1; returns a small history dict."""
        images = check_images(images, self.image_size)
        y = check_labels(labels, len(images), num_classes)
        self.num_classes = int(num_classes)
        x = np.concatenate(self._features_of_views(images))
        self.model = self._estimator(y).fit(x, np.tile(y, len(self.views)))
        history = {"train_accuracy": float(np.mean(self.predict_proba(images).argmax(1) == y))}
        if validation is not None:
            val_x, val_y = validation
            history["val_accuracy"] = float(np.mean(self.predict_proba(val_x).argmax(1) == val_y))
        return history

    def _full_proba(self, x):
        """Probabilities over all ``num_classes`` (columns for classes absent in training are 0)."""
        if self.model is None:
            raise ModelError("the classifier is not trained yet: call fit() first")
        if isinstance(self.model, dict):  # logistic regression loaded from arrays
            z = (x - self.model["mean"]) / self.model["scale"]
            logits = z @ self.model["coef"].T + self.model["intercept"]
            if logits.shape[1] == 1:  # scikit-learn keeps one column for two classes
                logits = np.concatenate([np.zeros_like(logits), logits], axis=1)
            part = softmax(logits)
            classes = self.model["classes"]
        else:
            part = self.model.predict_proba(x)
            classes = self.model.classes_
        full = np.zeros((len(x), self.num_classes), np.float64)
        full[:, classes] = part
        return full

    def predict_proba(self, images) -> np.ndarray:
        """Class probabilities (N, K), averaged over the views."""
        images = check_images(images, self.image_size)
        probabilities = [self._full_proba(x) for x in self._features_of_views(images)]
        return np.mean(probabilities, axis=0)

    def write_files(self, path: Path) -> None:
        """The fitted estimator as arrays (and, for the SVM, its kernel parameters as JSON) in the
        existing directory ``path``; nothing is pickled."""
        if self.classifier == "logreg":
            arrays = self.model if isinstance(self.model, dict) else _logreg_arrays(self.model)
            _save_arrays(path / LOGREG_FILE, arrays)
        elif self.classifier == "rf":
            _save_arrays(path / FOREST_FILE, forest_arrays(self.model))
        else:
            arrays, params = svm_arrays(self.model)
            _save_arrays(path / SVM_FILE, arrays)
            write_json(path / SVM_PARAMS_FILE, params)

    @classmethod
    def load(cls, directory, encoder=None, trust: bool | None = None):
        """Rebuild from a directory written by :meth:`save`. A pickled ``estimator.joblib`` (earlier
        releases) is refused unless ``trust`` is true (or the load runs inside ``trusted_loading()``)."""
        payload, config = config_from_model_file(directory, encoder, ("features", "views"))
        path = Path(directory)
        try:
            model = cls(**config)
        except (GemcaptionError, TypeError, ValueError) as exc:
            raise damaged(path / "manifest.json", f"config: {exc}") from None
        model.num_classes = saved_num_classes(payload, path)
        if model.classifier == "logreg":
            model.model = _logreg_from_arrays(_load_arrays(path / LOGREG_FILE), path / LOGREG_FILE)
        elif model.classifier == "rf" and (path / FOREST_FILE).is_file():
            arrays = _load_arrays(path / FOREST_FILE)
            model.model = _rebuilt(path / FOREST_FILE, lambda: ForestArrays(arrays))
        elif model.classifier == "svm" and (path / SVM_FILE).is_file():
            arrays, params = _load_arrays(path / SVM_FILE), read_json(path / SVM_PARAMS_FILE)
            model.model = _rebuilt(path / SVM_FILE, lambda: SVMArrays(arrays, params))
        else:  # the SVM or Random Forest of an earlier release: a pickle
            model.model = _load_joblib(path / JOBLIB_FILE, trusting(trust))
        classes = np.asarray(model.model["classes"] if isinstance(model.model, dict) else model.model.classes_)
        if classes.dtype.kind not in "iu" or classes.ndim != 1 or not len(classes) or classes.min() < 0:
            raise ModelError(f"damaged: {path} (the estimator's classes are not class indices)")
        if classes.max() >= model.num_classes:
            raise ModelError(f"damaged: {path} (the estimator's classes do not fit num_classes={model.num_classes})")
        return model


def random_forest(**options) -> DescriptorClassifier:
    """``rf``: a Random Forest on the colour histogram + LBP descriptor (unless ``features`` says otherwise)."""
    options.setdefault("features", ("handcrafted",))
    return DescriptorClassifier("rf", **options)


def support_vector_machine(**options) -> DescriptorClassifier:
    """``svm``: an RBF SVM on the colour histogram + LBP descriptor (unless ``features`` says otherwise)."""
    options.setdefault("features", ("handcrafted",))
    return DescriptorClassifier("svm", **options)


def logistic_regression(**options) -> DescriptorClassifier:
    """``logreg``: logistic regression on encoder features + colour histogram + LBP + foreground
    histogram, trained and tested on flipped copies too (the best measured set-up)."""
    options.setdefault("features", ("encoder", "handcrafted", "foreground"))
    options.setdefault("views", ("identity", "hflip"))
    return DescriptorClassifier("logreg", **options)


def _svm_with_probabilities(c: float, seed):
    """RBF SVM with Platt-scaled pairwise probabilities (libsvm's own, far better for many classes
    than per-class calibration of one-vs-rest scores); falls back to CalibratedClassifierCV on
    scikit-learn versions without ``probability=True``."""
    import warnings

    from sklearn.svm import SVC

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # deprecated in scikit-learn 1.9
            return _QuietSVC(C=c, kernel="rbf", gamma="scale", probability=True, random_state=seed)
    except TypeError:
        from sklearn.calibration import CalibratedClassifierCV

        svm = SVC(C=c, kernel="rbf", gamma="scale", random_state=seed)
        return CalibratedClassifierCV(svm, cv=3, ensemble=False)


class _QuietSVC(SVC):
    """SVC whose fit does not repeat the ``probability`` deprecation warning (at module level, so
    that joblib can save it; scikit-learn is imported with this module for that reason)."""

    def fit(self, *args, **kwargs):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return super().fit(*args, **kwargs)


def _logreg_arrays(pipeline) -> dict:
    scaler, logreg = pipeline[0], pipeline[-1]
    return {
        "mean": scaler.mean_,
        "scale": scaler.scale_,
        "coef": logreg.coef_,
        "intercept": logreg.intercept_,
        "classes": logreg.classes_.astype(np.int64),
    }


def _save_arrays(path: Path, arrays: dict) -> None:
    with open(path, "wb") as handle:  # inside a staging directory: made atomic by the directory swap
        named: dict[str, np.ndarray] = {str(name): np.asarray(value) for name, value in arrays.items()}
        np.savez(handle, allow_pickle=False, **named)


def _load_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` at ``path``, read with ``allow_pickle=False``; damaged otherwise."""
    if not path.is_file():
        raise ModelError(f"damaged: {path} (missing)")
    with reading(path), np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def _rebuilt(path: Path, build):
    """``build()``, its ModelError (inconsistent arrays) reported as ``damaged: PATH``."""
    try:
        return build()
    except ModelError as exc:
        raise damaged(path, str(exc)) from None


def _logreg_from_arrays(arrays: dict[str, np.ndarray], path: Path) -> dict[str, np.ndarray]:
    """The logistic-regression arrays, with their shapes checked against each other."""
    missing = [name for name in LOGREG_ARRAYS if name not in arrays]
    if missing:
        raise damaged(path, f"lacks {', '.join(missing)}")
    mean, scale, coef, intercept, classes = (arrays[name] for name in LOGREG_ARRAYS)
    rows = 1 if len(classes) == 2 else len(classes)
    if (
        any(arrays[name].dtype.kind not in "fiu" for name in LOGREG_ARRAYS)
        or mean.ndim != 1
        or scale.shape != mean.shape
        or coef.shape != (rows, len(mean))
        or intercept.shape != (rows,)
        or classes.ndim != 1
        or len(classes) < 2
    ):
        raise damaged(path, "array shapes disagree")
    return {name: arrays[name] for name in LOGREG_ARRAYS}


def _load_joblib(path: Path, trust: bool):
    """A pickled estimator of an earlier release, only when trusted (unpickling runs code)."""
    if not path.is_file():
        raise ModelError(f"damaged: {path.parent} (no estimator file: {FOREST_FILE}, {SVM_FILE} or {JOBLIB_FILE})")
    if not trust:
        raise ModelError(
            f"{path}: this model was saved by an earlier gemcaption as a pickle, and loading a pickle "
            "can run any code it contains; if you made this file yourself, pass --trust "
            "(Python: trust=True), then save the model again to store it without pickle"
        )
    import joblib

    with reading(path):
        estimator = joblib.load(path)
    if not hasattr(estimator, "predict_proba") or not hasattr(estimator, "classes_"):
        raise damaged(path, f"holds a {type(estimator).__name__}, not a fitted classifier")
    return estimator
