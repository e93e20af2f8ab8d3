"""Image inputs of the metrics: validation, conversion and the protocol's resizing.

Every metric takes ground truth and reconstructions as float RGB in [0, 1], shape (N, 3, H, W)
(NumPy or torch), or uint8 (N, H, W, 3) through :func:`to_float_nchw`. Resizing follows MindEye2's
evaluation notebook: torchvision ``Resize`` (bilinear; antialiased when shrinking, the default of
torchvision 0.17 that MindEye2 pins) first to 256 x 256, then to the size a metric needs.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

PROTOCOL_SIZE = 256  # MindEye2 resizes every image to 256 x 256 before any metric
_RANGE_TOL = 1e-3


def _validated(images, name: str) -> torch.Tensor:
    """Check shape, dtype and values; return uint8 (N, H, W, 3) or float (N, 3, H, W) unconverted."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images))
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"{name}: expected a NumPy array or torch tensor, got {type(images).__name__}")
    if images.dtype == torch.uint8:
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"{name}: uint8 images must be (N, H, W, 3), got {tuple(images.shape)}")
    elif not images.is_floating_point():
        raise ValueError(f"{name}: expected uint8 or float images, got dtype {images.dtype}")
    elif images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"{name}: float images must be (N, 3, H, W), got {tuple(images.shape)}")
    if images.numel() == 0:
        raise ValueError(f"{name}: no images (shape {tuple(images.shape)})")
    if images.is_floating_point():
        if not torch.isfinite(images).all():
            raise ValueError(f"{name}: contains NaN or infinite values")
        lo, hi = float(images.min()), float(images.max())
        if lo < -_RANGE_TOL or hi > 1 + _RANGE_TOL:
            raise ValueError(f"{name}: float images must lie in [0, 1], got values in [{lo:.3g}, {hi:.3g}] "
                             "(clip them, or divide 0..255 images by 255)")
    return images


def _as_float(images: torch.Tensor) -> torch.Tensor:
    if images.dtype == torch.uint8:
        return images.permute(0, 3, 1, 2).float().div_(255.0)
    return images.float()


def to_float_nchw(images, name: str = "images") -> torch.Tensor:
    """Convert images to a float32 tensor (N, 3, H, W) in [0, 1] and validate them.

    Parameters
    ----------
    images : numpy.ndarray or torch.Tensor
        uint8 (N, H, W, 3) (divided by 255), or float (N, 3, H, W) with values in [0, 1].
    name : str, default="images"
        Used in error messages (``"ground truth"``, ``"reconstructions"``).

    Returns
    -------
    torch.Tensor
        float32 (N, 3, H, W) on the input's device (CPU for NumPy input).

    Raises
    ------
    ValueError
        On another shape, NaN/inf values, or float values outside [0, 1] (a tolerance of 1e-3
        allows rounding; float images in 0..255 are refused rather than guessed).
    """
    return _as_float(_validated(images, name))


def _batches(images: torch.Tensor, batch_size: int, device):
    for s in range(0, len(images), batch_size):
        yield resize(_as_float(images[s:s + batch_size].to(device)), PROTOCOL_SIZE)


def iter_image_batches(images, batch_size: int = 32, device="cpu", name: str = "images"):
    """Validate one image set, then yield float batches resized to 256 x 256 as the protocol starts.

    Images are converted one batch at a time, so uint8 inputs never exist as one float copy.

    Yields
    ------
    torch.Tensor
        float32 (B, 3, 256, 256) on ``device``
    """
    yield from _batches(_validated(images, name), batch_size, device)


def iter_image_pairs(gt, recon, batch_size: int = 32, device="cpu"):
    """Validate both sets (same count), then yield their batches side by side (see
    :func:`iter_image_batches`).

    Yields
    ------
    (gt_batch, recon_batch) : torch.Tensor, each float32 (B, 3, 256, 256) on ``device``
    """
    a, b = validate_pair(gt, recon)
    yield from zip(_batches(a, batch_size, device), _batches(b, batch_size, device))


def validate_pair(gt, recon) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate ground truth and reconstructions (see :func:`to_float_nchw`) and check that they hold
    as many images; returns both as unconverted tensors."""
    a = _validated(gt, "ground truth")
    b = _validated(recon, "reconstructions")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"{a.shape[0]} ground-truth images but {b.shape[0]} reconstructions")
    return a, b


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of (B, 3, H, W) to (B, 3, size, size) as torchvision 0.17's ``Resize``."""
    if images.shape[-2:] == (size, size):
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
