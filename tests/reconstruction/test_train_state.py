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
