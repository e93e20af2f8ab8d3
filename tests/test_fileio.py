"""fileio: atomic writes leave no temporary files, reads say which file is malformed."""
from __future__ import annotations

import numpy as np
import pytest

from brainit_core.errors import DataFormatError
from brainit_core.fileio import read_json, save_npy, save_npz, try_read_json, write_json


def test_write_json_round_trip_with_numpy_values(tmp_path):
    path = write_json(tmp_path / "a" / "b.json", {"n": np.int64(3), "x": np.float32(0.5), "v": np.arange(3),
                                                   "t": (1, 2), "p": tmp_path})
    assert read_json(path) == {"n": 3, "x": 0.5, "v": [0, 1, 2], "t": [1, 2], "p": str(tmp_path)}
    assert sorted(p.name for p in path.parent.iterdir()) == ["b.json"]  # no .tmp left behind


def test_write_json_refuses_unknown_types_unless_told(tmp_path):
    with pytest.raises(TypeError):
        write_json(tmp_path / "x.json", {"s": {1, 2}})
    assert not (tmp_path / "x.json").exists()
    write_json(tmp_path / "x.json", {"s": object()}, default=str)
    assert read_json(tmp_path / "x.json")["s"].startswith("<object")


def test_read_json_missing_and_malformed(tmp_path):
    assert read_json(tmp_path / "none.json", default={"d": 1}) == {"d": 1}
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataFormatError, match="bad.json"):
        read_json(bad)
    assert try_read_json(bad) is None
    assert try_read_json(tmp_path / "none.json") is None


def test_save_npy_and_npz_are_atomic(tmp_path):
    save_npy(tmp_path / "x.npy", np.arange(4))
    save_npz(tmp_path / "y.npz", a=np.ones(2), b=np.zeros(3))
    assert np.array_equal(np.load(tmp_path / "x.npy"), np.arange(4))
    with np.load(tmp_path / "y.npz") as z:
        assert sorted(z.files) == ["a", "b"] and z["b"].shape == (3,)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy", "y.npz"]
