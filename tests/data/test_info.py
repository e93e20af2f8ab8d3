"""DatasetInfo reads dataset.json alone and says what is wrong with it."""
from __future__ import annotations

import json

import pytest

from brainit_core.data import DatasetInfo
from brainit_core.errors import DataFormatError
from tests.factories import make_tiny_dataset


def test_info_of_a_dataset(tmp_path):
    ds = make_tiny_dataset(tmp_path / "d")
    info = DatasetInfo(tmp_path / "d")
    assert info.subjects == ds.subjects == ["sub01", "sub02"]
    assert info.heldout_subjects == ["sub02"] and info.training_subjects == ["sub01"]
    assert info.source == "synthetic-test" and not info.is_twin and info.image_size == 16
    assert DatasetInfo.is_dataset(tmp_path / "d") and DatasetInfo.read(tmp_path / "d").subjects == info.subjects


@pytest.mark.parametrize("content, message", [
    (None, "dataset.json not found"),
    ("{oops", "not valid JSON"),
    (json.dumps({"format_version": 99, "subjects": []}), "format_version 99"),
    (json.dumps({"format_version": 1, "subjects": ["a"]}), "not finished"),
    (json.dumps({"format_version": 1, "complete": True, "subjects": "a"}), "'subjects' must be a list"),
])
def test_bad_metadata(tmp_path, content, message):
    (tmp_path / "d").mkdir()
    if content is not None:
        (tmp_path / "d" / "dataset.json").write_text(content)
    with pytest.raises(DataFormatError, match=message):
        DatasetInfo(tmp_path / "d")
    assert not DatasetInfo.is_dataset(tmp_path / "d") and DatasetInfo.read(tmp_path / "d") is None
