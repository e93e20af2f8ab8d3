"""brainit_core.app_sources: the app's default dataset, run and generators, and what the sidebar lists."""
from __future__ import annotations

from brainit_core import app_sources as src


def test_check_says_what_is_missing_or_broken(tmp_path, app_data):
    ok = src.check(app_data.dataset, app_data.run, app_data.generators, "env")
    assert ok.complete and ok.dataset == app_data.dataset and ok.origin == "env"
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "dataset.json").write_text("{not json")
    bad = src.check(broken, tmp_path / "norun", None, "env")
    assert len(bad.problems) == 3 and not bad.complete
    assert bad.problems[0].startswith(f"dataset: {broken / 'dataset.json'} is not valid JSON")
    assert bad.problems[1].startswith(f"run: {tmp_path / 'norun'} needs run.json, bit.safetensors and bit.json")
    assert bad.problems[2].startswith("generators: None has no generators.json")
    assert src.check(None, app_data.run, app_data.generators, "env").problems[0].startswith("dataset: none found")


def test_env_wins_and_discover_finds_datasets_runs_and_generators(app_data, monkeypatch):
    for key, value in app_data.env().items():
        monkeypatch.setenv(key, value)
    default = src.default_sources()
    assert default.origin == "env" and default.run == app_data.run and default.complete
    found = src.discover(app_data.root)
    assert app_data.dataset in found["dataset"] and app_data.run in found["run"]
    assert app_data.generators in found["generators"]
    assert src.bundle_dir() / "run" in found["run"]  # the shipped bundle is always listed
