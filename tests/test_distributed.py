"""Data-parallel training (brainit_core.distributed): shards of a batch, rank-0 writes, and 2-process gloo
jobs under torchrun that must give one process's loss curve, resume after a kill and fail fast."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from brainit_core import distributed
from tests.factories import DDP_WORKER, infonce_batch, run_job, tiny_head_job

# 2 processes vs 1: the same samples and random numbers; only the order of float additions differs
CURVE_RTOL = 1e-5


@pytest.mark.parametrize("n, world, align", [(16, 2, 1), (17, 2, 1), (5, 4, 1), (3, 4, 1), (100, 3, 32), (64, 8, 64)])
def test_shards_split_a_batch_into_contiguous_aligned_parts(n, world, align):
    shards = [distributed.shard_of(n, align, world=world, rank_=r) for r in range(world)]
    assert shards[0].lo == 0 and shards[-1].hi == n
    assert all(a.hi == b.lo for a, b in zip(shards, shards[1:]))
    assert all(s.lo % align == 0 for s in shards)
    assert sum(len(s) for s in shards) == n and sum(s.weight for s in shards) == pytest.approx(1.0)
    whole = max(len(s) for s in shards) - min(len(s) for s in shards)
    assert whole <= align
    x = np.arange(n)
    np.testing.assert_array_equal(np.concatenate([s.take(x) for s in shards]), x)


def test_shard_draws_are_the_whole_batch_draws_sliced():
    shards = [distributed.shard_of(6, world=2, rank_=r) for r in range(2)]
    g = torch.Generator().manual_seed(3)
    full = torch.randn(6, 4, generator=g)
    parts = []
    for s in shards:
        g.manual_seed(3)
        parts.append(s.draw(lambda shape: torch.randn(*shape, generator=g), (len(s), 4)))
    torch.testing.assert_close(torch.cat(parts), full, rtol=0, atol=0)
    loss = torch.tensor(2.0)
    assert float(shards[0].share(loss)) == 1.0


def test_one_process_changes_nothing(tmp_path):
    shard = distributed.shard_of(5)
    assert shard.whole and not distributed.is_distributed() and distributed.is_main()
    x = torch.randn(5, 3, requires_grad=True)
    assert shard.gather(x) is x and shard.share(x) is x and shard.take(x) is x
    p = torch.nn.Parameter(torch.ones(2))
    p.grad = torch.full((2,), 3.0)
    distributed.sync_gradients([p])
    distributed.barrier()
    assert p.grad.tolist() == [3.0, 3.0]
    np.testing.assert_array_equal(distributed.all_reduce_sum([1.5, 2.0]), [1.5, 2.0])
    assert distributed.setup("cpu") == torch.device("cpu")


def test_write_rows_writes_the_bytes_of_np_save(tmp_path):
    arr = np.random.default_rng(0).standard_normal((70, 5)).astype(np.float16)
    calls = []

    def rows(lo, hi):
        calls.append((lo, hi))
        return arr[lo:hi]

    distributed.write_rows(tmp_path / "a.npy", 70, (5,), np.float16, rows, align=32)
    np.save(tmp_path / "b.npy", arr)
    assert (tmp_path / "a.npy").read_bytes() == (tmp_path / "b.npy").read_bytes()
    assert calls == [(0, 70)] and not list(tmp_path.glob("*.tmp*"))


def test_only_rank_zero_writes(tmp_path, monkeypatch):
    from brainit_core.checkpoint import save_checkpoint
    from brainit_core.fileio import save_npy, save_npz, write_json
    from brainit_core.reconstruction.train_state import LossLog

    def write_all(d):
        write_json(d / "a.json", {"x": 1})
        save_npy(d / "b.npy", np.zeros(2))
        save_npz(d / "c.npz", x=np.zeros(2))
        save_checkpoint(d / "d", {"w": torch.zeros(2)}, {})
        LossLog(d / "loss.csv").write(1, loss=0.5)

    monkeypatch.setenv("RANK", "1")  # what torchrun sets in the second process
    assert not distributed.is_main()
    write_all(tmp_path / "rank1")
    assert not [p for p in (tmp_path / "rank1").rglob("*") if p.is_file()]
    monkeypatch.setenv("RANK", "0")
    write_all(tmp_path / "rank0")
    assert {p.name for p in (tmp_path / "rank0").iterdir()} == {
        "a.json", "b.npy", "c.npz", "d.safetensors", "d.json", "loss.csv"}


def test_an_error_names_the_rank(tmp_path, monkeypatch, capsys):
    from brainit_core.cli import main

    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["evaluate-features", "--run", str(tmp_path), "--data", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("rank 1: error: ")


def _curves(path):
    return json.loads(path.read_text())


def _same_curves(a, b, rtol=CURVE_RTOL):
    assert [c["epoch"] for c in a] == [c["epoch"] for c in b]
    for x, y in zip(a, b):
        for key in ("train_loss", "val_loss", "val_corr"):
            if x[key] is None:
                assert y[key] is None
            else:
                assert y[key] == pytest.approx(x[key], rel=rtol, abs=1e-7), (x["epoch"], key)


def _one_process(head, out, epochs=3):
    """The worker's job in this process, with one torch thread as in the job."""
    from brainit_core.models.head_training import train_head

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        data, cfg, model = tiny_head_job(epochs)
        return train_head(model, head, data, cfg, out, torch.device("cpu"))
    finally:
        torch.set_num_threads(threads)


def test_the_infonce_split_by_rows_gives_one_process_loss_and_gradients(tmp_path):
    """Each process computes its rows of the logits against the gathered batch: the shares and their
    gradients sum to one process's loss and gradients (float32; only the order of additions differs)."""
    from brainit_core.models.losses import lowlevel_loss

    job = run_job([DDP_WORKER, "infonce", tmp_path])
    assert job.returncode == 0, job.output[-3000:]
    ranks = [np.load(tmp_path / f"rank{r}.npz") for r in range(2)]
    assert [int(r["lo"]) for r in ranks] == [0, 2]  # 2 + 3 samples: uneven shards, padded gathers
    preds, targets, kw = infonce_batch()
    leaves = [x.clone().requires_grad_(True) for x in preds + targets]
    loss, parts = lowlevel_loss(leaves[:len(preds)], leaves[len(preds):], **kw)
    loss.backward()
    assert sum(float(r["loss"]) for r in ranks) == pytest.approx(float(loss.detach()), rel=1e-6)
    assert sum(float(r["acc"]) for r in ranks) == pytest.approx(parts["acc"], abs=1e-6)
    for i, leaf in enumerate(leaves):  # each process holds its own samples' gradients
        grad = np.concatenate([r[f"grad{i}"] for r in ranks])
        np.testing.assert_allclose(grad, leaf.grad.numpy(), rtol=1e-5, atol=1e-7, err_msg=f"tensor {i}")


@pytest.mark.slow
def test_two_processes_give_one_process_loss_curve_and_weights_lowlevel_head(tmp_path):
    """The low-level head: its InfoNCE runs over the rows gathered from both processes."""
    two = run_job([DDP_WORKER, "head", tmp_path / "two", "lowlevel"])
    assert two.returncode == 0, two.output[-3000:]
    _same_curves(_one_process("lowlevel", tmp_path / "one"), _curves(tmp_path / "two" / "curves.json"))
    from brainit_core.checkpoint import load_checkpoint, read_checkpoint_record

    for name in ("bit_lowlevel_best", "bit_lowlevel_state"):  # the same checkpoint format, the same weights
        t1, t2 = load_checkpoint(tmp_path / "one" / name)[0], load_checkpoint(tmp_path / "two" / name)[0]
        assert set(t1) == set(t2)
        for k in t1:
            torch.testing.assert_close(t2[k], t1[k], rtol=1e-4, atol=1e-5, msg=k)
        r1, r2 = read_checkpoint_record(tmp_path / "one" / name), read_checkpoint_record(tmp_path / "two" / name)
        assert set(r1) == set(r2) and set(r1["meta"]) == set(r2["meta"]) and r1["config"] == r2["config"]


def test_a_killed_two_process_run_resumes(tmp_path):
    out = tmp_path / "run"
    state = out / "bit_semantic_state.json"

    def mid_run():  # the state of epoch 1 is on disk, epoch 2 is running
        return state.exists() and json.loads(state.read_text())["meta"]["epoch"] >= 1

    job = [DDP_WORKER, "head", out, "semantic", 5]
    killed = run_job(job, kill_when=mid_run)
    assert killed.killed, killed.output[-3000:]
    done_before = json.loads(state.read_text())["meta"]["epoch"]
    assert 1 <= done_before < 5
    resumed = run_job(job)
    assert resumed.returncode == 0, resumed.output[-3000:]
    assert f"semantic: resuming after epoch {done_before}" in resumed.output
    _same_curves(_one_process("semantic", tmp_path / "one", epochs=5), _curves(out / "curves.json"))


def test_a_crashing_rank_ends_the_job_with_its_error(tmp_path):
    job = run_job([DDP_WORKER, "crash", tmp_path / "run", "semantic"], timeout=120)
    assert job.returncode != 0 and job.seconds < 120
    root_cause = job.output.split("Root Cause (first observed failure)")[-1]  # torchrun's summary
    assert "rank      : 1" in root_cause and "RuntimeError: injected failure on rank 1" in root_cause, job.output[-3000:]


@pytest.mark.slow
def test_a_stalled_rank_times_out_instead_of_hanging(tmp_path):
    job = run_job([DDP_WORKER, "hang", tmp_path / "run", "semantic"], timeout=150,
                  env={"BRAINIT_DIST_TIMEOUT_S": "8"})
    assert job.returncode != 0
    assert "timed out" in job.output.lower() or "timeout" in job.output.lower(), job.output[-3000:]

