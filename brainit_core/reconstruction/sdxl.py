"""Full-size semantic branch: a pretrained SDXL (diffusers layout) conditioned on image tokens.

The paper conditions MindEye2's unCLIP fine-tune of SDXL on the 256 predicted OpenCLIP bigG
tokens (256 x 1664). This adapter loads the UNet, VAE and scheduler of any SDXL-format
directory (``unet/``, ``vae/``, ``scheduler/`` as written by ``save_pretrained``; text encoders
are not needed, so ``transformers`` is not either) and conditions it through an
IP-Adapter-style projection: each token is layer-normalised and linearly mapped to the UNet's
cross-attention width (the ``prompt_embeds``), and the mean token to the pooled embedding that
SDXL's micro-conditioning expects. The projection is a small trained module stored as a
Brain-IT checkpoint (``image_token_projection.{safetensors,json}``); for MindEye2's unCLIP
weights it is the identity-like map learned during their fine-tune.

Img2img fusion is the same as the demo's: encode the low-level image, noise it to
``1 - strength`` of the schedule, denoise with classifier-free guidance (zero embeddings as the
unconditional branch, SDXL's convention for an empty prompt).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
import torch.nn.functional as F

from brainit_core.checkpoint import load_checkpoint, save_checkpoint
from brainit_core.distributed import draw
from brainit_core.errors import MissingWeightsError
from brainit_core.progress import track
from brainit_core.runs import SDXL_PROJECTION, SDXL_WEIGHT_NAMES, sdxl_missing

WEIGHT_NAMES = SDXL_WEIGHT_NAMES
PROJECTION_NAME = SDXL_PROJECTION
DTYPES = ("float32", "float16", "bfloat16")


@dataclass
class SDXLAdapterConfig:
    """Settings of the SDXL semantic branch.

    Parameters
    ----------
    size : int
        Output side in pixels (SDXL: 1024; MindEye2 decodes at 768).
    steps : int
        Schedule length (official 38).
    strength : float
        Fraction of the schedule re-run in img2img fusion (official 24/38).
    guidance_scale : float
        Classifier-free guidance (official 5).
    sampler : str
        ``"dpm"`` or ``"ddim"`` (built from the directory's scheduler config).
    dtype : str
        ``"float32"``, ``"float16"`` or ``"bfloat16"`` (GPU) for the UNet and the projection (the VAE
        stays float32).
    """

    size: int = 768
    steps: int = 38
    strength: float = 24 / 38
    guidance_scale: float = 5.0
    sampler: str = "dpm"
    dtype: str = "float32"


class ImageTokenProjection(nn.Module):
    """Image tokens (B, N, D_tok) -> (prompt_embeds (B, N, D_cross), pooled (B, D_pool))."""

    def __init__(self, token_dim: int = 1664, cross_attention_dim: int = 2048, pooled_dim: int = 1280):
        super().__init__()
        self.dims = {"token_dim": token_dim, "cross_attention_dim": cross_attention_dim, "pooled_dim": pooled_dim}
        self.norm = nn.LayerNorm(token_dim)
        self.tokens = nn.Linear(token_dim, cross_attention_dim)
        self.pooled = nn.Linear(token_dim, pooled_dim)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.norm(tokens)
        return self.tokens(h), self.pooled(h.mean(1))

    def save(self, path) -> Path:
        return save_checkpoint(path, self.state_dict(), {"kind": "image_token_projection", **self.dims})

    @classmethod
    def load(cls, path, device="cpu") -> "ImageTokenProjection":
        tensors, cfg, _ = load_checkpoint(path, device=str(device))
        proj = cls(cfg["token_dim"], cfg["cross_attention_dim"], cfg["pooled_dim"])
        proj.load_state_dict(tensors)
        return proj.to(device).eval()


def expected_files(directory) -> list[Path]:
    """The files an SDXL directory must hold for :class:`SDXLReconstructor`."""
    d = Path(directory)
    return [d / "unet" / "config.json", d / "unet" / WEIGHT_NAMES[0], d / "vae" / "config.json",
            d / "vae" / WEIGHT_NAMES[0], d / "scheduler" / "scheduler_config.json", d / f"{PROJECTION_NAME}.safetensors"]


def check_sdxl_directory(directory, need_projection: bool = True, need_unet: bool = True) -> None:
    """Raise :class:`MissingWeightsError` listing every expected file that is absent
    (:func:`brainit_core.runs.sdxl_missing`)."""
    d = Path(directory).expanduser()
    missing = sdxl_missing(d, need_projection=need_projection, need_unet=need_unet)
    if missing:
        listing = "\n  ".join(str(m) for m in missing)
        raise MissingWeightsError(
            f"SDXL weights not found in {d}. Expected a diffusers-format SDXL directory (e.g. MindEye2's unCLIP "
            f"fine-tune saved with save_pretrained, safetensors weights) plus the image-token projection; "
            f"missing:\n  {listing}\nNothing is downloaded at run time: copy the files there first.")


class SDXLReconstructor:
    """Semantic generation and img2img fusion with a local SDXL and image-token conditioning.

    Parameters
    ----------
    unet : diffusers.UNet2DConditionModel
        An SDXL UNet (``addition_embed_type="text_time"``).
    vae : diffusers.AutoencoderKL
    scheduler_config : dict
        The directory's ``scheduler/scheduler_config.json`` (betas, prediction type).
    projection : ImageTokenProjection
    config : SDXLAdapterConfig
    """

    def __init__(self, unet, vae, scheduler_config: dict, projection: ImageTokenProjection,
                 config: SDXLAdapterConfig | None = None):
        self.unet, self.vae, self.projection = unet, vae, projection
        self.scheduler_config = dict(scheduler_config)
        self.config = config or SDXLAdapterConfig()
        ucfg = unet.config
        if ucfg.get("addition_embed_type") != "text_time":
            raise ValueError("the UNet is not an SDXL UNet (addition_embed_type must be 'text_time')")
        self.pooled_dim = ucfg["projection_class_embeddings_input_dim"] - 6 * ucfg["addition_time_embed_dim"]
        if projection.dims["cross_attention_dim"] != ucfg["cross_attention_dim"] or projection.dims["pooled_dim"] != self.pooled_dim:
            raise ValueError(f"projection {projection.dims} does not fit the UNet (cross-attention "
                             f"{ucfg['cross_attention_dim']}, pooled {self.pooled_dim})")

    @classmethod
    def from_pretrained(cls, directory, projection: ImageTokenProjection | None = None, device=None,
                        config: SDXLAdapterConfig | None = None, unet_path=None) -> "SDXLReconstructor":
        """Load from a local SDXL directory (never downloads).

        Parameters
        ----------
        directory : path
            Diffusers layout: ``unet/``, ``vae/``, ``scheduler/`` (and ``image_token_projection.*``
            when ``projection`` is not given).
        projection : ImageTokenProjection, optional
        device : torch.device, optional
        config : SDXLAdapterConfig, optional
        unet_path : path, optional
            A UNet folder that replaces ``directory/unet`` (the fine-tune written by ``stage2``).

        Raises
        ------
        MissingWeightsError
            Naming every expected file that is absent.
        """
        import json

        from diffusers import AutoencoderKL, UNet2DConditionModel

        d = Path(directory).expanduser()
        check_sdxl_directory(d, need_projection=projection is None, need_unet=unet_path is None)
        unet_dir = Path(unet_path).expanduser() if unet_path is not None else d / "unet"
        if unet_path is not None and not (unet_dir / "config.json").is_file():
            raise MissingWeightsError(f"{unet_dir / 'config.json'} not found: the fine-tuned SDXL UNet is missing "
                                      "(written by `python -m brainit_core stage2`)")
        config = config or SDXLAdapterConfig()
        if config.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {config.dtype!r}")
        dtype = getattr(torch, config.dtype)
        variant = None if (unet_dir / WEIGHT_NAMES[0]).exists() else "fp16"
        unet = UNet2DConditionModel.from_pretrained(unet_dir, use_safetensors=True, local_files_only=True,
                                                    torch_dtype=dtype, variant=variant)
        vae_variant = None if (d / "vae" / WEIGHT_NAMES[0]).exists() else "fp16"
        vae = AutoencoderKL.from_pretrained(d, subfolder="vae", use_safetensors=True, local_files_only=True,
                                            torch_dtype=torch.float32, variant=vae_variant)
        sched = json.loads((d / "scheduler" / "scheduler_config.json").read_text())
        if projection is None:
            projection = ImageTokenProjection.load(d / PROJECTION_NAME)
        device = device or torch.device("cpu")
        vae.requires_grad_(False)
        return cls(unet.to(device).eval(), vae.to(device).eval(), sched, projection.to(device).to(dtype).eval(), config)

    # -- pieces shared by sampling and training ---------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def latent_factor(self) -> int:
        """Pixels per latent cell (8 for SDXL's VAE)."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    def trainable(self) -> nn.Module:
        """The UNet and the projection as one module (what training updates; the VAE stays frozen)."""
        return nn.ModuleDict({"unet": self.unet, "projection": self.projection})

    def _conditioning(self, tokens: torch.Tensor, size: int, drop: torch.Tensor | None = None):
        """Image tokens -> (prompt embeddings, pooled, time ids); ``drop`` (B,) bool zeroes samples."""
        dtype = next(self.unet.parameters()).dtype
        emb, pooled = self.projection(tokens.to(self.device, next(self.projection.parameters()).dtype))
        emb, pooled = emb.to(dtype), pooled.to(dtype)
        if drop is not None:
            emb = torch.where(drop[:, None, None], torch.zeros_like(emb), emb)
            pooled = torch.where(drop[:, None], torch.zeros_like(pooled), pooled)
        time_ids = torch.tensor([size, size, 0, 0, size, size], device=self.device, dtype=dtype).repeat(len(emb), 1)
        return emb, pooled, time_ids

    def _predict(self, latents, t, emb, pooled, time_ids) -> torch.Tensor:
        dtype = next(self.unet.parameters()).dtype
        return self.unet(latents.to(dtype), t, encoder_hidden_states=emb,
                         added_cond_kwargs={"text_embeds": pooled, "time_ids": time_ids}).sample.float()

    @torch.no_grad()
    def encode(self, images: torch.Tensor, size: int | None = None) -> torch.Tensor:
        """Images (B, 3, H, W) in [0, 1] -> scaled VAE latents (posterior mean) at ``size`` px."""
        size = size or self.config.size
        x = images.to(self.device).float()
        if x.shape[-1] != size or x.shape[-2] != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=x.shape[-1] > size)
        return self.vae.encode(x * 2 - 1).latent_dist.mean * self.vae.config.scaling_factor

    def loss(self, latents: torch.Tensor, tokens: torch.Tensor, generator: torch.Generator,
             cond_dropout: float = 0.1, shard=None) -> torch.Tensor:
        """Diffusion training loss (MSE of the epsilon or v prediction, as the scheduler config says) on
        scaled latents conditioned on image tokens (B, N, D_tok); differentiable in the tokens, the
        projection and the UNet. ``cond_dropout`` of the samples get the unconditional (zero) embedding,
        as classifier-free guidance samples it. With a :class:`~brainit_core.distributed.Shard` the batch
        is this process's part and the noise, timesteps and dropout are drawn for the whole batch and sliced."""
        from diffusers import DDPMScheduler

        keep = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "prediction_type", "steps_offset")
        sched = DDPMScheduler(**{k: v for k, v in self.scheduler_config.items() if k in keep})
        B = latents.shape[0]
        x0 = latents.to(self.device).float()
        noise = draw(lambda s: torch.randn(s, generator=generator), x0.shape, shard).to(self.device)
        t = draw(lambda s: torch.randint(0, sched.config.num_train_timesteps, s, generator=generator), (B,),
                 shard).to(self.device)
        drop = draw(lambda s: torch.rand(s, generator=generator), (B,), shard).to(self.device) < cond_dropout
        size = x0.shape[-1] * self.latent_factor
        emb, pooled, time_ids = self._conditioning(tokens, size, drop)
        pred = self._predict(sched.add_noise(x0, noise, t), t, emb, pooled, time_ids)
        target = sched.get_velocity(x0, noise, t) if sched.config.prediction_type == "v_prediction" else noise
        return (pred - target).pow(2).mean()

    def _scheduler(self, sampler: str):
        from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

        keep = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "prediction_type",
                "timestep_spacing", "steps_offset")
        cfg = {k: v for k, v in self.scheduler_config.items() if k in keep}
        if sampler == "dpm":
            return DPMSolverMultistepScheduler(**cfg, algorithm_type="dpmsolver++")
        if sampler == "ddim":
            return DDIMScheduler(**cfg, clip_sample=False, set_alpha_to_one=False)
        raise ValueError(f"sampler must be 'dpm' or 'ddim', got {sampler!r}")

    @torch.no_grad()
    def __call__(self, tokens: torch.Tensor, low_level: torch.Tensor | None = None, seeds=0,
                 strength: float | None = None, steps: int | None = None, guidance_scale: float | None = None,
                 size: int | None = None, sampler: str | None = None) -> torch.Tensor:
        """Generate (``low_level=None``) or fuse.

        Parameters
        ----------
        tokens : Tensor (B, N, D_tok)
            Image tokens (predicted bigG tokens, feature units).
        low_level : Tensor (B, 3, H, W) in [0, 1], optional
            The low-level image for img2img fusion.
        seeds : int or list of int
        strength, steps, guidance_scale, size, sampler : override :class:`SDXLAdapterConfig`.

        Returns
        -------
        Tensor (B, 3, size, size) in [0, 1]
        """
        from brainit_core.reconstruction.diffusion import as_seeds, initial_noise
        from brainit_core.reconstruction.fusion import fusion_start

        c = self.config
        strength = c.strength if strength is None else strength
        steps = c.steps if steps is None else int(steps)
        guidance_scale = c.guidance_scale if guidance_scale is None else guidance_scale
        size = size or c.size
        device = self.device
        B = tokens.shape[0]
        seeds = as_seeds(seeds, B)
        # 1. image tokens -> prompt embeddings (+ zeros for the unconditional branch)
        emb, pooled, time_ids = self._conditioning(tokens, size)
        emb, pooled = torch.cat([torch.zeros_like(emb), emb]), torch.cat([torch.zeros_like(pooled), pooled])
        time_ids = time_ids.repeat(2, 1)
        # 2. starting latents: pure noise, or the encoded low-level image noised part-way
        f = self.latent_factor
        sf = self.vae.config.scaling_factor
        scheduler = self._scheduler(sampler or c.sampler)
        scheduler.set_timesteps(steps, device=device)
        start = 0 if low_level is None else fusion_start(steps, strength)
        noise = initial_noise((self.unet.config.in_channels, size // f, size // f), seeds, device)
        if low_level is None or start == 0:
            latents = noise * scheduler.init_noise_sigma
        else:
            latents = self.encode(low_level, size)
            if start >= steps:
                return ((self.vae.decode(latents / sf).sample + 1) / 2).clamp(0, 1)
            if hasattr(scheduler, "set_begin_index"):
                scheduler.set_begin_index(start)
            latents = scheduler.add_noise(latents, noise, scheduler.timesteps[start:start + 1].repeat(B))
        # 3. denoise with classifier-free guidance
        for t in track(list(scheduler.timesteps[start:]), desc="SDXL"):
            inp = scheduler.scale_model_input(torch.cat([latents, latents]), t)
            u, cnd = self._predict(inp, t, emb, pooled, time_ids).chunk(2)
            latents = scheduler.step(u + guidance_scale * (cnd - u), t, latents).prev_sample
        # 4. decode
        return ((self.vae.decode(latents.float() / sf).sample + 1) / 2).clamp(0, 1)

    def describe(self) -> dict:
        return {"config": asdict(self.config), "projection": self.projection.dims, "pooled_dim": self.pooled_dim}
