"""Feature-level evaluation: two-way identification, token correlation."""
from __future__ import annotations

import numpy as np
import pytest

from brainit_core.models.evaluate import token_correlation, two_way_identification


def test_two_way_identification_perfect_and_chance():
    rng = np.random.default_rng(0)
    true = rng.standard_normal((20, 30))
    assert two_way_identification(true, true) == 1.0
    assert two_way_identification(-true, true) < 0.2
    assert 0.3 < two_way_identification(rng.standard_normal((20, 30)), true) < 0.7


def test_token_correlation():
    rng = np.random.default_rng(0)
    t = rng.standard_normal((4, 6, 8))
    assert token_correlation(2 * t + 1, t) == pytest.approx(1.0)
    assert token_correlation(-t, t) == pytest.approx(-1.0)


def test_two_way_identification_scores_predictions_among_the_true_features():
    from brainit_core.metrics import two_way_identification as metric

    rng = np.random.default_rng(1)
    true = rng.standard_normal((12, 40))
    pred = true + rng.standard_normal((12, 40)) * rng.uniform(0.5, 3, (12, 1))  # noise differs per image
    assert two_way_identification(pred, true) == pytest.approx(metric(true, pred))  # real = true, recon = pred
    assert np.isnan(two_way_identification(pred[:1], true[:1]))
