import numpy as np
import pytest

from brainit_core.reconstruction.branches import branch_study, format_study, simulate_tokens


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (4, 64, 64, 3), dtype=np.uint8)


def test_branch_study_rows_and_kept_share(generators, images):
    """Strength 1 is generation from pure noise with the same seeds, so fusion there keeps none of the
    low-level branch's advantage; strength 0 is the low-level image through the autoencoder."""
    grid = {}
    res = branch_study(generators, images, sources=("true",), strengths=(0.0, 1.0), networks="offline",
                       steps=4, images_out=grid)
    rows = res["true"]
    assert list(rows) == ["low-level", "semantic only", "fused s=0.000", "fused s=1.000"]
    assert np.array_equal(grid[("true", "fused s=1.000")], grid[("true", "semantic only")])
    assert not np.array_equal(grid[("true", "fused s=0.000")], grid[("true", "semantic only")])
    assert res["kept"]["true"]["1.000"] == pytest.approx(0.0, abs=1e-6)
    assert grid["truth"].shape[0] == 4 and "PixCorr" in rows["low-level"]
    table = format_study(res)
    assert "| fused s=1.000 |" in table and "kept" in table


def test_simulated_tokens_are_shrunk_and_noisy(generators):
    import torch

    tok = torch.randn(3, generators.unet.config.n_tokens, generators.unet.config.token_dim) * 2 + 1
    a = simulate_tokens(tok, generators.unet, seed=0)
    b = simulate_tokens(tok, generators.unet, seed=0)
    assert torch.equal(a, b) and not torch.allclose(a, tok)
    z = generators.unet.conditioner.standardize
    assert z(a).std() < 1.2 * z(tok).std()
