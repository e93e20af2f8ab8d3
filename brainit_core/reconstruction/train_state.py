"""Resumable state of the generators' training loops: checkpoints, loss logs, EMA, schedulers.

Training state (weights, optimizer moments, EMA, step) is a safetensors checkpoint written by
:mod:`brainit_core.checkpoint` (optimizer moments through :func:`~brainit_core.checkpoint.optimizer_state`);
the JSON part keeps the step and the scalar optimizer fields, so nothing is ever pickled.
"""
from __future__ import annotations

import csv
import os
import time
from pathlib import Path

import numpy as np
import torch

from brainit_core.checkpoint import checkpoint_exists, load_checkpoint, optimizer_state, restore_optimizer, save_checkpoint


class TrainingState:
    """Save/restore a training loop (model, optimizer, optional EMA copy, step) at ``path``.

    Parameters
    ----------
    path : Path
        Checkpoint stem (``GEN_DIR/train/unet_state``).
    """

    def __init__(self, path):
        self.path = Path(path)

    def exists(self) -> bool:
        return checkpoint_exists(self.path)

    def save(self, step: int, model: torch.nn.Module, optimizer, config: dict, ema: torch.nn.Module | None = None,
             extra: dict | None = None) -> None:
        tensors = {f"model/{k}": v for k, v in model.state_dict().items()}
        if ema is not None:
            tensors.update({f"ema/{k}": v for k, v in ema.state_dict().items()})
        opt_t, opt_meta = optimizer_state(optimizer)
        tensors.update(opt_t)
        save_checkpoint(self.path, tensors, config, {"step": int(step), "optimizer": opt_meta, **(extra or {})})

    def load(self, model: torch.nn.Module, optimizer, ema: torch.nn.Module | None = None, device="cpu") -> tuple[int, dict]:
        """Restore in place; returns (step, meta)."""
        tensors, _, meta = load_checkpoint(self.path, device=str(device))
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model/")})
        if ema is not None:
            ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema/")})
        restore_optimizer(optimizer, tensors, meta["optimizer"])
        return int(meta["step"]), meta


class LossLog:
    """Append-only CSV of (step, seconds, named losses); plotted to PNG by :meth:`plot`."""

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._t0 = time.time()

    def truncate(self, step: int) -> None:
        """Drop rows after ``step`` (a resumed run rewrites them); ``0`` deletes the log."""
        if not self.path.exists():
            return
        if step <= 0:
            self.path.unlink()
            return
        with open(self.path) as f:
            rows = list(csv.reader(f))
        if not rows:
            return
        kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= step]
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w", newline="") as f:
            csv.writer(f).writerows(kept)
        os.replace(tmp, self.path)

    def write(self, step: int, **losses: float) -> None:
        new = not self.path.exists()
        with open(self.path, "a", newline="") as f:
            w = csv.writer(f)
            if new:
                w.writerow(["step", "seconds", *losses.keys()])
            w.writerow([step, f"{time.time() - self._t0:.2f}", *(f"{v:.6g}" for v in losses.values())])

    def plot(self, title: str = "") -> Path | None:
        """Write ``<name>.png`` beside the CSV (smoothed curves, log scale)."""
        if not self.path.exists():
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        with open(self.path) as f:
            rows = list(csv.reader(f))
        if len(rows) < 3:
            return None
        header, data = rows[0], np.array([[float(v) for v in r] for r in rows[1:] if r])
        fig, ax = plt.subplots(figsize=(6, 3.5))
        k = max(1, len(data) // 50)
        for j, name in enumerate(header[2:], start=2):
            y = np.convolve(data[:, j], np.ones(k) / k, mode="valid")
            ax.plot(data[k - 1:, 0], y, label=name)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(title or self.path.stem)
        ax.legend()
        fig.tight_layout()
        out = self.path.with_suffix(".png")
        fig.savefig(out, dpi=90)
        plt.close(fig)
        return out


def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    with torch.no_grad():
        for pe, pm in zip(ema.parameters(), model.parameters()):
            pe.lerp_(pm.detach(), 1.0 - decay)
        for be, bm in zip(ema.buffers(), model.buffers()):
            be.copy_(bm)


def advance_scheduler(scheduler: torch.optim.lr_scheduler.LambdaLR, step: int) -> None:
    """Put a ``LambdaLR`` at ``step`` (after resuming) without stepping the optimizer."""
    scheduler.last_epoch = step
    for group, base, f in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
        group["lr"] = base * f(step)
    scheduler._last_lr = [g["lr"] for g in scheduler.optimizer.param_groups]
