"""The unknown flag: open-set scores, the validation threshold, and GemClassifier on a toy model."""

import numpy as np
import pytest

from gemcaption.classification import GemClassifier, baselines
from gemcaption.classification.classifier import load_pixels
from gemcaption.classification.open_set import ClassMeans, OpenSetRule, auroc, choose_threshold
from gemcaption.errors import ConfigError

COLOURS = np.array([(220, 30, 30), (30, 180, 60), (30, 60, 220)], np.float64)


class ColourModel:
    """A toy classifier: class probability from a Gaussian kernel on the distance of the mean colour
    to each class colour, plus a constant, so that far-off colours get nearly uniform probabilities."""

    kind = "toy"
    image_size = 8

    def __init__(self):
        self.num_classes = None

    def fit(self, images, labels, num_classes, validation=None):
        self.num_classes = num_classes
        return {}

    def predict_proba(self, images):
        mean = np.asarray(images, np.float64).reshape(len(images), -1, 3).mean(axis=1)
        distance = np.linalg.norm(mean[:, None, :] - COLOURS[None], axis=2)
        weights = np.exp(-((distance / 40.0) ** 2)) + 0.02
        return weights / weights.sum(axis=1, keepdims=True)


def noisy(colour, n, seed, size=8):
    rng = np.random.default_rng(seed)
    return np.clip(np.array(colour)[None, None, None] + rng.normal(0, 12, (n, size, size, 3)), 0, 255).astype(np.uint8)


def test_unknown_flag_fires_on_out_of_set_inputs_of_a_toy_model():
    images = np.concatenate([noisy(c, 20, seed=i) for i, c in enumerate(COLOURS)])
    labels = ["red"] * 20 + ["green"] * 20 + ["blue"] * 20
    classifier = GemClassifier(ColourModel(), open_set="probability")
    classifier.fit((list(images), labels), validation_fraction=0.5, seed=0)
    assert classifier.open_set is not None and classifier.calibration_report["validation_images"] == 30
    assert classifier.open_set.score == "max_probability"
    known = classifier.predict(list(noisy(COLOURS[1], 10, seed=9)))
    assert sum(p.unknown for p in known) <= 2 and all(p.label == "green" for p in known)
    outside = classifier.predict(list(noisy((240, 230, 30), 5, seed=10)) + list(noisy((128, 128, 128), 5, seed=11)))
    assert all(p.unknown for p in outside)
    assert all(p.to_dict()["unknown"] for p in outside)
    assert classifier.describe(list(noisy((128, 128, 128), 1, seed=12)))[0].startswith("unknown")


def tiny_encoder(image_size):
    """A fixed random convolution in place of EfficientNet-Lite0 (no weights to load)."""
    import keras

    from gemcaption.captioning.encoders.base import Encoder

    keras.utils.set_random_seed(0)
    inputs = keras.Input((image_size, image_size, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    grid = keras.layers.Conv2D(16, 8, strides=8, activation="relu")(x)
    return Encoder("tiny", keras.Model(inputs, grid), image_size, "random test weights", "random-tiny")


def test_feature_open_set_flags_pictures_unlike_every_class(tmp_path, monkeypatch):
    monkeypatch.setattr(baselines, "make_encoder", lambda name, size, weights: tiny_encoder(size))
    monkeypatch.setattr(baselines, "_ENCODERS", {})
    monkeypatch.setenv("GEMCAPTION_CACHE", str(tmp_path / "cache"))
    images = np.concatenate([noisy(c, 16, seed=i) for i, c in enumerate(COLOURS)])
    labels = ["red"] * 16 + ["green"] * 16 + ["blue"] * 16
    classifier = GemClassifier(ColourModel())  # open_set="features" by default
    classifier.fit((list(images), labels), validation_fraction=0.5, seed=0)
    assert classifier.open_set is not None and classifier.open_set.score == "class_mean_cosine"
    stripes = np.zeros((6, 8, 8, 3), np.uint8)
    stripes[:, ::2] = 255  # black and white stripes: far from every class mean
    outside = classifier.predict(list(stripes))
    assert all(p.unknown for p in outside)
    known = classifier.predict(list(noisy(COLOURS[2], 10, seed=20)))
    assert sum(p.unknown for p in known) <= 2
    assert classifier.get_config()["open_set"]["score"] == "class_mean_cosine"


def test_open_set_rule_survives_the_classifier_manifest(tmp_path):
    images = np.concatenate([noisy(c, 10, seed=i) for i, c in enumerate(COLOURS)])
    pixels, _ = load_pixels(list(images), 8, strict=True)
    assert pixels.shape == (30, 8, 8, 3)
    rule = OpenSetRule("max_probability", accept=0.9).fit(np.linspace(0, 1, 101))
    assert rule.threshold == pytest.approx(0.1)
    assert OpenSetRule.from_config(rule.get_config()).threshold == rule.threshold
    assert OpenSetRule.from_config(None) is None
    with pytest.raises(ConfigError):
        OpenSetRule("entropy")


def test_class_means_score_separates_in_and_out_of_set_features():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (4, 16)) * 3
    y = np.repeat(np.arange(4), 30)
    known = centres[y] + rng.normal(0, 1, (120, 16))
    means = ClassMeans().fit(known, y)
    test_known = centres[np.repeat(np.arange(4), 10)] + rng.normal(0, 1, (40, 16))
    unknown = rng.normal(0, 1, (40, 16)) * 3  # random directions, no class centre
    assert auroc(means.score(test_known), means.score(unknown)) > 0.95
    threshold = choose_threshold(means.score(known), 0.95)
    assert np.mean(means.score(known) >= threshold) == pytest.approx(0.95, abs=0.01)
