"""The seed's variational autoencoder classifier, in Keras 3.

Images (uint8 0..255 or float 0..255) are scaled to [0, 1] inside the model. A convolutional encoder
maps them to ``z_mean`` and ``z_log_var``; a sample ``z = z_mean + exp(z_log_var / 2) * eps``
(the reparameterisation trick) feeds a deconvolutional decoder. The classifier reads ``z_mean``.

Loss (per image, averaged over the batch)::

    reconstruction = mean squared error over all pixel values (images in [0, 1])
    kl             = -1/2 * sum_j (1 + z_log_var_j - z_mean_j**2 - exp(z_log_var_j))
    total          = reconstruction + beta * kl / (H * W * 3) + classifier_weight * cross_entropy

The KL is divided by the number of pixel values so that ``beta = 1`` weighs it as in the evidence
lower bound of a Gaussian decoder whose reconstruction term is summed over pixels.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from ..errors import ConfigError
from .keras_parts import PrebuiltPartsMixin, softmax_head

PACKAGE = "gemcaption"


@keras.saving.register_keras_serializable(package=PACKAGE)
class Sampling(layers.Layer):
    """The reparameterisation trick: ``z_mean + exp(z_log_var / 2) * eps`` with eps ~ N(0, I)."""

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        eps = keras.random.normal(ops.shape(z_mean), seed=self.seed_generator)
        return z_mean + ops.exp(0.5 * z_log_var) * eps

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


def kl_divergence(z_mean, z_log_var):
    """KL(N(z_mean, exp(z_log_var)) || N(0, I)) summed over latent dimensions, one value per row."""
    return -0.5 * ops.sum(1.0 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var), axis=-1)


def build_augmentation(rotation: float = 0.1, zoom: float = 0.1, seed=None) -> keras.Sequential:
    """Random rotation (fraction of a full turn), horizontal and vertical flips, and zoom."""
    return keras.Sequential(
        [
            layers.RandomRotation(rotation, fill_mode="reflect", seed=seed),
            layers.RandomFlip("horizontal_and_vertical", seed=seed),
            layers.RandomZoom((-zoom, zoom), fill_mode="reflect", seed=seed),
        ],
        name="augmentation",
    )


def _check_size(image_size: int, filters) -> int:
    factor = 2 ** len(filters)
    if image_size % factor:
        raise ConfigError(f"image_size {image_size} must be divisible by 2**len(filters) = {factor}")
    return image_size // factor


def build_vae_encoder(image_size, filters, latent_dim) -> keras.Model:
    """Convolutional encoder: images in [0, 1] -> (z_mean, z_log_var)."""
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = inputs
    for i, width in enumerate(filters):
        x = layers.Conv2D(width, 3, strides=2, padding="same", name=f"conv{i}")(x)
        x = layers.BatchNormalization(name=f"bn{i}")(x)
        x = layers.LeakyReLU(0.2, name=f"act{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    z_mean = layers.Dense(latent_dim, name="z_mean")(x)
    z_log_var = layers.Dense(latent_dim, name="z_log_var", kernel_initializer="zeros", bias_initializer="zeros")(x)
    return keras.Model(inputs, [z_mean, z_log_var], name="encoder")


def build_vae_decoder(image_size, filters, latent_dim) -> keras.Model:
    """Deconvolutional decoder: z -> images in [0, 1] (sigmoid output)."""
    side = _check_size(image_size, filters)
    inputs = keras.Input((latent_dim,), name="z")
    x = layers.Dense(side * side * filters[-1], name="project")(inputs)
    x = layers.LeakyReLU(0.2)(x)
    x = layers.Reshape((side, side, filters[-1]))(x)
    for i, width in enumerate(reversed(filters)):
        x = layers.Conv2DTranspose(width, 3, strides=2, padding="same", name=f"deconv{i}")(x)
        x = layers.BatchNormalization(name=f"dbn{i}")(x)
        x = layers.LeakyReLU(0.2)(x)
    outputs = layers.Conv2D(3, 3, padding="same", activation="sigmoid", name="pixels")(x)
    return keras.Model(inputs, outputs, name="decoder")


def build_latent_classifier(latent_dim, num_classes, hidden, dropout) -> keras.Model:
    """Classifier head on the latent mean: optional hidden layer, dropout, softmax."""
    return softmax_head(latent_dim, num_classes, hidden, dropout, "z_mean", "classifier")


@keras.saving.register_keras_serializable(package=PACKAGE)
class VAEClassifierModel(PrebuiltPartsMixin, keras.Model):
    """VAE with a classifier on ``z_mean``; ``call`` returns class probabilities.

    ``fit(images, labels)`` minimises reconstruction + beta * KL + classifier_weight * CE; with
    ``classifier_weight=0`` it trains the VAE alone (the classifier can then be trained after,
    on frozen ``z_mean``, see :class:`~gemcaption.classification.vae_classifier.VAEClassifier`).
    """

    def __init__(
        self,
        num_classes,
        image_size=128,
        latent_dim=64,
        filters=(32, 64, 128, 128),
        beta=1.0,
        classifier_weight=1.0,
        classifier_hidden=128,
        dropout=0.3,
        augment=True,
        rotation=0.1,
        zoom=0.1,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        filters = tuple(int(f) for f in filters)
        _check_size(int(image_size), filters)
        if num_classes < 2:
            raise ConfigError(f"need at least 2 classes, got {num_classes}")
        self.num_classes = int(num_classes)
        self.image_size = int(image_size)
        self.latent_dim = int(latent_dim)
        self.filters = filters
        self.beta = float(beta)
        self.classifier_weight = float(classifier_weight)
        self.classifier_hidden = int(classifier_hidden)
        self.dropout = float(dropout)
        self.augment = bool(augment)
        self.rotation = float(rotation)
        self.zoom = float(zoom)
        self.seed = seed
        self.rescale = layers.Rescaling(1.0 / 255.0, name="rescale")
        self.augmentation = build_augmentation(rotation, zoom, seed)
        self.encoder = build_vae_encoder(self.image_size, filters, self.latent_dim)
        self.decoder = build_vae_decoder(self.image_size, filters, self.latent_dim)
        self.classifier = build_latent_classifier(
            self.latent_dim, self.num_classes, self.classifier_hidden, self.dropout
        )
        self.sampling = Sampling(seed=seed, name="sampling")
        self.trackers = {
            name: keras.metrics.Mean(name=name)
            for name in ("loss", "reconstruction_loss", "kl_loss", "classification_loss")
        }
        self.accuracy_tracker = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

    # ---- inference -------------------------------------------------------------------------
    def call(self, images, training=False):
        """Class probabilities of images in 0..255."""
        z_mean, _ = self.encoder(self.rescale(ops.cast(images, "float32")), training=training)
        return self.classifier(z_mean, training=training)

    def encode(self, images, training=False):
        """(z_mean, z_log_var) of images in 0..255."""
        return self.encoder(self.rescale(ops.cast(images, "float32")), training=training)

    def reconstruct(self, images):
        """Decoded ``z_mean`` of images in 0..255, as floats in [0, 1]."""
        z_mean, _ = self.encode(images)
        return self.decoder(z_mean, training=False)

    # ---- training ----------------------------------------------------------------------------
    @property
    def metrics(self):
        return [*self.trackers.values(), self.accuracy_tracker]

    def compute_losses(self, images, labels, training):
        """Loss terms of a batch: dict with loss, reconstruction_loss, kl_loss,
        classification_loss and the probabilities."""
        x = self.rescale(ops.cast(images, "float32"))
        if training and self.augment:
            x = self.augmentation(x, training=True)
        z_mean, z_log_var = self.encoder(x, training=training)
        z = self.sampling([z_mean, z_log_var]) if training else z_mean
        reconstruction = self.decoder(z, training=training)
        reconstruction_loss = ops.mean(ops.square(x - reconstruction))
        kl = ops.mean(kl_divergence(z_mean, z_log_var))
        pixel_values = float(self.image_size * self.image_size * 3)
        probabilities = self.classifier(z_mean, training=training)
        classification = ops.mean(keras.losses.sparse_categorical_crossentropy(labels, probabilities))
        total = reconstruction_loss + self.beta * kl / pixel_values
        if self.classifier_weight > 0:
            total = total + self.classifier_weight * classification
        return {
            "loss": total,
            "reconstruction_loss": reconstruction_loss,
            "kl_loss": kl,
            "classification_loss": classification,
            "probabilities": probabilities,
        }

    def _update(self, terms, labels):
        for name, tracker in self.trackers.items():
            tracker.update_state(terms[name])
        self.accuracy_tracker.update_state(labels, terms["probabilities"])
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        import tensorflow as tf  # the TensorFlow backend's gradient tape

        images, labels = data[0], data[1]
        with tf.GradientTape() as tape:
            terms = self.compute_losses(images, labels, training=True)
        weights = self.trainable_weights
        if self.classifier_weight <= 0:
            classifier_ids = {id(w) for w in self.classifier.trainable_weights}
            weights = [w for w in weights if id(w) not in classifier_ids]
        gradients = tape.gradient(terms["loss"], weights)
        self.optimizer.apply(gradients, weights)
        return self._update(terms, labels)

    def test_step(self, data):
        images, labels = data[0], data[1]
        return self._update(self.compute_losses(images, labels, training=False), labels)

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "image_size": self.image_size,
            "latent_dim": self.latent_dim,
            "filters": list(self.filters),
            "beta": self.beta,
            "classifier_weight": self.classifier_weight,
            "classifier_hidden": self.classifier_hidden,
            "dropout": self.dropout,
            "augment": self.augment,
            "rotation": self.rotation,
            "zoom": self.zoom,
            "seed": self.seed,
        }
