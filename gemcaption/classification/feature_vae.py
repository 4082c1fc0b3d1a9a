"""The ``vae`` kind: a variational autoencoder whose encoder is the pretrained image encoder.

Each photo is described by the frozen pretrained encoder's pooled features (EfficientNet-Lite0,
ImageNet) together with the colour descriptors of :mod:`gemcaption.classification.descriptors`
(RGB histogram + LBP, foreground HSV histogram), standardised. Dense layers map that vector to
``z_mean`` and ``z_log_var``; a sample ``z`` (reparameterisation trick) feeds a deconvolutional
decoder that reconstructs the photo at ``reconstruction_size`` px; the classifier reads ``z_mean``.

Loss per image: ``MSE(pixels) + beta * KL / (pixel values) + classifier_weight * cross-entropy``
(the seed's loss, :mod:`gemcaption.classification.vae`), trained jointly with Adam and early
stopping on validation accuracy. Flipped copies (``views``) are added in training and averaged at
test time. Saved as three plain functional ``.keras`` files (encoder, decoder, classifier; loaded
with ``safe_mode=True``) and the standardisation arrays (``.npz``, no pickle).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ModelError
from .base import SavedModel, check_images, check_labels, config_from_model_file, read_keras_file
from .baselines import FeatureExtractor, apply_view

PARTS = ("encoder", "decoder", "classifier")
SCALER_FILE = "scaler.npz"


def resize_batch(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 (N, S, S, 3) -> float32 (N, size, size, 3) in [0, 1] (area-averaged, for the decoder targets)."""
    import tensorflow as tf

    out = tf.image.resize(tf.convert_to_tensor(images, tf.float32), (size, size), method="area")
    return (out.numpy() / 255.0).astype(np.float32)


class FeatureVAEClassifier(SavedModel):
    """VAE over pretrained-encoder features with a classifier on the latent mean (kind ``feature-vae``)."""

    kind = "feature-vae"

    def __init__(
        self,
        features=("encoder", "handcrafted", "foreground"),
        encoder="efficientnet_lite0",
        encoder_weights="imagenet",
        image_size=224,
        views=("identity", "hflip"),
        latent_dim=128,
        hidden=512,
        reconstruction_size=64,
        filters=(32, 64, 128),
        beta=1.0,
        classifier_weight=1.0,
        dropout=0.3,
        input_dropout=0.2,
        epochs=200,
        patience=20,
        batch_size=64,
        learning_rate=1e-3,
        seed=0,
        cache=True,
        progress=False,
    ):
        self.extractor = FeatureExtractor(features, encoder, encoder_weights, image_size, cache, progress)
        self.image_size = self.extractor.image_size
        self.views = tuple(views)
        for view in self.views:
            apply_view(np.zeros((1, 2, 2, 3), np.uint8), view)  # validates the name
        self.latent_dim = int(latent_dim)
        self.hidden = int(hidden)
        self.reconstruction_size = int(reconstruction_size)
        self.filters = tuple(int(f) for f in filters)
        self.beta = float(beta)
        self.classifier_weight = float(classifier_weight)
        self.dropout = float(dropout)
        self.input_dropout = float(input_dropout)
        self.epochs = int(epochs)
        self.patience = int(patience)
        self.batch_size = int(batch_size)
        self.learning_rate = float(learning_rate)
        self.seed = seed
        self.progress = progress
        self.num_classes: int | None = None
        self.parts: dict = {}
        self.mean: np.ndarray | None = None
        self.scale: np.ndarray | None = None

    def get_config(self) -> dict:
        """The constructor arguments (JSON-able) that rebuild this model untrained."""
        names = (
            "latent_dim",
            "hidden",
            "reconstruction_size",
            "beta",
            "classifier_weight",
            "dropout",
            "input_dropout",
            "epochs",
            "patience",
            "batch_size",
            "learning_rate",
            "seed",
        )
        return {
            **self.extractor.get_config(),
            "views": list(self.views),
            "filters": list(self.filters),
            **{name: getattr(self, name) for name in names},
        }

    # -- features ----------------------------------------------------------------------------------
    def _raw_features(self, images: np.ndarray) -> list[np.ndarray]:
        return [self.extractor(apply_view(images, view)) for view in self.views]

    def _standardise(self, x: np.ndarray) -> np.ndarray:
        if self.mean is None or self.scale is None:
            raise ModelError("the feature VAE is not trained yet: call fit() first")
        return ((x - self.mean) / self.scale).astype(np.float32)

    # -- model -------------------------------------------------------------------------------------
    def _build(self, input_dim: int, num_classes: int) -> dict:
        import keras
        from keras import layers

        from .vae import build_latent_classifier, build_vae_decoder

        inputs = keras.Input((input_dim,), name="features")
        x = layers.Dropout(self.input_dropout, name="input_dropout")(inputs)
        x = layers.Dense(self.hidden, activation="relu", name="hidden")(x)
        z_mean = layers.Dense(self.latent_dim, name="z_mean")(x)
        z_log_var = layers.Dense(self.latent_dim, name="z_log_var")(x)
        encoder = keras.Model(inputs, [z_mean, z_log_var], name="encoder")
        decoder = build_vae_decoder(self.reconstruction_size, self.filters, self.latent_dim)
        classifier = build_latent_classifier(self.latent_dim, num_classes, 0, self.dropout)
        return {"encoder": encoder, "decoder": decoder, "classifier": classifier}

    def fit(self, images, labels, num_classes, validation=None):
        """Train on uint8 images (N, S, S, 3) and labels 0..K-1; returns the per-epoch history."""
        import keras
        import tensorflow as tf

        images = check_images(images, self.image_size)
        y = check_labels(labels, len(images), num_classes)
        if self.seed is not None:
            keras.utils.set_random_seed(int(self.seed))
        self.num_classes = int(num_classes)
        features = self._raw_features(images)
        x = np.concatenate(features)
        std = x.std(axis=0)
        self.mean, self.scale = x.mean(axis=0), np.where(std > 1e-6, std, 1.0)  # constant columns stay put
        x = self._standardise(x)
        targets = np.concatenate(
            [resize_batch(apply_view(images, view), self.reconstruction_size) for view in self.views]
        )
        y_all = np.tile(y, len(self.views))
        self.parts = self._build(x.shape[1], self.num_classes)
        encoder, decoder, classifier = (self.parts[name] for name in PARTS)
        weights = encoder.trainable_weights + decoder.trainable_weights + classifier.trainable_weights
        optimizer = keras.optimizers.Adam(self.learning_rate)
        pixels = float(self.reconstruction_size**2 * 3)

        @tf.function
        def step(xb, tb, yb):
            with tf.GradientTape() as tape:
                z_mean, z_log_var = encoder(xb, training=True)
                eps = tf.random.normal(tf.shape(z_mean))
                z = z_mean + tf.exp(0.5 * z_log_var) * eps
                reconstruction = tf.reduce_mean(tf.square(decoder(z, training=True) - tb))
                kl = tf.reduce_mean(
                    -0.5 * tf.reduce_sum(1.0 + z_log_var - tf.square(z_mean) - tf.exp(z_log_var), axis=-1)
                )
                probabilities = classifier(z_mean, training=True)
                ce = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(yb, probabilities))
                loss = reconstruction + self.beta * kl / pixels + self.classifier_weight * ce
            optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights))
            return loss, reconstruction, kl, ce

        val_x = None
        if validation is not None:
            val_images = check_images(validation[0], self.image_size)
            val_x = [self._standardise(v) for v in self._raw_features(val_images)]
        rng = np.random.default_rng(self.seed)
        history: dict[str, list[float]] = {"loss": [], "reconstruction": [], "kl": [], "cross_entropy": []}
        best, best_weights, waited = -1.0, None, 0
        for _epoch in range(self.epochs):
            order = rng.permutation(len(x))
            totals = np.zeros(4)
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                terms = step(x[rows], targets[rows], y_all[rows])
                totals += np.array([float(t) for t in terms]) * len(rows)
            for key, value in zip(history, totals / len(x)):
                history[key].append(float(value))
            if val_x is None or validation is None:
                continue
            accuracy = float(np.mean(self._proba_of_features(val_x).argmax(1) == np.asarray(validation[1])))
            history.setdefault("val_accuracy", []).append(accuracy)
            if accuracy > best:
                best, waited = accuracy, 0
                best_weights = [part.get_weights() for part in (encoder, decoder, classifier)]
            else:
                waited += 1
                if waited >= self.patience:
                    break
        if best_weights is not None:
            for part, saved in zip((encoder, decoder, classifier), best_weights):
                part.set_weights(saved)
        return history

    def _require(self) -> dict:
        if not self.parts:
            raise ModelError("the feature VAE is not trained yet: call fit() first")
        return self.parts

    def encode(self, images, batch_size: int = 256) -> np.ndarray:
        """Latent means (N, latent_dim) of the identity view."""
        encoder = self._require()["encoder"]
        images = check_images(images, self.image_size)
        x = self._standardise(self.extractor(images))
        return np.asarray(encoder.predict(x, batch_size=batch_size, verbose=0)[0], np.float32)

    def predict_proba(self, images, batch_size: int = 256) -> np.ndarray:
        """Class probabilities (N, K) from the classifier on ``z_mean``, averaged over the views."""
        self._require()
        images = check_images(images, self.image_size)
        return self._proba_of_features([self._standardise(x) for x in self._raw_features(images)])

    def _proba_of_features(self, views: list[np.ndarray]) -> np.ndarray:
        parts = self._require()
        out = []
        for x in views:
            z_mean = parts["encoder"](x, training=False)[0]
            out.append(np.asarray(parts["classifier"](z_mean, training=False)))
        return np.mean(out, axis=0).astype(np.float64)

    def reconstruct(self, images, batch_size: int = 256) -> np.ndarray:
        """Decoded latent means as uint8 images (N, reconstruction_size, reconstruction_size, 3)."""
        decoder = self._require()["decoder"]
        decoded = decoder.predict(self.encode(images), batch_size=batch_size, verbose=0)
        return np.clip(np.rint(np.asarray(decoded) * 255), 0, 255).astype(np.uint8)

    def write_files(self, path: Path) -> None:
        """Three ``.keras`` files and the standardisation arrays, into the existing directory ``path``."""
        for name, part in self._require().items():
            part.save(path / f"{name}.keras")
        if self.mean is None or self.scale is None:
            raise ModelError("the feature VAE is not trained yet: call fit() first")
        np.savez(path / SCALER_FILE, mean=self.mean, scale=self.scale)

    @classmethod
    def load(cls, directory, encoder=None):
        """Rebuild from a directory written by :meth:`save` (``safe_mode=True``: no code runs)."""

        payload, config = config_from_model_file(directory, encoder, ("features", "views"))
        model = cls(**config)
        model.num_classes = int(payload["num_classes"])
        path = Path(directory)
        try:
            model.parts = {name: read_keras_file(path / f"{name}.keras") for name in PARTS}
            with np.load(path / SCALER_FILE, allow_pickle=False) as data:
                model.mean, model.scale = data["mean"], data["scale"]
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"{directory}: cannot read the feature VAE ({exc})") from exc
        return model
