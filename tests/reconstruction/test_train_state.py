"""StepLoop: an interrupted and resumed training equals an uninterrupted one, EMA and loss log included."""
from __future__ import annotations

import copy

import torch

from brainit_core.reconstruction.train_state import StepLoop


def _train(state_dir, max_seconds=None, ema=True):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    avg = copy.deepcopy(model).requires_grad_(False) if ema else None
    opt = torch.optim.AdamW(model.parameters(), lr=0.05)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 3))
    loop = StepLoop("toy", model, opt, sched, state_dir, "toy", steps=6, checkpoint_every=2, record={"k": 1},
                    ema=avg, ema_decay=0.9)
    start = loop.resume("cpu")
    x = torch.linspace(-1, 1, 12).reshape(4, 3)

    def loss_fn(step):  # depends on the step only, so a resumed run sees the same data
        loss = (model(x * (1 + step)) - step).pow(2).mean()
        return loss, {"mse": loss.item()}

    finished = loop.run(start, loss_fn, max_seconds)
    return model, avg, finished, start


def test_resumed_training_equals_uninterrupted(tmp_path):
    straight, straight_ema, done, _ = _train(tmp_path / "a")
    assert done
    _, _, done, _ = _train(tmp_path / "b", max_seconds=0.0)  # stops after the first step, state saved
    assert not done
    resumed, resumed_ema, done, start = _train(tmp_path / "b")
    assert done and start == 1
    for a, b in zip(straight.parameters(), resumed.parameters()):
        assert torch.allclose(a, b, atol=1e-7)
    for a, b in zip(straight_ema.parameters(), resumed_ema.parameters()):
        assert torch.allclose(a, b, atol=1e-7)
    rows = (tmp_path / "b" / "toy_loss.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3", "4", "5", "6"]
    assert (tmp_path / "b" / "toy_loss.png").exists()


def test_a_fresh_start_drops_an_old_curve(tmp_path):
    (tmp_path / "toy_loss.csv").write_text("step,seconds,mse\n1,0.1,9.0\n2,0.2,8.0\n")
    _, _, done, start = _train(tmp_path, ema=False)
    rows = (tmp_path / "toy_loss.csv").read_text().strip().splitlines()
    assert done and start == 0 and len(rows) == 7 and rows[1].split(",")[2] != "9.0"


def test_a_nonfinite_loss_stops_and_keeps_the_last_good_state(tmp_path):
    """Probe: a NaN loss was optimised (and checkpointed) silently; now training stops before the step, the
    state on disk stays the last good checkpoint, and a resumed run after the fix equals a straight one."""
    import pytest

    from brainit_core.errors import NonFiniteLossError

    straight, _, _, _ = _train(tmp_path / "a", ema=False)
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.05)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 3))
    loop = StepLoop("toy", model, opt, sched, tmp_path / "b", "toy", steps=6, checkpoint_every=2, record={"k": 1})
    x = torch.linspace(-1, 1, 12).reshape(4, 3)
    poisoned = x.clone()
    poisoned[0, 0] = float("nan")

    def loss_fn(step):  # bad data from step 3 on
        loss = (model((poisoned if step >= 3 else x) * (1 + step)) - step).pow(2).mean()
        return loss, {"mse": loss.item()}

    with pytest.raises(NonFiniteLossError, match=r"toy, step 4: the loss is nan; stopped; the last good state is "
                                                 r"kept \(toy_state at step 2\).*--resume"):
        loop.run(loop.resume("cpu"), loss_fn)
    from brainit_core.checkpoint import load_checkpoint

    assert load_checkpoint(tmp_path / "b" / "toy_state")[2]["step"] == 2  # the last good state, untouched
    state = tmp_path / "b" / "toy_state.safetensors"
    before = state.read_bytes()
    assert all(torch.isfinite(p).all() for p in model.parameters())
    resumed, _, done, start = _train(tmp_path / "b", ema=False)  # the data fixed: continues from step 2
    assert done and start == 2 and before != state.read_bytes()
    for a, b in zip(straight.parameters(), resumed.parameters()):
        assert torch.allclose(a, b, atol=1e-7)


def test_a_nonfinite_gradient_stops_before_the_step(tmp_path):
    import pytest

    from brainit_core.errors import NonFiniteLossError

    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    loop = StepLoop("toy", model, opt, sched, tmp_path, "toy", steps=3, checkpoint_every=1, record={})
    weights = [p.detach().clone() for p in model.parameters()]

    def loss_fn(step):  # finite loss, infinite gradient
        return (model.weight.sum() * 0 + torch.sqrt(model.bias.abs().sum() * 0)), {"x": 0.0}

    with pytest.raises(NonFiniteLossError, match=r"toy, step 1 \(gradient norm\).*no step was saved yet"):
        loop.run(loop.resume("cpu"), loss_fn)
    assert all(torch.equal(a, b) for a, b in zip(weights, model.parameters())) and not loop.state.exists()
