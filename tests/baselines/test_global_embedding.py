"""GlobalEmbeddingDecoder: training lowers the loss, outputs have the documented shapes, checkpoints round-trip."""
from __future__ import annotations

import json

import numpy as np
import pytest

from brainit_core.baselines import GlobalEmbeddingConfig, GlobalEmbeddingDecoder


@pytest.fixture
def synthetic(rng):
    n, v, t, d = 96, 40, 9, 12
    x = rng.standard_normal((n, v)).astype(np.float32)
    g = x @ rng.standard_normal((v, d)).astype(np.float32) / np.sqrt(v)
    tokens = g[:, None, :] + 0.1 * rng.standard_normal((n, t, d)).astype(np.float32)
    gray = 1 / (1 + np.exp(-(x @ rng.standard_normal((v, 8 * 8)) / np.sqrt(v))))
    images = (np.repeat(gray.reshape(n, 8, 8, 1), 3, -1) * 255).astype(np.uint8)
    return x, tokens, images


def test_loss_goes_down_and_outputs(synthetic):
    x, tokens, images = synthetic
    config = GlobalEmbeddingConfig.preset("ci")
    config.epochs, config.lowres = 30, 8
    dec = GlobalEmbeddingDecoder(config, device="cpu").fit(x, tokens, images)
    losses = [h["loss"] for h in dec.history_]
    assert losses[-1] < 0.5 * losses[0]
    assert dec.history_[-1]["image"] < dec.history_[0]["image"]
    out = dec.predict(x[:5], image_size=32)
    assert out["global"].shape == (5, 12) and out["semantic"].shape == (5, 9, 12)
    np.testing.assert_array_equal(out["semantic"][:, 3], out["global"])  # broadcast to every token
    assert out["lowres"].shape == (5, 3, 8, 8) and out["image"].shape == (5, 3, 32, 32)
    assert 0 <= out["image"].min() and out["image"].max() <= 1
    r = np.corrcoef(out["global"].ravel(), tokens[:5].mean(1).ravel())[0, 1]
    assert r > 0.8  # fits its training data


def test_checkpoint_round_trip(tmp_path, synthetic):
    x, tokens, images = synthetic
    config = GlobalEmbeddingConfig.preset("ci")
    config.epochs = 2
    dec = GlobalEmbeddingDecoder(config, device="cpu").fit(x, tokens, images)
    dec.save(tmp_path / "mlp")
    assert json.loads((tmp_path / "mlp.json").read_text())["config"]["hidden"] == 128
    again = GlobalEmbeddingDecoder.load(tmp_path / "mlp", device="cpu")
    a, b = dec.predict(x[:4], image_size=16), again.predict(x[:4], image_size=16)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert again.history_ == dec.history_
    with pytest.raises(ValueError, match="one per subject"):
        again.predict(x[:4, :10])
