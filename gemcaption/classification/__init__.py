"""Gemstone classification: the seed paper's VAE, honest baselines (Random Forest / SVM on colour
histogram + LBP, logistic regression / SVM on EfficientNet features, a CNN head, a semi-supervised
GAN) and :class:`GemClassifier`, which predicts a class and describes the stone in words.

The kinds are listed once in :mod:`gemcaption.classification.kinds`; splits and duplicate removal
come from :mod:`gemcaption.data.splits`, the description score from
:func:`gemcaption.evaluation.captioning.pairwise_tfidf_cosine`. Names are imported on first use,
so reading the kinds (as the CLI does to build its parser) loads neither scikit-learn nor Keras.
"""

import importlib as _importlib

_EXPORTS = {
    "GemClassifier": "classifier",
    "Prediction": "classifier",
    "describe_label": "classifier",
    "make_model": "kinds",
    "CLASSIFIER_KINDS": "kinds",
    "MODEL_CLASSES": "kinds",
    "MODEL_KINDS": "base",
    "load_model_dir": "base",
    "DescriptorClassifier": "baselines",
    "color_histogram": "descriptors",
    "handcrafted_features": "descriptors",
    "lbp_codes": "descriptors",
    "lbp_histogram": "descriptors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
