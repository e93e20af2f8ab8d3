"""DINOv2 ViT with registers, the official image-to-fMRI encoder's backbone (full size).

The Brain-IT encoder reads frozen DINOv2 ViT-L/14 with 4 registers ("Vision Transformers Need
Registers", Darcet et al. 2024), tokens of 5 depths (official ``train/train_encoder.py``: layers
1/6/12/18/24). :class:`ViTWithRegisters` is this project's own code for that network, laid out so
that the official state dict (``facebookresearch/dinov2``, file ``dinov2_vitl14_reg4_pretrain.pth``)
loads into it unchanged: ``cls_token``, ``register_tokens``, ``pos_embed`` (class + 37 x 37 patch
positions, made at 518 px), ``patch_embed.proj``, ``blocks.<i>.{norm1, attn.qkv, attn.proj, ls1.gamma,
norm2, mlp.fc1, mlp.fc2, ls2.gamma}`` and ``norm``. Facts followed from the official code: pre-LN
blocks with LayerScale, LayerNorm eps 1e-6, the class position added before the registers are
inserted after the class token (registers have no position), patch positions resized bicubically
with antialiasing to the input's grid, and intermediate outputs passed through the final ``norm``
with class and register tokens dropped (``get_intermediate_layers(..., norm=True)``).

:class:`DinoV2Backbone` wraps it as a :class:`~brainit_core.features.base.FeatureSpace` so that its
tokens are cached like every other space (:mod:`brainit_core.features.cache`): the first four
depths are the "low-level maps" (B, C, g, g), the deepest the "semantic tokens" (B, g*g, C), which is
the layout the encoder reads (:func:`brainit_core.models.encoder.encoder_inputs`).
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from brainit_core.features.base import OnePassSpace, TokenSpec, resize, tokens_to_maps
from brainit_core.features.weights import find_dinov2_weights, load_strict, read_state_dict

NAME = "dinov2-vitl14-reg"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass
class ViTConfig:
    """Shape of :class:`ViTWithRegisters` (defaults: DINOv2 ViT-L/14 with 4 registers)."""

    patch_size: int = 14
    dim: int = 1024
    depth: int = 24
    heads: int = 16
    mlp_ratio: float = 4.0
    registers: int = 4
    pretrain_size: int = 518  # the position grid of the weights: 518 / 14 = 37


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)  # (B, H, N, hd)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.proj(y.transpose(1, 2).reshape(B, N, C))


class LayerScale(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), 1e-5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.ls1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, g*g, D)


class ViTWithRegisters(nn.Module):
    """A DINOv2 vision transformer with register tokens (no head); see the module docstring.

    Parameters
    ----------
    config : ViTConfig
    """

    def __init__(self, config: ViTConfig | None = None):
        super().__init__()
        self.config = c = config or ViTConfig()
        g = c.pretrain_size // c.patch_size
        self.patch_embed = PatchEmbed(c.patch_size, c.dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.dim))
        self.register_tokens = nn.Parameter(torch.zeros(1, c.registers, c.dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + g * g, c.dim))
        self.blocks = nn.ModuleList([Block(c.dim, c.heads, c.mlp_ratio) for _ in range(c.depth)])
        self.norm = nn.LayerNorm(c.dim, eps=1e-6)
        for p in (self.cls_token, self.register_tokens, self.pos_embed):
            nn.init.trunc_normal_(p, std=0.02)

    def positions(self, grid: tuple[int, int]) -> torch.Tensor:
        """Position embeddings (1, 1 + h*w, D) for a patch grid, resized from the pretraining grid."""
        cls_pos, patch_pos = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        m = int(round(patch_pos.shape[1] ** 0.5))
        if (m, m) == tuple(grid):
            return self.pos_embed
        maps = patch_pos.float().reshape(1, m, m, -1).permute(0, 3, 1, 2)  # (1, D, m, m)
        maps = F.interpolate(maps, size=tuple(grid), mode="bicubic", antialias=True)
        return torch.cat([cls_pos, maps.flatten(2).transpose(1, 2).to(patch_pos.dtype)], dim=1)

    def forward_depths(self, images: torch.Tensor, depths) -> list[torch.Tensor]:
        """Normalised patch tokens after each of ``depths`` (1-based block numbers).

        Parameters
        ----------
        images : Tensor (B, 3, H, W)
            Already normalised (ImageNet mean/std); H and W multiples of the patch size.
        depths : sequence of int

        Returns
        -------
        list of Tensor
            One (B, h*w, D) per depth, class and register tokens dropped, after the final LayerNorm.
        """
        c = self.config
        grid = (images.shape[-2] // c.patch_size, images.shape[-1] // c.patch_size)
        x = self.patch_embed(images)  # (B, h*w, D)
        x = torch.cat([self.cls_token.expand(len(x), -1, -1), x], dim=1) + self.positions(grid)
        x = torch.cat([x[:, :1], self.register_tokens.expand(len(x), -1, -1), x[:, 1:]], dim=1)
        wanted, out = {int(d): None for d in depths}, []
        for i, block in enumerate(self.blocks[:max(wanted)], start=1):
            x = block(x)
            if i in wanted:
                wanted[i] = self.norm(x)[:, 1 + c.registers:]
        return [wanted[int(d)] for d in depths]


def official_state_dict(state: dict) -> dict:
    """An official DINOv2 state dict in this module's keys: chunked blocks (``blocks.<chunk>.<i>.``)
    flattened, the unused ``mask_token`` dropped."""
    out = {}
    for k, v in state.items():
        if k == "mask_token":
            continue
        out[re.sub(r"^blocks\.\d+\.(\d+)\.", r"blocks.\1.", k)] = v
    return out


@dataclass
class DinoV2BackboneConfig:
    """Configuration of :class:`DinoV2Backbone`.

    Parameters
    ----------
    image_size : int
        Input side (224 -> a 16 x 16 token grid per depth).
    depths : tuple of int
        Block numbers whose tokens are read (official 1/6/12/18/24), shallow to deep.
    vit : ViTConfig
    weights : str or None
        A local weight file; ``None`` looks in ``$BRAINIT_DINOV2_WEIGHTS`` and torch hub's checkpoints.
    pretrained : bool
        ``False`` keeps random weights (tests), seeded by ``seed``.
    """

    image_size: int = 224
    depths: tuple = (1, 6, 12, 18, 24)
    vit: ViTConfig = field(default_factory=ViTConfig)
    weights: str | None = None
    pretrained: bool = True
    seed: int = 0

    @classmethod
    def preset(cls, name: str) -> "DinoV2BackboneConfig":
        """``full`` / ``demo``: ViT-L/14-reg from local weights; ``ci`` / ``tiny``: a tiny random one."""
        if name in ("full", "demo"):
            return cls()
        if name in ("ci", "tiny"):
            return cls(image_size=32, depths=(1, 2, 3, 4, 5), pretrained=False,
                       vit=ViTConfig(patch_size=8, dim=16, depth=5, heads=2, registers=4, pretrain_size=24))
        raise ValueError(f"unknown preset {name!r} (ci, tiny, demo, full)")


class DinoV2Backbone(OnePassSpace):
    """Tokens of several depths of a frozen DINOv2 ViT with registers, as a cacheable feature space.

    Parameters
    ----------
    config : DinoV2BackboneConfig
    """

    name = NAME

    def __init__(self, config: DinoV2BackboneConfig | None = None):
        super().__init__()
        self.config = c = config or DinoV2BackboneConfig()
        if len(c.depths) < 2 or max(c.depths) > c.vit.depth or min(c.depths) < 1:
            raise ValueError(f"depths {c.depths} must be >= 2 block numbers in 1..{c.vit.depth}")
        if c.image_size % c.vit.patch_size:
            raise ValueError(f"image_size {c.image_size} is not a multiple of the patch size {c.vit.patch_size}")
        torch.manual_seed(c.seed)
        self.vit = ViTWithRegisters(c.vit)
        if c.pretrained:
            path = find_dinov2_weights(c.weights)
            load_strict(self.vit, official_state_dict(read_state_dict(path)), path, "DINOv2 ViT with registers")
        self.vit.eval().requires_grad_(False)
        g = c.image_size // c.vit.patch_size
        self.lowlevel_specs = tuple(TokenSpec(f"depth{d}", (g, g), c.vit.dim) for d in c.depths[:-1])
        self.semantic_spec = TokenSpec(f"depth{c.depths[-1]}", (g, g), c.vit.dim)
        self.register_buffer("_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def extract(self, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = (resize(images, self.config.image_size) - self._mean) / self._std
        tokens = self.vit.forward_depths(x, self.config.depths)  # [(B, g*g, D)]
        return tokens[-1], [tokens_to_maps(t, s.grid) for t, s in zip(tokens[:-1], self.lowlevel_specs)]

    def cache_key(self) -> str:
        key = f"{super().cache_key()}_d{'-'.join(map(str, self.config.depths))}"
        return key if self.config.pretrained else key + f"_random{self.config.seed}"

    def describe(self) -> dict:
        d = asdict(self.config)
        d["weights"] = None  # a local path says nothing about the network
        return {**super().describe(), "config": d}
