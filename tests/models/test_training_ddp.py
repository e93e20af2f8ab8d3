"""``torchrun --nproc-per-node 2 -m brainit_core train``: the loss curves, checkpoints and features of one
process, written by rank 0 only; the run loads, predicts and reconstructs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from brainit_core.checkpoint import load_checkpoint, read_checkpoint_record
from brainit_core.fileio import read_json
from tests.factories import build_tiny_generators, make_run_dataset, run_job

CURVE_RTOL = 1e-5  # the same samples and random numbers; only the order of float additions differs


def _train(data, out, nproc):
    job = run_job(["-m", "brainit_core", "train", "--data", data, "--preset", "ci", "--out", out, "--device", "cpu"],
                  nproc=nproc)
    assert job.returncode == 0, job.output[-3000:]
    return job


def test_train_on_two_processes_matches_one_process(tmp_path):
    from brainit_core.data import load_dataset
    from brainit_core.features import extract_features, get_feature_space
    from brainit_core.models.run import BrainITRun
    from brainit_core.models.training import train_run
    from brainit_core.reconstruction.pipeline import BrainITPipeline

    # two copies of the dataset: each run fills its own feature cache (the 2-process one in shards)
    one_data, two_data = make_run_dataset(tmp_path / "d1").path, make_run_dataset(tmp_path / "d2").path
    two = _train(two_data, tmp_path / "two", 2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one process with one thread, as each of the two
    try:
        train_run(one_data, preset="ci", out=tmp_path / "one", device="cpu")
    finally:
        torch.set_num_threads(threads)
    assert two.output.count("run written to") == 1  # rank 0 reports, rank 1 stays silent
    one_dir, two_dir = tmp_path / "one", tmp_path / "two"

    # the same files, records and tensors
    assert sorted(p.relative_to(one_dir) for p in one_dir.rglob("*")) == \
        sorted(p.relative_to(two_dir) for p in two_dir.rglob("*"))
    rec1, rec2 = read_json(one_dir / "run.json"), read_json(two_dir / "run.json")
    assert rec1["stages"].keys() == rec2["stages"].keys() and rec1["bit_config"] == rec2["bit_config"]
    assert rec1["stages"]["v2c"]["empty_clusters"] == rec2["stages"]["v2c"]["empty_clusters"]
    b1, b2 = load_checkpoint(one_dir / "bit")[0], load_checkpoint(two_dir / "bit")[0]
    assert {k: v.shape for k, v in b1.items()} == {k: v.shape for k, v in b2.items()}
    assert read_checkpoint_record(one_dir / "bit")["config"]["bit"] == read_checkpoint_record(two_dir / "bit")["config"]["bit"]

    # the same curves: encoder, then both BIT heads
    for e1, e2 in zip(read_json(one_dir / "encoder" / "curves.json"), read_json(two_dir / "encoder" / "curves.json"),
                      strict=True):
        assert e2["train_loss"] == pytest.approx(e1["train_loss"], rel=CURVE_RTOL)
        assert e2["val_median_r"] == pytest.approx(e1["val_median_r"], abs=1e-4)
    c1, c2 = read_json(one_dir / "curves.json"), read_json(two_dir / "curves.json")
    for head in ("semantic", "lowlevel"):
        assert [c["epoch"] for c in c1[head]] == [c["epoch"] for c in c2[head]]
        for x, y in zip(c1[head], c2[head]):
            for key in ("train_loss", "val_loss", "val_corr"):
                assert (x[key] is None and y[key] is None) or y[key] == pytest.approx(x[key], rel=CURVE_RTOL, abs=1e-7)
    # the synthetic fMRI each process predicted a shard of
    np.testing.assert_allclose(np.load(two_dir / "synthetic" / "sub01.npy").astype(np.float32),
                               np.load(one_dir / "synthetic" / "sub01.npy").astype(np.float32), atol=2e-3)

    # the features the two processes wrote into the cache, in shards, are the single process's
    space = get_feature_space("lite0", preset="ci", device=torch.device("cpu"))
    ds1, ds2 = load_dataset(one_data), load_dataset(two_data)
    f1, f2 = extract_features(ds1, ds1.image_ids, space), extract_features(ds2, ds2.image_ids, space)
    np.testing.assert_array_equal(f1.ids, f2.ids)
    np.testing.assert_allclose(f2.semantic.astype(np.float32), f1.semantic.astype(np.float32), atol=1e-3)
    for a, b in zip(f1.lowlevel, f2.lowlevel):
        np.testing.assert_allclose(b.astype(np.float32), a.astype(np.float32), atol=1e-3)

    # the 2-process run loads, predicts and reconstructs
    run = BrainITRun.load(two_dir, device="cpu")
    betas, _ = ds2.subject("sub01").averaged("test")
    pred = run.predict(betas[:2], "sub01")
    assert pred.semantic.shape[0] == 2 and torch.isfinite(pred.semantic).all()
    out = BrainITPipeline(run, build_tiny_generators(run.space))(betas[:2], "sub01", branches=("low_level",))
    assert out.low_level.shape[0] == 2 and out.low_level.dtype == np.uint8


@pytest.mark.slow
def test_transfer_on_two_processes_matches_one_process(tmp_path):
    from brainit_core.models.training import train_run
    from brainit_core.models.transfer import transfer_subject

    data = make_run_dataset(tmp_path / "d").path
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train_run(data, preset="ci", out=tmp_path / "run", device="cpu")
        transfer_subject(data, "sub03", "all", tmp_path / "run", tmp_path / "one", device="cpu")
    finally:
        torch.set_num_threads(threads)
    job = run_job(["-m", "brainit_core", "transfer", "--data", data, "--subject", "sub03", "--minutes", "all",
                   "--from", tmp_path / "run", "--out", tmp_path / "two", "--device", "cpu"])
    assert job.returncode == 0, job.output[-3000:]
    c1, c2 = read_json(tmp_path / "one" / "curves.json"), read_json(tmp_path / "two" / "curves.json")
    assert set(c1) == set(c2) == {"semantic", "lowlevel"}
    for head in c1:
        for x, y in zip(c1[head], c2[head], strict=True):
            assert (x["train_loss"] is None and y["train_loss"] is None) or \
                y["train_loss"] == pytest.approx(x["train_loss"], rel=CURVE_RTOL)
            assert y["val_loss"] == pytest.approx(x["val_loss"], rel=CURVE_RTOL)
    assert read_json(tmp_path / "two" / "run.json")["stages"].keys() == read_json(tmp_path / "one" / "run.json")["stages"].keys()
