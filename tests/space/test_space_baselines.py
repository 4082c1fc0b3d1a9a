"""CCA and the fusion weights of the space package."""

import numpy as np
import pytest

from gemcaption.errors import ConfigError
from gemcaption.space.cca import RegularizedCCA
from gemcaption.space.fusion import Fusion, choose_weights, unit


def test_cca_aligns_paired_views_far_above_chance():
    rng = np.random.default_rng(0)
    latent = rng.normal(size=(300, 4))
    text = latent @ rng.normal(size=(4, 20)) + 0.1 * rng.normal(size=(300, 20))
    image = latent @ rng.normal(size=(4, 30)) + 0.1 * rng.normal(size=(300, 30))
    cca = RegularizedCCA(dim=4, reg=0.01).fit(text, image)
    scores = cca.transform_text(text) @ cca.transform_image(image).T
    ranks = 1 + (scores > scores.diagonal()[:, None]).sum(axis=1)
    assert np.mean(ranks <= 10) > 0.5  # chance: 10/300
    assert cca.correlations[0] > 0.95
    with pytest.raises(ConfigError):
        RegularizedCCA().fit(text[:1], image[:1])


def test_fusion_combines_and_normalises_parts():
    a, b = np.array([[1.0, 0.0]]), np.array([[0.0, 2.0]])
    assert np.allclose(Fusion(1.0, 0.0, 0.0, 0.0).gallery(a, b), a)
    fused = Fusion(1.0, 1.0, 0.0, 0.0).gallery(a, b)
    assert np.allclose(fused, unit(np.array([[1.0, 1.0]])))
    assert np.allclose(Fusion(query_generated=1.0).image_query(a, b), fused)
    best, score = choose_weights(lambda f: -abs(f.generated - 0.2), [Fusion(generated=g) for g in (0.0, 0.2, 0.5)])
    assert best.generated == 0.2 and score == 0.0
