"""Training wrapper around :class:`VAEClassifierModel`: early stopping, joint or post-hoc
classifier, saving as a ``.keras`` file (no pickle)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ConfigError, ModelError
from .base import SavedModel, check_images, check_labels, read_keras_file, read_model_file

KERAS_FILE = "vae.keras"


class VAEClassifier(SavedModel):
    """The seed's VAE classifier with the array interface of every gemcaption classifier.

    ``classifier_mode="joint"`` trains reconstruction + beta * KL + classifier_weight * CE together;
    ``"after"`` trains the VAE alone, then the classifier on the frozen latent means.
    Training stops early when validation accuracy (joint) or loss (after) stops improving for
    ``patience`` epochs, at most ``epochs`` epochs (100 by default, as in the seed).
    """

    kind = "vae"

    def __init__(
        self,
        image_size=128,
        latent_dim=64,
        filters=(32, 64, 128, 128),
        beta=1.0,
        classifier_weight=1.0,
        classifier_mode="joint",
        classifier_hidden=128,
        dropout=0.3,
        augment=True,
        rotation=0.1,
        zoom=0.1,
        epochs=100,
        patience=15,
        batch_size=32,
        learning_rate=1e-3,
        head_epochs=200,
        seed=0,
        progress=False,
    ):
        if classifier_mode not in ("joint", "after"):
            raise ConfigError(f"classifier_mode must be 'joint' or 'after', got {classifier_mode!r}")
        self.image_size = int(image_size)
        self.latent_dim = int(latent_dim)
        self.filters = tuple(int(f) for f in filters)
        self.beta = float(beta)
        self.classifier_weight = float(classifier_weight)
        self.classifier_mode = classifier_mode
        self.classifier_hidden = int(classifier_hidden)
        self.dropout = float(dropout)
        self.augment = bool(augment)
        self.rotation = float(rotation)
        self.zoom = float(zoom)
        self.epochs = int(epochs)
        self.patience = int(patience)
        self.batch_size = int(batch_size)
        self.learning_rate = float(learning_rate)
        self.head_epochs = int(head_epochs)
        self.seed = seed
        self.progress = progress
        self.model = None

    def get_config(self) -> dict:
        """The constructor arguments (JSON-able) that rebuild this model untrained."""
        names = (
            "image_size",
            "latent_dim",
            "beta",
            "classifier_weight",
            "classifier_mode",
            "classifier_hidden",
            "dropout",
            "augment",
            "rotation",
            "zoom",
            "epochs",
            "patience",
            "batch_size",
            "learning_rate",
            "head_epochs",
            "seed",
        )
        return {"filters": list(self.filters), **{name: getattr(self, name) for name in names}}

    @property
    def num_classes(self):
        return None if self.model is None else self.model.num_classes

    def build(self, num_classes):
        """A fresh untrained Keras model for ``num_classes`` classes."""
        from .vae import VAEClassifierModel

        weight = self.classifier_weight if self.classifier_mode == "joint" else 0.0
        return VAEClassifierModel(
            num_classes,
            image_size=self.image_size,
            latent_dim=self.latent_dim,
            filters=self.filters,
            beta=self.beta,
            classifier_weight=weight,
            classifier_hidden=self.classifier_hidden,
            dropout=self.dropout,
            augment=self.augment,
            rotation=self.rotation,
            zoom=self.zoom,
            seed=self.seed,
            name="vae_classifier",
        )

    def fit(self, images, labels, num_classes, validation=None):
        """Train on uint8 images (N, S, S, 3); returns the per-epoch history dict."""
        import keras

        images = check_images(images, self.image_size)
        y = check_labels(labels, len(images), num_classes)
        if self.seed is not None:
            keras.utils.set_random_seed(int(self.seed))
        self.model = self.build(int(num_classes))
        self.model.compile(optimizer=keras.optimizers.Adam(self.learning_rate))
        fit_args, monitor = {}, "loss"
        if validation is not None:
            val_images = check_images(validation[0], self.image_size)
            fit_args["validation_data"] = (val_images, np.asarray(validation[1]))
            monitor = "val_accuracy" if self.classifier_mode == "joint" else "val_loss"
        stop = keras.callbacks.EarlyStopping(
            monitor=monitor,
            patience=self.patience,
            mode="max" if monitor.endswith("accuracy") else "min",
            restore_best_weights=True,
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
        history = {key: [float(v) for v in values] for key, values in history.items()}
        if self.classifier_mode == "after":
            history["head"] = self._fit_head(images, y, validation)
        return history

    def _fit_head(self, images, y, validation):
        """Train the classifier on frozen latent means (of flipped copies too)."""
        import keras

        z = np.concatenate([self.encode(images), self.encode(images[:, :, ::-1]), self.encode(images[:, ::-1])])
        head = self.model.classifier
        head.compile(
            optimizer=keras.optimizers.Adam(self.learning_rate),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        fit_args, monitor = {}, "loss"
        if validation is not None:
            fit_args["validation_data"] = (self.encode(validation[0]), np.asarray(validation[1]))
            monitor = "val_accuracy"
        stop = keras.callbacks.EarlyStopping(
            monitor=monitor,
            patience=max(self.patience, 20),
            mode="max" if monitor == "val_accuracy" else "min",
            restore_best_weights=True,
        )
        history = head.fit(
            z, np.tile(y, 3), epochs=self.head_epochs, batch_size=64, callbacks=[stop], verbose=0, **fit_args
        ).history
        return {key: [float(v) for v in values] for key, values in history.items()}

    def _require_model(self):
        if self.model is None:
            raise ModelError("the VAE is not trained yet: call fit() first")
        return self.model

    def predict_proba(self, images, batch_size=64) -> np.ndarray:
        """Class probabilities (N, K) from the classifier on ``z_mean``."""
        model = self._require_model()
        images = check_images(images, self.image_size)
        return model.predict(images, batch_size=batch_size, verbose=0).astype(np.float64)

    def encode(self, images, batch_size=64) -> np.ndarray:
        """Latent means (N, latent_dim)."""
        model = self._require_model()
        images = check_images(images, self.image_size)
        parts = [np.asarray(model.encode(images[i : i + batch_size])[0]) for i in range(0, len(images), batch_size)]
        return np.concatenate(parts).astype(np.float32)

    def reconstruct(self, images, batch_size=64) -> np.ndarray:
        """Decoded latent means as uint8 images (N, S, S, 3)."""
        model = self._require_model()
        images = check_images(images, self.image_size)
        parts = [np.asarray(model.reconstruct(images[i : i + batch_size])) for i in range(0, len(images), batch_size)]
        return np.clip(np.rint(np.concatenate(parts) * 255), 0, 255).astype(np.uint8)

    def write_files(self, path: Path) -> None:
        """The Keras model as ``vae.keras``, into the existing directory ``path``."""
        self._require_model().save(path / KERAS_FILE)

    @classmethod
    def load(cls, directory):
        """Rebuild from a directory written by :meth:`save`."""

        from .vae import Sampling, VAEClassifierModel

        payload = read_model_file(directory)
        config = dict(payload["config"])
        wrapper = cls(**config)
        custom = {"gemcaption>VAEClassifierModel": VAEClassifierModel, "gemcaption>Sampling": Sampling}
        try:
            wrapper.model = read_keras_file(Path(directory) / KERAS_FILE, custom_objects=custom)
        except (OSError, ValueError) as exc:
            raise ModelError(f"{directory}: cannot read the VAE ({exc})") from exc
        return wrapper
