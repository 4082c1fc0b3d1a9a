"""GemClassifier and ``gemcaption classify`` on a tiny generated class-folder set."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from gemcaption.classification import GemClassifier, Prediction, baselines
from gemcaption.cli import main
from gemcaption.errors import DatasetError, ImageError, ModelError

CLASSES = {"Ruby": (200, 30, 50), "Emerald": (30, 170, 80), "Sapphire Blue": (40, 60, 200)}


@pytest.fixture()
def gem_folder(tmp_path):
    """Three classes of 10 noisy colour photos each, plus one byte-identical duplicate."""
    rng = np.random.default_rng(0)
    root = tmp_path / "gems"
    for label, colour in CLASSES.items():
        (root / label).mkdir(parents=True)
        for i in range(10):
            pixels = np.clip(np.array(colour) + rng.normal(0, 20, (40, 40, 3)), 0, 255)
            Image.fromarray(pixels.astype(np.uint8)).save(root / label / f"{i}.png")
    shutil.copy(root / "Ruby" / "0.png", root / "Ruby" / "copy.png")
    return root


def tiny_encoder(image_size=32):
    """A stand-in for EfficientNet: one random strided convolution (no downloads, instant)."""
    import keras

    from gemcaption.captioning.encoders.base import Encoder

    keras.utils.set_random_seed(0)
    inputs = keras.Input((image_size, image_size, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    grid = keras.layers.Conv2D(8, 4, strides=4, activation="relu")(x)
    return Encoder("tiny", keras.Model(inputs, grid), image_size, "random test weights", "random-tiny")


def test_gem_classifier_fits_predicts_describes_and_round_trips(gem_folder, tmp_path):
    classifier = GemClassifier("rf", image_size=32, n_estimators=50)
    classifier.fit(f"folder:{gem_folder}")
    assert classifier.labels == sorted(CLASSES)
    ruby = gem_folder / "Ruby" / "3.png"
    [prediction] = classifier.predict([ruby], top_k=2)
    assert isinstance(prediction, Prediction)
    assert prediction.label == "Ruby" and len(prediction.top_k) == 2
    assert prediction.top_k[0] == ("Ruby", prediction.probability)
    assert prediction.top_k[0][1] >= prediction.top_k[1][1]
    [caption] = classifier.describe([ruby])
    assert caption.startswith(f"Ruby ({prediction.probability:.2f}): ")
    assert "corundum" in caption and "ruby," not in caption.lower()  # name not repeated
    classifier.save(tmp_path / "model")
    loaded = GemClassifier.load(tmp_path / "model")
    paths = sorted(str(p) for p in gem_folder.rglob("*.png"))
    assert loaded.labels == classifier.labels
    assert np.allclose(loaded.predict_proba(paths), classifier.predict_proba(paths))


def test_predict_names_an_unreadable_image(gem_folder, tmp_path):
    classifier = GemClassifier("logreg", features=("handcrafted",), image_size=32)
    classifier.fit(f"folder:{gem_folder}", validation_fraction=0)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a picture")
    with pytest.raises(ImageError, match="broken.jpg"):
        classifier.predict([gem_folder / "Ruby" / "1.png", bad])
    with pytest.raises(ModelError):
        GemClassifier("rf").predict([bad])
    with pytest.raises(DatasetError):
        GemClassifier("rf").fit((["a.png"], [None]))
    with pytest.raises(ValueError):
        GemClassifier("knn")


class FixedModel:
    """A model whose predictions are given: to check evaluate() against hand-computed figures."""

    kind = "fixed"
    image_size = 8
    num_classes = 2

    def __init__(self, predicted):
        self.predicted = predicted

    def predict_proba(self, images):
        return np.eye(2)[self.predicted[: len(images)]]


def test_evaluate_matches_hand_computed_metrics(tmp_path):
    images = []
    for i, colour in enumerate([(255, 0, 0)] * 4):
        path = tmp_path / f"{i}.png"
        Image.new("RGB", (8, 8), colour).save(path)
        images.append(str(path))
    truth = ["Emerald", "Emerald", "Ruby", "Ruby"]
    classifier = GemClassifier(FixedModel(np.array([0, 1, 1, 1])))  # Emerald, Ruby, Ruby, Ruby
    classifier.labels = ["Emerald", "Ruby"]
    metrics = classifier.evaluate((images, truth))
    assert metrics["accuracy"] == pytest.approx(0.75)
    # Emerald: P 1/1, R 1/2, F1 2/3; Ruby: P 2/3, R 2/2, F1 0.8
    assert metrics["macro_precision"] == pytest.approx((1 + 2 / 3) / 2)
    assert metrics["macro_recall"] == pytest.approx(0.75)
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)
    assert metrics["confusion_matrix"] == [[1, 1], [0, 2]]
    # three descriptions match their reference exactly; emerald vs ruby share few words
    assert 0.75 < metrics["tfidf_similarity"] < 1.0


@pytest.mark.parametrize("kind", ["logreg", "cnn", "svm"])
def test_encoder_feature_models_beat_chance(kind, gem_folder, tmp_path, monkeypatch):
    monkeypatch.setattr(baselines, "make_encoder", lambda name, size, weights: tiny_encoder(size))
    monkeypatch.setattr(baselines, "_ENCODERS", {})
    options = {"image_size": 32}
    if kind == "cnn":
        options.update(epochs=30, patience=30, learning_rate=2e-2)
    if kind == "svm":
        options["features"] = ("encoder", "handcrafted")
    classifier = GemClassifier(kind, **options)
    classifier.fit(f"folder:{gem_folder}", validation_fraction=0.3, seed=1)
    metrics = classifier.evaluate(f"folder:{gem_folder}")
    assert metrics["accuracy"] > 0.7  # chance is 1/3
    classifier.save(tmp_path / kind)
    loaded = GemClassifier.load(tmp_path / kind)
    paths = [str(gem_folder / "Emerald" / "2.png")]
    assert np.allclose(loaded.predict_proba(paths), classifier.predict_proba(paths), atol=1e-5)


def test_cli_train_and_predict(gem_folder, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["-q", "classify", "train", "--data", f"folder:{gem_folder}", "--model", "rf", "--out", str(out)])
    assert code == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["duplicates_removed"] == 1
    assert report["train_images"] + report["test_images"] == 30
    assert report["metrics"]["accuracy"] > 0.8
    assert (out / "confusion_matrix.png").stat().st_size > 0
    capsys.readouterr()
    image = str(gem_folder / "Emerald" / "4.png")
    assert main(["classify", "predict", "--model", str(out), "--json", image]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["image"] == image and row["label"] == "Emerald" and row["description"]
    assert main(["classify", "predict", "--model", str(out), image]) == 0
    assert capsys.readouterr().out.startswith(f"{image}: Emerald (")
    assert main(["classify", "predict", "--model", str(tmp_path / "nothing"), image]) == 2
    assert "not a GemClassifier directory" in capsys.readouterr().err


def test_cli_train_uses_the_chosen_encoder(gem_folder, tmp_path, capsys):
    out = tmp_path / "b0"
    assert (
        main(
            [
                "classify",
                "train",
                "--data",
                f"folder:{gem_folder}",
                "--model",
                "logreg",
                "--encoder",
                "efficientnetb0",
                "--weights",
                "none",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert "encoder: efficientnetb0, weights: none" in capsys.readouterr().err
    saved = " ".join(p.read_text() for p in out.rglob("*.json"))
    assert '"efficientnetb0"' in saved and '"efficientnet_lite0"' not in saved
