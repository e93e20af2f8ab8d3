"""Helpers shared by the generators' training loops: image pools, resumable state, loss logs.

Training state (weights, optimizer moments, EMA, step) is a safetensors checkpoint written by
:mod:`brainit_core.checkpoint`; optimizer moments are flattened to ``optim/<param>/<key>`` tensors
and the JSON part keeps the step and the scalar optimizer fields, so nothing is ever pickled.
"""
from __future__ import annotations

import csv
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from brainit_core.checkpoint import checkpoint_exists, load_checkpoint, save_checkpoint


# --------------------------------------------------------------------------------------------
# images
# --------------------------------------------------------------------------------------------
def to_float_images(images, device=None) -> torch.Tensor:
    """uint8 (B, H, W, 3) or float (B, 3, H, W) in [0, 1] -> float (B, 3, H, W) in [0, 1]."""
    from brainit_core.features.base import images_to_tensor

    return images_to_tensor(images, device)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """float (B, 3, H, W) in [0, 1] -> uint8 (B, H, W, 3)."""
    x = images.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def resize_to(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear (antialiased when shrinking) resize of (B, 3, H, W) to (B, 3, size, size)."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=images.shape[-1] > size)


def image_size_of(space) -> int:
    """The image side (px) at which ``space`` computes its low-level pyramid."""
    cfg = getattr(space, "config", None)
    size = getattr(cfg, "lowlevel_size", None)
    return int(size) if size else int(space.lowlevel_specs[0].grid[0] * 4)


def generator_images(dataset, max_images: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images the generators may train on: every subject's training images plus ``unlabeled``.

    Test and validation images of every subject are excluded, so no reconstruction target is
    ever seen by a generator.

    Returns
    -------
    ids : ndarray, int64, (n,)
    images : ndarray, uint8, (n, H, W, 3)
    """
    train, held = set(), set()
    for name in dataset.subjects:
        s = dataset.subject(name)
        train.update(s.train_image_ids.tolist())
        held.update(s.test_image_ids.tolist())
        held.update(s.val_image_ids.tolist())
    if "unlabeled" in dataset.image_sets:
        train.update(dataset.image_set("unlabeled").tolist())
    ids = np.array(sorted(train - held), dtype=np.int64)
    if max_images is not None and len(ids) > max_images:
        ids = np.sort(np.random.default_rng(seed).choice(ids, max_images, replace=False))
    return ids, dataset.images(ids)


class ImageBatches:
    """Endless random batches from an in-memory uint8 pool, with flips and optional crops.

    Parameters
    ----------
    images : ndarray, uint8, (n, H, W, 3)
    batch_size : int
    crop : int or None
        Random square crops of this side (the autoencoder trains on crops).
    size : int or None
        Resize (after cropping) to this side.
    seed : int
    """

    def __init__(self, images: np.ndarray, batch_size: int, crop: int | None = None, size: int | None = None,
                 seed: int = 0, flip: bool = True):
        self.images = images
        self.batch_size = batch_size
        self.crop = crop
        self.size = size
        self.flip = flip
        self.rng = np.random.default_rng(seed)

    def skip(self, n: int) -> None:
        """Advance the random stream as if ``n`` batches had been drawn (for resuming)."""
        self.rng = np.random.default_rng([int(self.rng.integers(1 << 31)), n])

    def next(self, device=None) -> torch.Tensor:
        rows = np.sort(self.rng.choice(len(self.images), self.batch_size, replace=len(self.images) < self.batch_size))
        x = to_float_images(self.images[rows])  # (B, 3, H, W)
        if self.crop is not None and self.crop < x.shape[-1]:
            h = x.shape[-1]
            out = []
            for img in x:
                i, j = self.rng.integers(0, h - self.crop + 1, 2)
                out.append(img[:, i:i + self.crop, j:j + self.crop])
            x = torch.stack(out)
        if self.flip:
            flips = torch.from_numpy(self.rng.random(len(x)) < 0.5)
            x = torch.where(flips[:, None, None, None], x.flip(-1), x)
        if self.size is not None:
            x = resize_to(x, self.size)
        return x.to(device) if device is not None else x


# --------------------------------------------------------------------------------------------
# losses
# --------------------------------------------------------------------------------------------
def _gaussian_window(size: int = 11, sigma: float = 1.5, device=None) -> torch.Tensor:
    g = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2
    g = torch.exp(-g ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]  # (1, 1, k, k)


def ssim_gray(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Differentiable SSIM of grayscale versions, per image. (B, 3, H, W) in [0, 1] -> (B,)."""
    w = torch.tensor([0.2125, 0.7154, 0.0721], device=x.device)[None, :, None, None]
    a, b = (x * w).sum(1, keepdim=True), (y * w).sum(1, keepdim=True)
    k = _gaussian_window(device=x.device)
    pad = k.shape[-1] // 2
    mu_a = F.conv2d(F.pad(a, [pad] * 4, mode="reflect"), k)
    mu_b = F.conv2d(F.pad(b, [pad] * 4, mode="reflect"), k)
    saa = F.conv2d(F.pad(a * a, [pad] * 4, mode="reflect"), k) - mu_a ** 2
    sbb = F.conv2d(F.pad(b * b, [pad] * 4, mode="reflect"), k) - mu_b ** 2
    sab = F.conv2d(F.pad(a * b, [pad] * 4, mode="reflect"), k) - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (saa + sbb + c2))
    return s.mean(dim=(1, 2, 3))


def feature_matching_loss(pred_maps, target_maps, weights=None) -> torch.Tensor:
    """Layer-normalised MSE between feature pyramids, per image.

    Each layer's squared error is divided by the target's mean square for that image, so layers
    with large activations do not dominate. Returns (B,).
    """
    total = 0.0
    for i, (p, t) in enumerate(zip(pred_maps, target_maps)):
        w = 1.0 if weights is None else float(weights[i])
        norm = t.detach().pow(2).mean(dim=(1, 2, 3)) + 1e-6
        total = total + w * (p - t).pow(2).mean(dim=(1, 2, 3)) / norm
    return total


# --------------------------------------------------------------------------------------------
# resumable state
# --------------------------------------------------------------------------------------------
def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Flatten an optimizer's state into (tensors, JSON meta)."""
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"optim/{idx}/{k}"] = v
            else:
                scalars[f"{idx}/{k}"] = v
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def load_optimizer_tensors(optimizer: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    state: dict = {}
    for name, v in tensors.items():
        if not name.startswith("optim/"):
            continue
        _, idx, k = name.split("/", 2)
        state.setdefault(int(idx), {})[k] = v
    for name, v in meta.get("scalars", {}).items():
        idx, k = name.split("/", 1)
        state.setdefault(int(idx), {})[k] = v
    groups = meta["param_groups"]
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    optimizer.load_state_dict({"state": state, "param_groups": groups})


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
        opt_t, opt_meta = optimizer_tensors(optimizer)
        tensors.update(opt_t)
        save_checkpoint(self.path, tensors, config, {"step": int(step), "optimizer": opt_meta, **(extra or {})})

    def load(self, model: torch.nn.Module, optimizer, ema: torch.nn.Module | None = None, device="cpu") -> tuple[int, dict]:
        """Restore in place; returns (step, meta)."""
        tensors, _, meta = load_checkpoint(self.path, device=str(device))
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model/")})
        if ema is not None:
            ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema/")})
        load_optimizer_tensors(optimizer, tensors, meta["optimizer"])
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


def cpu_threads(n: int | None) -> None:
    """Set torch's intra-op threads (``None`` keeps the current setting).

    On a CPU shared with other jobs, one thread is often faster than two: idle threads spin
    waiting for a busy core (measured 50x slower sampling with 2 threads under load).
    """
    if n:
        torch.set_num_threads(int(n))


def advance_scheduler(scheduler: torch.optim.lr_scheduler.LambdaLR, step: int) -> None:
    """Put a ``LambdaLR`` at ``step`` (after resuming) without stepping the optimizer."""
    scheduler.last_epoch = step
    for group, base, f in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
        group["lr"] = base * f(step)
    scheduler._last_lr = [g["lr"] for g in scheduler.optimizer.param_groups]
