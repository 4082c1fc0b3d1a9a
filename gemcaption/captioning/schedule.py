"""Learning-rate schedule: linear warm-up to a peak, then constant or cosine decay."""
import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="gemcaption")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 to ``peak_lr`` over ``warmup_steps``, then ``decay``.

    ``decay="constant"`` keeps ``peak_lr``; ``decay="cosine"`` follows a half cosine from
    ``peak_lr`` down to ``min_lr`` at ``total_steps`` and stays there. Use
    :meth:`for_training` to derive the step counts from the real number of optimizer steps.
    """

    def __init__(self, peak_lr=1e-3, warmup_steps=100, total_steps=1000, decay="cosine", min_lr=0.0):
        if decay not in ("constant", "cosine"):
            raise ValueError(f"decay must be 'constant' or 'cosine', not {decay!r}")
        if warmup_steps < 0 or total_steps < 1:
            raise ValueError("warmup_steps must be >= 0 and total_steps >= 1")
        self.peak_lr = float(peak_lr)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)
        self.decay = decay
        self.min_lr = float(min_lr)

    @classmethod
    def for_training(cls, peak_lr, steps_per_epoch, epochs, warmup_fraction=0.1, **kwargs):
        total = max(1, int(steps_per_epoch) * int(epochs))
        return cls(peak_lr, warmup_steps=int(math.ceil(warmup_fraction * total)), total_steps=total, **kwargs)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warmup = ops.cast(max(self.warmup_steps, 1), "float32")
        warm = self.peak_lr * ops.minimum(step + 1.0, warmup) / warmup
        if self.decay == "constant":
            after = ops.convert_to_tensor(self.peak_lr, "float32")
        else:
            span = float(max(self.total_steps - self.warmup_steps, 1))
            progress = ops.clip((step - self.warmup_steps) / span, 0.0, 1.0)
            after = self.min_lr + 0.5 * (self.peak_lr - self.min_lr) * (1.0 + ops.cos(math.pi * progress))
        return ops.where(step < self.warmup_steps, warm, after)

    def get_config(self):
        return {"peak_lr": self.peak_lr, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps,
                "decay": self.decay, "min_lr": self.min_lr}
