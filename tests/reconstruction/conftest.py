"""Tiny generators (ci sizes, random weights) and a fake BIT run for the reconstruction tests."""
from __future__ import annotations

import numpy as np
import pytest
import torch

N_VERTICES = 30


@pytest.fixture(scope="session")
def space():
    from brainit_core.features import get_feature_space

    torch.set_num_threads(1)
    return get_feature_space("lite0", preset="ci")


def build_tiny_generators(space, seed: int = 0):
    """Randomly initialised ci-size generators whose statistics are fitted on random images."""
    from brainit_core.reconstruction.autoencoder import build_autoencoder
    from brainit_core.reconstruction.diffusion import ConditionalUNet
    from brainit_core.reconstruction.generators import Generators, ReconstructionConfig
    from brainit_core.reconstruction.inverter import FeatureInverter
    from brainit_core.reconstruction.training import generator_configs
    from dataclasses import asdict

    torch.manual_seed(seed)
    cfgs = generator_configs(space, "ci")
    ae = build_autoencoder(cfgs["autoencoder"]).eval()
    unet = ConditionalUNet(cfgs["unet"]).eval()
    inv = FeatureInverter(cfgs["inverter"]).eval()
    x = torch.rand(8, 3, 64, 64, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        inv.fit_statistics(space.lowlevel_maps(x))
        unet.conditioner.fit_statistics(space.semantic_tokens(x))
    settings = {"preset": "ci", "space": {"name": "lite0", "preset": "ci"},
                "reconstruction": asdict(ReconstructionConfig.preset("ci"))}
    return Generators(space=space, autoencoder=ae, unet=unet, inverter=inv,
                      scheduler_config=cfgs["unet"].scheduler_config(), settings=settings)


@pytest.fixture(scope="session")
def generators(space):
    return build_tiny_generators(space)


class FakeRun:
    """Stands in for ``BrainITRun``: a fixed random linear map from betas to both feature sets."""

    def __init__(self, space, subjects=("sub01",), n_vertices: int = N_VERTICES, seed: int = 0):
        self.space = space
        self.subjects = list(subjects)
        self.checkpoint_sha256 = "0" * 64
        self.calls = 0
        g = torch.Generator().manual_seed(seed)
        sem = space.semantic_spec
        self._sem = torch.randn(n_vertices, sem.n_tokens * sem.dim, generator=g) * 0.3
        self._low = [torch.randn(n_vertices, s.dim * s.grid[0] * s.grid[1], generator=g) * 0.3
                     for s in space.lowlevel_specs]

    def predict(self, betas, subject, return_attention=False):
        from brainit_core.models.bit import BITPrediction

        self.calls += 1
        if subject not in self.subjects:
            raise KeyError(subject)
        x = torch.as_tensor(np.asarray(betas, dtype=np.float32))
        B = x.shape[0]
        sem = self.space.semantic_spec
        pred = BITPrediction(semantic=(x @ self._sem).view(B, sem.n_tokens, sem.dim).relu(),
                             lowlevel=[(x @ w).view(B, s.dim, *s.grid).relu() for w, s in zip(self._low, self.space.lowlevel_specs)])
        if return_attention:
            pred.tokenizer_attention = {"semantic": torch.softmax(x, dim=1), "lowlevel": torch.softmax(2 * x, dim=1)}
            pred.cluster_of_voxel = torch.arange(x.shape[1]) % 4
            n_low = sum(s.n_tokens for s in self.space.lowlevel_specs)
            pred.cross_attention = {"semantic": torch.rand(B, sem.n_tokens, 4), "lowlevel": torch.rand(B, n_low, 4)}
        return pred


@pytest.fixture
def fake_run(space):
    return FakeRun(space)
