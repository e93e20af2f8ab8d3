"""Image losses of the low-level branch: grey-level SSIM and per-layer normalised feature matching."""
from __future__ import annotations

import torch
import torch.nn.functional as F


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
