"""RidgeFeatureDecoder on synthetic linear data: recovery, sklearn agreement, exact leave-one-out, save/load."""
from __future__ import annotations

import numpy as np
import pytest

from brainit_core.baselines import RidgeFeatureDecoder


def _linear_data(rng, n=240, v=60, noise=0.3):
    x = rng.standard_normal((n, v)).astype(np.float32)
    w_sem = rng.standard_normal((v, 4 * 6)) / np.sqrt(v)
    w_low = rng.standard_normal((v, 3 * 2 * 2)) / np.sqrt(v)
    y = {"semantic": (x @ w_sem + 0.5).reshape(n, 4, 6), "block2": (x @ w_low - 1.0).reshape(n, 3, 2, 2)}
    y = {k: (t + noise * rng.standard_normal(t.shape)).astype(np.float32) for k, t in y.items()}
    return x, y


def test_recovers_a_linear_map_better_than_the_mean(rng):
    x, y = _linear_data(rng)
    train, test = slice(0, 180), slice(180, None)
    dec = RidgeFeatureDecoder().fit(x[train], {k: t[train] for k, t in y.items()})
    pred = dec.predict(x[test])
    for name, target in y.items():
        assert pred[name].shape == target[test].shape
        p, t = pred[name].reshape(60, -1), target[test].reshape(60, -1)
        r = [np.corrcoef(p[:, j], t[:, j])[0, 1] for j in range(t.shape[1])]
        assert np.mean(r) > 0.9
        mse, mse_mean = ((p - t) ** 2).mean(), ((t - target[train].reshape(180, -1).mean(0)) ** 2).mean()
        assert mse < 0.3 * mse_mean
        assert dec.alpha_[name] < 1e4 and len(dec.cv_scores_[name]) == 15


@pytest.mark.parametrize("v", [8, 40])  # fewer and more vertices than samples: both decomposition paths
def test_matches_sklearn_ridge(rng, v):
    from sklearn.linear_model import Ridge

    x = rng.standard_normal((25, v))
    y = x @ rng.standard_normal((v, 5)) + rng.standard_normal((25, 5))
    dec = RidgeFeatureDecoder(alphas=3.0, standardize=False).fit(x, {"t": y})
    ref = Ridge(alpha=3.0).fit(x, y)
    xt = rng.standard_normal((7, v))
    np.testing.assert_allclose(dec.predict(xt)["t"], ref.predict(xt), rtol=1e-4, atol=1e-4)


def test_leave_one_out_scores_are_exact(rng):
    from sklearn.linear_model import Ridge

    x = rng.standard_normal((20, 6))
    y = x @ rng.standard_normal((6, 3)) + rng.standard_normal((20, 3))
    alphas = (0.1, 10.0, 1000.0)
    dec = RidgeFeatureDecoder(alphas=alphas, standardize=False).fit(x, {"t": y})
    var = ((y - y.mean(0)) ** 2).mean()
    for a, score in zip(alphas, dec.cv_scores_["t"]):
        errs = [Ridge(alpha=a).fit(np.delete(x, i, 0), np.delete(y, i, 0)).predict(x[i:i + 1]) - y[i]
                for i in range(20)]
        assert score == pytest.approx(np.mean(np.square(errs)) / var, rel=1e-6)
    assert dec.alpha_["t"] == alphas[int(np.argmin(dec.cv_scores_["t"]))]


def test_save_load_round_trip_and_errors(tmp_path, rng):
    x, y = _linear_data(rng, n=50, v=30)
    dec = RidgeFeatureDecoder(alphas=(1.0, 100.0)).fit(x, y)
    dec.save(tmp_path / "ridge")
    again = RidgeFeatureDecoder.load(tmp_path / "ridge")
    for name, p in dec.predict(x[:5]).items():
        # BLAS thread counts reorder sums: equal to float32 rounding, not bit for bit
        np.testing.assert_allclose(again.predict(x[:5])[name], p, rtol=1e-5, atol=1e-6)
    assert again.alpha_ == dec.alpha_
    matched = dec.predict(x, match_train_stats=True)["block2"].reshape(50, -1)
    np.testing.assert_allclose(matched.std(0), y["block2"].reshape(50, -1).std(0), rtol=1e-4)
    with pytest.raises(ValueError, match="30 \\(one decoder per subject\\)"):
        dec.predict(x[:, :20])
    with pytest.raises(ValueError, match="rows but the betas have"):
        RidgeFeatureDecoder().fit(x, {"t": y["semantic"][:10]})
