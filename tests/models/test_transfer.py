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


@pytest.fixture
def trained_run(tmp_path_factory):
    from brainit_core.models.training import train_run

    base = tmp_path_factory.mktemp("transfer")
    ds = make_run_dataset(base / "data")
    train_run(ds, preset="ci", out=base / "run", device="cpu")
    return ds, base


def test_transfer_end_to_end(trained_run):
    from brainit_core.models.run import BrainITRun
    from brainit_core.fileio import read_json
    from brainit_core.models.transfer import transfer_subject

    ds, base = trained_run
    src = BrainITRun.load(base / "run", device="cpu")
    out = transfer_subject(ds, "sub03", "all", base / "run", base / "run2", device="cpu")
    run2 = BrainITRun.load(out, device="cpu")
    assert run2.subjects == ["sub01", "sub02", "sub03"]
    rec = read_json(out / "run.json")
    assert rec["transfer"]["subject"] == "sub03" and rec["transfer"]["n_trials"] == 18
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
