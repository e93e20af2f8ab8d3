"""Tiny generators (ci sizes, random weights) and a fake BIT run for the reconstruction tests."""
from __future__ import annotations

import pytest
import torch

from tests.factories import FakeRun, build_tiny_generators


@pytest.fixture(scope="session")
def space():
    from brainit_core.features import get_feature_space

    torch.set_num_threads(1)
    return get_feature_space("lite0", preset="ci")


@pytest.fixture(scope="session")
def generators(space):
    return build_tiny_generators(space)


@pytest.fixture
def fake_run(space):
    return FakeRun(space)
