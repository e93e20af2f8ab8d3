"""Seconds per image and GPU memory of the full-size SDXL path, with randomly initialised SDXL-size components.

Timing and memory depend on the architecture, not on the weights, so this needs no SDXL download: it builds
SDXL base's UNet (2.6 B parameters, cross-attention width --cross-dim: 2048 for SDXL, 1664 for MindEye2's
unCLIP) and VAE at their published sizes, the image-token projection of 256 x 1664 bigG tokens, and times
``SDXLReconstructor`` (the adapter the SDXL generator set uses): semantic-only generation (--steps) and
fusion (--steps with strength 24/38, the official 24 of 38 denoising steps), guidance 5, at --size px;
then one training step of stage 2's generator side (UNet + projection, diffusion loss, batch --train-batch).

Run on a GPU machine: python scripts/bench_sdxl_fullsize.py [--dtype bfloat16] [--size 768]
Prints seconds per image and peak memory (torch.cuda.max_memory_allocated) of each part.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout


def build(cross_dim: int, dtype, device):
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from brainit_core.reconstruction.sdxl import ImageTokenProjection, SDXLAdapterConfig, SDXLReconstructor

    unet = UNet2DConditionModel(
        sample_size=128, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=(5, 10, 20),
        transformer_layers_per_block=(1, 2, 10), cross_attention_dim=cross_dim, use_linear_projection=True,
        addition_embed_type="text_time", addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
                        block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, sample_size=1024, scaling_factor=0.13025)
    sched = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
             "prediction_type": "epsilon", "steps_offset": 1, "timestep_spacing": "leading"}
    proj = ImageTokenProjection(1664, cross_dim, 1280)
    rec = SDXLReconstructor(unet.to(device, dtype).eval(), vae.to(device).eval(), sched, proj.to(device, dtype).eval(),
                            SDXLAdapterConfig(dtype=str(dtype).removeprefix("torch.")))
    print(f"UNet {sum(p.numel() for p in unet.parameters()) / 1e9:.2f} B parameters, VAE "
          f"{sum(p.numel() for p in vae.parameters()) / 1e6:.0f} M, projection {sum(p.numel() for p in proj.parameters()) / 1e6:.1f} M")
    return rec


def timed(label: str, fn, n_images: int, repeats: int = 2):
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    fn()  # warm-up
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    torch.cuda.synchronize()
    s = (time.perf_counter() - t0) / repeats / n_images
    print(f"{label}: {s:.3f} s per image, peak memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=768)
    p.add_argument("--steps", type=int, default=38)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--train-batch", type=int, default=8)
    p.add_argument("--cross-dim", type=int, default=1664)
    p.add_argument("--dtype", choices=("float16", "bfloat16", "float32"), default="bfloat16")
    args = p.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this measures the full-size path on a GPU")
    device, dtype = torch.device("cuda"), getattr(torch, args.dtype)
    torch.manual_seed(0)
    rec = build(args.cross_dim, dtype, device)
    tokens = torch.randn(args.batch, 256, 1664, device=device)
    low = torch.rand(args.batch, 3, 224, 224, device=device)
    kw = dict(steps=args.steps, guidance_scale=5.0, size=args.size)
    timed(f"semantic only ({args.steps} steps, batch {args.batch})", lambda: rec(tokens, seeds=0, **kw), args.batch)
    timed(f"fusion (24/38 of {args.steps} steps, batch {args.batch})",
          lambda: rec(tokens, low_level=low, seeds=0, strength=24 / 38, **kw), args.batch)
    # stage 2's generator side: UNet + projection trained on the diffusion loss (gradient checkpointing on)
    rec.unet.train().enable_gradient_checkpointing()
    rec.projection.float().train()
    opt = torch.optim.AdamW(rec.trainable().parameters(), lr=1e-5)
    lat = torch.randn(args.train_batch, 4, args.size // 8, args.size // 8, device=device)
    tok = torch.randn(args.train_batch, 256, 1664, device=device)

    def step():
        loss = rec.loss(lat, tok, torch.Generator().manual_seed(0))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    timed(f"stage-2 training step (batch {args.train_batch}, AdamW)", step, args.train_batch, repeats=3)


if __name__ == "__main__":
    main()
