"""Stage 2 (BIT's semantic head and the generator fine-tuned together with the diffusion loss) on the app's tiny
twin, ci run and random ci generators: the loss falls, an interrupted run resumes to the same weights, the
output is a run + generators pair that the pipeline, ``reconstruct`` and the benchmark load; SDXL sets too; under
torchrun (2 processes, gloo) the loss curve, files and checkpoints of one process, and a killed job resumes."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from brainit_core.checkpoint import load_checkpoint
from brainit_core.cli import main
from brainit_core.reconstruction.stage2 import Stage2Config, train_stage2
from tests.factories import run_job

ARGS = ["--preset", "ci", "--threads", "1", "--device", "cpu"]
# 2 processes vs 1: the same samples, voxels, noise and timesteps; only the order of float additions
# differs (measured: 4e-5 relative at most over the 12 ci steps)
CURVE_RTOL = 1e-4


@pytest.fixture(scope="module")
def stage2(app_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("stage2") / "out"
    assert main(["stage2", "--run", str(app_data.run), "--generators", str(app_data.generators), "--out", str(out),
                 *ARGS]) == 0
    return out


def test_stage2_lowers_the_diffusion_loss_and_writes_a_run_with_its_generators(stage2, app_data):
    from brainit_core.models.run import BrainITRun
    from brainit_core.reconstruction import BrainITPipeline, Generators
    from brainit_core.runs import RunDirectory, generators_for_run

    ev = json.loads((stage2 / "train" / "eval.json").read_text())
    # before/after on fixed noise and timesteps: the fine-tuned pair fits its training pairs better
    assert ev["after"]["train"]["diffusion"] < 0.9 * ev["before"]["train"]["diffusion"]
    assert ev["after"]["val"]["diffusion"] < ev["before"]["val"]["diffusion"]
    run = RunDirectory(stage2 / "run")
    assert run.is_complete and run.subjects == RunDirectory(app_data.run).subjects
    assert run.stage2["from_run_sha256"] == RunDirectory(app_data.run).sha256 and run.stage2["steps"] == 12
    assert run.stage2["eval"] == ev and run.stage2["generators_kind"] == "offline"
    assert generators_for_run(run.path) == (stage2 / "generators", "beside the run")
    # only the semantic head and the UNet changed
    before, after = load_checkpoint(app_data.run / "bit")[0], load_checkpoint(run.bit_path)[0]
    sem = [k for k in before if k.startswith("semantic.") and before[k].is_floating_point()]
    low = [k for k in before if k.startswith("lowlevel.")]
    assert any(not torch.equal(before[k], after[k]) for k in sem)
    assert all(torch.equal(before[k], after[k]) for k in low)
    src = Generators.load(app_data.generators, device="cpu")
    gens = Generators.load(stage2 / "generators", device="cpu")
    assert gens.hashes["autoencoder"] == src.hashes["autoencoder"] and gens.hashes["inverter"] == src.hashes["inverter"]
    assert gens.hashes["unet"] != src.hashes["unet"] and gens.settings["stage2"]["steps"] == 12
    brun = BrainITRun.load(run.path, device="cpu")
    pipe = BrainITPipeline(brun, gens)
    betas = np.random.default_rng(1).standard_normal((2, brun.n_vertices("twin01"))).astype(np.float32)
    out = pipe(betas, "twin01", seed=0, semantic_only=True)
    assert out.fused.shape == (2, 64, 64, 3) and out.semantic is not None


def test_a_finished_stage2_is_kept_and_other_settings_are_refused(stage2, app_data, capsys):
    stamp = (stage2 / "run" / "bit.safetensors").stat().st_mtime_ns
    argv = ["stage2", "--run", str(app_data.run), "--generators", str(app_data.generators), "--out", str(stage2)]
    assert main([*argv, *ARGS]) == 0
    assert (stage2 / "run" / "bit.safetensors").stat().st_mtime_ns == stamp
    capsys.readouterr()
    assert main([*argv, *ARGS, "--lr-bit", "0.5"]) == 2
    assert "another run, generators or settings (config differ)" in capsys.readouterr().err


def test_an_interrupted_stage2_resumes_to_the_same_weights(app_data, tmp_path):
    kw = dict(preset="ci", device="cpu", config=Stage2Config.preset("ci"))
    train_stage2(app_data.run, app_data.generators, tmp_path / "a", **kw)
    train_stage2(app_data.run, app_data.generators, tmp_path / "b", max_seconds=0.0, **kw)  # one step, state saved
    assert not (tmp_path / "b" / "run").exists()
    assert load_checkpoint(tmp_path / "b" / "train" / "stage2_state")[2]["step"] == 1
    train_stage2(app_data.run, app_data.generators, tmp_path / "b", **kw)
    # every step drew the same samples, voxels, noise and timesteps: the same losses, step by step
    curves = [(tmp_path / r / "train" / "stage2_loss.csv").read_text().strip().splitlines() for r in "ab"]
    assert [r.split(",")[0] for r in curves[1][1:]] == [str(i) for i in range(1, 13)]
    assert curves[1][0].split(",")[2:] == ["diffusion", "tokens"]
    losses = [np.array([[float(v) for v in r.split(",")[2:]] for r in c[1:]]) for c in curves]
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-4)
    # and the same weights, up to float noise: the resumed model's backward pass differs from the straight one's
    # in the last bits (measured: gradients 7e-8 apart at the first resumed step, from identical weights, inputs
    # and loss), and Adam turns the noise of gradients that are 0 in exact arithmetic (conv biases before a
    # one-channel-per-group GroupNorm) into steps of up to lr. A lost optimiser state or other draws would move
    # the losses above by far more than 1e-4.
    for stem in ("run/bit", "generators/unet"):
        a, b = load_checkpoint(tmp_path / "a" / stem)[0], load_checkpoint(tmp_path / "b" / stem)[0]
        diff = sum(float((a[k].float() - b[k].float()).norm() ** 2) for k in a) ** 0.5
        assert a.keys() == b.keys() and diff < 1e-3 * sum(float(a[k].float().norm() ** 2) for k in a) ** 0.5, stem
    ev = [json.loads((tmp_path / r / "train" / "eval.json").read_text()) for r in "ab"]
    assert ev[0]["before"] == ev[1]["before"]
    assert ev[1]["after"]["val"]["diffusion"] == pytest.approx(ev[0]["after"]["val"]["diffusion"], rel=1e-3)


def test_benchmark_adds_the_stage2_rows(stage2, app_data, tmp_path):
    from brainit_core.benchmark.bench import Bench

    b = Bench(app_data.dataset, app_data.run, app_data.generators, tmp_path / "bench", 2, [], None, "cpu", 0, 8, {},
              stage2=stage2)
    betas, ids = b.test_set("twin01")
    before, _ = b.images("twin01", "brainit_semantic", betas, ids)
    after, meta = b.images("twin01", "stage2_semantic", betas, ids)
    fused, _ = b.images("twin01", "stage2_fused", betas, ids)
    assert after.shape == before.shape and not np.array_equal(after, before) and meta["n"] == 2
    assert b.run is not b.stage2[0] and b.base["generators"] == b.gens.sha256  # swapped back after the rows
    assert (tmp_path / "bench" / "cache" / "twin01" / "stage2_fused.npz").is_file()
    assert fused.shape == (2, 64, 64, 3)


def test_stage2_of_an_sdxl_set_fine_tunes_its_unet_and_projection(app_data, tmp_path):
    from brainit_core.reconstruction import BrainITPipeline, Generators
    from brainit_core.models.run import BrainITRun
    from tests.factories import make_tiny_sdxl

    sdxl = make_tiny_sdxl(tmp_path / "sdxl", 192, projection=False)
    assert main(["train-sdxl-projection", "--sdxl", str(sdxl), "--data", str(app_data.dataset), "--out",
                 str(tmp_path / "set"), "--space", "lite0", "--size", "16", "--steps", "2", *ARGS]) == 0
    assert main(["stage2", "--run", str(app_data.run), "--generators", str(tmp_path / "set"), "--out",
                 str(tmp_path / "s2"), "--steps", "3", *ARGS]) == 0
    settings = json.loads((tmp_path / "s2" / "generators" / "generators.json").read_text())
    assert settings["kind"] == "sdxl" and settings["sdxl"]["unet"] == "unet" and len(settings["sdxl"]["unet_sha256"]) == 64
    run = BrainITRun.load(tmp_path / "s2" / "run", device="cpu")
    src = Generators.load(tmp_path / "set", device="cpu", space=run.space)
    gens = Generators.load(tmp_path / "s2" / "generators", device="cpu", space=run.space)
    assert gens.sha256 != src.sha256
    changed = [n for n, p in gens.sdxl.unet.state_dict().items() if not torch.equal(p, src.sdxl.unet.state_dict()[n])]
    assert changed and not torch.equal(gens.sdxl.projection.tokens.weight, src.sdxl.projection.tokens.weight)
    out = BrainITPipeline(run, gens)(np.zeros((1, run.n_vertices("twin02")), np.float32), "twin02",
                                     branches=("semantic",), mode="dip")
    assert out.semantic.shape == (1, 16, 16, 3)


def _curve(out):
    rows = (out / "train" / "stage2_loss.csv").read_text().strip().splitlines()
    return rows[0].split(",")[2:], np.array([[float(v) for v in r.split(",")[2:]] for r in rows[1:]])


def _two_processes(app_data, out, **kw):
    # (--from: torchrun's own parser takes --run for its --run-path)
    return run_job(["-m", "brainit_core", "stage2", "--from", app_data.run, "--generators", app_data.generators,
                    "--out", out, *ARGS], **kw)


def _same_as_one_process(one, two):
    (names1, c1), (names2, c2) = _curve(one), _curve(two)
    assert names1 == names2 and c1.shape == c2.shape == (12, 2)
    np.testing.assert_allclose(c2, c1, rtol=CURVE_RTOL)
    ev1, ev2 = (json.loads((d / "train" / "eval.json").read_text()) for d in (one, two))
    assert ev2["before"] == ev1["before"]  # the same weights and draws; the processes took turns by batch
    for split in ("train", "val"):
        for key, value in ev1["after"][split].items():
            assert ev2["after"][split][key] == pytest.approx(value, rel=CURVE_RTOL), (split, key)


def test_stage2_on_two_processes_matches_one_process(stage2, app_data, tmp_path):
    from brainit_core.checkpoint import read_checkpoint_record

    two = tmp_path / "two"
    job = _two_processes(app_data, two)
    assert job.returncode == 0, job.output[-3000:]
    assert job.output.count("stage 2 done") == 1  # rank 0 reports, rank 1 stays silent
    _same_as_one_process(stage2, two)
    assert sorted(p.relative_to(stage2) for p in stage2.rglob("*")) == sorted(p.relative_to(two) for p in two.rglob("*"))
    for stem in ("run/bit", "generators/unet", "train/stage2_state"):  # the same checkpoint format
        (t1, _, m1), (t2, _, m2) = load_checkpoint(stage2 / stem), load_checkpoint(two / stem)
        assert {k: v.shape for k, v in t1.items()} == {k: v.shape for k, v in t2.items()}, stem
        assert m1.keys() == m2.keys(), stem
        assert read_checkpoint_record(stage2 / stem)["config"] == read_checkpoint_record(two / stem)["config"], stem


@pytest.mark.slow
def test_a_killed_two_process_stage2_resumes(stage2, app_data, tmp_path):
    out = tmp_path / "two"
    state = out / "train" / "stage2_state.json"

    def saved_step():
        try:
            return json.loads(state.read_text())["meta"]["step"]
        except (OSError, ValueError, KeyError):
            return 0

    killed = _two_processes(app_data, out, kill_when=lambda: saved_step() >= 4)  # ci: a state every 4 steps
    assert killed.killed, killed.output[-3000:]
    assert 4 <= saved_step() < 12 and not (out / "run").exists()
    resumed = _two_processes(app_data, out)
    assert resumed.returncode == 0, resumed.output[-3000:]
    _same_as_one_process(stage2, out)
    # another setting in the same folder: rank 0 refuses, and the job ends with its message
    refused = run_job(["-m", "brainit_core", "stage2", "--from", app_data.run, "--generators", app_data.generators,
                       "--out", out, *ARGS, "--lr-bit", "0.5"], timeout=120)
    assert refused.returncode != 0 and "another run, generators or settings" in refused.output, refused.output[-3000:]
