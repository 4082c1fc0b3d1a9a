"""The CNN baseline: an EfficientNet backbone, global average pooling and a trained softmax head.

The head is first trained on cached pooled features (fast: the backbone runs once per image and
view). With ``fine_tune_layers > 0`` the last layers of the backbone (BatchNormalization layers
stay frozen) are then trained together with the head at a low learning rate on augmented pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ModelError
from .base import SavedModel, check_images, check_labels, config_from_model_file, read_keras_file
from .baselines import FeatureExtractor, apply_view
from .keras_parts import softmax_head

HEAD_FILE = "head.keras"
BACKBONE_FILE = "backbone.weights.h5"


def build_head(feature_dim: int, num_classes: int, hidden: int = 0, dropout: float = 0.3):
    """Pooled features -> (optional hidden ReLU layer) -> dropout -> softmax."""
    return softmax_head(feature_dim, num_classes, hidden, dropout, "pooled_features", "cnn_head")


class CNNClassifier(SavedModel):
    """EfficientNet features + a trained head; ``fine_tune_layers`` top backbone layers optionally."""

    kind = "cnn"

    def __init__(
        self,
        encoder="efficientnet_lite0",
        encoder_weights="imagenet",
        image_size=224,
        views=("identity", "hflip"),
        hidden=0,
        dropout=0.3,
        learning_rate=1e-3,
        epochs=300,
        patience=25,
        batch_size=64,
        fine_tune_layers=0,
        fine_tune_epochs=5,
        fine_tune_learning_rate=1e-4,
        seed=0,
        cache=True,
        progress=False,
    ):
        self.extractor = FeatureExtractor(("encoder",), encoder, encoder_weights, image_size, cache, progress)
        self.image_size = self.extractor.image_size
        self.views = tuple(views)
        for view in self.views:
            apply_view(np.zeros((1, 2, 2, 3), np.uint8), view)
        self.hidden = int(hidden)
        self.dropout = float(dropout)
        self.learning_rate = float(learning_rate)
        self.epochs = int(epochs)
        self.patience = int(patience)
        self.batch_size = int(batch_size)
        self.fine_tune_layers = int(fine_tune_layers)
        self.fine_tune_epochs = int(fine_tune_epochs)
        self.fine_tune_learning_rate = float(fine_tune_learning_rate)
        self.seed = seed
        self.progress = progress
        self.num_classes = None
        self.head = None
        self.full_model = None  # set when the backbone was fine-tuned

    def get_config(self) -> dict:
        """The constructor arguments (JSON-able) that rebuild this model untrained."""
        extractor = self.extractor.get_config()
        return {
            "encoder": extractor["encoder"],
            "encoder_weights": extractor["encoder_weights"],
            "image_size": self.image_size,
            "views": list(self.views),
            "hidden": self.hidden,
            "dropout": self.dropout,
            "learning_rate": self.learning_rate,
            "epochs": self.epochs,
            "patience": self.patience,
            "batch_size": self.batch_size,
            "fine_tune_layers": self.fine_tune_layers,
            "fine_tune_epochs": self.fine_tune_epochs,
            "fine_tune_learning_rate": self.fine_tune_learning_rate,
            "seed": self.seed,
        }

    def _view_features(self, images):
        return [self.extractor(apply_view(images, view)) for view in self.views]

    def fit(self, images, labels, num_classes, validation=None):
        """Train the head (then optionally fine-tune); returns the Keras history dict."""
        import keras

        images = check_images(images, self.image_size)
        y = check_labels(labels, len(images), num_classes)
        self.num_classes = int(num_classes)
        if self.seed is not None:
            keras.utils.set_random_seed(int(self.seed))
        x = np.concatenate(self._view_features(images))
        self.head = build_head(x.shape[1], self.num_classes, self.hidden, self.dropout)
        self.head.compile(
            optimizer=keras.optimizers.Adam(self.learning_rate),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        fit_args = {}
        monitor = "loss"
        if validation is not None:
            val_images = check_images(validation[0], self.image_size)
            fit_args["validation_data"] = (self.extractor(val_images), np.asarray(validation[1]))
            monitor = "val_accuracy"
        stop = keras.callbacks.EarlyStopping(
            monitor=monitor,
            patience=self.patience,
            mode="max" if monitor == "val_accuracy" else "min",
            restore_best_weights=True,
        )
        history = self.head.fit(
            x,
            np.tile(y, len(self.views)),
            epochs=self.epochs,
            batch_size=self.batch_size,
            callbacks=[stop],
            shuffle=True,
            verbose=2 if self.progress else 0,
            **fit_args,
        ).history
        if self.fine_tune_layers > 0:
            history["fine_tune"] = self._fine_tune(images, y, validation)
        return {
            key: [float(v) for v in values] if isinstance(values, list) else values for key, values in history.items()
        }

    def _build_full_model(self):
        import keras
        from keras import layers

        backbone = self.extractor.encoder.model
        inputs = keras.Input((self.image_size, self.image_size, 3), name="image")
        grid = backbone(inputs)
        pooled = layers.GlobalAveragePooling2D(name="pool")(grid)
        return keras.Model(inputs, self.head(pooled), name="cnn"), backbone

    def _unfreeze_top(self, backbone):
        from keras import layers

        backbone.trainable = True
        flat = [layer for layer in backbone.layers if layer.weights]
        for layer in flat:
            layer.trainable = False
        for layer in flat[-self.fine_tune_layers :]:
            if not isinstance(layer, layers.BatchNormalization):
                layer.trainable = True

    def _fine_tune(self, images, y, validation):
        import keras

        model, backbone = self._build_full_model()
        self._unfreeze_top(backbone)
        model.compile(
            optimizer=keras.optimizers.Adam(self.fine_tune_learning_rate),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        x = np.concatenate([apply_view(images, v) for v in self.views]).astype(np.float32)
        fit_args = {}
        if validation is not None:
            fit_args["validation_data"] = (
                check_images(validation[0], self.image_size).astype(np.float32),
                np.asarray(validation[1]),
            )
        history = model.fit(
            x,
            np.tile(y, len(self.views)),
            epochs=self.fine_tune_epochs,
            batch_size=16,
            shuffle=True,
            verbose=2 if self.progress else 0,
            **fit_args,
        ).history
        self.full_model = model
        return {key: [float(v) for v in values] for key, values in history.items()}

    def predict_proba(self, images) -> np.ndarray:
        """Class probabilities (N, K), averaged over the views."""
        if self.head is None:
            raise ModelError("the CNN is not trained yet: call fit() first")
        images = check_images(images, self.image_size)
        outputs = []
        for view in self.views:
            viewed = apply_view(images, view)
            if self.full_model is not None:
                outputs.append(self.full_model.predict(viewed.astype(np.float32), verbose=0))
            else:
                outputs.append(self.head.predict(self.extractor(viewed), verbose=0))
        return np.mean(outputs, axis=0).astype(np.float64)

    def saved_state(self) -> dict:
        return {"num_classes": self.num_classes, "fine_tuned": self.full_model is not None}

    def write_files(self, path: Path) -> None:
        """The head and (when fine-tuned) the backbone weights, into the existing directory ``path``."""
        self.head.save(path / HEAD_FILE)
        if self.full_model is not None:
            self.extractor.encoder.model.save_weights(path / BACKBONE_FILE)

    @classmethod
    def load(cls, directory, encoder=None):
        """Rebuild from a directory written by :meth:`save`."""

        payload, config = config_from_model_file(directory, encoder, ("views",))
        model = cls(**config)
        model.num_classes = int(payload["num_classes"])
        path = Path(directory)
        try:
            model.head = read_keras_file(path / HEAD_FILE)
            if payload.get("fine_tuned"):
                model.extractor.encoder.model.load_weights(path / BACKBONE_FILE)
                model.full_model, _ = model._build_full_model()
        except (OSError, ValueError) as exc:
            raise ModelError(f"{directory}: cannot read the CNN weights ({exc})") from exc
        return model
