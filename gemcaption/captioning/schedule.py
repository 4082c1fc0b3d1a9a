"""Learning-rate schedule: linear warm-up to a peak, then constant or cosine decay, on Keras' own
:class:`keras.optimizers.schedules.CosineDecay`.

Keras' ``CosineDecay(initial_learning_rate=0, warmup_target=peak, warmup_steps=W,
decay_steps=total - W, alpha=min/peak)`` warms up linearly from 0 and then follows a half cosine
to ``min``; with ``alpha=1`` it stays at the peak, which is exactly the seed's schedule (the public
Keras captioning example: ``peak * step / W`` while ``step < W``, then ``peak``; compared step by
step in tests/captioning/test_schedule.py). :class:`WarmupSchedule` only names those arguments
the way the captioner thinks of them, and keeps its registered Keras name
(``gemcaption>WarmupSchedule``) and config keys, so optimizers saved by earlier versions load.

One step differs from the schedule gemcaption had before: that one started warming up at
``peak / W`` (step 0 used ``step + 1``), Keras and the seed start at 0, so every warm-up step
is now one step behind (the first optimizer step has learning rate 0); after the warm-up the
values are the same.
"""

from __future__ import annotations

import math

import keras

from ..errors import ConfigError

DECAYS = ("constant", "cosine")


@keras.saving.register_keras_serializable(package="gemcaption")
class WarmupSchedule(keras.optimizers.schedules.CosineDecay):
    """Linear warm-up from 0 to ``peak_lr`` over ``warmup_steps``, then ``decay``.

    ``decay="constant"`` keeps ``peak_lr``; ``decay="cosine"`` follows a half cosine from
    ``peak_lr`` down to ``min_lr`` at ``total_steps`` and stays there. Use
    :meth:`for_training` to derive the step counts from the real number of optimizer steps.
    """

    def __init__(self, peak_lr=1e-3, warmup_steps=100, total_steps=1000, decay="cosine", min_lr=0.0):
        if decay not in DECAYS:
            raise ConfigError(f"decay must be 'constant' or 'cosine', not {decay!r}")
        if warmup_steps < 0 or total_steps < 1:
            raise ConfigError("warmup_steps must be >= 0 and total_steps >= 1")
        if peak_lr <= 0 or not 0 <= min_lr <= peak_lr:
            raise ConfigError(f"need 0 < peak_lr and 0 <= min_lr <= peak_lr, got {peak_lr!r} and {min_lr!r}")
        self.peak_lr = float(peak_lr)
        self.total_steps = int(total_steps)
        self.decay = decay
        self.min_lr = float(min_lr)
        alpha = 1.0 if decay == "constant" else self.min_lr / self.peak_lr
        super().__init__(
            initial_learning_rate=0.0,
            decay_steps=max(self.total_steps - int(warmup_steps), 1),
            alpha=alpha,
            warmup_target=self.peak_lr,
            warmup_steps=int(warmup_steps),
            name="WarmupSchedule",
        )

    @classmethod
    def for_training(cls, peak_lr, steps_per_epoch, epochs, warmup_fraction=0.1, **kwargs) -> WarmupSchedule:
        """The schedule of ``epochs`` epochs of ``steps_per_epoch`` optimizer steps, warming up
        over the first ``warmup_fraction`` of them (rounded up)."""
        total = max(1, int(steps_per_epoch) * int(epochs))
        return cls(peak_lr, warmup_steps=int(math.ceil(warmup_fraction * total)), total_steps=total, **kwargs)

    def get_config(self) -> dict:
        return {
            "peak_lr": self.peak_lr,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
            "decay": self.decay,
            "min_lr": self.min_lr,
        }
