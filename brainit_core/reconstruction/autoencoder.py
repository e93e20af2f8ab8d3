"""The latent space of the semantic branch: a small diffusers ``AutoencoderKL``.

The official pipeline uses SDXL's VAE (1024 px -> 128 x 128 x 4). The demo trains its own
(128 px -> 16 x 16 x 4, 3.8 M parameters, blocks (32, 64, 128, 128), no attention) on the
dataset's training + unlabeled images. It is fully convolutional, so it trains on 64 px crops
(a quarter of the cost) and runs on full images. Loss: L1 + low-frequency colour L1 + (1 - SSIM)
+ a tiny KL term.
After training, the latent scale (1 / std of the latents) is stored in the model config
(``scaling_factor``) so that the diffusion model sees unit-variance latents.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from brainit_core.checkpoint import load_checkpoint, save_checkpoint
from brainit_core.reconstruction.images import ImageBatches, to_float_images
from brainit_core.reconstruction.losses import ssim_gray
from brainit_core.reconstruction.train_state import StepLoop


@dataclass
class AutoencoderConfig:
    """Autoencoder architecture and training.

    Parameters
    ----------
    block_out_channels : tuple of int
        One entry per resolution; ``len - 1`` downsamplings (4 blocks: 128 px -> 16 x 16).
    layers_per_block : int
    latent_channels : int
    norm_num_groups : int
    mid_attention : bool
        Self-attention in the mid block (off: cheaper, the latents are small anyway).
    image_size : int
        Size of full images (the dataset's reconstruction size).
    crop : int
        Side of the random training crops.
    batch_size, steps, lr : training settings (Adam, constant after a short warm-up).
    kl_weight, ssim_weight : loss weights beside L1.
    checkpoint_every : int
    """

    block_out_channels: tuple = (32, 64, 128, 128)
    layers_per_block: int = 1
    latent_channels: int = 4
    norm_num_groups: int = 16
    mid_attention: bool = False
    image_size: int = 128
    crop: int = 64
    batch_size: int = 16
    steps: int = 2000
    lr: float = 1e-3
    kl_weight: float = 1e-6
    ssim_weight: float = 0.2
    color_weight: float = 2.0
    checkpoint_every: int = 100

    @classmethod
    def preset(cls, name: str) -> "AutoencoderConfig":
        if name == "ci":
            return cls(block_out_channels=(16, 32, 32, 32), norm_num_groups=8, image_size=64, crop=32,
                       batch_size=8, steps=30, checkpoint_every=10)
        if name == "demo":
            return cls()
        if name == "full":
            return cls(block_out_channels=(64, 128, 256, 256), layers_per_block=2, mid_attention=True,
                       image_size=256, crop=128, batch_size=32, steps=30000, lr=4e-4)
        raise ValueError(f"unknown preset {name!r} (ci, demo, full)")

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.block_out_channels) - 1)

    @property
    def latent_size(self) -> int:
        return self.image_size // self.downsample


def build_autoencoder(config: AutoencoderConfig):
    """A randomly initialised ``diffusers.AutoencoderKL`` for ``config``."""
    from diffusers import AutoencoderKL

    n = len(config.block_out_channels)
    return AutoencoderKL(
        in_channels=3, out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=tuple(config.block_out_channels), layers_per_block=config.layers_per_block,
        latent_channels=config.latent_channels, norm_num_groups=config.norm_num_groups,
        sample_size=config.image_size, mid_block_add_attention=config.mid_attention, scaling_factor=1.0,
    )


def encode_images(autoencoder, images: torch.Tensor, sample: bool = False, generator=None) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> scaled latents (B, c, H/f, W/f) (the posterior mean unless ``sample``)."""
    dist = autoencoder.encode(images * 2 - 1).latent_dist
    z = dist.sample(generator) if sample else dist.mean
    return z * autoencoder.config.scaling_factor


def decode_latents(autoencoder, latents: torch.Tensor) -> torch.Tensor:
    """Scaled latents (B, c, h, w) -> images (B, 3, H, W) in [0, 1]."""
    x = autoencoder.decode(latents / autoencoder.config.scaling_factor).sample
    return ((x + 1) / 2).clamp(0, 1)


def autoencoder_loss(autoencoder, x: torch.Tensor, config: AutoencoderConfig, generator=None) -> tuple[torch.Tensor, dict]:
    """Reconstruction loss of a batch (B, 3, h, w) in [0, 1]."""
    dist = autoencoder.encode(x * 2 - 1).latent_dist
    rec = ((autoencoder.decode(dist.sample(generator)).sample + 1) / 2)
    l1 = (rec - x).abs().mean()
    k = min(8, x.shape[-1])
    color = (F.avg_pool2d(rec, k) - F.avg_pool2d(x, k)).abs().mean()
    ssim = 1 - ssim_gray(rec.clamp(0, 1), x).mean()
    kl = dist.kl().mean() / x[0].numel()
    loss = l1 + config.color_weight * color + config.ssim_weight * ssim + config.kl_weight * kl
    return loss, {"loss": loss.item(), "l1": l1.item(), "color": color.item(), "1-ssim": ssim.item(), "kl": kl.item()}


def train_autoencoder(images: np.ndarray, config: AutoencoderConfig, out_path, state_dir=None, device=None,
                      seed: int = 0, max_seconds: float | None = None, init: dict | None = None):
    """Train (or resume) the autoencoder and write ``out_path.{safetensors,json}``.

    Parameters
    ----------
    images : ndarray, uint8, (n, H, W, 3)
        Training + unlabeled images (never test images), at ``config.image_size``.
    config : AutoencoderConfig
    out_path : path
        Final checkpoint stem (the scaling factor is fitted and stored when training ends).
    state_dir : path, optional
        Resumable state and loss curve (default ``out_path.parent / "train"``).
    device : torch.device, optional
    max_seconds : float, optional
        Save the state and return early after this long.
    init : dict, optional
        Weights to start from when there is no saved state (fine-tuning; see :meth:`StepLoop.resume`).
    """
    device = device or torch.device("cpu")
    out_path = Path(out_path)
    state_dir = Path(state_dir or out_path.parent / "train")
    torch.manual_seed(seed)
    ae = build_autoencoder(config).to(device)
    optimizer = torch.optim.Adam(ae.parameters(), lr=config.lr)
    warm = max(1, config.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warm) * (0.3 if s > 0.8 * config.steps else 1.0))
    batches = ImageBatches(images, config.batch_size, crop=config.crop, size=None, seed=seed)
    loop = StepLoop("autoencoder", ae, optimizer, sched, state_dir, "autoencoder", config.steps,
                    config.checkpoint_every, asdict(config))
    step = loop.resume(device, init=init)
    if step:
        batches.skip(step)
    gen = torch.Generator(device=device).manual_seed(seed * 104729 + step)
    if not loop.run(step, lambda _: autoencoder_loss(ae, batches.next(device), config, gen), max_seconds):
        return ae.eval()
    ae.eval()
    fit_scaling_factor(ae, images, device=device)
    save_autoencoder(ae, out_path, config, meta={"steps": config.steps})
    return ae


@torch.no_grad()
def fit_scaling_factor(autoencoder, images: np.ndarray, n: int = 256, device=None, seed: int = 0) -> float:
    """Set ``config.scaling_factor`` to 1 / std of the latent means of up to ``n`` images."""
    rows = np.random.default_rng(seed).choice(len(images), min(n, len(images)), replace=False)
    zs = [autoencoder.encode(to_float_images(images[np.sort(rows)[i:i + 32]], device) * 2 - 1).latent_dist.mean
          for i in range(0, len(rows), 32)]
    scale = float(1.0 / torch.cat(zs).std().clamp_min(1e-6))
    autoencoder.register_to_config(scaling_factor=scale)
    return scale


def save_autoencoder(autoencoder, path, config: AutoencoderConfig | None = None, meta: dict | None = None) -> Path:
    record = {"kind": "autoencoder_kl", "diffusers_config": dict(autoencoder.config),
              "train_config": asdict(config) if config is not None else None}
    return save_checkpoint(path, autoencoder.state_dict(), record, meta)


def load_autoencoder(path, device="cpu"):
    """Rebuild an ``AutoencoderKL`` from a checkpoint written by :func:`save_autoencoder`."""
    from diffusers import AutoencoderKL

    tensors, config, _ = load_checkpoint(path, device=str(device))
    ae = AutoencoderKL.from_config(config["diffusers_config"])
    ae.load_state_dict(tensors)
    return ae.to(device).eval()
