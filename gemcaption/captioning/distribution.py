"""Training a caption decoder on several devices or machines with ``tf.distribute``.

This module owns three things :meth:`Captioner.fit(distribute=True) <.captioner.Captioner.fit>`
needs:

* :func:`training_cluster`: the strategy. With a ``TF_CONFIG`` naming more than one task it is
  ``tf.distribute.MultiWorkerMirroredStrategy`` (every worker runs the same command; ``TF_CONFIG``
  tells each one the cluster and its own index; worker 0, or the ``chief`` task, is the chief);
  otherwise ``tf.distribute.MirroredStrategy`` over this machine's GPUs (or its CPU).
* :func:`distributed_batches`: the streamed training batches of :mod:`.streaming`. On several
  workers each worker reads only its contiguous share of every global batch from the feature shards
  (``distribute_datasets_from_function``); on one machine Keras splits each global batch over the
  local devices. Either way step ``t`` sees exactly the rows of single-process step ``t``, and the
  decoder's loss weights every replica by its share of the step's tokens, so the weights follow the
  single-process run with the same global batch.
* :class:`TrainingBackup`: after every epoch the chief writes the decoder's weights, the optimizer's
  state (step count included, so the learning-rate schedule continues), the history and the early
  stopping state into ``backup_dir`` (atomically, ``.npz`` and JSON, no pickle). When a worker died
  and the workers are started again with the same command, every worker restores that backup at the
  start of ``fit`` and the run goes on from the next epoch. ``backup_dir`` must be one folder that
  every worker can read (a shared file system on a real cluster); it is removed when ``fit`` ends.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, ModelError
from ..persistence import atomic_directory, read_json, write_json

BACKUP_STATE = "state.json"


@dataclass(frozen=True)
class Cluster:
    """The strategy and which of ``workers`` input pipelines (machines) this process is."""

    strategy: Any
    worker: int = 0
    workers: int = 1

    @property
    def is_chief(self) -> bool:
        return self.worker == 0


def cluster_from_tf_config(text: str | None = None) -> tuple[int, int]:
    """``(worker index, workers)`` from ``TF_CONFIG`` (``text``, default the environment variable):
    the chief task, when there is one, is worker 0 and the workers follow it. ``(0, 1)`` without one."""
    text = os.environ.get("TF_CONFIG", "") if text is None else text
    if not text.strip():
        return 0, 1
    try:
        config = json.loads(text)
        cluster, task = config["cluster"], config["task"]
        chiefs, workers = list(cluster.get("chief", [])), list(cluster.get("worker", []))
        kind, index = str(task["type"]), int(task["index"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"TF_CONFIG is not a valid cluster description ({exc})") from None
    if kind not in ("chief", "worker") or index < 0 or index >= len(chiefs if kind == "chief" else workers):
        raise ConfigError(f"TF_CONFIG: task {kind}:{index} is not in the cluster")
    return (index if kind == "chief" else len(chiefs) + index), len(chiefs) + len(workers)


_CLUSTER: list[Cluster] = []


def training_cluster() -> Cluster:
    """The strategy for this process, as described in the module docstring, made once per process.

    TensorFlow configures multi-worker collectives only before it runs its first operation: call
    this first thing in a worker program (``gemcaption train --distribute`` does), before building
    a :class:`~.captioner.Captioner`; ``Captioner.fit(distribute=True)`` then uses the same one."""
    if not _CLUSTER:
        import tensorflow as tf

        worker, workers = cluster_from_tf_config()
        if workers > 1:
            _CLUSTER.append(Cluster(tf.distribute.MultiWorkerMirroredStrategy(), worker, workers))
        else:
            _CLUSTER.append(Cluster(tf.distribute.MirroredStrategy()))
    return _CLUSTER[0]


def distributed_batches(cluster: Cluster, shards, tokens, batch_size: int, *, seed: int, shuffle: bool, clock):
    """The training (or, ``shuffle=False``, validation) input of ``cluster`` (see module docstring)."""
    from .streaming import training_batches

    if cluster.workers == 1:
        return training_batches(shards, tokens, batch_size, seed=seed, shuffle=shuffle, clock=clock)
    local = cluster.strategy.num_replicas_in_sync // cluster.workers
    if local != 1:
        raise ConfigError("multi-worker training supports one device per worker")

    def per_worker(context):
        return training_batches(
            shards,
            tokens,
            batch_size,
            seed=seed,
            shuffle=shuffle,
            worker=context.input_pipeline_id,
            workers=context.num_input_pipelines,
            clock=clock,
        )

    return cluster.strategy.distribute_datasets_from_function(per_worker)


def _save_arrays(path: Path, arrays) -> None:
    named = {f"a{i:05d}": np.asarray(a) for i, a in enumerate(arrays)}
    np.savez(path, **named)  # type: ignore[arg-type]  # numpy's stub confuses names with allow_pickle


def _load_arrays(path: Path) -> list[np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return [data[name] for name in sorted(data.files)]


def _training_callback_base():
    import keras

    return keras.callbacks.Callback


class TrainingBackup(_training_callback_base()):  # type: ignore[misc]  # a Keras class made at import
    """Backs the training state up after every epoch and restores it when ``fit`` starts (see the
    module docstring). ``early_stopping``: the run's ``keras.callbacks.EarlyStopping``, whose state
    (epochs without improvement, best value and weights) is kept too; list this callback after it."""

    def __init__(self, backup_dir, early_stopping=None, *, writer: bool = True):
        super().__init__()
        self.directory = Path(backup_dir)
        self.early_stopping = early_stopping
        self.writer = writer
        self.restored_history: dict[str, list[float]] = {}
        self.restored_epoch = 0
        self._history: dict[str, list[float]] = {}

    def on_train_begin(self, logs=None):
        state_file = self.directory / BACKUP_STATE
        if not state_file.is_file():
            return
        try:
            state = read_json(state_file)
            weights = _load_arrays(self.directory / "weights.npz")
            optimizer = _load_arrays(self.directory / "optimizer.npz")
            self.model.set_weights(weights)
            variables = self.model.optimizer.variables
            if len(variables) != len(optimizer):
                raise ValueError(f"{len(optimizer)} optimizer arrays for {len(variables)} variables")
            for variable, value in zip(variables, optimizer):
                variable.assign(value)
            stopping = state.get("early_stopping")
            if self.early_stopping is not None and stopping:
                self.early_stopping.wait = int(stopping["wait"])
                self.early_stopping.best = float(stopping["best"])
                self.early_stopping.best_epoch = int(stopping["best_epoch"])
                best = self.directory / "best.npz"
                self.early_stopping.best_weights = _load_arrays(best) if best.is_file() else None
            self.restored_epoch = int(state["epoch"])
            self.restored_history = {k: [float(x) for x in v] for k, v in state["history"].items()}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"damaged training backup {self.directory}: {exc}") from None
        self._history = {k: list(v) for k, v in self.restored_history.items()}
        self.model._initial_epoch = self.restored_epoch  # Keras' fit starts from here

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self._history.setdefault(key, []).append(float(value))
        if not self.writer:
            return
        state: dict[str, Any] = {"epoch": epoch + 1, "history": self._history}
        stopping = self.early_stopping
        with atomic_directory(self.directory, what="training backup") as staged:
            _save_arrays(staged / "weights.npz", self.model.get_weights())
            _save_arrays(staged / "optimizer.npz", [np.asarray(v) for v in self.model.optimizer.variables])
            if stopping is not None:
                best = float(stopping.best) if np.isfinite(stopping.best) else None
                state["early_stopping"] = {"wait": stopping.wait, "best": best, "best_epoch": stopping.best_epoch}
                if stopping.best_weights is not None:
                    _save_arrays(staged / "best.npz", stopping.best_weights)
                if best is None:
                    state["early_stopping"] = None
            write_json(staged / BACKUP_STATE, state)

    def remove(self) -> None:
        """Delete the backup (after a run that finished)."""
        if self.writer:
            shutil.rmtree(self.directory, ignore_errors=True)


__all__ = ["Cluster", "TrainingBackup", "cluster_from_tf_config", "distributed_batches", "training_cluster"]
