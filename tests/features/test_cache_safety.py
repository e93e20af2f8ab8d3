"""The feature cache is never trusted when damaged and never raced: a file left by a process killed
mid-write is rebuilt, a cache in use by another process is a clear error with its pid."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from brainit_core.features import extract_features, get_feature_space
from brainit_core.features.cache import feature_cache_path
from tests.factories import make_tiny_dataset

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def ds_space(tmp_path):
    return make_tiny_dataset(tmp_path / "d"), get_feature_space("lite0", preset="ci")


def assert_fresh(ds, space, ids):
    cached = extract_features(ds, ids, space, batch_size=4)
    direct = extract_features(ds, ids, space, cache=False)
    np.testing.assert_allclose(cached.semantic.astype(np.float32), direct.semantic.astype(np.float32), atol=1e-2)
    for a, b in zip(cached.lowlevel, direct.lowlevel):
        np.testing.assert_allclose(a.astype(np.float32), b.astype(np.float32), atol=1e-2)


def test_a_cache_file_left_by_a_kill_during_its_first_block_is_rebuilt(ds_space):
    """kill -9 during the first block leaves a 96-byte HDF5 file (superblock only)."""
    ds, space = ds_space
    path = feature_cache_path(ds, space)
    path.parent.mkdir(parents=True)
    h5py.File(path, "w").close()
    with open(path, "r+b") as f:
        f.truncate(96)
    assert_fresh(ds, space, ds.image_ids[:3])
    assert path.with_name(path.name + ".damaged").stat().st_size == 96  # ours, moved aside
    assert_fresh(ds, space, ds.image_ids[:3])  # and the rebuilt file is trusted from now on


def test_a_cache_interrupted_mid_block_or_of_wrong_shape_is_rebuilt(ds_space):
    ds, space = ds_space
    ids = ds.image_ids[:3]
    path = feature_cache_path(ds, space)
    extract_features(ds, ids, space, batch_size=4)
    with h5py.File(path, "a") as f:  # a block half written when the process died
        f["semantic"][:] = 0
        f.attrs["writing"] = 1
    assert_fresh(ds, space, ids)
    with h5py.File(path, "a") as f:
        del f["lowlevel/0"]
        f.create_dataset("lowlevel/0", data=np.zeros((3, 1, 1, 1), np.float16))
    assert_fresh(ds, space, ids)


def test_a_cache_in_use_by_another_process_is_a_clear_error(ds_space, monkeypatch, tmp_path):
    """train and train-generators on one dataset: the second is refused with the first one's pid,
    instead of waiting six times and silently computing in memory."""
    import brainit_core.features.cache as cache
    from brainit_core.locks import LockedError, lock_path_for
    from brainit_core.reconstruction.training import semantic_tokens

    ds, space = ds_space
    path = feature_cache_path(ds, space)
    monkeypatch.setattr(cache, "LOCK_WAIT_S", 0.3)
    code = ("import sys, time\nfrom brainit_core.locks import FileLock\n"
            "lock = FileLock(sys.argv[1], 'x').acquire()\nprint('held', flush=True)\ntime.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(lock_path_for(path))], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(LockedError, match=rf"feature cache .*{path.name} is in use by another process "
                                              rf"\(pid {proc.pid}"):
            semantic_tokens(ds, ds.image_ids[:3], space, tmp_path / "train")
        assert not (tmp_path / "train").exists()  # no silent in-memory copy
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    tokens = semantic_tokens(ds, ds.image_ids[:3], space, tmp_path / "train")  # the kill released it
    assert tokens.shape[0] == 3
