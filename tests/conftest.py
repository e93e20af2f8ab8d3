"""Shared fixtures: tiny canonical datasets and tiny configs, built in seconds."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def make_tiny_dataset(path, n_subjects=2, n_vertices=(30, 24), n_train=12, n_test=4, repeats=2, image_size=16, seed=0):
    """A canonical dataset with random images and betas (no twin needed)."""
    from brainit_core.data import DatasetWriter

    rng = np.random.default_rng(seed)
    w = DatasetWriter(path, source="synthetic-test", mesh="fsaverage5", image_size=image_size)
    n_img = n_test + n_train * n_subjects
    ids = np.arange(n_img) * 3 + 5
    w.add_images(ids, rng.integers(0, 256, (n_img, image_size, image_size, 3), dtype=np.uint8))
    names = []
    for s in range(n_subjects):
        name = f"sub{s + 1:02d}"
        nv = n_vertices[s % len(n_vertices)]
        verts = np.concatenate([np.sort(rng.choice(10242, nv // 2, replace=False)),
                                np.sort(rng.choice(10242, nv - nv // 2, replace=False))])
        hemis = np.r_[np.zeros(nv // 2), np.ones(nv - nv // 2)].astype(np.uint8)
        w.begin_subject(name, verts, hemis)
        test = ids[:n_test]
        train = ids[n_test + s * n_train: n_test + (s + 1) * n_train]
        shown = np.repeat(np.r_[test, train], repeats)
        rng.shuffle(shown)
        half = len(shown) // 2
        for sess, chunk in enumerate((shown[:half], shown[half:]), start=1):
            w.append_session(name, rng.standard_normal((len(chunk), nv)).astype(np.float32), chunk, sess)
        w.finalize_subject(name, train[:-2], train[-2:], test)
        names.append(name)
    return w.finalize(heldout_subjects=names[-1:])


@pytest.fixture
def tiny_dataset(tmp_path):
    return make_tiny_dataset(tmp_path / "tiny")


# -- a tiny twin, a tiny trained run and tiny generators (the app's tests and the grid cache's) ----

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
