"""The full-size SDXL generator set, end to end with tiny random SDXL components of the real classes: its
projection is trained and resumes exactly, and the pipeline, ``reconstruct``, the benchmark and the app's
sidebar take it like any generators; missing SDXL weights are named."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from brainit_core.cli import main
from brainit_core.errors import BrainITError, CheckpointError, MissingWeightsError
from tests.factories import make_tiny_sdxl

TOKEN_DIM = 192  # the lite0 ci space of the app's tiny run


def _projection_argv(sdxl, data, out, *extra):
    return ["train-sdxl-projection", "--sdxl", str(sdxl), "--data", str(data), "--out", str(out), "--preset", "ci",
            "--space", "lite0", "--size", "16", "--threads", "1", "--device", "cpu", *extra]


@pytest.fixture(scope="module")
def sdxl_set(app_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("sdxlset")
    sdxl = make_tiny_sdxl(root / "sdxl", TOKEN_DIM, projection=False)
    out = root / "set"
    assert main(_projection_argv(sdxl, app_data.dataset, out, "--inverter-from", str(app_data.generators))) == 0
    return SimpleNamespace(root=root, sdxl=sdxl, path=out)


def test_projection_training_makes_a_set_the_pipeline_uses(sdxl_set, app_data):
    from brainit_core.models.run import BrainITRun
    from brainit_core.reconstruction import BrainITPipeline, Generators

    settings = json.loads((sdxl_set.path / "generators.json").read_text())
    assert settings["kind"] == "sdxl" and settings["sdxl"]["path"] == str(sdxl_set.sdxl.resolve())
    assert settings["space"] == {"name": "lite0", "preset": "ci"} and settings["reconstruction"]["mode"] == "fast"
    rows = (sdxl_set.path / "train" / "projection_loss.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 6  # the ci preset's steps, logged
    run = BrainITRun.load(app_data.run, device="cpu")
    gens = Generators.load(sdxl_set.path, device="cpu", space=run.space)
    offline = Generators.load(app_data.generators, device="cpu", space=run.space)
    assert gens.kind == "sdxl" and gens.sdxl is not None and gens.unet is None and gens.inverter is not None
    assert gens.sha256 != offline.sha256 and len(gens.hashes["sdxl"]) == 64
    pipe = BrainITPipeline(run, gens)
    betas = np.random.default_rng(0).standard_normal((2, run.n_vertices("twin01"))).astype(np.float32)
    out = pipe(betas, "twin01", seed=[3, 4], semantic_only=True)
    assert out.fused.shape == out.semantic.shape == (2, 16, 16, 3)  # the SDXL set's size
    assert out.low_level.shape == (2, 64, 64, 3)  # the inverter's
    assert out.meta["generators_kind"] == "sdxl" and out.meta["guidance_scale"] == 3.0
    again = pipe(betas, "twin01", seed=[3, 4], semantic_only=True)
    assert np.array_equal(out.fused, again.fused) and np.array_equal(out.semantic, again.semantic)
    # fusion strength 0 gives the low-level image back through the SDXL VAE, not the semantic drawing
    kept = pipe(betas, "twin01", seed=[3, 4], fusion_strength=0.0)
    assert not np.array_equal(kept.fused, out.fused)


def test_reconstruct_and_the_sidebar_take_the_set(sdxl_set, app_data, tmp_path):
    from brainit_core import app_sources as src

    out = tmp_path / "recon"
    argv = ["reconstruct", "--run", str(app_data.run), "--generators", str(sdxl_set.path), "--data",
            str(app_data.dataset), "--subject", "twin01", "--out", str(out), "--limit", "2", "--threads", "1",
            "--device", "cpu"]
    assert main(argv) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["images"]) == 2 and manifest["meta"]["generators_kind"] == "sdxl"
    assert all((out / "fused" / f"{i}.png").is_file() for i in manifest["images"])
    assert src.check(app_data.dataset, app_data.run, sdxl_set.path, "env").complete
    assert src.generators_label(sdxl_set.path).endswith("/set · SDXL")
    assert src.generators_label(app_data.generators) == "generators/tiny"
    choices = src.generator_choices(app_data.run, [app_data.generators, sdxl_set.path])
    assert choices == [str(app_data.generators), str(sdxl_set.path)]  # both fit the run's lite0 (ci)


def test_benchmark_decodes_every_method_with_the_set(sdxl_set, app_data, tmp_path):
    from brainit_core.benchmark.bench import Bench

    b = Bench(app_data.dataset, app_data.run, sdxl_set.path, tmp_path / "bench", 2, [], None, "cpu", 0, 8, {})
    betas, ids = b.test_set("twin01")
    images, meta = b.images("twin01", "brainit_fused", betas, ids)
    assert images.shape == (2, 16, 16, 3) and meta["seconds_per_image"] > 0
    assert b.base["generators"] == b.gens.sha256 and b.gens.kind == "sdxl"


def test_missing_sdxl_weights_are_named_everywhere(sdxl_set, app_data, tmp_path, capsys):
    from brainit_core import app_sources as src
    from brainit_core.reconstruction import Generators
    from brainit_core.runs import generators_problem

    moved = tmp_path / "set"
    shutil.copytree(sdxl_set.path, moved)
    settings = json.loads((moved / "generators.json").read_text())
    settings["sdxl"]["path"] = str(tmp_path / "sdxl-unclip")  # weights not copied there
    (moved / "generators.json").write_text(json.dumps(settings))
    with pytest.raises(MissingWeightsError) as err:
        Generators.load(moved, device="cpu")
    for part in ("sdxl-unclip/unet/diffusion_pytorch_model.safetensors", "sdxl-unclip/vae/config.json",
                 "sdxl-unclip/scheduler/scheduler_config.json", "diffusers-format SDXL"):
        assert part in str(err.value)
    problem = generators_problem(moved)
    assert "sdxl-unclip/unet/config.json" in problem and "train-sdxl-projection" in problem
    assert src.check(app_data.dataset, app_data.run, moved, "env").problems[0].startswith("generators: SDXL set")
    argv = ["reconstruct", "--run", str(app_data.run), "--generators", str(moved), "--data", str(app_data.dataset),
            "--subject", "twin01", "--out", str(tmp_path / "r"), "--threads", "1", "--device", "cpu"]
    assert main(argv) == 2
    assert "sdxl-unclip/vae/diffusion_pytorch_model.safetensors" in capsys.readouterr().err
    # the training command refuses an incomplete SDXL directory before doing anything
    (tmp_path / "partial" / "unet").mkdir(parents=True)
    assert main(_projection_argv(tmp_path / "partial", app_data.dataset, tmp_path / "new")) == 2
    err = capsys.readouterr().err
    assert "partial/vae/config.json" in err and "partial/unet/config.json" in err and not (tmp_path / "new").exists()


def test_an_untrained_projection_and_another_set_are_refused(sdxl_set, app_data, tmp_path):
    from brainit_core.features import get_feature_space
    from brainit_core.reconstruction import Generators
    from brainit_core.reconstruction.sdxl import SDXLAdapterConfig
    from brainit_core.reconstruction.sdxl_set import create_sdxl_set

    space = get_feature_space("lite0", preset="ci")
    create_sdxl_set(tmp_path / "fresh", sdxl_set.sdxl, space, "lite0", "ci", SDXLAdapterConfig(size=16))
    gens = Generators.load(tmp_path / "fresh", device="cpu", space=space)
    assert gens.sdxl is None and gens.reconstruction.mode == "dip"
    with pytest.raises(CheckpointError, match="train-sdxl-projection"):
        gens.require_semantic()
    other = make_tiny_sdxl(tmp_path / "other-sdxl", TOKEN_DIM, projection=False)
    with pytest.raises(BrainITError, match="holds another set"):
        create_sdxl_set(tmp_path / "fresh", other, space, "lite0", "ci", SDXLAdapterConfig(size=16))


def test_an_interrupted_projection_training_resumes_to_the_same_weights(sdxl_set, app_data, tmp_path):
    from brainit_core.checkpoint import load_checkpoint
    from brainit_core.reconstruction.sdxl import SDXLAdapterConfig
    from brainit_core.reconstruction.sdxl_set import train_projection

    kw = dict(preset="ci", space_name="lite0", adapter=SDXLAdapterConfig(size=16), device="cpu", max_images=24)
    train_projection(app_data.dataset, sdxl_set.sdxl, tmp_path / "a", **kw)
    train_projection(app_data.dataset, sdxl_set.sdxl, tmp_path / "b", max_seconds=0.0, **kw)  # one step, saved
    assert not (tmp_path / "b" / "image_token_projection.safetensors").exists()
    train_projection(app_data.dataset, sdxl_set.sdxl, tmp_path / "b", **kw)
    a = load_checkpoint(tmp_path / "a" / "image_token_projection")[0]
    b = load_checkpoint(tmp_path / "b" / "image_token_projection")[0]
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-7) for k in a)
    first = load_checkpoint(Path(tmp_path / "a" / "train" / "projection_state"))[2]
    assert first["step"] == 6
