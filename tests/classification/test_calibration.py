"""Temperature scaling and the expected calibration error on a drawn toy problem."""

import numpy as np
import pytest

from gemcaption.classification.calibration import TemperatureScaling, apply_temperature, fit_temperature
from gemcaption.errors import ConfigError, EvaluationError
from gemcaption.evaluation.classification import expected_calibration_error, reliability_bins


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def overconfident(n, sharpen, seed):
    """Labels drawn from softmax(z); the 'model' reports the sharper softmax(sharpen * z)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, (n, 6))
    truth = softmax(z)
    labels = np.array([rng.choice(6, p=row) for row in truth])
    return softmax(sharpen * z), labels


def test_temperature_scaling_lowers_ece_on_held_out_draws():
    val_p, val_y = overconfident(3000, 3.0, seed=0)
    test_p, test_y = overconfident(3000, 3.0, seed=1)
    scaling = TemperatureScaling().fit(val_p, val_y)
    assert 2.5 < scaling.temperature < 3.5  # the sharpening it has to undo
    before = expected_calibration_error(test_p, test_y)
    after = expected_calibration_error(scaling.transform(test_p), test_y)
    assert before > 0.1
    assert after < 0.04 and after < before / 3
    assert np.array_equal(scaling.transform(test_p).argmax(1), test_p.argmax(1))  # ranking unchanged


def test_underconfident_model_gets_a_temperature_below_one():
    p, y = overconfident(2000, 0.4, seed=2)
    assert fit_temperature(p, y) < 0.6


def test_ece_is_zero_when_confidence_matches_accuracy_and_bins_cover_all():
    p = np.array([[0.8, 0.2]] * 10)
    y = np.array([0] * 8 + [1] * 2)
    assert expected_calibration_error(p, y) == pytest.approx(0.0)
    [only] = reliability_bins(p, y)
    assert only["count"] == 10 and only["accuracy"] == pytest.approx(0.8)
    assert expected_calibration_error(np.array([[1.0, 0.0]] * 4), np.array([1, 1, 1, 1])) == pytest.approx(1.0)


def test_config_round_trip_and_bad_input():
    scaling = TemperatureScaling(2.0)
    assert TemperatureScaling.from_config(scaling.get_config()).temperature == 2.0
    assert TemperatureScaling.from_config(None).temperature == 1.0
    p = np.array([[0.7, 0.3]])
    assert np.allclose(apply_temperature(p, 1.0), p)
    with pytest.raises(ConfigError):
        TemperatureScaling(0.0)
    with pytest.raises(EvaluationError):
        fit_temperature(p, [0, 1])
    with pytest.raises(EvaluationError):
        expected_calibration_error(p, [])
