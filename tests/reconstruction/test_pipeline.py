import numpy as np
import pytest
import torch

from brainit_core.errors import CheckpointError, DataFormatError
from brainit_core.reconstruction.generators import Generators
from brainit_core.reconstruction.pipeline import BrainITPipeline, ReconstructionOutput
from tests.factories import N_VERTICES, FakeRun


def _betas(n=2, seed=0):
    return np.random.default_rng(seed).standard_normal((n, N_VERTICES)).astype(np.float32)


def test_both_branches_fast_mode(generators, fake_run):
    pipe = BrainITPipeline(fake_run, generators)
    out = pipe(_betas(), "sub01", seed=0)
    assert isinstance(out, ReconstructionOutput)
    assert out.fused.shape == (2, 64, 64, 3) and out.fused.dtype == np.uint8
    assert out.low_level.shape == (2, 64, 64, 3) and out.semantic is None
    assert out.images is out.fused
    assert {"features", "low_level", "fusion", "total", "per_image"} <= set(out.timing)
    assert out.meta["mode"] == "fast" and out.meta["seeds"] == [0, 1] and out.meta["run_sha256"] == "0" * 64
    pred = fake_run.predict(_betas(), "sub01", return_attention=True)
    assert set(out.attention["tokenizer"]) == set(out.attention["cross"]) == {"semantic", "lowlevel"}
    for head in ("semantic", "lowlevel"):  # each head's own tokenizer weights next to its own cross-attention
        assert out.attention["tokenizer"][head].shape == (2, N_VERTICES)
        np.testing.assert_allclose(out.attention["tokenizer"][head], pred.tokenizer_attention[head].numpy())
        assert out.attention["cross"][head].shape == tuple(pred.cross_attention[head].shape)
    assert out.attention["clusters"].shape == (N_VERTICES,)
    again = pipe(_betas(), "sub01", seed=0)
    assert np.array_equal(out.fused, again.fused)
    other = pipe(_betas(), "sub01", seed=10)
    assert not np.array_equal(out.fused, other.fused)
    assert np.array_equal(out.low_level, other.low_level)  # the inverter is deterministic


def test_branches_toggle(generators, fake_run):
    pipe = BrainITPipeline(fake_run, generators)
    low = pipe(_betas(), "sub01", branches=("low_level",), return_attention=False)
    assert low.low_level is not None and low.fused is None and low.semantic is None and low.attention is None
    assert "fusion" not in low.timing
    sem = pipe(_betas(), "sub01", branches=("semantic",), seed=3)
    assert sem.semantic is not None and sem.low_level is None and sem.fused is None
    assert sem.meta["mode"] is None and sem.meta["steps"] == generators.reconstruction.generation_steps
    both = pipe(_betas(), "sub01", seed=3, semantic_only=True)
    assert np.array_equal(both.semantic, sem.semantic)  # the same generation path and seeds
    assert np.array_equal(both.low_level, low.low_level)
    with pytest.raises(ValueError, match="branches"):
        pipe(_betas(), "sub01", branches=())
    with pytest.raises(ValueError, match="mode"):
        pipe(_betas(), "sub01", mode="slow")


def test_dip_mode_and_refinement(generators, fake_run):
    pipe = BrainITPipeline(fake_run, generators)
    dip = pipe(_betas(1), "sub01", branches=("low_level",), mode="dip", dip_steps=3)
    assert dip.meta["dip_steps"] == 3 and dip.low_level.shape == (1, 64, 64, 3)
    fast = pipe(_betas(1), "sub01", branches=("low_level",))
    refined = pipe(_betas(1), "sub01", branches=("low_level",), refine_steps=2)
    assert refined.meta["refine_steps"] == 2
    assert not np.array_equal(refined.low_level, fast.low_level)


def test_from_features_for_baselines(generators, space):
    pipe = BrainITPipeline(None, generators)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        sem, low = space.semantic_tokens(x), space.lowlevel_maps(x)
    out = pipe.from_features(sem.numpy(), [m.numpy() for m in low], fusion_strength=0.0, seed=1)
    # strength 0: the fused image is the inverted image through the autoencoder
    assert out.fused.shape == (2, 64, 64, 3)
    with pytest.raises(ValueError, match="no BIT run"):
        pipe(_betas(), "sub01")
    with pytest.raises(DataFormatError, match="generators expect"):
        pipe.from_features(sem[:, :3], low)
    with pytest.raises(DataFormatError, match="NaN"):
        pipe.from_features(sem * float("nan"), low)


def test_missing_component_and_incompatible_space(generators, fake_run, space):
    partial = Generators(space=space, inverter=generators.inverter, settings=generators.settings)
    pipe = BrainITPipeline(fake_run, partial)
    assert pipe(_betas(1), "sub01", branches=("low_level",)).low_level is not None
    with pytest.raises(CheckpointError, match="unet"):
        pipe(_betas(1), "sub01")
    from brainit_core.features import get_feature_space

    demo = get_feature_space("lite0", preset="demo", pretrained=False)
    with pytest.raises(CheckpointError, match="feature space|trained for"):
        BrainITPipeline(FakeRun(demo), generators)


def test_generators_save_load_round_trip(generators, space, tmp_path):
    generators.save(tmp_path / "gen")
    again = Generators.load(tmp_path / "gen", device="cpu", space=space)
    assert set(again.hashes) == {"autoencoder", "inverter", "unet"}
    assert again.sha256 == generators.sha256
    assert again.scheduler_config == generators.scheduler_config
    assert again.reconstruction == generators.reconstruction
    feats = [torch.rand(1, s.dim, *s.grid) for s in space.lowlevel_specs]
    with torch.no_grad():
        assert torch.equal(again.inverter(feats), generators.inverter(feats))
    with pytest.raises(CheckpointError, match="not a generators directory"):
        Generators.load(tmp_path / "nothing", device="cpu")
