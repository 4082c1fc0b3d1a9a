"""The GAN baseline: a semi-supervised DCGAN whose discriminator is the classifier.

Design (Salimans et al. 2016, "Improved techniques for training GANs"): the discriminator outputs
K logits l_1..l_K. Read as a K+1-way classifier whose "fake" logit is fixed at 0, the probability
that an image is real is D(x) = Z / (Z + 1) with Z = sum_k exp(l_k). The discriminator minimises

    cross-entropy of softmax(l) on labelled real images
    + unsupervised_weight * ( -log D(real) - log(1 - D(G(z))) )

and the DCGAN generator minimises feature matching: the squared distance between the mean
penultimate discriminator features of real and generated batches. Predictions are softmax(l).
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from keras import layers, ops

from ..errors import ConfigError, ModelError
from .base import SavedModel, check_images, check_labels, read_keras_file, read_model_file
from .keras_parts import PrebuiltPartsMixin

PACKAGE = "gemcaption"
KERAS_FILE = "gan.keras"


def build_generator(image_size, noise_dim, filters) -> keras.Model:
    """DCGAN generator: noise -> images in [-1, 1]."""
    side = image_size // 2 ** len(filters)
    inputs = keras.Input((noise_dim,), name="noise")
    x = layers.Dense(side * side * filters[-1], use_bias=False)(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = layers.Reshape((side, side, filters[-1]))(x)
    for width in reversed(filters[:-1]):
        x = layers.Conv2DTranspose(width, 4, strides=2, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
    outputs = layers.Conv2DTranspose(3, 4, strides=2, padding="same", activation="tanh")(x)
    return keras.Model(inputs, outputs, name="generator")


def build_discriminator(image_size, num_classes, filters, dropout) -> keras.Model:
    """Convolutional discriminator: images in [-1, 1] -> (K logits, pooled features)."""
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = layers.GaussianNoise(0.05)(inputs)
    for i, width in enumerate(filters):
        x = layers.Conv2D(width, 3, strides=2, padding="same", name=f"conv{i}")(x)
        x = layers.LeakyReLU(0.2)(x)
        x = layers.Dropout(dropout)(x)
    features = layers.GlobalAveragePooling2D(name="features")(x)
    logits = layers.Dense(num_classes, name="logits")(features)
    return keras.Model(inputs, [logits, features], name="discriminator")


@keras.saving.register_keras_serializable(package=PACKAGE)
class SemiSupervisedGAN(PrebuiltPartsMixin, keras.Model):
    """Semi-supervised GAN; ``call(images 0..255)`` returns class probabilities."""

    def __init__(
        self,
        num_classes,
        image_size=64,
        noise_dim=100,
        filters=(64, 128, 256, 256),
        dropout=0.3,
        unsupervised_weight=1.0,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.image_size = int(image_size)
        self.noise_dim = int(noise_dim)
        self.filters = tuple(int(f) for f in filters)
        if self.image_size % 2 ** len(self.filters):
            raise ConfigError(f"image_size must be divisible by {2 ** len(self.filters)}")
        self.dropout = float(dropout)
        self.unsupervised_weight = float(unsupervised_weight)
        self.seed = seed
        self.generator = build_generator(self.image_size, self.noise_dim, self.filters)
        self.discriminator = build_discriminator(self.image_size, self.num_classes, self.filters, self.dropout)
        self.augmentation = keras.Sequential(
            [layers.RandomFlip("horizontal_and_vertical", seed=seed)], name="augmentation"
        )
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.trackers = {
            name: keras.metrics.Mean(name=name)
            for name in ("loss", "classification_loss", "unsupervised_loss", "generator_loss")
        }
        self.accuracy_tracker = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

    def _scale(self, images):
        return ops.cast(images, "float32") / 127.5 - 1.0

    def call(self, images, training=False):
        logits, _ = self.discriminator(self._scale(images), training=training)
        return ops.softmax(logits)

    @property
    def metrics(self):
        return [*self.trackers.values(), self.accuracy_tracker]

    def compile(self, d_optimizer=None, g_optimizer=None, **kwargs):
        super().compile(**kwargs)
        self.d_optimizer = d_optimizer or keras.optimizers.Adam(2e-4, beta_1=0.5)
        self.g_optimizer = g_optimizer or keras.optimizers.Adam(2e-4, beta_1=0.5)

    def _noise(self, batch):
        return keras.random.normal((batch, self.noise_dim), seed=self.seed_generator)

    def train_step(self, data):
        import tensorflow as tf

        images, labels = data[0], data[1]
        real = self.augmentation(self._scale(images), training=True)
        batch = ops.shape(real)[0]
        with tf.GradientTape() as tape:
            fake = self.generator(self._noise(batch), training=True)
            real_logits, _ = self.discriminator(real, training=True)
            fake_logits, _ = self.discriminator(fake, training=True)
            classification = ops.mean(
                keras.losses.sparse_categorical_crossentropy(labels, real_logits, from_logits=True)
            )
            real_lse = ops.logsumexp(real_logits, axis=-1)
            fake_lse = ops.logsumexp(fake_logits, axis=-1)
            # -log D(real) = softplus(lse) - lse ;  -log(1 - D(fake)) = softplus(lse_fake)
            unsupervised = ops.mean(ops.softplus(real_lse) - real_lse) + ops.mean(ops.softplus(fake_lse))
            d_loss = classification + self.unsupervised_weight * unsupervised
        d_weights = self.discriminator.trainable_weights
        self.d_optimizer.apply(tape.gradient(d_loss, d_weights), d_weights)
        with tf.GradientTape() as tape:
            fake = self.generator(self._noise(batch), training=True)
            _, fake_features = self.discriminator(fake, training=True)
            _, real_features = self.discriminator(real, training=True)
            g_loss = ops.mean(
                ops.square(ops.mean(ops.stop_gradient(real_features), axis=0) - ops.mean(fake_features, axis=0))
            )
        g_weights = self.generator.trainable_weights
        self.g_optimizer.apply(tape.gradient(g_loss, g_weights), g_weights)
        return self._update(d_loss, classification, unsupervised, g_loss, labels, real_logits)

    def test_step(self, data):
        images, labels = data[0], data[1]
        logits, _ = self.discriminator(self._scale(images), training=False)
        classification = ops.mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
        zero = ops.zeros(())
        return self._update(classification, classification, zero, zero, labels, logits)

    def _update(self, loss, classification, unsupervised, g_loss, labels, logits):
        values = {
            "loss": loss,
            "classification_loss": classification,
            "unsupervised_loss": unsupervised,
            "generator_loss": g_loss,
        }
        for name, tracker in self.trackers.items():
            tracker.update_state(values[name])
        self.accuracy_tracker.update_state(labels, logits)
        return {m.name: m.result() for m in self.metrics}

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "image_size": self.image_size,
            "noise_dim": self.noise_dim,
            "filters": list(self.filters),
            "dropout": self.dropout,
            "unsupervised_weight": self.unsupervised_weight,
            "seed": self.seed,
        }


class GANClassifier(SavedModel):
    """Array-interface wrapper of :class:`SemiSupervisedGAN` with early stopping on validation
    accuracy (at most ``epochs`` epochs)."""

    kind = "gan"

    def __init__(
        self,
        image_size=64,
        noise_dim=100,
        filters=(64, 128, 256, 256),
        dropout=0.3,
        unsupervised_weight=1.0,
        epochs=100,
        patience=15,
        batch_size=32,
        learning_rate=2e-4,
        seed=0,
        progress=False,
    ):
        self.image_size = int(image_size)
        self.noise_dim = int(noise_dim)
        self.filters = tuple(int(f) for f in filters)
        self.dropout = float(dropout)
        self.unsupervised_weight = float(unsupervised_weight)
        self.epochs = int(epochs)
        self.patience = int(patience)
        self.batch_size = int(batch_size)
        self.learning_rate = float(learning_rate)
        self.seed = seed
        self.progress = progress
        self.model = None

    def get_config(self) -> dict:
        """The constructor arguments (JSON-able) that rebuild this model untrained."""
        names = (
            "image_size",
            "noise_dim",
            "dropout",
            "unsupervised_weight",
            "epochs",
            "patience",
            "batch_size",
            "learning_rate",
            "seed",
        )
        return {"filters": list(self.filters), **{name: getattr(self, name) for name in names}}

    @property
    def num_classes(self):
        return None if self.model is None else self.model.num_classes

    def fit(self, images, labels, num_classes, validation=None):
        """Train the GAN on uint8 images and labels; returns the per-epoch history dict."""
        images = check_images(images, self.image_size)
        y = check_labels(labels, len(images), num_classes)
        if self.seed is not None:
            keras.utils.set_random_seed(int(self.seed))
        self.model = SemiSupervisedGAN(
            int(num_classes),
            self.image_size,
            self.noise_dim,
            self.filters,
            self.dropout,
            self.unsupervised_weight,
            seed=self.seed,
            name="semi_supervised_gan",
        )
        self.model.compile(
            d_optimizer=keras.optimizers.Adam(self.learning_rate, beta_1=0.5),
            g_optimizer=keras.optimizers.Adam(self.learning_rate, beta_1=0.5),
        )
        fit_args, monitor = {}, "accuracy"
        if validation is not None:
            fit_args["validation_data"] = (check_images(validation[0], self.image_size), np.asarray(validation[1]))
            monitor = "val_accuracy"
        stop = keras.callbacks.EarlyStopping(
            monitor=monitor, patience=self.patience, mode="max", restore_best_weights=True
        )
        history = self.model.fit(
            images,
            y,
            epochs=self.epochs,
            batch_size=self.batch_size,
            callbacks=[stop],
            shuffle=True,
            verbose=2 if self.progress else 0,
            **fit_args,
        ).history
        return {key: [float(v) for v in values] for key, values in history.items()}

    def predict_proba(self, images, batch_size=64) -> np.ndarray:
        """Class probabilities (N, K) from the discriminator's K logits."""
        if self.model is None:
            raise ModelError("the GAN is not trained yet: call fit() first")
        images = check_images(images, self.image_size)
        return self.model.predict(images, batch_size=batch_size, verbose=0).astype(np.float64)

    def generate(self, count: int, seed: int = 0) -> np.ndarray:
        """``count`` generated images as uint8 (count, S, S, 3)."""
        if self.model is None:
            raise ModelError("the GAN is not trained yet: call fit() first")
        noise = np.random.default_rng(seed).normal(size=(count, self.noise_dim)).astype(np.float32)
        images = np.asarray(self.model.generator(noise, training=False))
        return np.clip(np.rint((images + 1) * 127.5), 0, 255).astype(np.uint8)

    def write_files(self, path: Path) -> None:
        """The whole GAN as ``gan.keras``, into the existing directory ``path``."""
        self.model.save(path / KERAS_FILE)

    @classmethod
    def load(cls, directory):
        """Rebuild from a directory written by :meth:`save`."""
        payload = read_model_file(directory)
        wrapper = cls(**payload["config"])
        try:
            wrapper.model = read_keras_file(Path(directory) / KERAS_FILE)
        except (OSError, ValueError) as exc:
            raise ModelError(f"{directory}: cannot read the GAN ({exc})") from exc
        return wrapper
