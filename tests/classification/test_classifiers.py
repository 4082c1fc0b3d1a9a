"""Gemstone classification models on tiny generated images: descriptors, VAE, GAN, baselines."""

import numpy as np
import pytest

from gemcaption.classification import color_histogram, lbp_codes, lbp_histogram
from gemcaption.classification.base import load_model_dir
from gemcaption.classification.descriptors import handcrafted_features, lbp_mapping
from gemcaption.data.splits import stratified_split
from gemcaption.errors import DatasetError, ImageError, ModelError
from gemcaption.evaluation.captioning import pairwise_tfidf_cosine

COLOURS = np.array([[210, 40, 40], [40, 190, 60], [50, 60, 210]])


def coloured_images(per_class=8, size=32, seed=0):
    """Three separable classes: noisy squares of red, green and blue with a random bright patch."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(len(COLOURS)), per_class)
    x = COLOURS[y][:, None, None, :] + rng.normal(0, 25, (len(y), size, size, 3))
    for i in range(len(y)):
        top, left = rng.integers(0, size // 2, 2)
        x[i, top : top + size // 4, left : left + size // 4] += 40
    return np.clip(x, 0, 255).astype(np.uint8), y


# ---------------------------------------------------------------- descriptors


def test_color_histogram_counts_pixels_in_the_right_cells():
    image = np.zeros((1, 2, 2, 3), np.uint8)
    image[0, 0, 0] = [255, 0, 0]  # R bin 1 of 2
    image[0, 1, 1] = [0, 0, 255]  # B bin 1 of 2
    joint = color_histogram(image, bins=2, joint=True)
    assert joint.shape == (1, 8)
    # cell index = (r * 2 + g) * 2 + b: black -> 0, red -> 4, blue -> 1
    assert joint[0].tolist() == pytest.approx([0.5, 0.25, 0, 0, 0.25, 0, 0, 0])
    per_channel = color_histogram(image, bins=2, joint=False)
    assert per_channel[0].tolist() == pytest.approx(np.array([3, 1, 4, 0, 3, 1]) / 12)


def test_lbp_codes_of_a_hand_computed_neighbourhood():
    gray = np.array([[5, 9, 1], [4, 6, 7], [2, 6, 3]], float)
    # neighbours counter-clockwise from the right; the axis-aligned ones are pixels (right 7, up 9,
    # left 4, down 6), the diagonal ones bilinear mixes: up-right 4.33, up-left 5.71,
    # down-left 3.59, down-right 4.71. Bits are set where the neighbour >= 6 (the centre).
    expected = (1 << 0) | (1 << 2) | (1 << 6)
    assert lbp_codes(gray, points=8, radius=1)[0, 0, 0] == expected


def test_lbp_of_a_flat_image_is_all_ones_and_rotation_invariant_mapping():
    flat = np.full((1, 9, 9, 3), 100, np.uint8)
    hist = lbp_histogram(flat, radii=(1, 2))
    assert hist.shape == (1, 20)
    assert hist[0, 8] == pytest.approx(1.0) and hist[0, 18] == pytest.approx(1.0)  # 8 bits set
    table, bins = lbp_mapping(8, "riu2")
    assert bins == 10 and table[0b00001111] == 4 and table[0b01010101] == 9
    assert lbp_mapping(8, "uniform")[1] == 59


def test_lbp_distinguishes_stripes_from_flat_and_rejects_tiny_images():
    stripes = np.zeros((1, 16, 16, 3), np.uint8)
    stripes[:, :, ::2] = 255
    flat = np.full((1, 16, 16, 3), 128, np.uint8)
    assert not np.allclose(lbp_histogram(stripes), lbp_histogram(flat))
    with pytest.raises(ImageError):
        lbp_histogram(np.zeros((1, 4, 4, 3), np.uint8), radii=(3,))
    assert handcrafted_features(stripes).shape == (1, 512 + 30)


def test_description_tfidf_cosine_identical_disjoint_and_partial():
    scores = pairwise_tfidf_cosine(
        ["a red gem stone", "green beryl", "red corundum"], ["a red gem stone", "violet quartz", "red spinel"]
    )
    assert scores[0] == pytest.approx(1.0)
    assert scores[1] == pytest.approx(0.0)
    assert 0 < scores[2] < 1


def test_stratified_split_holds_out_a_share_of_every_class():
    labels = ["a"] * 10 + ["b"] * 5 + ["c"] * 1
    kept, held = stratified_split(labels, 0.2, seed=3)
    assert sorted(kept + held) == list(range(16))
    held_labels = [labels[i] for i in held]
    assert held_labels.count("a") == 2 and held_labels.count("b") == 1 and "c" not in held_labels
    assert stratified_split(labels, 0.2, seed=3) == (kept, held)


# ---------------------------------------------------------------- the VAE


def test_vae_shapes_and_loss_terms():
    from gemcaption.classification.vae import VAEClassifierModel, kl_divergence

    zeros = np.zeros((4, 6), np.float32)
    assert np.allclose(np.asarray(kl_divergence(zeros, zeros)), 0.0)  # KL(N(0, I) || N(0, I)) = 0
    kl = np.asarray(kl_divergence(np.ones((1, 2), np.float32), np.zeros((1, 2), np.float32)))
    assert kl[0] == pytest.approx(1.0)  # 1/2 * sum(mu^2) with unit variance
    model = VAEClassifierModel(3, image_size=32, latent_dim=5, filters=(8, 16), seed=0)
    images, labels = coloured_images(2)
    z_mean, z_log_var = model.encode(images)
    assert z_mean.shape == (6, 5) and z_log_var.shape == (6, 5)
    assert np.asarray(model.reconstruct(images)).shape == (6, 32, 32, 3)
    probabilities = np.asarray(model(images))
    assert probabilities.shape == (6, 3) and np.allclose(probabilities.sum(1), 1, atol=1e-5)
    terms = model.compute_losses(images, labels, training=False)
    pixels = np.asarray(model.rescale(images.astype(np.float32)))
    reconstruction = np.asarray(model.decoder(z_mean))
    assert float(terms["reconstruction_loss"]) == pytest.approx(np.mean((pixels - reconstruction) ** 2), rel=1e-4)
    expected = (
        float(terms["reconstruction_loss"])
        + float(terms["kl_loss"]) / (32 * 32 * 3)
        + float(terms["classification_loss"])
    )
    assert float(terms["loss"]) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError):
        VAEClassifierModel(3, image_size=30, filters=(8, 16))


def test_vae_learns_separable_colours_and_round_trips(tmp_path):
    from gemcaption.classification.vae_classifier import VAEClassifier

    images, labels = coloured_images(8)
    vae = VAEClassifier(
        image_size=32,
        latent_dim=8,
        filters=(8, 16),
        classifier_hidden=16,
        epochs=8,
        patience=8,
        batch_size=8,
        learning_rate=5e-3,
        seed=1,
    )
    history = vae.fit(images, labels, 3, validation=(images, labels))
    assert {"reconstruction_loss", "kl_loss", "classification_loss", "val_accuracy"} <= set(history)
    accuracy = np.mean(vae.predict_proba(images).argmax(1) == labels)
    assert accuracy > 0.6  # chance is 1/3
    assert vae.encode(images).shape == (24, 8)
    assert vae.reconstruct(images[:2]).dtype == np.uint8
    config = vae.model.get_config()
    assert config["num_classes"] == 3 and config["filters"] == [8, 16]
    vae.save(tmp_path / "vae")
    loaded = load_model_dir(tmp_path / "vae")
    assert np.allclose(loaded.predict_proba(images), vae.predict_proba(images), atol=1e-6)


def test_vae_classifier_after_training_trains_head_on_frozen_latents():
    from gemcaption.classification.vae_classifier import VAEClassifier

    images, labels = coloured_images(6)
    vae = VAEClassifier(
        image_size=32,
        latent_dim=8,
        filters=(8, 16),
        classifier_mode="after",
        epochs=2,
        head_epochs=20,
        batch_size=8,
        learning_rate=5e-3,
        seed=2,
    )
    history = vae.fit(images, labels, 3)
    assert "head" in history and vae.model.classifier_weight == 0
    assert np.mean(vae.predict_proba(images).argmax(1) == labels) > 0.5
    with pytest.raises(ValueError):
        VAEClassifier(classifier_mode="sometimes")


def test_untrained_models_refuse_to_predict(tmp_path):
    from gemcaption.classification.gan import GANClassifier
    from gemcaption.classification.vae_classifier import VAEClassifier

    for model in (VAEClassifier(image_size=32), GANClassifier(image_size=32)):
        with pytest.raises(ModelError):
            model.predict_proba(np.zeros((1, 32, 32, 3), np.uint8))
    with pytest.raises(ModelError):
        load_model_dir(tmp_path)


# ---------------------------------------------------------------- the GAN


def test_semi_supervised_gan_beats_chance_and_round_trips(tmp_path):
    from gemcaption.classification.gan import GANClassifier

    images, labels = coloured_images(8)
    gan = GANClassifier(
        image_size=32, filters=(8, 16), noise_dim=16, epochs=6, patience=6, batch_size=8, learning_rate=1e-3, seed=0
    )
    history = gan.fit(images, labels, 3, validation=(images, labels))
    assert {"generator_loss", "unsupervised_loss", "val_accuracy"} <= set(history)
    probabilities = gan.predict_proba(images)
    assert np.allclose(probabilities.sum(1), 1, atol=1e-5)
    assert np.mean(probabilities.argmax(1) == labels) > 0.6
    assert gan.generate(3).shape == (3, 32, 32, 3)
    gan.save(tmp_path / "gan")
    loaded = load_model_dir(tmp_path / "gan")
    assert np.allclose(loaded.predict_proba(images), probabilities, atol=1e-6)


# ---------------------------------------------------------------- descriptor baselines


@pytest.mark.parametrize("kind", ["rf", "svm", "logreg"])
def test_descriptor_baselines_beat_chance_and_round_trip(kind, tmp_path):
    from gemcaption.classification.baselines import DescriptorClassifier

    train_x, train_y = coloured_images(8, seed=0)
    test_x, test_y = coloured_images(4, seed=1)
    model = DescriptorClassifier(
        kind, features=("handcrafted",), image_size=32, n_estimators=50, views=("identity", "hflip")
    )
    model.fit(train_x, train_y, 3, validation=(test_x, test_y))
    probabilities = model.predict_proba(test_x)
    assert probabilities.shape == (12, 3) and np.allclose(probabilities.sum(1), 1)
    assert np.mean(probabilities.argmax(1) == test_y) > 0.8
    model.save(tmp_path / kind)
    stored = {p.name for p in (tmp_path / kind).iterdir()}
    assert ("logreg.npz" in stored) == (kind == "logreg")
    loaded = load_model_dir(tmp_path / kind)
    assert np.allclose(loaded.predict_proba(test_x), probabilities, atol=1e-6)


def test_descriptor_baseline_checks_its_input():
    from gemcaption.classification.baselines import DescriptorClassifier

    model = DescriptorClassifier("rf", image_size=32)
    images, labels = coloured_images(2)
    with pytest.raises(ImageError):
        model.fit(images[:, :16], labels, 3)
    with pytest.raises(DatasetError):
        model.fit(images, np.zeros(len(images), int), 3)
    with pytest.raises(DatasetError):
        model.fit(images, labels[:-1], 3)
    with pytest.raises(ModelError):
        model.predict_proba(images)
    with pytest.raises(ValueError):
        DescriptorClassifier("knn")
    with pytest.raises(ValueError):
        DescriptorClassifier("rf", views=("sideways",))


def test_foreground_colour_histogram_ignores_the_backdrop():
    from gemcaption.classification.descriptors import foreground_color_histogram, foreground_mask

    white = np.full((2, 32, 32, 3), 250, np.uint8)
    white[0, 8:24, 8:24] = [200, 20, 20]  # a red stone on white
    white[1, 12:20, 12:20] = [200, 20, 20]  # a smaller red stone on white
    assert foreground_mask(white).sum(axis=(1, 2)).tolist() == [256, 64]
    hist = foreground_color_histogram(white)
    # hue 0 -> bin 0, saturation 0.9 -> bin 3, value 0.78 -> bin 3: cell (0 * 4 + 3) * 4 + 3
    assert hist.shape == (2, 192) and hist[0, 15] == pytest.approx(1.0) and hist[1, 15] == pytest.approx(1.0)
    plain = np.full((1, 16, 16, 3), 90, np.uint8)  # no foreground: every pixel counts
    assert foreground_color_histogram(plain).sum() == pytest.approx(1.0)


def test_pictures_reconstruction_grid_and_latent_projection(tmp_path):
    from PIL import Image

    from gemcaption.classification.plots import project_2d, save_latent_projection, save_reconstruction_grid

    images, labels = coloured_images(4, size=16)
    grid = save_reconstruction_grid(images[:6], 255 - images[:6], tmp_path / "grid.png", columns=3)
    assert Image.open(grid).size[0] > 0
    points = project_2d(np.random.default_rng(0).normal(size=(12, 5)), "pca")
    assert points.shape == (12, 2)
    latent = np.eye(3)[labels] * 5 + np.random.default_rng(1).normal(0, 0.1, (12, 3))
    path = save_latent_projection(latent, labels, tmp_path / "latent.png", method="tsne")
    assert path.stat().st_size > 0
    with pytest.raises(ValueError):
        save_reconstruction_grid(images[:2], images[:3], tmp_path / "bad.png")
