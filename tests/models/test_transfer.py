"""Transfer to a new subject: amounts of data, nearest-voxel initialisation, everything else frozen."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.factories import make_data, make_model, make_run_dataset, tiny_config


def test_transfer_trials_follow_session_order(tmp_path):
    from brainit_core.models.transfer import transfer_trials

    ds = make_run_dataset(tmp_path / "d")
    sd = ds.subject("sub03")
    rows = transfer_trials(sd, "all")
    assert np.all(np.isin(sd.image_ids[rows], sd.train_image_ids))
    assert len(rows) == np.isin(sd.image_ids, sd.train_image_ids).sum()
    key = sd.sessions[rows] * 10**6 + rows
    assert np.all(np.diff(key) > 0)  # session order, then trial order
    # 750 trials per hour: 15 min = 187 trials (fewer here: all there are)
    assert len(transfer_trials(sd, 1)) == 12 and np.array_equal(transfer_trials(sd, 1), rows[:12])


def test_budget_split_holds_out_whole_images_of_the_budget(tmp_path):
    from brainit_core.errors import BrainITError
    from brainit_core.models.transfer import budget_split, transfer_trials

    ds = make_run_dataset(tmp_path / "d")
    sd = ds.subject("sub03")
    budget = transfer_trials(sd, "all")
    fit, held = budget_split(sd, budget, "holdout", 0.2, seed=0)
    assert np.array_equal(np.sort(np.r_[fit, held]), np.sort(budget)) and not np.intersect1d(fit, held).size
    held_images = np.unique(sd.image_ids[held])
    assert len(held_images) == 3 and not np.isin(sd.image_ids[fit], held_images).any()  # no repeat trained on
    assert not np.isin(held_images, sd.val_image_ids).any()  # within the budget, never the val split
    assert np.array_equal(budget_split(sd, budget, "holdout", 0.2, seed=0)[1], held)
    fit, held = budget_split(sd, budget, "last")
    assert np.array_equal(fit, budget) and len(held) == 0
    with pytest.raises(BrainITError, match="too small to hold out"):
        budget_split(sd, budget[:3], "holdout")
    with pytest.raises(ValueError, match="transfer_selection"):
        budget_split(sd, budget, "val")


def test_training_only_voxel_embeddings_leaves_everything_else_bit_identical(tmp_path):
    from brainit_core.models.head_training import train_head

    data = make_data()
    cfg = tiny_config(lowlevel_epochs=2, semantic_epochs=2)
    model = make_model(data, cfg)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for head in ("semantic", "lowlevel"):
        emb = model.heads[head].voxel_embeddings("b")
        train_head(model, head, data, cfg, tmp_path, torch.device("cpu"), params=[emb], subjects=["b"],
                   tag=f"transfer-{head}", schedule=False)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"semantic.tokenizer.voxel_embeddings.b", "lowlevel.tokenizer.voxel_embeddings.b"}


def test_a_fixed_schedule_keeps_the_last_epoch_even_when_validation_gets_worse(tmp_path, monkeypatch):
    import json

    from brainit_core.models import head_training

    calls = iter(range(100))
    monkeypatch.setattr(head_training, "validate_head",
                        lambda *a, **k: {"val_loss": 1.0 + next(calls), "val_corr": 0.0})  # worse every epoch
    data = make_data()
    cfg = tiny_config(semantic_epochs=3)
    for keep in ("best", "last"):
        model = make_model(data, cfg)
        head_training.train_head(model, "semantic", data, cfg, tmp_path / keep, torch.device("cpu"), tag="semantic",
                                 schedule=False, keep=keep)
        meta = json.loads((tmp_path / keep / "bit_semantic_best.json").read_text())["meta"]
        assert meta["epoch"] == {"best": 1, "last": 3}[keep]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    from brainit_core.models.training import train_run

    base = tmp_path_factory.mktemp("transfer")
    ds = make_run_dataset(base / "data")
    train_run(ds, preset="ci", out=base / "run", device="cpu")
    return ds, base


def test_transfer_end_to_end(trained_run, monkeypatch):
    from brainit_core.models.run import BrainITRun
    from brainit_core.fileio import read_json
    from brainit_core.models.transfer import transfer_subject

    from brainit_core.models import transfer as transfer_module
    from brainit_core.models.bit import BITConfig

    ds, base = trained_run
    src = BrainITRun.load(base / "run", device="cpu")
    seen = {}
    real_encoder, real_data = transfer_module.train_encoder, transfer_module.build_bit_data

    def spy_encoder(*a, **k):
        seen["encoder"] = k
        return real_encoder(*a, **k)

    def spy_data(*a, **k):
        seen["bit_data"] = data = real_data(*a, **k)
        return data

    monkeypatch.setattr(transfer_module, "train_encoder", spy_encoder)
    monkeypatch.setattr(transfer_module, "build_bit_data", spy_data)
    config = BITConfig.from_dict(read_json(base / "run" / "run.json")["bit_config"])
    assert config.transfer_selection == "last"  # the default; the held-out choice is the one with more to check
    config.transfer_selection = "holdout"
    out = transfer_subject(ds, "sub03", "all", base / "run", base / "run2", device="cpu", bit_config=config)
    run2 = BrainITRun.load(out, device="cpu")
    assert run2.subjects == ["sub01", "sub02", "sub03"]
    rec = read_json(out / "run.json")
    assert rec["transfer"]["subject"] == "sub03" and rec["transfer"]["n_trials"] == 18
    # the epochs are chosen on 3 of the budget's 9 images, never on the subject's val split
    assert rec["transfer"]["selection"] == {"mode": "holdout", "n_fit_trials": 12, "n_holdout_trials": 6}
    sd = ds.subject("sub03")
    held = seen["encoder"]["val_trials"]["sub03"]
    assert seen["encoder"]["keep"] == "best" and not np.isin(seen["encoder"]["trials"]["sub03"], held).any()
    data = seen["bit_data"]
    val_ids = data.features.ids[data.val["sub03"].rows]
    assert np.array_equal(np.sort(val_ids), np.unique(sd.image_ids[held]))
    assert not np.isin(val_ids, sd.val_image_ids).any()
    assert not np.isin(data.features.ids[data.real["sub03"].rows], val_ids).any()
    assert rec["encoder_config"]["backbone"] == "lite1"  # the reference run's, read again for the new subject
    # everything except the new subject's voxel embeddings (and its statistics) is unchanged
    old, new = src.model.state_dict(), run2.model.state_dict()
    for k, v in old.items():
        assert torch.equal(v, new[k]), k
    assert {k for k in new if k not in old} == {
        "semantic.tokenizer.voxel_embeddings.sub03", "lowlevel.tokenizer.voxel_embeddings.sub03",
        "semantic.tokenizer.labels__sub03", "lowlevel.tokenizer.labels__sub03",
        "input_mean__sub03", "input_std__sub03"}
    # clusters come from the nearest reference voxels
    nearest = np.load(out / "transfer_nearest.npz")
    assert np.array_equal(run2.model.cluster_labels("sub03").numpy(), nearest["labels"])
    betas, _ = ds.subject("sub03").averaged("test")
    pred = run2.predict(betas, "sub03")
    assert torch.isfinite(pred.semantic).all()
    # the old subjects decode exactly as before
    b1, _ = ds.subject("sub01").averaged("test")
    assert torch.equal(src.predict(b1, "sub01").semantic, run2.predict(b1, "sub01").semantic)


def test_transfer_lab_bookkeeping(tmp_path, tiny_dataset):
    from brainit_core.data.info import DatasetInfo
    from brainit_core.models import transfer as tr
    from brainit_core.runs import RunDirectory

    assert tr.trials_for(15, 10_000) == 187 and tr.trials_for(60, 10_000) == 750 and tr.trials_for(60, 100) == 100
    assert tr.trials_for("all", 321) == 321
    assert tr.transfer_dir("/x/runs/demo", "twin05", 15, tmp_path) == tmp_path / "runs" / "demo-twin05-15min"
    assert tr.transfer_dir("/x/runs/demo", "twin05", "all", tmp_path).name == "demo-twin05-all"
    assert tr.estimate_minutes(750, 8) > tr.estimate_minutes(187, 8) > 1
    assert tr.estimate_minutes(187, 8, synthetic_per_real=0.5) < tr.estimate_minutes(187, 8)  # fewer samples
    info = DatasetInfo(tiny_dataset.path)  # sub01, sub02; sub02 held out
    assert tr.heldout_candidates(info, ["sub01"]) == ["sub02"]
    assert tr.heldout_candidates(info, []) == ["sub02", "sub01"]
    # the curve: one row per scored amount, flattened scores
    RunDirectory(tr.transfer_dir("/x/runs/demo", "sub02", 60, tmp_path)).save_scores(
        {"subjects": {"sub02": {"brainit": {"semantic": {"two_way": 0.75}}, "ridge": {"semantic": {"two_way": 0.5}}}}})
    assert tr.curve_rows("/x/runs/demo", "sub02", tmp_path) == [
        {"amount": "60 min", "brainit.semantic.two_way": 0.75, "ridge.semantic.two_way": 0.5}]
    assert tr.curve_rows("/x/runs/demo", "sub01", tmp_path) == []


def test_benchmark_curve_rows():
    from brainit_core.models.transfer import benchmark_curve

    res = {"transfer": {"amounts": ["15", "all"], "scores": {"15": {"SSIM": 0.5, "Incep": "unavailable"},
                                                             "all": {"SSIM": 0.7, "Incep": "unavailable"}},
                        "baselines": {"ridge": {"SSIM": 0.6}}}}
    rows, base = benchmark_curve(res)
    assert rows == [{"amount": "15 min", "SSIM": 0.5}, {"amount": "all", "SSIM": 0.7}] and base == {"ridge": {"SSIM": 0.6}}
    assert benchmark_curve({"transfer": {"skipped": "no runs"}}) is None and benchmark_curve(None) is None


def test_transfer_runs_on_a_bundle_slice(trained_run, tmp_path):
    """The shipped bundle's held-out subject (its first hour and a few unlabeled images) is enough for
    the Transfer lab: a transfer to it finishes and decodes the new subject."""
    from brainit_core.bundle import export_dataset_slice
    from brainit_core.models.run import BrainITRun
    from brainit_core.models.transfer import transfer_subject

    ds, base = trained_run
    sliced = export_dataset_slice(ds.path, tmp_path / "slice", n_test=3, n_ood=0, subjects=["sub01", "sub02"],
                                  heldout_minutes=1, n_unlabeled=6)
    out = transfer_subject(sliced, "sub03", 1, base / "run", tmp_path / "run-sliced", device="cpu")
    run = BrainITRun.load(out, device="cpu")
    assert run.subjects == ["sub01", "sub02", "sub03"]
