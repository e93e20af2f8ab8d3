"""Fixtures shared by the app tests: a tiny twin, a tiny trained run and tiny generators.

They are built once per test session in a temporary directory (about 5 s on 2 cores) and the
``app_env`` fixture points the app at them through ``BRAINIT_APP_DATA`` / ``BRAINIT_APP_RUN`` /
``BRAINIT_APP_GENERATORS``; ``BRAINIT_DATA`` goes to the same temporary directory, so the app's
discovery and its reconstruction cache never touch ``~/.brainit``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

TWIN_SIZE = dict(n_subjects=2, n_train=40, n_test=8, n_unlabeled=16, n_ood=4, image_size=32)


@dataclass(frozen=True)
class AppData:
    """Paths of the tiny app configuration."""

    root: Path
    dataset: Path
    run: Path
    generators: Path

    def env(self) -> dict:
        return {"BRAINIT_APP_DATA": str(self.dataset), "BRAINIT_APP_RUN": str(self.run),
                "BRAINIT_APP_GENERATORS": str(self.generators), "BRAINIT_DATA": str(self.root)}


def build_app_data(root, seed: int = 0) -> AppData:
    """Build the tiny twin (twin01, twin02 trained; twin03 held out), a ci run and ci generators."""
    import torch

    from brainit_core.data.twin import TwinConfig, build_twin
    from brainit_core.models.run import BrainITRun
    from brainit_core.models.training import train_run
    from tests.reconstruction.conftest import build_tiny_generators

    torch.set_num_threads(1)
    root = Path(root)
    ds = build_twin(root / "twin-tiny", TwinConfig.preset("ci", seed=seed, **TWIN_SIZE))
    train_run(ds, preset="ci", out=root / "runs" / "tiny", device="cpu")
    run = BrainITRun.load(root / "runs" / "tiny", device="cpu")
    build_tiny_generators(run.space).save(root / "generators" / "tiny")
    return AppData(root, root / "twin-tiny", root / "runs" / "tiny", root / "generators" / "tiny")


@pytest.fixture(scope="session")
def app_data(tmp_path_factory) -> AppData:
    return build_app_data(tmp_path_factory.mktemp("app"))


@pytest.fixture(scope="session")
def app_env(app_data):
    """Point the app (in this process and in child processes) at the tiny configuration."""
    old = {k: os.environ.get(k) for k in app_data.env()}
    os.environ.update(app_data.env())
    yield app_data
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
