"""RunDirectory owns run.json / bit.json; generators_for_run finds the generators of a run's feature space."""
from __future__ import annotations

import pytest

from brainit_core.checkpoint import save_checkpoint
from brainit_core.errors import CheckpointError
from brainit_core.fileio import write_json
from brainit_core.runs import RunDirectory, RunStages, generators_for_run, new_run_record


def _fake_run(path, subjects=("s1", "s2"), space=None, bundled_from=None):
    import torch

    space = space or {"name": "lite0", "preset": "ci"}
    record = new_run_record("ci", "/data/x", space, list(subjects)[:1], {"n_clusters": 4}, {"epochs": 1})
    write_json(path / "run.json", record)
    meta = {"bundled_from_sha256": bundled_from} if bundled_from else {}
    save_checkpoint(path / "bit", {"w": torch.zeros(2)}, {"subjects": {s: 10 + k for k, s in enumerate(subjects)},
                                                          "space": space}, meta)
    return RunDirectory(path)


def test_a_finished_run(tmp_path):
    run = _fake_run(tmp_path / "run", bundled_from="abc123")
    assert run.is_complete and RunDirectory.is_run(tmp_path / "run")
    assert run.subjects == ["s1", "s2"]  # every subject BIT decodes (bit.json)
    assert run.training_subjects == ["s1"]  # the ones it was trained on (run.json)
    assert run.n_vertices("s2") == 11
    assert run.space == {"name": "lite0", "preset": "ci"} and run.space_label == "lite0 (ci)"
    assert run.bit_config == {"n_clusters": 4} and run.transfer is None
    assert len(run.sha256) == 64 and run.identities == {run.sha256, "abc123"}


def test_the_encoder_backbone_is_named_in_the_record_and_old_runs_read_the_decoder_space(tmp_path):
    (tmp_path / "new").mkdir()
    new = RunDirectory(tmp_path / "new")
    new.save_record(new_run_record("demo", "d", {"name": "lite0", "preset": "demo"}, ["a"], {},
                                   {"epochs": 1, "backbone": "lite1"}))
    assert RunDirectory(new.path).encoder_backbone == "lite1"
    old = _fake_run(tmp_path / "old")  # recorded before the encoder had its own backbone
    assert "backbone" not in old.encoder_config and old.encoder_backbone == "lite0"
    full = _fake_run(tmp_path / "full", space={"name": "bigg-vgg16bn", "preset": "full"})
    assert full.encoder_backbone == "bigg-vgg16bn"  # what such a run's encoder read
    (tmp_path / "bare").mkdir()
    write_json(tmp_path / "bare" / "run.json", {"preset": "demo"})
    assert RunDirectory(tmp_path / "bare").encoder_backbone == "lite0"


def test_an_unfinished_or_missing_run(tmp_path):
    missing = RunDirectory(tmp_path / "nothing")
    assert not missing.is_complete and missing.subjects == [] and missing.is_empty()
    with pytest.raises(CheckpointError, match="run.json not found"):
        missing.record
    started = RunDirectory(tmp_path / "started")
    write_json(started.record_path, new_run_record("ci", "d", {"name": "lite0", "preset": "ci"}, ["a"], {}, {}))
    assert not started.is_complete and started.subjects == []
    with pytest.raises(CheckpointError, match="has not finished"):
        started.sha256
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "run.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="expected a JSON object"):
        RunDirectory(tmp_path / "broken").record


def test_stages_are_written_as_they_finish(tmp_path):
    run = RunDirectory(tmp_path / "r")
    record = new_run_record("ci", "d", {"name": "lite0", "preset": "ci"}, ["a"], {}, {})
    stages = RunStages(run, record)
    assert not stages.done("encoder")
    stages.finish("encoder", 1.234, n=3)
    record["extended"] = {"lowlevel": {"earlier_seconds": 10.0}}
    stages.finish("bit", 2.0)
    again = RunDirectory(tmp_path / "r")
    assert again.stages["encoder"] == {"seconds": 1.23, "n": 3}
    assert RunStages(again, again.record).done("bit") and stages.total_seconds() == pytest.approx(13.23)


def _generators(path, space):
    write_json(path / "generators.json", {"space": space, "preset": space["preset"]})


def test_generators_for_run_prefers_the_ones_beside_the_run(tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINIT_DATA", str(tmp_path / "home"))
    run = _fake_run(tmp_path / "bundle" / "run")
    _generators(tmp_path / "home" / "generators" / "demo", {"name": "lite0", "preset": "ci"})
    path, how = generators_for_run(run.path)
    assert path == tmp_path / "home" / "generators" / "demo" and "demo" in how
    _generators(tmp_path / "bundle" / "generators", {"name": "lite0", "preset": "ci"})
    assert generators_for_run(run.path) == (tmp_path / "bundle" / "generators", "beside the run")
    assert generators_for_run(run.path, tmp_path / "x")[0] == tmp_path / "x"


def test_generators_of_another_feature_space_are_not_picked(tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINIT_DATA", str(tmp_path / "home"))
    import brainit_core.utils as utils

    monkeypatch.setattr(utils, "assets_dir", lambda: tmp_path / "no-assets")
    run = _fake_run(tmp_path / "bundle" / "run", space={"name": "lite0", "preset": "demo"})
    _generators(tmp_path / "bundle" / "generators", {"name": "lite0", "preset": "ci"})
    with pytest.raises(CheckpointError, match="lite0 \\(demo\\)"):
        generators_for_run(run.path)
