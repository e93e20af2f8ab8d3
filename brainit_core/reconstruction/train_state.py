"""Resumable state of the generators' training loops: checkpoints, loss logs, EMA, schedulers.

Training state (weights, optimizer moments, EMA, step) is a
:class:`brainit_core.checkpoint.TrainingState`: a safetensors checkpoint whose JSON part keeps the
step and the scalar optimizer fields, so nothing is ever pickled.
"""
from __future__ import annotations

import csv
import os
import time
from pathlib import Path

import numpy as np
import torch

from brainit_core.checkpoint import TrainingState
from brainit_core.errors import CheckpointError, check_loss
from brainit_core.progress import track


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


class StepLoop:
    """The step loop the generators' trainers share: resume, optimise, log, checkpoint, time budget.

    Parameters
    ----------
    name : str
        Progress-bar label and loss-curve title (``"autoencoder"``).
    model, optimizer, scheduler
        What is trained; ``scheduler`` is a ``LambdaLR`` stepped once per step.
    state_dir : path
        Holds ``<stem>_state.*`` (resumable state) and ``<stem>_loss.csv`` / ``.png`` (loss curve).
    stem : str
    steps : int
        Total number of steps.
    checkpoint_every : int
    record : dict
        The config stored with the state.
    ema : Module, optional
        An exponential moving average of ``model`` updated after every step (warm-up
        ``min(ema_decay, (1 + step) / (10 + step))``) and saved with the state.
    ema_decay : float
    """

    def __init__(self, name: str, model, optimizer, scheduler, state_dir, stem: str, steps: int,
                 checkpoint_every: int, record: dict, ema=None, ema_decay: float = 0.999):
        self.name, self.model, self.optimizer, self.scheduler = name, model, optimizer, scheduler
        self.steps, self.checkpoint_every, self.record = int(steps), int(checkpoint_every), record
        self.ema, self.ema_decay = ema, ema_decay
        self.state = TrainingState(Path(state_dir) / f"{stem}_state")
        self.log = LossLog(Path(state_dir) / f"{stem}_loss.csv")
        self.saved_step = 0  # the step of the state on disk (set by resume and by every save)

    def resume(self, device, init: dict | None = None) -> int:
        """Restore the last saved state (model, optimizer, EMA, scheduler, loss log); returns its step (0 if none).

        ``init`` (a state dict of the same model, e.g. finished generators') is where a fresh start
        begins: fine-tuning. A saved state always wins over it, so an interrupted fine-tune resumes.
        """
        if not self.state.exists():
            self.log.truncate(0)  # a fresh start: drop the curve of an earlier, unfinished run
            if init is not None:
                try:
                    self.model.load_state_dict(init)
                except RuntimeError as exc:
                    raise CheckpointError(f"{self.name}: the weights to start from do not fit this model "
                                          f"(another preset or design?): {str(exc).splitlines()[0]}") from exc
                if self.ema is not None:
                    self.ema.load_state_dict(self.model.state_dict())
            return 0
        step, _ = self.state.load(self.model, self.optimizer, ema=self.ema, device=device)
        self.saved_step = step
        self.log.truncate(step)
        advance_scheduler(self.scheduler, step)
        return step

    def _save(self, done: int) -> None:
        self.state.save(done, self.model, self.optimizer, self.record, ema=self.ema)
        self.saved_step = done

    def run(self, start: int, loss_fn, max_seconds: float | None = None) -> bool:
        """Train from step ``start``; ``loss_fn(step) -> (loss, {name: value})``.

        Returns True when all steps are done, False when ``max_seconds`` ran out first (the state is
        saved, so a later call continues).

        Raises
        ------
        NonFiniteLossError
            When the loss or the gradient norm is NaN or inf; the step is not taken and nothing is saved,
            so the state on disk is the last good checkpoint and :meth:`resume` continues from it.
        """
        t0 = time.time()
        self.model.train()
        for step in track(range(start, self.steps), desc=self.name):
            loss, parts = loss_fn(step)
            kept = f"{self.state.path.name} at step {self.saved_step}" if self.saved_step else "no step was saved yet"
            check_loss(float(loss.detach()), f"{self.name}, step {step + 1}", kept)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            check_loss(float(norm), f"{self.name}, step {step + 1} (gradient norm)", kept)
            self.optimizer.step()
            self.scheduler.step()
            if self.ema is not None:  # early on the average follows the model closely
                update_ema(self.ema, self.model, min(self.ema_decay, (1.0 + step) / (10.0 + step)))
            self.log.write(step + 1, **parts)
            done = step + 1
            if done % self.checkpoint_every == 0 or done == self.steps:
                self._save(done)
            if max_seconds is not None and time.time() - t0 > max_seconds and done < self.steps:
                self._save(done)
                self.log.plot(self.name)
                return False
        self.log.plot(self.name)
        return True
