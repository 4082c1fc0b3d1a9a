"""Training pieces: caption arrays, masked loss and accuracy, the optimizer, callbacks, history plot,
and giving memory back between training stages."""

from __future__ import annotations

import io
import json
from pathlib import Path

import keras
import numpy as np
from keras import ops

from ..heap import release_free_memory
from ..persistence import atomic_write_bytes, atomic_write_text


def release_training_memory(model=None) -> None:
    """Drop ``model``'s compiled train and test steps (the next ``fit`` compiles them again) and give
    the C heap's free pages back to the system (:func:`gemcaption.heap.release_free_memory`). Run
    between the caption decoder's fit and the space's, so the second does not stack on memory that
    the first's steps freed but the allocator kept (docs/scaling.md, "Bounded memory")."""
    if model is not None:
        model.train_function = model.test_function = None
    release_free_memory()


def caption_array(captions_per_image, vocabulary, seq_len: int, max_captions: int | None = None) -> np.ndarray:
    """Token ids (N, K, seq_len): K caption slots per image, empty slots all padding (masked out)."""
    k = max((len(c) for c in captions_per_image), default=1)
    k = max(1, min(k, max_captions) if max_captions else k)
    out = np.zeros((len(captions_per_image), k, seq_len), np.int32)
    for i, captions in enumerate(captions_per_image):
        for j, caption in enumerate(list(captions)[:k]):
            out[i, j] = vocabulary.encode(caption, seq_len)
    return out


@keras.saving.register_keras_serializable(package="gemcaption")
def masked_loss(y_true, y_pred):
    """Sparse categorical cross-entropy over non-padding target tokens (id 0 is padding)."""
    y_true = ops.cast(y_true, "int32")
    mask = ops.cast(ops.not_equal(y_true, 0), "float32")
    loss = ops.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)
    return ops.sum(loss * mask) / ops.maximum(ops.sum(mask), 1.0)


@keras.saving.register_keras_serializable(package="gemcaption")
def masked_accuracy(y_true, y_pred):
    """Share of non-padding target tokens predicted exactly."""
    y_true = ops.cast(y_true, "int32")
    mask = ops.cast(ops.not_equal(y_true, 0), "float32")
    hit = ops.cast(ops.equal(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), y_true), "float32")
    return ops.sum(hit * mask) / ops.maximum(ops.sum(mask), 1.0)


NOT_DECAYED = ("bias", "gamma", "beta", "embeddings")  # variable names AdamW leaves alone


def build_optimizer(learning_rate, weight_decay: float = 0.0):
    """Adam with ``learning_rate`` (a number or schedule); AdamW with decoupled ``weight_decay``
    when it is > 0, not applied to biases, normalisation scales and offsets or embeddings."""
    if weight_decay <= 0:
        return keras.optimizers.Adam(learning_rate)
    optimizer = keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay)
    optimizer.exclude_from_weight_decay(var_names=list(NOT_DECAYED))
    return optimizer


CHECKPOINT_FILE = "checkpoint.weights.h5"  # what `gemcaption train` keeps in --out while it trains


class BestWeightsCheckpoint(keras.callbacks.Callback):
    """Writes the model's weights whenever validation loss improves, so a crash loses nothing."""

    def __init__(self, path, monitor="val_loss"):
        super().__init__()
        self.path, self.monitor, self.best = Path(path), monitor, np.inf

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and value < self.best:
            self.best = value
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.stem + ".tmp" + "".join(self.path.suffixes))
            self.model.save_weights(tmp)
            tmp.replace(self.path)


def write_history(history: dict, directory: str | Path) -> None:
    """``history.json`` and ``training.png`` (loss and token accuracy per epoch) in ``directory``, each
    written atomically (a reader sees the old file or the new one)."""
    directory = Path(directory)
    atomic_write_text(directory / "history.json", json.dumps(history, indent=1))
    if not history.get("loss"):
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    epochs = range(1, len(history["loss"]) + 1)
    for ax, key, title in ((axes[0], "loss", "masked cross-entropy"), (axes[1], "masked_accuracy", "token accuracy")):
        for prefix, style in (("", "-o"), ("val_", "--s")):
            if history.get(prefix + key):
                ax.plot(epochs, history[prefix + key], style, label="validation" if prefix else "train")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    atomic_write_bytes(directory / "training.png", buffer.getvalue())
