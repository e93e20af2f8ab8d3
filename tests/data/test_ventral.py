"""The twin's ventral network: shapes, training, resuming, saving, and the shipped network's quality."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from brainit_core.checkpoint import load_checkpoint, save_checkpoint
from brainit_core.cli import main
from brainit_core.data.twin.library import load_library
from brainit_core.data.twin.scenes import render_scenes
from brainit_core.data.twin.taxonomy import CATEGORIES
from brainit_core.data.twin.ventral import (ASSET, HELDOUT_SEED, VentralConfig, VentralNet, auc, evaluate_ventral,
                                            load_ventral, ventral_maps, ventral_response, weights)
from brainit_core.data.twin.ventral_training import augment, category_weights, train_ventral
from brainit_core.errors import BrainITError, CheckpointError
from brainit_core.fileio import read_json
from brainit_core.utils import assets_dir
from tests.factories import refused

C = len(CATEGORIES)
SHIPPED = assets_dir() / ASSET
REAL = all(Path(p).is_dir() for p in ("/usr/share/openclipart/png", "/usr/share/tuxpaint/stamps",
                                      "/usr/share/backgrounds/mate", "/usr/share/wallpapers"))


@pytest.fixture
def library(fake_library):
    root, data = fake_library
    return load_library(root, data_dir=data)


def ci(**overrides) -> VentralConfig:
    return VentralConfig.preset("ci", **overrides)


def test_shapes_for_any_input_size():
    torch.manual_seed(0)
    net = VentralNet(ci()).eval()
    for h, w in ((32, 32), (50, 70), (128, 96)):
        maps, emb = net(torch.rand(2, 3, h, w))
        assert maps.shape == (2, C, -(-h // 8), -(-w // 8)) and emb.shape == (2, 16)
        assert (emb >= 0).all() and net.labels(emb).shape == (2, C)
    images = [np.zeros((20, 30, 3), np.uint8), np.full((100, 40), 200, np.uint8), np.zeros((64, 64, 4), np.uint8)]
    probs = ventral_maps(net, images, batch=2)
    assert probs.shape == (3, C, 4, 4) and probs.dtype == np.float32 and 0 <= probs.min() <= probs.max() <= 1
    maps, labels, emb = ventral_response(net, np.zeros((0, 32, 32, 3), np.uint8))
    assert maps.shape == (0, C, 4, 4) and labels.shape == (0, C) and emb.shape == (0, 16)
    with pytest.raises(ValueError, match="image 0"):
        ventral_maps(net, [np.zeros((8, 8, 2), np.uint8)])


def test_augment_keeps_masks_aligned_with_pixels(library):
    cfg = ci()
    s = render_scenes(library, 6, seed=3, size=cfg.render_size)
    x, target, labels = augment(s.images, s.category_masks, cfg, np.random.default_rng(0))
    assert x.shape == (6, 3, 32, 32) and target.shape == (6, C, 4, 4) and labels.shape == (6, C)
    assert 0 <= float(target.min()) and float(target.max()) <= 1 and 0 <= float(x.min()) and float(x.max()) <= 1
    # a category labelled in a crop has mask cells there; an empty one has none
    assert (labels <= (target.sum(dim=(2, 3)) > 0).float()).all()
    assert labels.sum() > 0
    x2, t2, l2 = augment(s.images, s.category_masks, cfg, np.random.default_rng(0))
    assert torch.equal(x, x2) and torch.equal(target, t2) and torch.equal(labels, l2)


def test_auc():
    assert auc(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1])) == 1.0
    assert auc(np.array([0.5, 0.5]), np.array([0, 1])) == 0.5
    assert np.isnan(auc(np.array([0.1, 0.2]), np.array([1, 1])))


def test_focus_weights_the_chosen_categories():
    w = category_weights(ci()).numpy()
    np.testing.assert_allclose(w, np.full(C, 1 / C), rtol=1e-6)  # no focus: the plain mean BCE
    w = category_weights(ci(focus=("face", "food"), focus_weight=4.0)).numpy()
    assert w.sum() == pytest.approx(1.0) and w[CATEGORIES.index("face")] == pytest.approx(4 * w[CATEGORIES.index("body")])
    assert w[CATEGORIES.index("food")] == w[CATEGORIES.index("face")]
    with pytest.raises(BrainITError, match="unknown focus categories"):
        category_weights(ci(focus=("faces",)))
    cfg = ci(focus=("face",), focus_weight=3.0)
    assert VentralConfig.from_json(cfg.to_json()) == cfg


def test_training_reduces_the_loss(library, tmp_path):
    r = train_ventral(tmp_path / "v", ci(steps=40, checkpoint_every=40, lr=4e-3), seed=1, library=library)
    assert r["done"] and r["step"] == 40
    history = load_checkpoint(tmp_path / "v" / "state")[2]["history"]
    assert [h[0] for h in history] == [10, 20, 30, 40]
    assert history[-1][1] < 0.8 * history[0][1], history
    q = read_json(tmp_path / "v" / "quality.json")
    assert set(q["categories"]) == set(CATEGORIES) and q["n"] == 16 and q["steps"] == 40
    assert q["seed"] == HELDOUT_SEED and q["library_version"] == library.version


def test_resume_equals_an_uninterrupted_run(library, tmp_path):
    cfg = ci(steps=6, checkpoint_every=4)
    whole = train_ventral(tmp_path / "a", cfg, seed=2, library=library)
    first = train_ventral(tmp_path / "b", cfg, seed=2, library=library, max_steps=3)
    assert not first["done"] and first["step"] == 3 and "quality" not in first
    lines = []
    second = train_ventral(tmp_path / "b", cfg, seed=2, library=library, log=lines.append)
    assert second["done"] and "continuing from step 3" in lines[0]
    a, b = load_checkpoint(tmp_path / "a" / "state")[0], load_checkpoint(tmp_path / "b" / "state")[0]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert whole["quality"]["categories"] == second["quality"]["categories"]
    # a finished folder is not trained again; its quality is read back
    again = train_ventral(tmp_path / "b", cfg, seed=2, library=library)
    assert again["quality"] == second["quality"]
    # another config, seed or kind of folder is refused with the file named
    with pytest.raises(BrainITError, match="train.json"):
        train_ventral(tmp_path / "b", ci(steps=7), seed=2, library=library)
    with pytest.raises(BrainITError, match="train.json"):
        train_ventral(tmp_path / "b", cfg, seed=3, library=library)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "notes.txt").write_text("mine")
    with pytest.raises(BrainITError, match="notes.txt"):
        train_ventral(tmp_path / "c", cfg, seed=2, library=library)
    with pytest.raises(BrainITError, match="held-out"):
        train_ventral(tmp_path / "d", cfg, seed=HELDOUT_SEED, library=library)


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    net = VentralNet(ci()).eval()
    save_checkpoint(tmp_path / "n", weights(net, half=False), net.config.to_json(), {"kind": "ventral"})
    back = load_ventral(tmp_path / "n")
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        for p, q in zip(net(x), back(x)):
            assert torch.equal(p, q)
    save_checkpoint(tmp_path / "half", weights(net), net.config.to_json(), {"kind": "ventral"})
    np.testing.assert_allclose(ventral_maps(load_ventral(tmp_path / "half"), [np.full((32, 32, 3), 90, np.uint8)]),
                               ventral_maps(net, [np.full((32, 32, 3), 90, np.uint8)]), atol=2e-2)
    save_checkpoint(tmp_path / "other", weights(net), net.config.to_json(), {"kind": "something else"})
    with pytest.raises(CheckpointError, match="other.json"):
        load_ventral(tmp_path / "other")
    with pytest.raises(CheckpointError, match="missing.safetensors"):
        load_ventral(tmp_path / "missing")
    save_checkpoint(tmp_path / "bad", weights(net), {**net.config.to_json(), "depth": 3}, {"kind": "ventral"})
    with pytest.raises(CheckpointError, match="depth"):
        load_ventral(tmp_path / "bad")


def test_command_trains_continues_and_refuses_bad_arguments(fake_library, tmp_path, capsys, monkeypatch):
    root, data = fake_library
    monkeypatch.setenv("BRAINIT_LIBRARY_ROOT", str(root))
    monkeypatch.setenv("BRAINIT_DATA", str(data))
    out = tmp_path / "v"
    assert main(["twin", "train-ventral", "--out", str(out), "--preset", "ci", "--threads", "1"]) == 0
    text = capsys.readouterr().out
    assert "face/person" in text and "IoU@0.5" in text and "wrote" in text
    assert (out / "ventral.safetensors").is_file() and (out / "quality.json").is_file()
    assert main(["twin", "train-ventral", "--out", str(out), "--preset", "ci"]) == 0
    assert "face/person" in capsys.readouterr().out
    refused(capsys, ["twin", "train-ventral", "--out", str(tmp_path / "w"), "--minutes", "0"], "--minutes")
    refused(capsys, ["twin", "train-ventral", "--out", str(out), "--preset", "ci", "--seed", "9"], "train.json")
    refused(capsys, ["twin", "train-ventral", "--out", str(tmp_path / "w"), "--focus", "faces"], "--focus")
    refused(capsys, ["twin", "train-ventral", "--out", str(tmp_path / "w"), "--focus", "face", "--focus-weight", "0"],
            "--focus-weight")
    assert main(["twin", "train-ventral", "--out", str(tmp_path / "f"), "--preset", "ci", "--focus", "face", "food",
                 "--focus-weight", "3"]) == 0
    assert read_json(tmp_path / "f" / "quality.json")["config"]["focus"] == ["face", "food"]


# -- the shipped network (assets/twin/ventral.*) ------------------------------------------------------
TARGETS = ("face", "animal", "food", "vehicle", "word")


def test_the_shipped_network_loads_and_its_recorded_quality_meets_the_floor():
    net = load_ventral()
    demo = VentralConfig.preset("demo")
    assert (net.config.size, net.config.widths, net.config.embed_dim) == (demo.size, demo.widths, demo.embed_dim)
    assert sum(p.numel() for p in net.parameters()) < 2_000_000
    assert (SHIPPED.parent / "ventral.safetensors").stat().st_size < 5_000_000
    q = read_json(SHIPPED.parent / "quality.json")
    assert q["n"] >= 500 and q["seed"] == HELDOUT_SEED
    # floors just under the measured figures (docs/data.md: 0.819 mean after two fine-tunes of the first
    # network, 0.804, the second weighted toward face and food); the issue's target, AUC >= 0.85, is met by
    # word/sign only
    assert q["categories"]["face"]["auc"] >= 0.78 and q["categories"]["food"]["auc"] >= 0.81
    assert q["mean_auc"] >= 0.81
    for cat in TARGETS:
        assert q["categories"][cat]["auc"] >= 0.72, (cat, q["categories"][cat])
    assert q["mean_iou"] >= 0.2
    assert q["config"]["focus"] == ["face", "food"] and q["config"]["focus_weight"] > 1
    assert q["init"]["sha256"] and q["train_seed"] not in (HELDOUT_SEED,)


@pytest.mark.skipif(not REAL, reason="the stimulus library is not installed (see docs/data.md)")
def test_the_shipped_network_reproduces_its_quality_on_held_out_composites():
    library = load_library("/")
    q = read_json(SHIPPED.parent / "quality.json")
    if library.version != q["library_version"]:
        pytest.skip(f"installed library {library.version} is not the one measured ({q['library_version']})")
    again = evaluate_ventral(load_ventral(), library, n=64)
    mean = np.nanmean([again["categories"][c]["auc"] for c in TARGETS])
    assert abs(mean - np.mean([q["categories"][c]["auc"] for c in TARGETS])) <= 0.05, again["categories"]
    check = q["check_64"]
    for cat in CATEGORIES:
        assert abs(again["categories"][cat]["auc"] - check[cat]) <= 0.01, (cat, again["categories"][cat], check[cat])


def test_init_starts_from_other_weights_and_is_recorded(library, tmp_path):
    cfg = ci(steps=4, checkpoint_every=4)
    train_ventral(tmp_path / "a", cfg, seed=1, library=library)
    lines = []
    r = train_ventral(tmp_path / "b", ci(steps=2, checkpoint_every=2, lr=1e-9, warmup=1), seed=2, library=library,
                      init=tmp_path / "a" / "state", log=lines.append)
    assert r["done"] and "starting from" in lines[0]
    a, b = load_checkpoint(tmp_path / "a" / "state")[0], load_checkpoint(tmp_path / "b" / "state")[0]
    for k in a:  # a learning rate of 1e-9 leaves the initial weights (batch-norm statistics move)
        if k.startswith("model/") and "running" not in k and "num_batches" not in k:
            torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=0, msg=k)
    assert r["quality"]["init"]["path"].endswith("state") and len(r["quality"]["init"]["sha256"]) == 64
    with pytest.raises(BrainITError, match="train.json"):  # the same folder with another init is refused
        train_ventral(tmp_path / "b", ci(steps=2, checkpoint_every=2, lr=1e-9, warmup=1), seed=2, library=library)
    with pytest.raises(CheckpointError, match="do not fit"):
        train_ventral(tmp_path / "c", ci(widths=(8, 12, 16, 16, 32)), seed=2, library=library,
                      init=tmp_path / "a" / "ventral")
