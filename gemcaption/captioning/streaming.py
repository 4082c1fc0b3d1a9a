"""The training input pipeline: batches of (features, caption tokens) streamed from
:class:`~.shards.FeatureShards` through ``tf.data``, so only the current batches are in memory.

Every epoch visits the rows in a new seeded permutation (epoch ``e`` uses the seed ``(seed, e)``,
so a run is reproducible); global batch ``t`` is ``permutation[t*B:(t+1)*B]``. With ``workers=n``
worker ``w`` yields only its contiguous ``1/n`` slice of every global batch, so the union of the
workers' batches at step ``t`` is exactly the single-process batch ``t`` (what multi-worker training
needs for its result to match one process with the same global batch).
"""

from __future__ import annotations

import math

import numpy as np


def batch_rows(
    rows: int, batch_size: int, *, seed: int, epoch: int, shuffle: bool = True, worker: int = 0, workers: int = 1
):
    """The row indices of each batch of one epoch (a list of int64 arrays), as described above."""
    if not 0 <= worker < workers:
        raise ValueError(f"worker must be in 0..{workers - 1}, got {worker}")
    order = np.random.default_rng([seed, epoch]).permutation(rows) if shuffle else np.arange(rows)
    batches = []
    for start in range(0, rows, batch_size):
        batches.append(np.array_split(order[start : start + batch_size], workers)[worker])
    return batches


class EpochClock:
    """Which epoch a pipeline draws next: each pass over the data takes the current epoch and moves
    the clock on; :meth:`callback` keeps it on Keras' epoch, so a run resumed at epoch ``e`` from a
    backup sees the permutation of epoch ``e`` again."""

    def __init__(self, epoch: int = 0):
        self.epoch = int(epoch)

    def take(self) -> int:
        epoch, self.epoch = self.epoch, self.epoch + 1
        return epoch

    def callback(self):
        import keras

        clock = self

        class FollowEpochs(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                clock.epoch = int(epoch)

        return FollowEpochs()


def training_batches(
    shards,
    tokens: np.ndarray,
    batch_size: int,
    *,
    seed: int,
    shuffle: bool = True,
    worker: int = 0,
    workers: int = 1,
    clock: EpochClock | None = None,
):
    """A ``tf.data.Dataset`` of ``((features float32 (b, G, C), tokens[:, :, :-1]), tokens[:, :, 1:])``
    batches over ``shards`` (rows aligned with ``tokens`` (N, K, T)); re-iterating it (each Keras
    epoch) draws the next epoch's permutation (the epoch of ``clock`` when given)."""
    import tensorflow as tf

    tokens = np.asarray(tokens, np.int32)
    if len(tokens) != len(shards):
        raise ValueError(f"{len(shards)} feature rows for {len(tokens)} token rows")
    clock = clock if clock is not None else EpochClock()

    steps = math.ceil(len(shards) / batch_size)
    epoch_batches: list[np.ndarray] = []

    def read(step):
        # a map over the step numbers, not Dataset.from_generator: with a generator feeding it the
        # training step itself ran much slower on 2 cores, whatever the generator yielded (the epoch
        # times before and after the change are in benchmarks/results/train_memory.json)
        if int(step) == 0 or not epoch_batches:  # a new pass over the data: the next epoch's order
            epoch_batches[:] = batch_rows(
                len(shards), batch_size, seed=seed, epoch=clock.take(), shuffle=shuffle, worker=worker, workers=workers
            )
        rows = epoch_batches[int(step)]
        chosen = tokens[rows]
        return shards.rows(rows), chosen[:, :, :-1], chosen[:, :, 1:]

    k, t = tokens.shape[1], tokens.shape[2]
    grid, channels = shards.grid_shape

    def batch(step):
        features, inputs, targets = tf.numpy_function(read, [step], [tf.float32, tf.int32, tf.int32])
        features.set_shape((None, grid, channels))
        inputs.set_shape((None, k, t - 1))
        targets.set_shape((None, k, t - 1))
        return (features, inputs), targets

    # sequential map: step 0 of every pass is read first, so it is the one that draws the epoch
    dataset = tf.data.Dataset.range(steps).map(batch)
    return dataset.apply(tf.data.experimental.assert_cardinality(steps)).prefetch(2)


__all__ = ["EpochClock", "batch_rows", "training_batches"]
