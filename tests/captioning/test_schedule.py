import math

import keras
import numpy as np
import pytest

import gemcaption  # noqa: F401  (sets the Keras backend)
from gemcaption.captioning.schedule import WarmupSchedule
from gemcaption.errors import ConfigError


def lr(schedule, step):
    return float(schedule(step))


def seed_schedule(post_warmup_learning_rate, warmup_steps, step):
    """The seed's schedule (the public Keras captioning example), written out in numpy float32:
    a linear warm-up from 0, then the post-warm-up rate for good."""
    step, warmup = np.float32(step), np.float32(warmup_steps)
    return post_warmup_learning_rate * (step / warmup) if step < warmup else np.float32(post_warmup_learning_rate)


@pytest.mark.parametrize("peak, warmup, total", [(1e-4, 15, 225), (1e-3, 7, 70), (2e-3, 1, 10), (3e-4, 40, 41)])
def test_constant_decay_is_exactly_the_seeds_schedule_step_by_step(peak, warmup, total):
    s = WarmupSchedule(peak_lr=peak, warmup_steps=warmup, total_steps=total, decay="constant")
    for step in range(total + 20):
        assert lr(s, step) == float(np.float32(seed_schedule(np.float32(peak), warmup, step))), step


def test_it_is_keras_cosine_decay_with_warmup():
    s = WarmupSchedule(peak_lr=2e-3, warmup_steps=10, total_steps=110, decay="cosine", min_lr=2e-4)
    assert isinstance(s, keras.optimizers.schedules.CosineDecay)
    keras_own = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=100, alpha=0.1, warmup_target=2e-3, warmup_steps=10
    )
    for step in range(0, 130, 3):
        assert lr(s, step) == pytest.approx(lr(keras_own, step), rel=1e-6)


def test_linear_warmup_from_zero_then_cosine_decay_values():
    s = WarmupSchedule(peak_lr=1.0, warmup_steps=10, total_steps=110, decay="cosine", min_lr=0.0)
    assert lr(s, 0) == 0.0  # one step behind gemcaption's earlier schedule, which began at peak / warmup
    assert lr(s, 1) == pytest.approx(0.1)
    assert lr(s, 5) == pytest.approx(0.5)
    assert lr(s, 9) == pytest.approx(0.9)
    assert lr(s, 10) == pytest.approx(1.0)
    assert lr(s, 60) == pytest.approx(0.5, abs=1e-6)  # half-way through the cosine
    assert lr(s, 110) == pytest.approx(0.0, abs=1e-7)
    assert lr(s, 500) == pytest.approx(0.0, abs=1e-7)


def test_constant_decay_and_min_lr():
    s = WarmupSchedule(peak_lr=2e-3, warmup_steps=4, total_steps=100, decay="constant")
    assert lr(s, 2) == pytest.approx(1e-3)
    assert lr(s, 50) == pytest.approx(2e-3)
    c = WarmupSchedule(peak_lr=1.0, warmup_steps=0, total_steps=10, decay="cosine", min_lr=0.2)
    assert lr(c, 0) == pytest.approx(1.0)
    assert lr(c, 5) == pytest.approx(0.6)
    assert lr(c, 10) == pytest.approx(0.2)


def test_for_training_uses_the_real_number_of_steps():
    s = WarmupSchedule.for_training(1e-3, steps_per_epoch=7, epochs=10, warmup_fraction=0.25)
    assert s.total_steps == 70
    assert s.warmup_steps == math.ceil(0.25 * 70)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError):
        WarmupSchedule(decay="linear")
    with pytest.raises(ValueError):
        WarmupSchedule(total_steps=0)
    with pytest.raises(ConfigError, match="min_lr"):
        WarmupSchedule(peak_lr=1e-3, min_lr=1e-2)


def test_schedule_survives_serialization_and_optimizer_round_trip(tmp_path):
    s = WarmupSchedule(peak_lr=3e-3, warmup_steps=5, total_steps=50, decay="cosine", min_lr=1e-5)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(s))
    assert isinstance(restored, WarmupSchedule)
    assert restored.get_config() == s.get_config()
    for step in (0, 3, 5, 27, 50):
        assert lr(restored, step) == pytest.approx(lr(s, step))

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(s), loss="mse")
    model.fit(np.ones((4, 3)), np.ones((4, 1)), epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    schedule = (
        loaded.optimizer.learning_rate
        if not callable(getattr(loaded.optimizer, "_learning_rate", None))
        else loaded.optimizer._learning_rate
    )
    assert isinstance(schedule, WarmupSchedule)
    assert schedule.get_config() == s.get_config()
