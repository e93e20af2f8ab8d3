"""Every command refuses a bad argument while parsing: one line naming the argument, exit status 2, no traceback.

The paths are the shipped demo's (read only: nothing runs past the parser for these command lines).
"""
from __future__ import annotations

import argparse
import math

import pytest

from brainit_core import cli_types
from brainit_core.utils import assets_dir
from tests.factories import refused

DEMO = assets_dir() / "demo"
DATA, RUN, GEN = str(DEMO / "dataset"), str(DEMO / "run"), str(DEMO / "generators")


def _a_file(folder: str) -> str:
    path = f"{folder}/a-file"
    open(path, "w").close()
    return path


def _train(*extra, out="OUT"):
    return ["train", "--data", DATA, "--out", out, "--preset", "ci", *extra]


def _reconstruct(*extra, out="OUT"):
    return ["reconstruct", "--run", RUN, "--generators", GEN, "--data", DATA, "--subject", "twin01",
            "--out", out, "--device", "cpu", "--threads", "1", *extra]


def _benchmark(*extra, out="OUT"):
    return ["benchmark", "--data", DATA, "--run", RUN, "--generators", GEN, "--out", out, "--device", "cpu",
            "--threads", "1", *extra]


# (argv builder, argument the message names); every one ran on (or crashed with a traceback) before
PROBES = {
    # item 6: silent wrong results
    "reconstruct-limit-negative": (lambda out: _reconstruct("--limit", "-2", out=out), "--limit"),
    "benchmark-limit-zero": (lambda out: _benchmark("--limit", "0", out=out), "--limit"),
    "reconstruct-guidance-nan": (lambda out: _reconstruct("--guidance-scale", "nan", out=out), "--guidance-scale"),
    "reconstruct-guidance-inf": (lambda out: _reconstruct("--guidance-scale", "inf", out=out), "--guidance-scale"),
    "twin-respond-repeats-zero": (lambda out: ["twin", "respond", "--data", DATA, "--subject", "twin01", "--images",
                                               str(DEMO), "--repeats", "0", "--out", f"{out}/b.npy"], "--repeats"),
    # item 7: tracebacks
    "train-threads-negative": (lambda out: _train("--threads", "-3", out=out), "--threads"),
    "train-device-foo": (lambda out: _train("--device", "foo", out=out), "--device"),
    "train-space-nosuch": (lambda out: _train("--space", "nosuch", out=out), "--space"),
    "train-encoder-backbone-nosuch": (lambda out: _train("--encoder-backbone", "resnet", out=out), "--encoder-backbone"),
    "train-v2c-covariance-nosuch": (lambda out: _train("--v2c-covariance", "tied", out=out), "--v2c-covariance"),
    "train-out-a-file": (lambda out: _train(out=_a_file(out)), "--out"),
    "train-out-missing-parent": (lambda out: _train(out=f"{out}/no/such"), "--out"),
    "twin-build-subjects-negative": (lambda out: ["twin", "build", "--out", f"{out}/t", "--preset", "ci",
                                                  "--subjects", "-2"], "--subjects"),
    "twin-build-subjects-zero": (lambda out: ["twin", "build", "--out", f"{out}/t", "--preset", "ci",
                                              "--subjects", "0"], "--subjects"),
    "twin-build-seed-negative": (lambda out: ["twin", "build", "--out", f"{out}/t", "--preset", "ci",
                                              "--seed", "-1"], "--seed"),
    "twin-respond-missing-out-folder": (lambda out: ["twin", "respond", "--data", DATA, "--subject", "twin01",
                                                     "--images", str(DEMO), "--out", f"{out}/no/b.npy"], "--out"),
    "reconstruct-batch-size-zero": (lambda out: _reconstruct("--batch-size", "0", out=out), "--batch-size"),
    "reconstruct-fusion-strength-2": (lambda out: _reconstruct("--fusion-strength", "2", out=out), "--fusion-strength"),
    "evaluate-bad-network": (lambda out: ["evaluate", out, "--truth", out, "--networks", "alexnet", "nosuchnet"],
                             "--networks"),
    # the same helpers on the other commands
    "transfer-epochs-zero": (lambda out: ["transfer", "--data", DATA, "--subject", "twin04", "--from", RUN,
                                          "--out", f"{out}/t", "--epochs", "0"], "--epochs"),
    "train-generators-steps": (lambda out: ["train-generators", "--data", DATA, "--out", f"{out}/g",
                                            "--steps", "unet=-1"], "--steps"),
    "train-generators-max-minutes-nan": (lambda out: ["train-generators", "--data", DATA, "--out", f"{out}/g",
                                                      "--max-minutes", "nan"], "--max-minutes"),
    "benchmark-generators-n-zero": (lambda out: ["benchmark-generators", "--generators", GEN, "--data", DATA,
                                                 "--n", "0"], "--n"),
    "evaluate-batch-size-zero": (lambda out: ["evaluate", out, "--truth", out, "--batch-size", "0"], "--batch-size"),
    "nsd-prepare-subject-9": (lambda out: ["nsd", "prepare", "--nsd-root", out, "--subjects", "9",
                                           "--out", f"{out}/n"], "--subjects"),
    "nsd-prepare-sessions-zero": (lambda out: ["nsd", "prepare", "--nsd-root", out, "--sessions", "0",
                                               "--out", f"{out}/n"], "--sessions"),
    "bundle-n-test-zero": (lambda out: ["bundle", "--data", DATA, "--run", RUN, "--generators", GEN,
                                        "--out", f"{out}/b", "--n-test", "0"], "--n-test"),
    "bundle-grids-n-negative": (lambda out: ["bundle-grids", str(DEMO), "--n", "-1"], "--n"),
    "train-demo-threads-zero": (lambda out: ["train-demo", "--work", out, "--out", f"{out}/b", "--threads", "0"],
                                "--threads"),
    "reconstruct-missing-run": (lambda out: _reconstruct("--run", f"{out}/nosuch", out=out), "--run"),
    "stage2-lr-zero": (lambda out: ["stage2", "--run", RUN, "--out", f"{out}/s", "--lr-bit", "0"], "--lr-bit"),
    "stage2-steps-zero": (lambda out: ["stage2", "--run", RUN, "--out", f"{out}/s", "--steps", "0"], "--steps"),
    "stage2-aux-negative": (lambda out: ["stage2", "--run", RUN, "--out", f"{out}/s", "--aux-weight", "-1"],
                            "--aux-weight"),
    "stage2-missing-generators": (lambda out: ["stage2", "--run", RUN, "--out", f"{out}/s", "--generators",
                                               f"{out}/nosuch"], "--generators"),
    "sdxl-projection-missing-sdxl": (lambda out: ["train-sdxl-projection", "--sdxl", f"{out}/nosuch", "--data", DATA,
                                                  "--out", f"{out}/g"], "--sdxl"),
    "sdxl-projection-size-zero": (lambda out: ["train-sdxl-projection", "--sdxl", out, "--data", DATA,
                                               "--out", f"{out}/g", "--size", "0"], "--size"),
    "benchmark-stage2-missing": (lambda out: _benchmark("--stage2", f"{out}/nosuch", out=out), "--stage2"),
    "benchmark-dip-images-one": (lambda out: _benchmark("--dip-images", "1", out=out), "--dip-images"),
    "benchmark-category-train-zero": (lambda out: _benchmark("--category-train", "0", out=out), "--category-train"),
}


@pytest.mark.parametrize("probe", list(PROBES))
def test_bad_arguments_are_refused_in_one_line(probe, tmp_path, capsys):
    build, name = PROBES[probe]
    argv = build(str(tmp_path))
    before = sorted(tmp_path.rglob("*"))
    refused(capsys, argv, name)
    assert sorted(tmp_path.rglob("*")) == before  # nothing written


def test_cuda_without_a_gpu_is_refused(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    line = refused(capsys, _train("--device", "cuda", out=str(tmp_path / "r")), "--device")
    assert "CUDA is not available" in line
    refused(capsys, _reconstruct("--device", "cuda:1", out=str(tmp_path / "r")), "--device")


def test_type_helpers():
    assert cli_types.positive_int("3") == 3 and cli_types.non_negative_int("0") == 0
    assert cli_types.int_in(1, 8)("8") == 8
    assert cli_types.fraction_in(0, 1)("0.25") == 0.25
    assert cli_types.finite_float("-1e3") == -1000.0
    assert cli_types.stage_steps(("unet",))("unet=5") == ("unet", 5)
    assert cli_types.device("auto") == "auto" and cli_types.device("cpu") == "cpu"
    for fn, text in ((cli_types.positive_int, "0"), (cli_types.positive_int, "x"), (cli_types.non_negative_int, "-1"),
                     (cli_types.int_in(1, 8), "0"), (cli_types.fraction_in(0, 1), "1.5"),
                     (cli_types.finite_float, "nan"), (cli_types.finite_float, "-inf"),
                     (cli_types.non_negative_float, "-0.1"), (cli_types.stage_steps(("unet",)), "vae=3"),
                     (cli_types.device, "gpu"), (cli_types.device, "cuda:x")):
        with pytest.raises(argparse.ArgumentTypeError):
            fn(text)
    assert not math.isnan(cli_types.finite_float("0"))


def test_resolve_device_refuses_unknown_names():
    from brainit_core.errors import BrainITError
    from brainit_core.utils import resolve_device

    assert str(resolve_device("cpu")) == "cpu"
    with pytest.raises(BrainITError, match="unknown device 'foo'"):
        resolve_device("foo")
