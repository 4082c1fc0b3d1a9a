"""The ``vae`` kind (VAE over pretrained-encoder features) and the seed's VAE kept as ``vae-seed``."""

import numpy as np

from gemcaption.classification import GemClassifier, baselines
from gemcaption.classification.base import load_model_dir
from gemcaption.classification.feature_vae import FeatureVAEClassifier
from gemcaption.classification.kinds import CLASSIFIER_KINDS, MODEL_CLASSES
from gemcaption.classification.vae_classifier import VAEClassifier

COLOURS = np.array([(220, 30, 30), (30, 180, 60), (30, 60, 220)], np.float64)


def coloured(per_class, size=32, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), per_class)
    x = COLOURS[y][:, None, None, :] + rng.normal(0, 25, (len(y), size, size, 3))
    return np.clip(x, 0, 255).astype(np.uint8), y


def tiny_encoder(image_size=32):
    """One random strided convolution in place of EfficientNet (no weights to load)."""
    import keras

    from gemcaption.captioning.encoders.base import Encoder

    keras.utils.set_random_seed(0)
    inputs = keras.Input((image_size, image_size, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    grid = keras.layers.Conv2D(8, 4, strides=4, activation="relu")(x)
    return Encoder("tiny", keras.Model(inputs, grid), image_size, "random test weights", "random-tiny")


def test_feature_vae_learns_reconstructs_and_round_trips(tmp_path, monkeypatch):
    monkeypatch.setattr(baselines, "make_encoder", lambda name, size, weights: tiny_encoder(size))
    monkeypatch.setattr(baselines, "_ENCODERS", {})
    x, y = coloured(8)
    val_x, val_y = coloured(4, seed=1)
    model = FeatureVAEClassifier(
        features=("encoder", "handcrafted"),
        image_size=32,
        latent_dim=8,
        hidden=32,
        reconstruction_size=16,
        filters=(8, 16),
        epochs=12,
        patience=12,
        batch_size=16,
        learning_rate=3e-3,
        cache=False,
    )
    history = model.fit(x, y, 3, validation=(val_x, val_y))
    assert {"loss", "reconstruction", "kl", "cross_entropy", "val_accuracy"} <= set(history)
    assert history["reconstruction"][-1] < history["reconstruction"][0]
    assert np.mean(model.predict_proba(val_x).argmax(1) == val_y) > 0.8  # chance is 1/3
    assert model.encode(val_x).shape == (12, 8)
    decoded = model.reconstruct(val_x[:2])
    assert decoded.shape == (2, 16, 16, 3) and decoded.dtype == np.uint8
    model.save(tmp_path / "fvae")
    loaded = load_model_dir(tmp_path / "fvae")
    assert isinstance(loaded, FeatureVAEClassifier) and loaded.get_config() == model.get_config()
    assert np.allclose(loaded.predict_proba(val_x), model.predict_proba(val_x), atol=1e-5)


def test_vae_is_the_feature_vae_and_the_seed_vae_is_vae_seed():
    assert isinstance(GemClassifier("vae").model, FeatureVAEClassifier)
    assert isinstance(GemClassifier("vae-seed").model, VAEClassifier)
    assert CLASSIFIER_KINDS.canonical("feature-vae") == "vae"
    # directories the seed's VAE wrote say kind "vae": they load as the seed's VAE
    assert MODEL_CLASSES.get("vae") is VAEClassifier and MODEL_CLASSES.get("vae-seed") is VAEClassifier
    assert MODEL_CLASSES.get(FeatureVAEClassifier.kind) is FeatureVAEClassifier
