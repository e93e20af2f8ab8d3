"""Fast low-level branch (beyond the paper): an amortised feature inverter.

The Deep Image Prior optimises a network per image (minutes on a CPU). The inverter is one
feed-forward network trained once on the dataset's training + unlabeled images to map TRUE
low-level features back to the image; at reconstruction time it replaces the DIP (or gives the
DIP its starting point for a few refinement steps).

BIT's predicted features are noisy and shrunk toward the mean (regression to the mean), so
training corrupts the true features the way predictions differ from them: per-image shrinkage
toward the channel means, Gaussian noise, spatial blur, channel and whole-level dropout. Loss:
pixel L1 + feature matching through the frozen feature network + (1 - SSIM).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from brainit_core.checkpoint import load_checkpoint, save_checkpoint
from brainit_core.reconstruction.images import ImageBatches, image_size_of
from brainit_core.reconstruction.losses import feature_matching_loss, ssim_gray
from brainit_core.reconstruction.train_state import StepLoop


@dataclass
class InverterConfig:
    """Feature inverter: architecture, augmentation and training.

    Parameters
    ----------
    size : int
        Output side (px); the feature space's low-level input size.
    level_dims, level_grids : tuple of int
        Channels and grid side of each pyramid level (filled from the feature space).
    widths : tuple of int
        Decoder channels from the coarsest level to the output resolution (one entry per
        resolution, coarsest first); the last entries are the stages after the finest level.
    shrink_min : float
        Features are shrunk toward the channel mean by a factor drawn in ``[shrink_min, 1]``.
    noise_max : float
        Gaussian noise std (in standardised units) drawn in ``[0, noise_max]`` per image.
    blur_prob : float
        Probability of a 3x3 box blur of each level.
    channel_dropout, level_dropout : float
        Probability of replacing a channel / a whole level by its mean.
    clean_prob : float
        Fraction of samples left uncorrupted.
    w_pixel, w_feature, w_ssim : float
        Loss weights (pixel L1, layer-normalised feature MSE, 1 - SSIM).
    batch_size, steps, lr : training settings (AdamW, cosine decay after 5% warm-up).
    checkpoint_every : int
        Steps between resumable training states.
    """

    size: int = 128
    level_dims: tuple = (24, 40, 112, 192)
    level_grids: tuple = (32, 16, 8, 4)
    widths: tuple = (192, 160, 128, 96, 48, 32)
    shrink_min: float = 0.4
    noise_max: float = 0.6
    blur_prob: float = 0.3
    channel_dropout: float = 0.1
    level_dropout: float = 0.1
    clean_prob: float = 0.2
    w_pixel: float = 1.0
    w_feature: float = 0.2
    w_ssim: float = 0.5
    batch_size: int = 16
    steps: int = 1000
    lr: float = 2e-3
    checkpoint_every: int = 100

    @classmethod
    def preset(cls, name: str) -> "InverterConfig":
        if name == "ci":
            return cls(size=64, level_dims=(24, 40, 112, 192), level_grids=(16, 8, 4, 2),
                       widths=(32, 32, 32, 24, 16, 16), batch_size=8, steps=30, checkpoint_every=10)
        if name == "demo":
            return cls()
        if name == "full":
            return cls(widths=(512, 384, 256, 128, 64, 32), batch_size=32, steps=20000)
        raise ValueError(f"unknown preset {name!r} (ci, demo, full)")

    @classmethod
    def for_space(cls, space, preset: str = "demo") -> "InverterConfig":
        cfg = cls.preset(preset)
        cfg.size = image_size_of(space)
        cfg.level_dims = tuple(int(s.dim) for s in space.lowlevel_specs)
        cfg.level_grids = tuple(int(s.grid[0]) for s in space.lowlevel_specs)
        return cfg


class ResBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        g = 8 if c % 8 == 0 else 1
        self.body = nn.Sequential(nn.GroupNorm(g, c), nn.SiLU(), nn.Conv2d(c, c, 3, padding=1),
                                  nn.GroupNorm(g, c), nn.SiLU(), nn.Conv2d(c, c, 3, padding=1))

    def forward(self, x):
        return x + self.body(x)


class FeatureInverter(nn.Module):
    """Feed-forward decoder from a low-level pyramid to an image.

    Levels are standardised per channel (statistics fitted on training images and stored as
    buffers), then merged coarse to fine: at each level's grid the running map is upsampled and
    concatenated with the level's 1x1 projection, followed by a residual block; after the finest
    level, upsampling stages reach the output size.

    Input: [(B, C_l, h_l, w_l)] in feature units; output (B, 3, size, size) in [0, 1].
    """

    def __init__(self, config: InverterConfig):
        super().__init__()
        self.config = config
        order = np.argsort(config.level_grids)  # coarse to fine
        self.order = [int(i) for i in order]
        grids = [config.level_grids[i] for i in self.order]
        n_after = int(round(np.log2(config.size / grids[-1])))
        stages = len(grids) + n_after
        widths = list(config.widths)
        if len(widths) < stages:
            widths += [widths[-1]] * (stages - len(widths))
        self.widths = widths
        for i, d in enumerate(config.level_dims):
            self.register_buffer(f"mean_{i}", torch.zeros(d))
            self.register_buffer(f"std_{i}", torch.ones(d))
        self.proj = nn.ModuleList(nn.Conv2d(config.level_dims[i], widths[k], 1) for k, i in enumerate(self.order))
        self.merge = nn.ModuleList()
        for k in range(len(grids)):
            cin = widths[k] if k == 0 else widths[k - 1] + widths[k]
            self.merge.append(nn.Sequential(nn.Conv2d(cin, widths[k], 3, padding=1), ResBlock(widths[k])))
        self.after = nn.ModuleList()
        for k in range(len(grids), stages):
            self.after.append(nn.Sequential(nn.Conv2d(widths[k - 1], widths[k], 3, padding=1), ResBlock(widths[k])))
        self.to_rgb = nn.Sequential(nn.GroupNorm(1, widths[-1]), nn.SiLU(), nn.Conv2d(widths[-1], 3, 3, padding=1))

    def standardize(self, maps: list[torch.Tensor]) -> list[torch.Tensor]:
        return [(m.float() - getattr(self, f"mean_{i}")[:, None, None]) / getattr(self, f"std_{i}")[:, None, None]
                for i, m in enumerate(maps)]

    def forward(self, maps: list[torch.Tensor], standardized: bool = False) -> torch.Tensor:
        z = maps if standardized else self.standardize(maps)
        x = None
        for k, i in enumerate(self.order):
            level = self.proj[k](z[i])  # (B, w_k, g, g)
            if x is None:
                x = level
            else:
                x = F.interpolate(x, size=level.shape[-2:], mode="bilinear", align_corners=False)
                x = torch.cat([x, level], dim=1)
            x = self.merge[k](x)
        for stage in self.after:
            x = stage(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))
        if x.shape[-1] != self.config.size:
            x = F.interpolate(x, size=(self.config.size, self.config.size), mode="bilinear", align_corners=False)
        return torch.sigmoid(self.to_rgb(x))  # (B, 3, H, W)

    @torch.no_grad()
    def fit_statistics(self, maps: list[torch.Tensor]) -> None:
        """Set the per-channel mean/std buffers from a batch of true feature maps."""
        for i, m in enumerate(maps):
            m = m.float()
            getattr(self, f"mean_{i}").copy_(m.mean(dim=(0, 2, 3)))
            getattr(self, f"std_{i}").copy_(m.std(dim=(0, 2, 3)).clamp_min(1e-4))


def corrupt_features(z: list[torch.Tensor], config: InverterConfig, generator: torch.Generator) -> list[torch.Tensor]:
    """Make standardised true features look like predictions: shrink, noise, blur, dropout."""
    B = z[0].shape[0]
    dev = z[0].device

    def rand(*shape):
        return torch.rand(*shape, generator=generator).to(dev)

    clean = (rand(B) < config.clean_prob)[:, None, None, None]
    shrink = (config.shrink_min + (1 - config.shrink_min) * rand(B))[:, None, None, None]
    sigma = (config.noise_max * rand(B))[:, None, None, None]
    out = []
    for m in z:
        c = m * shrink + sigma * torch.randn(m.shape, generator=generator).to(dev)
        if config.blur_prob > 0 and m.shape[-1] >= 4:
            blur = (rand(B) < config.blur_prob)[:, None, None, None]
            c = torch.where(blur, F.avg_pool2d(c, 3, 1, 1, count_include_pad=False), c)
        keep_c = (rand(B, m.shape[1], 1, 1) >= config.channel_dropout).float()
        keep_l = (rand(B, 1, 1, 1) >= config.level_dropout).float()
        c = c * keep_c * keep_l
        out.append(torch.where(clean, m, c))
    return out


def inverter_loss(inverter: FeatureInverter, space, images: torch.Tensor, config: InverterConfig,
                  generator: torch.Generator) -> tuple[torch.Tensor, dict]:
    """One training loss on a batch of true images (B, 3, H, W) in [0, 1]."""
    with torch.no_grad():
        target = [m.float() for m in space.lowlevel_maps(images)]
    z = corrupt_features(inverter.standardize(target), config, generator)
    out = inverter(z, standardized=True)
    pix = (out - images).abs().mean()
    feat = feature_matching_loss(space.lowlevel_maps(out), target).mean() if config.w_feature else out.new_zeros(())
    ssim = 1 - ssim_gray(out, images).mean() if config.w_ssim else out.new_zeros(())
    loss = config.w_pixel * pix + config.w_feature * feat + config.w_ssim * ssim
    return loss, {"loss": loss.item(), "pixel_l1": pix.item(), "feature": feat.item(), "1-ssim": ssim.item()}


def train_inverter(images: np.ndarray, space, config: InverterConfig, out_path, state_dir=None, device=None,
                   seed: int = 0, max_seconds: float | None = None, init: dict | None = None) -> FeatureInverter:
    """Train (or resume training) the inverter and write ``out_path.{safetensors,json}``.

    Parameters
    ----------
    images : ndarray, uint8, (n, H, W, 3)
        Training + unlabeled images (never test images).
    space : FeatureSpace
        Frozen feature space (its low-level pyramid is what gets inverted).
    config : InverterConfig
    out_path : path
        Final checkpoint stem.
    state_dir : path, optional
        Where the resumable state and the loss curve go (default: beside ``out_path``).
    device : torch.device, optional
    max_seconds : float, optional
        Stop (after saving the state) when this much time has passed; call again to continue.
    init : dict, optional
        Weights to start from when there is no saved state (fine-tuning; see :meth:`StepLoop.resume`).
    """
    device = device or next(space.parameters()).device
    out_path = Path(out_path)
    state_dir = Path(state_dir or out_path.parent / "train")
    torch.manual_seed(seed)
    inverter = FeatureInverter(config).to(device)
    batches = ImageBatches(images, config.batch_size, size=config.size, seed=seed)
    with torch.no_grad():
        stats_imgs = ImageBatches(images, min(len(images), 256), size=config.size, seed=seed + 1).next(device)
        inverter.fit_statistics([torch.cat(parts) for parts in zip(*[space.lowlevel_maps(stats_imgs[i:i + 32])
                                                                     for i in range(0, len(stats_imgs), 32)])])
    optimizer = torch.optim.AdamW(inverter.parameters(), lr=config.lr, weight_decay=1e-4)
    sched = _cosine(optimizer, config.steps)
    loop = StepLoop("inverter", inverter, optimizer, sched, state_dir, "inverter", config.steps,
                    config.checkpoint_every, asdict(config))
    step = loop.resume(device, init=init)
    if step:
        batches.skip(step)
    gen = torch.Generator().manual_seed(seed * 7919 + step)
    if not loop.run(step, lambda _: inverter_loss(inverter, space, batches.next(device), config, gen), max_seconds):
        return inverter.eval()
    save_inverter(inverter, out_path, meta={"steps": config.steps})
    return inverter.eval()


def _cosine(optimizer, total: int, warmup_frac: float = 0.05):
    warm = max(1, int(total * warmup_frac))

    def f(step):
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + np.cos(np.pi * min(1.0, (step - warm) / max(1, total - warm)))) * 0.95 + 0.05

    return torch.optim.lr_scheduler.LambdaLR(optimizer, f)


def save_inverter(inverter: FeatureInverter, path, meta: dict | None = None) -> Path:
    return save_checkpoint(path, inverter.state_dict(), {"kind": "feature_inverter", **asdict(inverter.config)}, meta)


def load_inverter(path, device="cpu") -> FeatureInverter:
    tensors, config, _ = load_checkpoint(path, device=str(device))
    config = {k: (tuple(v) if isinstance(v, list) else v) for k, v in config.items() if k != "kind"}
    inv = FeatureInverter(InverterConfig(**config))
    inv.load_state_dict(tensors)
    return inv.to(device).eval()
