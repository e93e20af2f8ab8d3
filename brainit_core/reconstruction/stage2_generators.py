"""The generator side of stage 2, one adapter per kind of generators directory.

Stage 2 (:mod:`brainit_core.reconstruction.stage2`) needs three things of a generator: the frozen
encoder's latents of the training images, the diffusion loss conditioned on BIT's tokens (the loss
the generator was trained with, differentiable in the tokens) and the module it fine-tunes, and a
way to write the fine-tuned set as a new generators directory. :func:`stage2_generator` picks the
adapter of a :class:`~brainit_core.reconstruction.generators.Generators`:

- ``offline`` (the project's autoencoder + conditional UNet): the UNet with its token conditioner
  (and spatial token map) is fine-tuned with the loss it was trained with
  (:func:`~brainit_core.reconstruction.diffusion.diffusion_loss`); the autoencoder (frozen) and the
  inverter are copied;
- ``sdxl``: the SDXL UNet and the image-token projection are fine-tuned; the VAE stays frozen in
  the SDXL directory; the new set holds its own ``unet/`` (diffusers layout) and projection.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from brainit_core import distributed
from brainit_core.checkpoint import checkpoint_exists, copy_checkpoint
from brainit_core.progress import track
from brainit_core.reconstruction.generators import write_generators_json
from brainit_core.reconstruction.images import resize_to, to_float_images


class OfflineGenerator:
    """Stage 2 of an ``offline`` set: the conditional UNet (and its conditioner) learns, the autoencoder is frozen."""

    kind = "offline"

    def __init__(self, gens):
        gens.require("autoencoder", "unet")
        self.gens = gens
        self.module = gens.unet
        gens.autoencoder.requires_grad_(False)

    @torch.no_grad()
    def encode(self, images: np.ndarray) -> torch.Tensor:
        """uint8 (B, H, W, 3) -> scaled latents at the autoencoder's size."""
        from brainit_core.reconstruction.autoencoder import encode_images

        ae = self.gens.autoencoder
        device = next(ae.parameters()).device
        return encode_images(ae, resize_to(to_float_images(images, device), ae.config.sample_size))

    def loss(self, latents: torch.Tensor, tokens: torch.Tensor, generator: torch.Generator, shard=None) -> torch.Tensor:
        """The loss the UNet was trained with (``diffusion.diffusion_loss``: its conditioning noise and
        dropout) on tokens in feature units, differentiable in them. The tokens are BIT's predictions
        here, so the prediction-like augmentation (``cond_shrink``, ``cond_noise_max``) is off. With a
        :class:`~brainit_core.distributed.Shard` the batch is this process's part of it."""
        from dataclasses import replace

        from diffusers import DDPMScheduler

        from brainit_core.reconstruction.diffusion import diffusion_loss

        config = replace(self.module.config, cond_shrink=1.0, cond_noise_max=0.0)
        return diffusion_loss(self.module, DDPMScheduler(**config.scheduler_config()), latents,
                              self.module.conditioner.standardize(tokens), config, generator, shard)

    def write(self, out: Path, info: dict) -> None:
        """The autoencoder and inverter copied, the fine-tuned UNet, ``generators.json`` (last) with ``stage2``."""
        from brainit_core.reconstruction.diffusion import save_conditional_unet

        src = Path(self.gens.path)
        for name in ("autoencoder", "inverter"):
            if checkpoint_exists(src / name):
                copy_checkpoint(src / name, out / name)
        save_conditional_unet(self.module, out / "unet", meta={"stage2": True})
        write_generators_json(out, {**self.gens.settings, "stage2": info})


class SDXLGenerator:
    """Stage 2 of an ``sdxl`` set: the SDXL UNet and the projection learn, the VAE is frozen."""

    kind = "sdxl"

    def __init__(self, gens):
        gens.require("sdxl")
        self.gens = gens
        self.rec = gens.sdxl
        self.rec.projection.float()
        self.module = self.rec.trainable()
        if self.rec.device.type == "cuda":
            self.rec.unet.enable_gradient_checkpointing()

    def encode(self, images: np.ndarray) -> torch.Tensor:
        return self.rec.encode(to_float_images(images, self.rec.device))

    def loss(self, latents: torch.Tensor, tokens: torch.Tensor, generator: torch.Generator, shard=None) -> torch.Tensor:
        return self.rec.loss(latents, tokens, generator, shard=shard)

    def write(self, out: Path, info: dict) -> None:
        """The inverter copied, the fine-tuned projection and ``unet/``, ``generators.json`` (last) naming them."""
        from brainit_core.reconstruction.sdxl import PROJECTION_NAME
        from brainit_core.reconstruction.sdxl_set import unet_sha256

        src = Path(self.gens.path)
        if checkpoint_exists(src / "inverter"):
            copy_checkpoint(src / "inverter", out / "inverter")
        self.rec.projection.save(out / PROJECTION_NAME)
        self.rec.unet.save_pretrained(out / "unet", safe_serialization=True)
        settings = dict(self.gens.settings)
        settings["sdxl"] = {**settings["sdxl"], "unet": "unet", "unet_sha256": unet_sha256(out / "unet")}
        write_generators_json(out, {**settings, "stage2": info})


def stage2_generator(gens):
    """The stage-2 adapter of ``gens`` (see the module docstring)."""
    return SDXLGenerator(gens) if gens.kind == "sdxl" else OfflineGenerator(gens)


def pair_latents(generator, dataset, ids: np.ndarray, path: Path, batch_size: int = 16) -> torch.Tensor:
    """Latents of the dataset images ``ids`` (in that order) under ``generator``'s frozen encoder, cached at
    ``path`` (several processes: each encodes a shard of whole batches, :func:`distributed.write_rows`)."""
    usable = path.exists() and len(np.load(path, mmap_mode="r")) == len(ids)
    if distributed.any_rank(not usable):
        def rows(lo: int, hi: int) -> np.ndarray:
            parts = [generator.encode(dataset.images(ids[i:min(i + batch_size, hi)])).float().cpu().numpy()
                     for i in track(range(lo, hi, batch_size), desc="stage 2 latents")]
            return np.concatenate(parts).astype(np.float32)

        shape = generator.encode(dataset.images(ids[:1])).shape[1:]
        distributed.write_rows(path, len(ids), shape, np.float32, rows, align=batch_size)
    return torch.from_numpy(np.load(path))
