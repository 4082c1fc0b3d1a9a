"""The classifier kinds, listed once: the names users choose and the model classes saved on disk.

``CLASSIFIER_KINDS`` maps what ``GemClassifier("logreg")`` and ``gemcaption classify train --model``
accept to a factory of a fresh model; ``MODEL_CLASSES`` maps the ``kind`` written in a saved model
directory to the class whose ``load`` reads it. Both are lazy (``"module:attribute"``), so naming a
kind imports nothing heavy (TensorFlow) until it is used, and no module is imported only to
register itself. To add a classifier: write the model class (the array interface of
:mod:`gemcaption.classification.base`) and add one line to each registry here.
"""

from __future__ import annotations

from ..registry import Registry

_PACKAGE = "gemcaption.classification"

CLASSIFIER_KINDS: Registry = Registry("classifier kind")
CLASSIFIER_KINDS.register("vae", f"{_PACKAGE}.feature_vae:FeatureVAEClassifier", aliases=("feature-vae",))
CLASSIFIER_KINDS.register("cnn", f"{_PACKAGE}.cnn:CNNClassifier")
CLASSIFIER_KINDS.register("svm", f"{_PACKAGE}.baselines:support_vector_machine")
CLASSIFIER_KINDS.register("rf", f"{_PACKAGE}.baselines:random_forest", aliases=("random_forest",))
CLASSIFIER_KINDS.register("gan", f"{_PACKAGE}.gan:GANClassifier")
CLASSIFIER_KINDS.register("logreg", f"{_PACKAGE}.baselines:logistic_regression", aliases=("logistic_regression",))
CLASSIFIER_KINDS.register("vae-seed", f"{_PACKAGE}.vae_classifier:VAEClassifier")

MODEL_CLASSES: Registry = Registry("classifier model")
MODEL_CLASSES.register("descriptor", f"{_PACKAGE}.baselines:DescriptorClassifier")
MODEL_CLASSES.register("cnn", f"{_PACKAGE}.cnn:CNNClassifier")
MODEL_CLASSES.register("vae", f"{_PACKAGE}.vae_classifier:VAEClassifier", aliases=("vae-seed",))  # saved as "vae"
MODEL_CLASSES.register("feature-vae", f"{_PACKAGE}.feature_vae:FeatureVAEClassifier")
MODEL_CLASSES.register("gan", f"{_PACKAGE}.gan:GANClassifier")


def make_model(model: str = "vae", **options):
    """A fresh classifier model by name.

    ``vae`` a VAE over the pretrained encoder's features with the classifier on its latent space
    (:mod:`~gemcaption.classification.feature_vae`); ``vae-seed`` the seed's pixel VAE (model
    directories saved as kind ``vae`` load as this); ``gan`` semi-supervised DCGAN; ``cnn`` EfficientNet + trained head;
    ``rf`` / ``svm`` on the colour histogram + LBP descriptor (pass ``features=("encoder",)`` or
    both for encoder features); ``logreg`` logistic regression on EfficientNet-Lite0 features +
    colour histogram + LBP + foreground colour histogram, with flipped copies (the best measured).
    An unknown name raises :class:`~gemcaption.errors.UnknownNameError` listing the kinds.
    """
    return CLASSIFIER_KINDS.get(model)(**options)
