"""The feature-space interface: what BIT predicts and what the generators invert.

A feature space turns images into
- semantic tokens: one spatial grid of tokens, (B, N_sem, D_sem), the analogue of the 256
  OpenCLIP ViT-bigG/14 tokens that condition the diffusion model;
- a low-level pyramid: several CNN feature maps [(B, C_l, h_l, w_l), ...], the analogue of
  VGG16-BN relu1_2..relu5_3 that the low-level branch inverts.

Images enter as float tensors (B, 3, H, W) in [0, 1] at any size; each space resizes internally.
Token order inside a grid is row-major: ``maps.flatten(2).transpose(1, 2)``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F


@dataclass(frozen=True)
class TokenSpec:
    """One token grid: ``name``, ``grid`` (h, w) and token width ``dim``."""

    name: str
    grid: tuple[int, int]
    dim: int

    @property
    def n_tokens(self) -> int:
        return int(self.grid[0] * self.grid[1])


class FeatureSpace(nn.Module):
    """Base class; subclasses set the specs and implement the two extractors.

    Attributes
    ----------
    name : str
        Short identifier, also the feature-cache key (``"lite0"``, ``"bigg-vgg16bn"``).
    semantic_spec : TokenSpec
    lowlevel_specs : tuple of TokenSpec
    """

    name: str = "base"
    semantic_spec: TokenSpec
    lowlevel_specs: tuple[TokenSpec, ...]

    def semantic_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, N_sem, D_sem)."""
        raise NotImplementedError

    def lowlevel_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) in [0, 1] -> [(B, C_l, h_l, w_l) for each low-level layer]; differentiable."""
        raise NotImplementedError

    def extract(self, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Semantic tokens and low-level maps of one batch (a space that gets both from one pass overrides it)."""
        return self.semantic_tokens(images), self.lowlevel_maps(images)

    def describe(self) -> dict:
        """JSON-able description (for checkpoints, caches and the app's badge)."""
        return {
            "name": self.name,
            "semantic": asdict(self.semantic_spec),
            "lowlevel": [asdict(s) for s in self.lowlevel_specs],
        }

    def cache_key(self) -> str:
        grids = "-".join(f"{s.grid[0]}x{s.dim}" for s in (self.semantic_spec, *self.lowlevel_specs))
        return f"{self.name}_{grids}"

    def train(self, mode: bool = True):
        # feature networks are frozen: batch-norm statistics must never move
        return super().train(False)


class OnePassSpace(FeatureSpace):
    """A space that gets its tokens and maps from one pass of its network: subclasses implement
    :meth:`extract` only (the encoder's backbones, ``features/backbones.py``)."""

    def extract(self, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        raise NotImplementedError

    def semantic_tokens(self, images: torch.Tensor) -> torch.Tensor:
        return self.extract(images)[0]

    def lowlevel_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        return self.extract(images)[1]


def images_to_tensor(images, device=None) -> torch.Tensor:
    """uint8 (B, H, W, 3) array/tensor or float (B, 3, H, W) in [0, 1] -> float (B, 3, H, W) in [0, 1]."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images))
    if images.dtype == torch.uint8:
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"uint8 images must be (B, H, W, 3), got {tuple(images.shape)}")
        images = images.permute(0, 3, 1, 2).float() / 255.0
    elif images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"float images must be (B, 3, H, W) in [0, 1], got {tuple(images.shape)}")
    return images.to(device=device, dtype=torch.float32) if device is not None else images.float()


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear (antialiased when shrinking) resize of (B, 3, H, W) to (B, 3, size, size)."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    shrink = images.shape[-1] > size
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink)


def maps_to_tokens(maps: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, h*w, C), row-major."""
    return maps.flatten(2).transpose(1, 2)


def tokens_to_maps(tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(B, h*w, C) -> (B, C, h, w)."""
    b, n, c = tokens.shape
    return tokens.transpose(1, 2).reshape(b, c, grid[0], grid[1])
