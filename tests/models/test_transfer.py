"""Transfer to a new subject: amounts of data, nearest-voxel initialisation, everything else frozen."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.models.test_training import make_data, make_model, make_run_dataset, tiny_config


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
