"""One optimiser-state format for every training loop; states saved in the older formats still resume."""
from __future__ import annotations

import torch

from brainit_core.checkpoint import load_checkpoint, optimizer_state, restore_optimizer, save_checkpoint


def _trained_adamw(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.8, 0.95))
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(5, 4)).pow(2).mean().backward()
        opt.step()
    return model, opt


def _same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    for pid in sa["state"]:
        for k, v in sa["state"][pid].items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(sb["state"][pid][k])), (pid, k)


def test_optimizer_state_round_trip_through_a_checkpoint(tmp_path):
    model, opt = _trained_adamw()
    tensors, meta = optimizer_state(opt)
    assert all(k.startswith("opt.") for k in tensors) and "param_groups" in meta
    save_checkpoint(tmp_path / "state", {**{f"model.{k}": v for k, v in model.state_dict().items()}, **tensors},
                    {}, {"optimizer": meta})
    loaded, _, lmeta = load_checkpoint(tmp_path / "state")
    fresh = torch.optim.AdamW(torch.nn.Linear(4, 3).parameters(), lr=1.0)
    restore_optimizer(fresh, loaded, lmeta["optimizer"])  # model.* tensors are ignored
    _same_state(opt, fresh)
    assert fresh.param_groups[0]["betas"] == (0.8, 0.95)  # a tuple again, as torch expects


def test_older_tensor_names_still_restore():
    _, opt = _trained_adamw()
    tensors, meta = optimizer_state(opt)
    legacy = {"optim/" + k[len("opt."):].replace(".", "/", 1): v for k, v in tensors.items()}  # generators' old names
    legacy_meta = {**meta, "scalars": {k.replace(".", "/", 1): v for k, v in meta["scalars"].items()}}
    fresh = torch.optim.AdamW(torch.nn.Linear(4, 3).parameters(), lr=1.0)
    restore_optimizer(fresh, legacy, legacy_meta)
    _same_state(opt, fresh)
