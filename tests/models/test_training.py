"""BIT training loop: loss goes down, checkpoints round-trip, a killed run resumes exactly."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from brainit_core.models.bit import BITConfig
from brainit_core.models.bit_data import epoch_samples, subject_training_betas
from brainit_core.models.bit_io import load_bit, save_bit
from brainit_core.models.head_training import train_head, warmup_factor
from tests.factories import SUBJECTS, make_data, make_model, make_run_dataset, tiny_config


@pytest.mark.parametrize("head", ["semantic", "lowlevel"])
def test_training_decreases_loss(tmp_path, head):
    data = make_data()
    cfg = tiny_config(semantic_epochs=8, lowlevel_epochs=12, synthetic_per_real=0.5, lr=1e-2)
    model = make_model(data, cfg)
    curves = train_head(model, head, data, cfg, tmp_path, torch.device("cpu"))
    train = [c["train_loss"] for c in curves[1:]]
    assert curves[0]["epoch"] == 0 and len(curves) == 1 + (8 if head == "semantic" else 12)
    assert train[-1] < 0.8 * train[0]
    assert max(c["val_corr"] for c in curves) > curves[0]["val_corr"] + 0.2
    assert min(c["val_loss"] for c in curves[1:]) < curves[0]["val_loss"]
    assert (tmp_path / f"bit_{head}_best.safetensors").exists()


def test_checkpoint_round_trip_gives_identical_predictions(tmp_path):
    data = make_data()
    cfg = tiny_config(semantic_epochs=1)
    model = make_model(data, cfg)
    train_head(model, "semantic", data, cfg, tmp_path, torch.device("cpu"))
    model.eval()
    save_bit(tmp_path / "bit", model, {"space": {"name": "test", "preset": "ci"}})
    loaded, cfg_dict, sha = load_bit(tmp_path / "bit")
    assert cfg_dict["bit"]["n_clusters"] == cfg.n_clusters and len(sha) == 64
    x = torch.from_numpy(data.val["a"].betas)
    p0, p1 = model.predict(x, "a", return_attention=True), loaded.predict(x, "a", return_attention=True)
    assert torch.equal(p0.semantic, p1.semantic)
    assert all(torch.equal(a, b) for a, b in zip(p0.lowlevel, p1.lowlevel))
    assert all(torch.equal(p0.tokenizer_attention[h], p1.tokenizer_attention[h]) for h in ("semantic", "lowlevel"))
    assert torch.equal(p0.cluster_of_voxel, p1.cluster_of_voxel)


def test_resume_after_kill_equals_uninterrupted_run(tmp_path):
    data = make_data()
    cfg = tiny_config(lowlevel_epochs=3, warmup_epochs=2)
    dev = torch.device("cpu")
    full = make_model(data, cfg)
    curves_full = train_head(full, "lowlevel", data, cfg, tmp_path / "full", dev)
    # "killed" after epoch 2: a new process builds a fresh model and resumes from the state file
    part = make_model(data, cfg)
    train_head(part, "lowlevel", data, cfg, tmp_path / "part", dev, epochs=2)
    resumed = make_model(data, cfg, seed=123)  # different init: everything must come from the state
    curves_res = train_head(resumed, "lowlevel", data, cfg, tmp_path / "part", dev)
    assert [c["epoch"] for c in curves_res] == [0, 1, 2, 3]
    assert curves_res[-1]["train_loss"] == pytest.approx(curves_full[-1]["train_loss"], rel=1e-5)
    res = resumed.state_dict()
    for k, a in full.state_dict().items():
        if k.startswith("lowlevel."):  # the state file holds the trained head
            torch.testing.assert_close(a, res[k], atol=1e-6, rtol=1e-5, msg=k)


def test_epoch_samples_mix_real_and_synthetic():
    data = make_data()
    rng = np.random.default_rng(0)
    s = epoch_samples(data, 1.5, rng)
    n_real = sum(len(p) for p in data.real.values())
    assert sum(x[0] == "real" for x in s) == n_real
    assert sum(x[0] == "synthetic" for x in s) == round(1.5 * n_real)
    assert {x[1] for x in s if x[0] == "synthetic"} == set(SUBJECTS)


def test_warmup_schedule_is_official_cubic():
    assert warmup_factor(0, 15) == pytest.approx(1e-3)
    assert warmup_factor(15, 15) == 1.0
    assert warmup_factor(5, 15) == pytest.approx(1e-3 + (1 - 1e-3) * (1 / 27))


def test_subject_training_betas_average_and_single(tiny_dataset):
    sd = tiny_dataset.subject("sub01")
    avg, ids = subject_training_betas(sd, "averaged")
    ref, ref_ids = sd.average_trials(np.unique(sd.train_image_ids))
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_allclose(avg, ref, atol=1e-6)
    single, sids = subject_training_betas(sd, "single")
    assert len(single) == 2 * len(ids) and set(sids) == set(ids)


# --------------------------------------------------------------------------------------------
# the whole pipeline on a tiny dataset
# --------------------------------------------------------------------------------------------
@pytest.fixture
def run_dataset(tmp_path):
    return make_run_dataset(tmp_path / "data")


def test_train_run_end_to_end_and_resume(run_dataset, tmp_path, caplog):
    from brainit_core.models.run import BrainITRun
    from brainit_core.fileio import read_json
    from brainit_core.models.training import train_run

    out = tmp_path / "run"
    with caplog.at_level(logging.INFO, logger="brainit_core.models.training"):
        train_run(run_dataset, preset="ci", out=out, device="cpu")
    assert any("memory estimate" in r.getMessage() for r in caplog.records)
    rec = read_json(out / "run.json")
    assert set(rec["stages"]) == {"features", "encoder", "v2c", "synthetic", "bit-semantic", "bit-lowlevel", "bit"}
    for f in ("bit.safetensors", "bit.json", "curves.json", "curves.png", "synthetic/sub01.npy"):
        assert (out / f).exists(), f
    curves = read_json(out / "curves.json")
    assert len(curves["semantic"]) == 1 + BITConfig.preset("ci").semantic_epochs
    bit_json = read_json(out / "bit.json")
    assert bit_json["config"]["bit"] == rec["bit_config"] and len(bit_json["sha256"]) == 64

    run = BrainITRun.load(out, device="cpu")
    assert run.subjects == ["sub01", "sub02"]
    # the encoder reads its own backbone (Lite1, cached beside the decoder's Lite0), named in run.json
    assert rec["encoder_config"]["backbone"] == "lite1" and rec["stages"]["encoder"]["backbone"] == "lite1"
    assert run.encoder_backbone.name == "lite1" and run.encoder.token_specs[-1] == (16, 320)
    assert len(list((run_dataset.path / "features").glob("encoder-lite1*.h5"))) == 1
    betas, _ = run_dataset.subject("sub01").averaged("test")
    pred = run.predict(betas, "sub01", return_attention=True)
    sem = run.space.semantic_spec
    assert pred.semantic.shape == (len(betas), sem.n_tokens, sem.dim)
    assert [tuple(p.shape[1:]) for p in pred.lowlevel] == [(s.dim, *s.grid) for s in run.space.lowlevel_specs]
    assert pred.tokenizer_attention["semantic"].shape == pred.tokenizer_attention["lowlevel"].shape == betas.shape
    assert pred.cross_attention["semantic"].shape == (len(betas), sem.n_tokens, run.model.config.n_clusters)
    # features are in feature units: the mean prediction is near the training feature mean
    m, _ = run.model.target_stats("semantic")
    assert torch.allclose(pred.semantic.mean((0, 1)), m, atol=float(run.model.target_stats("semantic")[1].max()) * 3)

    # resuming a finished run redoes nothing and gives the same checkpoint
    sha = run.checkpoint_sha256
    train_run(run_dataset, preset="ci", out=out, device="cpu", resume=True)
    assert BrainITRun.load(out, device="cpu").checkpoint_sha256 == sha
    assert read_json(out / "run.json")["stages"]["bit-semantic"] == rec["stages"]["bit-semantic"]

    # more low-level epochs: that head continues from its last state, the semantic head is untouched
    from brainit_core.checkpoint import load_checkpoint
    from brainit_core.errors import BrainITError

    n_low = rec["bit_config"]["lowlevel_epochs"]
    sem_best = load_checkpoint(out / "bit_semantic_best", device="cpu")[0]
    train_run(run_dataset, preset="ci", out=out, device="cpu", resume=True, head_epochs={"lowlevel": n_low + 1})
    rec2 = read_json(out / "run.json")
    assert rec2["bit_config"]["lowlevel_epochs"] == n_low + 1 and set(rec2["stages"]) == set(rec["stages"])
    assert rec2["extended"]["lowlevel"]["from_epochs"] == n_low
    # the run's total time counts the head's first training as well as its extension
    earlier = rec2["extended"]["lowlevel"]["earlier_seconds"]
    assert earlier == rec["stages"]["bit-lowlevel"]["seconds"] > 0
    assert rec2["stages"]["bit"]["total_seconds"] == pytest.approx(
        sum(v["seconds"] for k, v in rec2["stages"].items() if k != "bit") + earlier, abs=0.02)
    low = read_json(out / "curves.json")["lowlevel"]
    assert [c["epoch"] for c in low] == list(range(n_low + 2))  # epochs 0..n_low kept, one more appended
    assert low[:n_low + 1] == curves["lowlevel"]
    for k, v in load_checkpoint(out / "bit_semantic_best", device="cpu")[0].items():
        assert torch.equal(v, sem_best[k]), k
    assert read_json(out / "bit.json")["config"]["bit"]["lowlevel_epochs"] == n_low + 1  # the final checkpoint is rewritten
    with pytest.raises(BrainITError, match="fewer"):
        train_run(run_dataset, preset="ci", out=out, device="cpu", resume=True, head_epochs={"lowlevel": 1})


def test_train_run_refuses_existing_dir_without_resume(run_dataset, tmp_path):
    from brainit_core.errors import BrainITError
    from brainit_core.models.training import train_run

    out = tmp_path / "run"
    out.mkdir()
    (out / "something").write_text("x")
    with pytest.raises(BrainITError, match="--resume"):
        train_run(run_dataset, preset="ci", out=out, device="cpu", resume=False)


def test_cli_train_then_evaluate_features(run_dataset, tmp_path, capsys):
    from brainit_core.cli import main
    from brainit_core.fileio import read_json

    out = tmp_path / "cli-run"
    assert main(["train", "--data", str(run_dataset.path), "--preset", "ci", "--out", str(out), "--device", "cpu"]) == 0
    assert main(["train", "--data", str(run_dataset.path), "--preset", "ci", "--out", str(out), "--device", "cpu"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["evaluate-features", "--run", str(out), "--data", str(run_dataset.path), "--device", "cpu"]) == 0
    res = read_json(out / "eval_features.json")
    for model in ("brainit", "ridge"):
        for block in ("semantic", "lowlevel", "low0"):
            sc = res["mean"][model][block]
            assert -1 <= sc["token_r"] <= 1 and 0 <= sc["two_way"] <= 1
    assert "| brainit | semantic |" in capsys.readouterr().out


def test_train_and_transfer_with_the_fullsize_feature_space(run_dataset, tmp_path):
    """The official targets (bigG tokens + the 5-layer VGG16-BN tokenisation), as tiny random networks
    of the same classes, go through every stage: features, encoder, V2C, both BIT heads, loading,
    prediction in feature units, and transfer to the held-out subject."""
    from brainit_core.models.run import BrainITRun
    from brainit_core.fileio import read_json
    from brainit_core.models.training import train_run
    from brainit_core.models.transfer import transfer_subject

    out = tmp_path / "run-full"
    train_run(run_dataset, preset="ci", out=out, device="cpu", space_name="bigg-vgg16bn")
    assert read_json(out / "run.json")["space"] == {"name": "bigg-vgg16bn", "preset": "ci"}
    run = BrainITRun.load(out, device="cpu")
    assert run.space.name == "bigg-vgg16bn" and len(run.space.lowlevel_specs) == 5
    betas, _ = run_dataset.subject("sub01").averaged("test")
    pred = run.predict(betas, "sub01", return_attention=True)
    sem = run.space.semantic_spec
    assert pred.semantic.shape == (len(betas), sem.n_tokens, sem.dim)
    assert [tuple(p.shape[1:]) for p in pred.lowlevel] == [(s.dim, *s.grid) for s in run.space.lowlevel_specs]
    assert all(torch.isfinite(p).all() for p in [pred.semantic, *pred.lowlevel])
    assert pred.cross_attention["lowlevel"].shape == (len(betas), sum(s.n_tokens for s in run.space.lowlevel_specs),
                                                      run.model.config.n_clusters)
    new = transfer_subject(run_dataset, "sub03", "all", out, tmp_path / "run-full-sub03", device="cpu")
    run2 = BrainITRun.load(new, device="cpu")
    assert run2.space.name == "bigg-vgg16bn" and run2.subjects == ["sub01", "sub02", "sub03"]
    b3, _ = run_dataset.subject("sub03").averaged("test")
    assert torch.isfinite(run2.predict(b3, "sub03").lowlevel[0]).all()


def test_nonfinite_loss_stops_and_resume_after_the_fix_continues(tmp_path):
    """Probe: NaN betas trained a NaN head with every epoch logging "train nan val nan"; now training
    stops at the first non-finite loss, the state and best checkpoints of the last good epoch stay as
    they were, and resuming with the data fixed continues from that epoch."""
    from brainit_core.errors import NonFiniteLossError

    data = make_data()
    cfg = tiny_config(semantic_epochs=3)
    dev = torch.device("cpu")
    straight = train_head(make_model(data, cfg), "semantic", data, cfg, tmp_path / "straight", dev)
    out = tmp_path / "run"
    train_head(make_model(data, cfg), "semantic", data, cfg, out, dev, epochs=2)
    files = {p.name: p.read_bytes() for p in out.iterdir()}
    good = data.real["a"].betas.copy()
    data.real["a"].betas[4, 2] = np.nan
    with pytest.raises(NonFiniteLossError, match=r"BIT semantic, epoch 3, batch \d+: the loss is nan; stopped; the "
                                                 r"last good state is kept \(bit_semantic_state after epoch 2"):
        train_head(make_model(data, cfg), "semantic", data, cfg, out, dev)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == files
    data.real["a"].betas[:] = good
    curves = train_head(make_model(data, cfg, seed=5), "semantic", data, cfg, out, dev)
    assert [c["epoch"] for c in curves] == [0, 1, 2, 3]
    assert curves[-1]["val_loss"] == pytest.approx(straight[-1]["val_loss"], rel=1e-5)


def test_nonfinite_validation_loss_saves_nothing(tmp_path):
    from brainit_core.errors import NonFiniteLossError

    data = make_data()
    cfg = tiny_config(semantic_epochs=1)
    data.val["b"].betas[0, 0] = np.inf
    with pytest.raises(NonFiniteLossError, match="validation: the loss is nan.*no epoch was saved yet"):
        train_head(make_model(data, cfg), "semantic", data, cfg, tmp_path, torch.device("cpu"))
    assert not list(tmp_path.iterdir())


def test_cli_train_on_nan_betas_exits_with_the_file_and_resumes_after_the_fix(tmp_path, capsys):
    """Probe: ``train`` on a dataset whose betas hold NaN exited 0 with a NaN model; now it exits 2 naming
    the subject file, and ``--resume`` once the file is fixed trains the run to the end."""
    import h5py

    from brainit_core.cli import main
    from brainit_core.runs import RunDirectory

    ds = make_run_dataset(tmp_path / "d")
    path = ds.path / "subjects" / "sub02.h5"
    with h5py.File(path, "a") as f:
        good = f["betas"][()]
        f["betas"][5, :4] = np.nan
    args = ["train", "--data", str(ds.path), "--preset", "ci", "--out", str(tmp_path / "run"), "--device", "cpu"]
    assert main(args) == 2
    assert "sub02.h5: subject 'sub02' has 4 NaN or inf beta values" in capsys.readouterr().err
    with h5py.File(path, "a") as f:
        f["betas"][...] = good
    assert main(args + ["--resume"]) == 0
    assert RunDirectory(tmp_path / "run").is_complete
