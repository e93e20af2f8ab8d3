"""Semantic branch: a latent diffusion model conditioned on the semantic tokens.

Brain-IT conditions MindEye2's unCLIP fine-tune of SDXL on the 256 predicted OpenCLIP bigG
tokens. The demo trains a small latent diffusion model from diffusers parts instead: a
``UNet2DConditionModel`` on the autoencoder's 16 x 16 x 4 latents that cross-attends to the
64 Lite0 tokens (width 192), trained on TRUE tokens of training + unlabeled images.

Conditioning (:class:`TokenConditioner`): tokens are standardised per dimension (statistics of
the training tokens), a learned position embedding is added (CNN tokens carry little absolute
position, and cross-attention ignores order), then layer-normalised. For classifier-free guidance
the standardised tokens are zeroed for ~10% of training samples; sampling mixes the conditional
and unconditional predictions with ``guidance_scale``.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from brainit_core import distributed
from brainit_core.checkpoint import load_checkpoint, save_checkpoint
from brainit_core.progress import track
from brainit_core.reconstruction.train_state import StepLoop

SAMPLERS = ("dpm", "ddim")


@dataclass
class DiffusionConfig:
    """Conditional UNet, noise schedule and training.

    Parameters
    ----------
    block_out_channels : tuple of int
        UNet widths per resolution (16 -> 8 -> 4 for 16 x 16 latents).
    layers_per_block : int
    attention_head_dim : int
    cross_attention_levels : int
        Cross-attention at this many of the lowest resolutions (2: at 8 x 8 and 4 x 4).
    latent_channels, latent_size : int
        Shape of the autoencoder latents.
    n_tokens, token_dim : int
        Conditioning shape (filled from the feature space: 64 x 192 for Lite0 demo).
    num_train_timesteps, beta_start, beta_end, beta_schedule, prediction_type :
        The DDPM training schedule (Stable Diffusion's scaled-linear betas, v-prediction).
    cond_dropout : float
        Probability of training without conditioning (classifier-free guidance).
    cond_noise : float
        Std of Gaussian noise added to standardised tokens during training (robustness to
        predicted tokens).
    cond_shrink : float
        Half of the training samples have their standardised tokens shrunk toward the mean by a
        factor drawn from U(cond_shrink, 1), as BIT's regression predictions are (1: never).
    cond_noise_max : float
        Those samples also get Gaussian noise of std U(0, cond_noise_max) (0: only ``cond_noise``).
    spatial_channels : int
        Width of the spatial token map (:class:`SpatialTokenMap`): the tokens, laid out on their
        grid, projected to this many channels and concatenated to the latents at the UNet's input,
        so the layout of the tokens reaches every resolution. 0: cross-attention only (the design
        of the first demo generators).
    batch_size, steps, lr, ema_decay, checkpoint_every : training settings (AdamW).
    sampler : str
        ``"dpm"`` (DPM-Solver++ 2M) or ``"ddim"``.
    sampling_steps : int
        Steps for generation from pure noise.
    guidance_scale : float
    """

    block_out_channels: tuple = (64, 128, 192)
    layers_per_block: int = 2
    attention_head_dim: int = 32
    cross_attention_levels: int = 2
    latent_channels: int = 4
    latent_size: int = 16
    n_tokens: int = 64
    token_dim: int = 192
    num_train_timesteps: int = 1000
    beta_start: float = 0.00085
    beta_end: float = 0.012
    beta_schedule: str = "scaled_linear"
    prediction_type: str = "v_prediction"
    cond_dropout: float = 0.1
    cond_noise: float = 0.1
    cond_shrink: float = 1.0
    cond_noise_max: float = 0.0
    spatial_channels: int = 0
    batch_size: int = 32
    steps: int = 3000
    lr: float = 4e-4
    ema_decay: float = 0.999
    checkpoint_every: int = 100
    sampler: str = "dpm"
    sampling_steps: int = 25
    guidance_scale: float = 3.0

    @classmethod
    def preset(cls, name: str) -> "DiffusionConfig":
        if name == "ci":
            return cls(block_out_channels=(32, 64), layers_per_block=1, attention_head_dim=16, cross_attention_levels=1,
                       latent_size=8, n_tokens=16, batch_size=8, steps=30, checkpoint_every=10, ema_decay=0.9,
                       sampling_steps=10, spatial_channels=8, cond_shrink=0.5, cond_noise_max=0.5)
        if name == "demo":
            return cls(spatial_channels=64, cond_shrink=0.5, cond_noise_max=0.5)
        if name == "full":
            return cls(block_out_channels=(128, 256, 384, 512), cross_attention_levels=3, latent_size=32,
                       batch_size=64, steps=100000, lr=1e-4, ema_decay=0.9999, spatial_channels=128,
                       cond_shrink=0.5, cond_noise_max=0.5)
        raise ValueError(f"unknown preset {name!r} (ci, demo, full)")

    def scheduler_config(self) -> dict:
        return {"num_train_timesteps": self.num_train_timesteps, "beta_start": self.beta_start,
                "beta_end": self.beta_end, "beta_schedule": self.beta_schedule,
                "prediction_type": self.prediction_type}


class TokenConditioner(nn.Module):
    """Semantic tokens (B, N, D) in feature units -> cross-attention context (B, N, D)."""

    def __init__(self, n_tokens: int, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        self.pos = nn.Parameter(torch.randn(n_tokens, dim) * 0.02)
        self.norm = nn.LayerNorm(dim)

    def standardize(self, tokens: torch.Tensor) -> torch.Tensor:
        return (tokens.float() - self.mean) / self.std

    def forward(self, tokens_std: torch.Tensor) -> torch.Tensor:
        return self.norm(tokens_std + self.pos)  # (B, N, D)

    @torch.no_grad()
    def fit_statistics(self, tokens: torch.Tensor) -> None:
        flat = tokens.float().reshape(-1, tokens.shape[-1])
        self.mean.copy_(flat.mean(0))
        self.std.copy_(flat.std(0).clamp_min(1e-4))


def token_grid(n_tokens: int) -> int:
    """Side of the square grid the tokens lie on (0 if ``n_tokens`` is not a square)."""
    side = int(round(n_tokens ** 0.5))
    return side if side * side == n_tokens else 0


class SpatialTokenMap(nn.Module):
    """Context (B, N, D) -> a (B, C, S, S) map at the latent resolution S.

    The tokens of a CNN grid (or of a ViT's patches) keep their layout: token ``i`` is at row
    ``i // g``, column ``i % g`` of a ``g x g`` grid. A 1 x 1 projection, a 3 x 3 convolution and a
    bilinear resize give the UNet each latent location's own conditioning, which cross-attention
    alone must learn to find by position.
    """

    def __init__(self, dim: int, channels: int, grid: int, size: int):
        super().__init__()
        self.grid, self.size = grid, size
        self.project = nn.Sequential(nn.Conv2d(dim, channels, 1), nn.GroupNorm(min(8, channels), channels), nn.SiLU(),
                                     nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        B, N, D = context.shape
        x = context.transpose(1, 2).reshape(B, D, self.grid, self.grid)
        x = self.project(x)
        if self.grid != self.size:
            x = nn.functional.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return x


class ConditionalUNet(nn.Module):
    """``TokenConditioner`` + diffusers ``UNet2DConditionModel``: the semantic denoiser.

    With ``config.spatial_channels`` the context also enters as a spatial map concatenated to the
    latents (:class:`SpatialTokenMap`); the map is computed from the same context, so the
    unconditional context (position embedding only) is the unconditional map too.
    """

    def __init__(self, config: DiffusionConfig):
        super().__init__()
        from diffusers import UNet2DConditionModel

        self.config = config
        n = len(config.block_out_channels)
        k = config.cross_attention_levels
        down = tuple("DownBlock2D" if i < n - k else "CrossAttnDownBlock2D" for i in range(n))
        up = tuple("CrossAttnUpBlock2D" if i < k else "UpBlock2D" for i in range(n))
        self.conditioner = TokenConditioner(config.n_tokens, config.token_dim)
        self.spatial = None
        extra = 0
        if config.spatial_channels:
            grid = token_grid(config.n_tokens)
            if not grid:
                raise ValueError(f"spatial_channels needs tokens on a square grid; {config.n_tokens} tokens are not")
            self.spatial = SpatialTokenMap(config.token_dim, config.spatial_channels, grid, config.latent_size)
            extra = config.spatial_channels
        self.unet = UNet2DConditionModel(
            sample_size=config.latent_size, in_channels=config.latent_channels + extra,
            out_channels=config.latent_channels,
            block_out_channels=tuple(config.block_out_channels), layers_per_block=config.layers_per_block,
            down_block_types=down, up_block_types=up, cross_attention_dim=config.token_dim,
            attention_head_dim=config.attention_head_dim, norm_num_groups=min(32, config.block_out_channels[0]),
        )

    def context(self, tokens: torch.Tensor | None, batch: int | None = None) -> torch.Tensor:
        """Context from tokens in feature units; ``None`` gives the unconditional context."""
        if tokens is None:
            z = torch.zeros(batch, self.config.n_tokens, self.config.token_dim, device=self.conditioner.pos.device)
        else:
            z = self.conditioner.standardize(tokens)
        return self.conditioner(z)

    def forward(self, latents: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        if self.spatial is not None:
            latents = torch.cat([latents, self.spatial(context).to(latents.dtype)], 1)
        return self.unet(latents, t, encoder_hidden_states=context).sample  # (B, c, h, w)


# --------------------------------------------------------------------------------------------
# sampling
# --------------------------------------------------------------------------------------------
def make_scheduler(scheduler_config: dict, sampler: str = "dpm"):
    """A diffusers sampling scheduler with the training schedule's betas and prediction type."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    if sampler == "dpm":
        return DPMSolverMultistepScheduler(**scheduler_config, algorithm_type="dpmsolver++", solver_order=2)
    if sampler == "ddim":
        return DDIMScheduler(**scheduler_config, clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")


def initial_noise(shape: tuple, seeds: list[int], device=None) -> torch.Tensor:
    """Per-image Gaussian noise: image ``b`` depends only on ``seeds[b]``. shape (c, h, w)."""
    out = torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds])
    return out.to(device) if device is not None else out


def as_seeds(seed, batch: int) -> list[int]:
    """An int ``s`` -> ``[s, s + 1, ...]``; a sequence is checked and returned."""
    if isinstance(seed, (int, np.integer)):
        return [int(seed) + b for b in range(batch)]
    seeds = [int(s) for s in seed]
    if len(seeds) != batch:
        raise ValueError(f"{len(seeds)} seeds for {batch} images")
    return seeds


@torch.no_grad()
def denoise(model: ConditionalUNet, latents: torch.Tensor, context: torch.Tensor, scheduler, timesteps,
            guidance_scale: float = 3.0, desc: str = "diffusion") -> torch.Tensor:
    """Run ``scheduler`` over ``timesteps`` from ``latents`` with classifier-free guidance.

    Parameters
    ----------
    latents : Tensor (B, c, h, w)
        Noisy latents at ``timesteps[0]``.
    context : Tensor (B, N, D)
        Conditional context (the unconditional one is built inside).
    guidance_scale : float
        1 disables guidance (one UNet call per step).
    """
    B = latents.shape[0]
    uncond = model.context(None, B)
    use_cfg = guidance_scale != 1.0
    ctx = torch.cat([uncond, context]) if use_cfg else context
    for t in track(list(timesteps), desc=desc):
        inp = torch.cat([latents, latents]) if use_cfg else latents
        inp = scheduler.scale_model_input(inp, t)
        out = model(inp, t.expand(inp.shape[0]).to(inp.device), ctx)
        if use_cfg:
            u, c = out.chunk(2)
            out = u + guidance_scale * (c - u)
        latents = scheduler.step(out, t, latents).prev_sample
    return latents


@torch.no_grad()
def generate_latents(model: ConditionalUNet, scheduler_config: dict, tokens: torch.Tensor, seeds,
                     steps: int = 25, guidance_scale: float = 3.0, sampler: str = "dpm") -> torch.Tensor:
    """Sample latents from pure noise conditioned on semantic tokens (B, N, D) in feature units.

    Returns scaled latents (B, c, h, w); image ``b`` depends only on ``seeds[b]``.
    """
    cfg = model.config
    device = model.conditioner.pos.device
    seeds = as_seeds(seeds, tokens.shape[0])
    scheduler = make_scheduler(scheduler_config, sampler)
    scheduler.set_timesteps(int(steps), device=device)
    latents = initial_noise((cfg.latent_channels, cfg.latent_size, cfg.latent_size), seeds, device)
    latents = latents * scheduler.init_noise_sigma
    ctx = model.context(tokens.to(device))
    return denoise(model, latents, ctx, scheduler, scheduler.timesteps, guidance_scale)


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------
def diffusion_loss(model: ConditionalUNet, noise_scheduler, latents: torch.Tensor, tokens_std: torch.Tensor,
                   config: DiffusionConfig, generator: torch.Generator, shard=None) -> torch.Tensor:
    """MSE of the UNet's v (or epsilon) prediction on a batch of scaled latents and standardised tokens.

    With a :class:`~brainit_core.distributed.Shard` the batch is this process's part and the noise,
    timesteps and dropout are drawn for the whole batch and sliced.
    """
    B = latents.shape[0]
    dev = latents.device

    def draw(fn, *shape):
        return distributed.draw(fn, shape, shard).to(dev)

    noise = draw(lambda s: torch.randn(s, generator=generator), *latents.shape)
    t = draw(lambda s: torch.randint(0, config.num_train_timesteps, s, generator=generator), B)
    noisy = noise_scheduler.add_noise(latents, noise, t)
    z = tokens_std + config.cond_noise * draw(lambda s: torch.randn(s, generator=generator), *tokens_std.shape)
    if config.cond_shrink < 1.0 or config.cond_noise_max > 0.0:  # half the batch looks like a prediction
        u = draw(lambda s: torch.rand(s, generator=generator), B, 3)
        hit = (u[:, 0] < 0.5)[:, None, None]
        scale = (config.cond_shrink + (1.0 - config.cond_shrink) * u[:, 1])[:, None, None]
        sd = (config.cond_noise_max * u[:, 2])[:, None, None]
        degraded = tokens_std * scale + sd * draw(lambda s: torch.randn(s, generator=generator), *tokens_std.shape)
        z = torch.where(hit, degraded, z)
    drop = (draw(lambda s: torch.rand(s, generator=generator), B) < config.cond_dropout)[:, None, None]
    ctx = model.conditioner(torch.where(drop, torch.zeros_like(z), z))
    pred = model(noisy, t, ctx)
    target = noise_scheduler.get_velocity(latents, noise, t) if config.prediction_type == "v_prediction" else noise
    return (pred - target).pow(2).mean()


def train_diffusion(latents: np.ndarray, tokens: np.ndarray, config: DiffusionConfig, out_path, state_dir=None,
                    device=None, seed: int = 0, max_seconds: float | None = None, init: dict | None = None) -> ConditionalUNet:
    """Train (or resume) the conditional UNet and write ``out_path.{safetensors,json}`` (EMA weights).

    Parameters
    ----------
    latents : ndarray, float, (n, c, h, w)
        Scaled autoencoder latents of the training + unlabeled images.
    tokens : ndarray, float, (n, N, D)
        Their TRUE semantic tokens in feature units.
    config : DiffusionConfig
    out_path : path
    state_dir : path, optional
    device : torch.device, optional
    max_seconds : float, optional
        Save the state and return early after this long.
    init : dict, optional
        Weights to start from when there is no saved state (fine-tuning; see :meth:`StepLoop.resume`).
    """
    from diffusers import DDPMScheduler

    device = device or torch.device("cpu")
    out_path = Path(out_path)
    state_dir = Path(state_dir or out_path.parent / "train")
    torch.manual_seed(seed)
    model = ConditionalUNet(config).to(device)
    tok = torch.from_numpy(np.asarray(tokens, dtype=np.float32))
    lat = torch.from_numpy(np.asarray(latents, dtype=np.float32))
    model.conditioner.fit_statistics(tok)
    ema = copy.deepcopy(model).requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=1e-2)
    warm = max(1, config.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warm))
    noise_scheduler = DDPMScheduler(**config.scheduler_config())
    loop = StepLoop("semantic UNet", model, optimizer, sched, state_dir, "unet", config.steps,
                    config.checkpoint_every, asdict(config), ema=ema, ema_decay=config.ema_decay,
                    batch_size=config.batch_size)
    step = loop.resume(device, init=init)
    rng = np.random.default_rng([seed, step])
    gen = torch.Generator().manual_seed(seed * 15485863 + step)
    tok_std = model.conditioner.standardize(tok)

    def loss_fn(_):
        rows = loop.shard.take(rng.choice(len(lat), config.batch_size, replace=len(lat) < config.batch_size))
        loss = diffusion_loss(model, noise_scheduler, lat[rows].to(device), tok_std[rows].to(device), config, gen,
                              loop.shard)
        return loss, {"mse": loss.item()}

    if not loop.run(step, loss_fn, max_seconds):
        return ema.eval()
    save_conditional_unet(ema, out_path, meta={"steps": config.steps})
    return ema.eval()


def save_conditional_unet(model: ConditionalUNet, path, meta: dict | None = None) -> Path:
    record = {"kind": "conditional_unet", "config": asdict(model.config),
              "scheduler_config": model.config.scheduler_config()}
    return save_checkpoint(path, model.state_dict(), record, meta)


def load_conditional_unet(path, device="cpu") -> ConditionalUNet:
    tensors, record, _ = load_checkpoint(path, device=str(device))
    cfg = {k: (tuple(v) if isinstance(v, list) else v) for k, v in record["config"].items()}
    for key, before in (("spatial_channels", 0), ("cond_shrink", 1.0), ("cond_noise_max", 0.0)):
        cfg.setdefault(key, before)  # saved before these fields existed
    model = ConditionalUNet(DiffusionConfig(**cfg))
    model.load_state_dict(tensors)
    return model.to(device).eval()
