"""Shared fixtures over the builders of ``tests/factories.py``: tiny datasets and the app's tiny configuration."""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "2")  # before torch is imported

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from tests.factories import (AppData, build_app_data, build_nsd_app_data, make_fake_library,  # noqa: E402
                             make_tiny_dataset)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def tiny_dataset(tmp_path):
    return make_tiny_dataset(tmp_path / "tiny")


# -- a tiny twin, a tiny trained run and tiny generators (the app's tests and the grid cache's) ----

@pytest.fixture(scope="session")
def app_data(tmp_path_factory) -> AppData:
    return build_app_data(tmp_path_factory.mktemp("app"))


@pytest.fixture
def fake_library(tmp_path):
    """A tiny fake stimulus library: (system root, data directory for the cached index)."""
    return make_fake_library(tmp_path / "root"), tmp_path / "data"


@pytest.fixture(scope="session")
def ci_twin(tmp_path_factory):
    """A ``ci`` twin (seed 3) on the installed stimulus library, built once per test session and shared by
    the twin tests (read only); skipped where the library is not installed (``.ci/run`` installs it)."""
    from brainit_core.data.twin import TwinConfig, build_twin
    from brainit_core.data.twin.library import MissingLibraryError, load_library

    try:
        load_library()
    except MissingLibraryError as exc:
        pytest.skip(str(exc))
    path = tmp_path_factory.mktemp("twin") / "ci"
    build_twin(path, TwinConfig.preset("ci", seed=3))
    return path


@pytest.fixture(scope="session", params=["fsaverage", "func1pt8mm"])
def nsd_app_data(request, tmp_path_factory) -> AppData:
    """A prepared NSD-format dataset (fake fsaverage with 40,962 vertices per hemisphere, atlases,
    func1pt8mm volumes and transforms), a ci run and ci generators; once per space per session."""
    return build_nsd_app_data(tmp_path_factory.mktemp(f"nsd-{request.param}"), request.param)
