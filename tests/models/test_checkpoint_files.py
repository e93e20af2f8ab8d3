"""Damaged checkpoint files of a run are CheckpointErrors naming the file (and the field), not tracebacks."""
from __future__ import annotations

import json
import shutil

import pytest

from brainit_core.errors import CheckpointError
from brainit_core.models.bit_io import load_bit, save_bit
from brainit_core.models.v2c import V2C
from brainit_core.utils import assets_dir
from tests.factories import tiny_bit_model


@pytest.fixture
def bit_path(tmp_path):
    save_bit(tmp_path / "bit", tiny_bit_model(), {"space": {"name": "test", "preset": "ci"}})
    return tmp_path / "bit"


def _set_field(bit_path, name, value):
    record_path = bit_path.with_suffix(".json")
    record = json.loads(record_path.read_text())
    record["config"]["bit"][name] = value
    record_path.write_text(json.dumps(record))


@pytest.mark.parametrize("value, expected", [
    (3, "'heads' = 3 must divide 'dim'"),
    ("four", "'heads' must be an integer"),
    (0, "'heads' must be a positive integer"),
    (None, "'heads' must be an integer"),
])
def test_bad_heads_in_bit_json_names_file_and_field(bit_path, value, expected):
    load_bit(bit_path)  # intact
    _set_field(bit_path, "heads", value)
    with pytest.raises(CheckpointError, match=str(bit_path.with_suffix(".json"))) as info:
        load_bit(bit_path)
    assert expected in str(info.value)


def test_non_number_float_field_in_bit_json(bit_path):
    _set_field(bit_path, "mlp_ratio", "wide")
    with pytest.raises(CheckpointError, match="'mlp_ratio' must be a number"):
        load_bit(bit_path)


def test_truncated_v2c_npz_names_the_file(tmp_path):
    for suffix in (".npz", ".json"):
        shutil.copy(assets_dir() / "demo" / "run" / f"v2c{suffix}", tmp_path / f"v2c{suffix}")
    V2C.load(tmp_path / "v2c")  # intact
    data = (tmp_path / "v2c.npz").read_bytes()
    for cut in (len(data) // 2, len(data) - 30, 100):
        (tmp_path / "v2c.npz").write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match=str(tmp_path / "v2c")):
            V2C.load(tmp_path / "v2c")
