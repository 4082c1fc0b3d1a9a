"""Training a :class:`~.space.CaptionSpace`: the symmetric InfoNCE loss and the epoch loop.

Each epoch visits every (image, caption) pair once in a seeded random order, in batches of
``batch_size``; two pairs of the same image in one batch are not counted as negatives of each
other. The learning rate follows :class:`gemcaption.captioning.schedule.WarmupSchedule`
(AdamW). After every epoch the dev split is scored (text -> image R@1 + R@5 + R@10) and training
stops ``patience`` epochs after the best one, whose weights are restored. Grids come from the
feature cache (:mod:`gemcaption.captioning.features`); the CNN never runs here. With mean pooling
the grids are averaged once before training.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence

import numpy as np

from ..captioning.vocabulary import Vocabulary
from ..errors import ConfigError, DatasetError
from .config import SpaceConfig, default_space_config
from .ranking import own_ranks
from .space import CaptionSpace


def contrastive_loss(text, image, ids, scale, hard_negative_weight: float = 0.0, margin: float = 0.2):
    """Symmetric InfoNCE of a batch of matching (text, image) unit vectors, plus optionally the
    max-violation hinge of the hardest negatives (VSE++). ``ids`` name each pair's image."""
    import tensorflow as tf

    sims = tf.matmul(text, image, transpose_b=True)
    n = tf.shape(sims)[0]
    same = tf.equal(ids[:, None], ids[None, :])
    other_positive = tf.logical_and(same, tf.logical_not(tf.eye(n, dtype=tf.bool)))
    logits = tf.where(other_positive, tf.constant(-1e9, sims.dtype), sims * scale)
    labels = tf.range(n)
    loss = 0.5 * (
        tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
        + tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=tf.transpose(logits)))
    )
    if hard_negative_weight > 0:
        positive = tf.linalg.diag_part(sims)
        negatives = tf.where(same, tf.constant(-2.0, sims.dtype), sims)
        hinge = tf.nn.relu(margin + tf.reduce_max(negatives, axis=1) - positive)
        hinge += tf.nn.relu(margin + tf.reduce_max(negatives, axis=0) - positive)
        loss += hard_negative_weight * tf.reduce_mean(hinge)
    return loss


def t2i_recalls(space: CaptionSpace, grids, captions: Sequence[Sequence[str]]) -> dict:
    """Text -> image R@1/5/10 of every caption of ``captions`` against the images of ``grids``."""
    owners = np.array([i for i, caps in enumerate(captions) for _ in caps])
    texts = space.embed_texts([c for caps in captions for c in caps])
    ranks = own_ranks(texts, space.embed_images(grids), owners)
    return {f"r{k}": float(np.mean(ranks <= k)) for k in (1, 5, 10)}


def _check_pairs(grids, captions, what: str) -> tuple[np.ndarray, list[list[str]]]:
    grids = np.asarray(grids)
    if grids.ndim == 2:
        grids = grids[:, None, :]
    captions = [[str(c) for c in caps] for caps in captions]
    if grids.ndim != 3 or len(grids) != len(captions):
        raise DatasetError(
            f"{what}: need one feature grid per image and its captions, got {grids.shape} and {len(captions)}"
        )
    if not any(captions):
        raise DatasetError(f"{what}: no captions to train the space on")
    return grids, captions


def _init_words(model, vocabulary: Vocabulary, word_vectors) -> int:
    """Copy the vectors of the words both vocabularies know into the word embedding; how many were copied."""
    words, vectors = word_vectors
    vectors = np.asarray(vectors, np.float32)
    table = model.text.embedding.embeddings
    if vectors.shape[1] != table.shape[1]:
        raise ConfigError(f"word vectors have {vectors.shape[1]} dimensions, the space's word_dim is {table.shape[1]}")
    weights = np.array(table.numpy())
    index = {w: i for i, w in enumerate(words)}
    rows = [(i, index[w]) for i, w in enumerate(vocabulary.words) if i >= 4 and w in index]
    if rows:
        mine, theirs = map(list, zip(*rows))
        scale = weights[4:].std() / max(float(vectors.std()), 1e-8)
        weights[mine] = vectors[theirs] * scale
        table.assign(weights)
    return len(rows)


def build_model(config: SpaceConfig, words: int, channels: int):
    """An untrained :class:`~.layers.DualEncoder` for ``words`` token ids and ``channels`` feature channels."""
    from .layers import DualEncoder, ImageProjection, TextEncoder

    text = TextEncoder(words, config.word_dim, config.dim, config.text_encoder, config.seq_len, config.dropout)
    image = ImageProjection(config.dim, config.hidden_dim, config.image_pooling, config.dropout)
    model = DualEncoder(text, image, config.temperature, config.learn_temperature)
    model((np.ones((1, config.seq_len), np.int32), np.zeros((1, 2, channels), np.float32)))
    return model


def fit_space(
    train_grids,
    train_captions: Sequence[Sequence[str]],
    dev_grids=None,
    dev_captions: Sequence[Sequence[str]] | None = None,
    config: SpaceConfig | dict | None = None,
    vocabulary: Vocabulary | None = None,
    word_vectors: tuple[list[str], np.ndarray] | None = None,
    verbose: int = 1,
) -> CaptionSpace:
    """Train a space on ``train_grids[i]`` (G, C) paired with each of ``train_captions[i]``.

    ``dev_grids``/``dev_captions`` drive early stopping (without them every epoch is kept and the
    last weights are used). ``vocabulary`` defaults to one built from the training captions;
    ``word_vectors`` = (words, vectors) initialises the word embeddings (e.g. a caption decoder's).
    ``config`` defaults to :func:`~.config.default_space_config` of the number of pairs.
    """
    import keras
    import tensorflow as tf

    from ..captioning.schedule import WarmupSchedule

    grids, captions = _check_pairs(train_grids, train_captions, "training split")
    pairs = sum(len(caps) for caps in captions)
    config = default_space_config(pairs) if config is None else SpaceConfig.from_config(config)
    has_dev = dev_grids is not None and dev_captions is not None and len(dev_captions) > 0
    if has_dev:
        dev_grids, dev_captions = _check_pairs(dev_grids, dev_captions, "dev split")
    keras.utils.set_random_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    if vocabulary is None:
        vocabulary = Vocabulary.build([c for caps in captions for c in caps], config.vocab_size, config.min_count)
    channels = grids.shape[-1]
    if config.image_pooling == "mean" and grids.shape[1] != 1:  # rows pooled already: no copy of them
        grids = np.asarray(grids, np.float32).mean(axis=1, keepdims=True)
    model = build_model(config, len(vocabulary), channels)
    space = CaptionSpace(config, vocabulary, model, channels)
    if word_vectors is not None:
        space.history["initialised_words"] = _init_words(model, vocabulary, word_vectors)
    owners = np.array([i for i, caps in enumerate(captions) for _ in caps], np.int32)
    tokens = space.token_ids([c for caps in captions for c in caps])
    batch = min(config.batch_size, len(owners))
    steps = math.ceil(len(owners) / batch)
    schedule = WarmupSchedule.for_training(
        config.learning_rate, steps, config.epochs, config.warmup_fraction, decay=config.decay
    )
    optimizer = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=config.weight_decay)
    variables = model.trainable_variables

    @tf.function(reduce_retracing=True)
    def train_step(tok, grid, ids):
        with tf.GradientTape() as tape:
            text, image = model((tok, grid), training=True)
            loss = contrastive_loss(text, image, ids, model.scale(), config.hard_negative_weight, config.margin)
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    history: dict = {"loss": [], "dev_r1": [], "dev_r5": [], "dev_r10": [], "temperature": []}
    best, best_epoch, best_weights = -1.0, 0, None
    started = time.perf_counter()
    for epoch in range(config.epochs):
        order = rng.permutation(len(owners))
        losses = []
        for start in range(0, len(order), batch):
            rows = order[start : start + batch]
            ids = owners[rows]
            tok = tokens[rows]
            tok = tok[:, : max(1, int((tok != 0).sum(axis=1).max()))]  # no step over all-padding columns
            losses.append(float(train_step(tok, grids[ids].astype(np.float32), ids)))
        history["loss"].append(float(np.mean(losses)))
        history["temperature"].append(float(1.0 / np.asarray(model.scale())))
        line = f"space epoch {epoch + 1}/{config.epochs}: loss {history['loss'][-1]:.4f}"
        if has_dev:
            recalls = t2i_recalls(space, dev_grids, dev_captions or [])
            for k, v in recalls.items():
                history[f"dev_{k}"].append(v)
            score = sum(recalls.values())
            line += f", dev t2i R@1/5/10 {recalls['r1']:.3f}/{recalls['r5']:.3f}/{recalls['r10']:.3f}"
            if score > best:
                best, best_epoch, best_weights = score, epoch, model.get_weights()
            elif epoch - best_epoch >= config.patience:
                if verbose:
                    print(line, file=sys.stderr)
                break
        else:
            best_epoch = epoch
        if verbose:
            print(line, file=sys.stderr)
    if best_weights is not None:
        model.set_weights(best_weights)
    history.update(
        best_epoch=best_epoch + 1,
        epochs_run=len(history["loss"]),
        seconds=time.perf_counter() - started,
        pairs=int(len(owners)),
        images=int(len(captions)),
    )
    space.history.update(history)
    return space


SPACE_SUBDIRECTORY = "space"  # where a captioner directory keeps its space


def train_captioner_space(
    captioner, grids, captions, dev_grids=None, dev_captions=None, config: SpaceConfig | dict | None = None, verbose=1
) -> CaptionSpace:
    """A space trained on ``captioner``'s feature grids of the training images and their captions,
    early-stopped on the validation grids, with the fusion weights chosen there
    (:func:`~.fusion.choose_fusion`, on the captioner's greedy captions of the validation images).
    What :meth:`Captioner.fit` runs after the caption decoder."""
    from .fusion import choose_fusion

    has_dev = dev_grids is not None and dev_captions is not None and len(dev_captions) > 0
    pooling = SpaceConfig.from_config(config).image_pooling if config is not None else "mean"
    train_input = _space_input(grids, pooling)
    dev_input = _space_input(dev_grids, pooling) if has_dev else None
    space = fit_space(train_input, captions, dev_input, dev_captions if has_dev else None, config, verbose=verbose)
    report: dict = {"chosen_on": None, "reason": "no validation split"}
    if has_dev:
        generated = captioner.caption_features(dev_grids)  # reads shards a batch at a time
        space.fusion, report = choose_fusion(space.embed_texts, space.embed_images(dev_input), generated, dev_captions)
    space.history["fusion"] = {**report, "weights": space.fusion.get_config() if space.fusion else None}
    if verbose:
        chosen = (
            f"fusion weights {space.fusion.get_config()}" if space.fusion else f"default fusion ({report['reason']})"
        )
        print(f"space: {chosen}", file=sys.stderr)
    return space


def _space_input(features, pooling: str):
    """What :func:`fit_space` needs from ``features``: for streamed
    :class:`~gemcaption.captioning.shards.FeatureShards`, mean-pooled rows (N, C) computed a chunk at
    a time (the grids never all in memory), or with attention pooling every grid; arrays unchanged."""
    if not hasattr(features, "pooled"):
        return features
    return features.pooled() if pooling == "mean" else features[:]


def fit_space_for_captioner(captioner, train, validation=None, config: SpaceConfig | dict | None = None, verbose=1):
    """:func:`train_captioner_space` on the images of ``train`` (a Dataset or Samples with captions),
    with ``captioner``'s encoder features from its feature cache (the CNN runs only for images never
    seen), early-stopping on ``validation``."""

    def grids_and_captions(samples):
        samples = [s for s in samples if s.captions]
        grids, kept = captioner.encode([s.image for s in samples])
        return grids, [list(samples[i].captions) for i in kept]

    grids, captions = grids_and_captions(train)
    if not captions:
        raise DatasetError("the training data has no readable captioned images to train the space on")
    dev_grids, dev_captions = (
        grids_and_captions(validation) if validation is not None and len(validation) else (None, None)
    )
    return train_captioner_space(captioner, grids, captions, dev_grids, dev_captions, config, verbose)
