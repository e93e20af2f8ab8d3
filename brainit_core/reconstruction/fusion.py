"""Fusion: the low-level image gives layout and colour, the semantic diffusion gives content.

Brain-IT encodes the DIP image into the diffusion latent, noises it to step 14 of a 38-step
schedule and denoises the remaining 24 steps with semantic conditioning (an SDEdit-style
img2img). ``fusion_strength`` is the fraction of the schedule that is re-run:

- ``0``: nothing is denoised; the result is the low-level image through the autoencoder;
- ``24/38`` (official): start at step 14 of 38;
- ``1``: the low-level image is ignored; this is exactly generation from pure noise
  (:func:`~brainit_core.reconstruction.diffusion.generate_latents` with the same seeds).

``detail`` (not in the official code) adds back what the autoencoder loses of the low-level image:
``fused + detail * (x - D(E(x)))``. SDXL's VAE at 768 px is close to lossless, so the official
fusion needs no such term; the offline generators' small autoencoder (128 px, 16 x 16 latents)
blurs fine structure even at strength 0, which ``detail=1`` restores exactly (strength 0 then gives
the low-level image itself). The semantic change, ``D(denoised) - D(E(x))``, is unaffected.
"""
from __future__ import annotations

import torch

from brainit_core.reconstruction.autoencoder import decode_latents, encode_images
from brainit_core.reconstruction.diffusion import (as_seeds, denoise, generate_latents, initial_noise,
                                                   make_scheduler)

OFFICIAL_STEPS = 38
OFFICIAL_STRENGTH = 24 / 38


def fusion_start(steps: int, strength: float) -> int:
    """Index of the first denoising step: ``steps - round(strength * steps)``."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"fusion_strength must be in [0, 1], got {strength}")
    return int(steps) - int(round(float(strength) * int(steps)))


@torch.no_grad()
def fuse(autoencoder, unet, scheduler_config: dict, low_level: torch.Tensor, semantic: torch.Tensor, seeds=0,
         strength: float = OFFICIAL_STRENGTH, steps: int = OFFICIAL_STEPS, guidance_scale: float = 3.0,
         sampler: str = "dpm", detail: float = 0.0) -> torch.Tensor:
    """Fuse low-level images with semantic conditioning.

    Parameters
    ----------
    autoencoder : diffusers.AutoencoderKL
    unet : ConditionalUNet
    scheduler_config : dict
        The training schedule (betas, prediction type).
    low_level : Tensor (B, 3, H, W) in [0, 1]
        The low-level branch's images.
    semantic : Tensor (B, N, D)
        Semantic tokens in feature units.
    seeds : int or list of int
        Noise seeds, one per image.
    strength : float
        Fraction of the ``steps``-step schedule that is re-run (see the module docstring).
    steps : int
        Length of the full schedule (official 38).
    guidance_scale : float
    sampler : str
        ``"dpm"`` or ``"ddim"``.
    detail : float
        Weight of the autoencoder's loss on the low-level image added back (see the module docstring).

    Returns
    -------
    Tensor (B, 3, H, W) in [0, 1]
    """
    B = low_level.shape[0]
    seeds = as_seeds(seeds, B)
    device = unet.conditioner.pos.device
    start = fusion_start(steps, strength)
    if start == 0:
        return decode_latents(autoencoder, generate_latents(unet, scheduler_config, semantic, seeds, steps,
                                                            guidance_scale, sampler))
    size = autoencoder.config.sample_size
    x = low_level.to(device).float()
    if x.shape[-1] != size:
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                                            antialias=x.shape[-1] > size)
    latents = encode_images(autoencoder, x)
    rec = decode_latents(autoencoder, latents) if detail or start >= steps else None
    lost = float(detail) * (x - rec) if detail else 0.0
    if start >= steps:
        return (rec + lost).clamp(0, 1)
    scheduler = make_scheduler(scheduler_config, sampler)
    scheduler.set_timesteps(int(steps), device=device)
    timesteps = scheduler.timesteps[start:]
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(start)
    noise = initial_noise(tuple(latents.shape[1:]), seeds, device)
    noisy = scheduler.add_noise(latents, noise, timesteps[:1].repeat(B))
    ctx = unet.context(semantic.to(device))
    out = decode_latents(autoencoder, denoise(unet, noisy, ctx, scheduler, timesteps, guidance_scale, desc="fusion"))
    return (out + lost).clamp(0, 1)
