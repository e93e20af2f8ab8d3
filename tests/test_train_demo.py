"""``train-demo``'s orchestration: stages in order, resumable, the stage-2 run and generators shipped."""
from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture
def recorded(monkeypatch, tmp_path):
    """Replace every heavy stage by a recorder that writes what the next stage looks for."""
    import brainit_core.bundle as bundle
    import brainit_core.data.twin as twin
    import brainit_core.models.training as training
    import brainit_core.reconstruction.stage2 as stage2
    import brainit_core.reconstruction.training as gen_training
    from brainit_core.data.info import DatasetInfo

    calls = []
    state = {"unet": True, "stage2": True}

    def twin_build(path, preset, seed):
        calls.append(("twin", Path(path).name))
        Path(path).mkdir(parents=True)

    def gens(data, out, preset, device, scenes):
        calls.append(("generators", data, scenes))
        Path(out).mkdir(parents=True, exist_ok=True)
        if state["unet"]:
            (Path(out) / "unet.safetensors").write_text("x")

    def s2(run, generators, out, preset, data, device):
        calls.append(("stage2", Path(run).name, Path(generators).name))
        if state["stage2"]:
            for sub, name in (("run", "bit"), ("generators", "unet")):
                (Path(out) / sub).mkdir(parents=True, exist_ok=True)
                (Path(out) / sub / f"{name}.safetensors").write_text("x")

    def pack(data, run, generators, out, n_test, benchmark, heldout_minutes, n_unlabeled):
        assert n_test == 80  # what keeps the twin v2 bundle within 120 MB
        calls.append(("bundle", Path(run).relative_to(tmp_path).as_posix(),
                      Path(generators).relative_to(tmp_path).as_posix(), heldout_minutes, n_unlabeled))

    monkeypatch.setattr(twin, "build_twin", twin_build)
    monkeypatch.setattr(DatasetInfo, "is_dataset", staticmethod(lambda p: Path(p).is_dir()))
    monkeypatch.setattr(training, "train_run", lambda data, preset, out, device, resume: calls.append(("run", preset)))
    monkeypatch.setattr(gen_training, "train_generators", gens)
    monkeypatch.setattr(stage2, "train_stage2", s2)
    monkeypatch.setattr(bundle, "make_bundle", pack)
    return calls, state


def _main(*args) -> int:
    from brainit_core.cli import main

    return main(["train-demo", *args])


def test_train_demo_runs_every_stage_and_ships_stage_2(recorded, tmp_path):
    calls, _ = recorded
    assert _main("--work", str(tmp_path / "w"), "--out", str(tmp_path / "b"), "--threads", "1") == 0
    assert [c[0] for c in calls] == ["twin", "run", "generators", "stage2", "bundle"]
    assert calls[2] == ("generators", None, 8000)  # trained on library scenes, not the twin's images
    assert calls[3] == ("stage2", "demo-seed0", "demo-seed0")
    assert calls[4] == ("bundle", "w/stage2/demo-seed0/run", "w/stage2/demo-seed0/generators", 60, 100)
    timings = json.loads((tmp_path / "w" / "train-demo.json").read_text())
    assert {"twin", "run", "generators", "stage2", "bundle"} <= set(timings)


def test_train_demo_stops_until_the_generators_and_stage_2_finish(recorded, tmp_path):
    calls, state = recorded
    state.update(unet=False, stage2=False)
    work = ["--work", str(tmp_path / "w"), "--out", str(tmp_path / "b")]
    assert _main(*work) == 1 and calls[-1][0] == "generators"
    state["unet"] = True
    assert _main(*work) == 1 and calls[-1][0] == "stage2"
    state["stage2"] = True
    assert _main(*work) == 0 and calls[-1][0] == "bundle"
    assert [c[0] for c in calls].count("twin") == 1  # built once, then reused


def test_train_demo_uses_given_twin_and_generators(recorded, tmp_path):
    calls, _ = recorded
    twin, gens = tmp_path / "twin", tmp_path / "gens"
    twin.mkdir()
    gens.mkdir()
    (gens / "unet.safetensors").write_text("x")
    assert _main("--work", str(tmp_path / "w"), "--out", str(tmp_path / "b"), "--data", str(twin),
                 "--generators", str(gens), "--no-stage2", "--heldout-minutes", "0") == 0
    assert [c[0] for c in calls] == ["run", "bundle"]
    assert calls[-1][1:] == ("w/runs/demo-seed0", "gens", 0, 100)
