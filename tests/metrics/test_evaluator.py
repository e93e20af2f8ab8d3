"""The one evaluator: the benchmark's and evaluate_reconstructions' scores, assembled from the parts."""
from __future__ import annotations

import numpy as np
import pytest

from brainit_core.metrics import COLUMNS, Evaluator, evaluate_reconstructions, pixcorr, ssim, two_way_identification
from brainit_core.metrics.networks import build_extractor, image_features


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 256, (5, 48, 48, 3), dtype=np.uint8)
    near = np.clip(gt.astype(int) + rng.integers(-60, 60, gt.shape), 0, 255).astype(np.uint8)
    return gt, [near, rng.integers(0, 256, gt.shape, dtype=np.uint8)]


def test_scores_are_the_parts_assembled_and_truth_features_are_computed_once(images):
    from brainit_core.metrics import correlation_distance

    gt, recons = images
    ext = build_extractor("lite2")
    real = image_features(ext, gt, 2)
    ev = Evaluator("lite2", device="cpu", batch_size=2)
    for recon in recons:
        fake = image_features(ext, recon, 2)
        expected = {"PixCorr": pixcorr(gt, recon), "SSIM": ssim(gt, recon),
                    "Lite2-early (2-way)": two_way_identification(real["early"], fake["early"]),
                    "Lite2-late (2-way)": two_way_identification(real["late"], fake["late"]),
                    "Lite2 dist": correlation_distance(real["late"], fake["late"])}
        got = ev.score(gt, recon, truth_key="s")
        assert list(got) == [c.name for c in COLUMNS if c.network in (None, "lite2")]
        assert got == pytest.approx(expected, rel=1e-6)
        assert evaluate_reconstructions(gt, recon, networks="lite2", device="cpu", batch_size=2) == got
    assert ev.truth_keys() == [("s", "lite2")]  # the ground truth's features were computed once
    assert ev.extractor("lite2") is ev.extractor("lite2")  # and the network built once


def test_per_image_scores_and_errors(images):
    gt, recons = images
    per = evaluate_reconstructions(gt, recons[0], networks="lite2", device="cpu", batch_size=2, reduce=False)
    table = evaluate_reconstructions(gt, recons[0], networks="lite2", device="cpu", batch_size=2)
    assert all(np.shape(v) == (5,) and np.mean(v) == pytest.approx(table[k]) for k, v in per.items())
    bad = np.ascontiguousarray((recons[0].astype(np.float32) / 255).transpose(0, 3, 1, 2))
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="reconstructions: contains NaN"):
        Evaluator("lite2", device="cpu").score(gt, bad, truth_key="s")
    with pytest.raises(ValueError, match="at least 2 images"):
        Evaluator("lite2", device="cpu").score(gt[:1], recons[0][:1])
    assert list(Evaluator([], device="cpu").score(gt[:1], recons[0][:1])) == ["PixCorr", "SSIM"]
    with pytest.raises(ValueError, match="unknown evaluation networks"):
        Evaluator("nope")


def test_missing_weights_make_columns_unavailable(images, tmp_path, monkeypatch):
    gt, recons = images
    monkeypatch.delenv("BRAINIT_WEIGHTS", raising=False)
    monkeypatch.setattr("torch.hub.get_dir", lambda: str(tmp_path))
    ev = Evaluator("alexnet", weights=tmp_path, device="cpu")
    got = ev.score(gt, recons[0], truth_key="s")
    assert got["Alex(2)"] == got["Alex(5)"] == "unavailable" and ev.truth_keys() == []
