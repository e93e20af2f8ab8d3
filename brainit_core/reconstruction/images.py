"""Images for the generators: conversions between uint8 arrays and float tensors, the training pool."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def to_float_images(images, device=None) -> torch.Tensor:
    """uint8 (B, H, W, 3) or float (B, 3, H, W) in [0, 1] -> float (B, 3, H, W) in [0, 1]."""
    from brainit_core.features.base import images_to_tensor

    return images_to_tensor(images, device)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """float (B, 3, H, W) in [0, 1] -> uint8 (B, H, W, 3)."""
    x = images.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def resize_to(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear (antialiased when shrinking) resize of (B, 3, H, W) to (B, 3, size, size)."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=images.shape[-1] > size)


def image_size_of(space) -> int:
    """The image side (px) at which ``space`` computes its low-level pyramid."""
    cfg = getattr(space, "config", None)
    size = getattr(cfg, "lowlevel_size", None)
    return int(size) if size else int(space.lowlevel_specs[0].grid[0] * 4)


def generator_images(dataset, max_images: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images the generators may train on: every subject's training images plus ``unlabeled``.

    Test and validation images of every subject are excluded, so no reconstruction target is
    ever seen by a generator.

    Returns
    -------
    ids : ndarray, int64, (n,)
    images : ndarray, uint8, (n, H, W, 3)
    """
    train, held = set(), set()
    for name in dataset.subjects:
        s = dataset.subject(name)
        train.update(s.train_image_ids.tolist())
        held.update(s.test_image_ids.tolist())
        held.update(s.val_image_ids.tolist())
    if "unlabeled" in dataset.image_sets:
        train.update(dataset.image_set("unlabeled").tolist())
    ids = np.array(sorted(train - held), dtype=np.int64)
    if max_images is not None and len(ids) > max_images:
        ids = np.sort(np.random.default_rng(seed).choice(ids, max_images, replace=False))
    return ids, dataset.images(ids)


class ImageBatches:
    """Endless random batches from an in-memory uint8 pool, with flips and optional crops.

    Parameters
    ----------
    images : ndarray, uint8, (n, H, W, 3)
    batch_size : int
    crop : int or None
        Random square crops of this side (the autoencoder trains on crops).
    size : int or None
        Resize (after cropping) to this side.
    seed : int
    """

    def __init__(self, images: np.ndarray, batch_size: int, crop: int | None = None, size: int | None = None,
                 seed: int = 0, flip: bool = True):
        self.images = images
        self.batch_size = batch_size
        self.crop = crop
        self.size = size
        self.flip = flip
        self.rng = np.random.default_rng(seed)

    def skip(self, n: int) -> None:
        """Advance the random stream as if ``n`` batches had been drawn (for resuming)."""
        self.rng = np.random.default_rng([int(self.rng.integers(1 << 31)), n])

    def next(self, device=None) -> torch.Tensor:
        rows = np.sort(self.rng.choice(len(self.images), self.batch_size, replace=len(self.images) < self.batch_size))
        x = to_float_images(self.images[rows])  # (B, 3, H, W)
        if self.crop is not None and self.crop < x.shape[-1]:
            h = x.shape[-1]
            out = []
            for img in x:
                i, j = self.rng.integers(0, h - self.crop + 1, 2)
                out.append(img[:, i:i + self.crop, j:j + self.crop])
            x = torch.stack(out)
        if self.flip:
            flips = torch.from_numpy(self.rng.random(len(x)) < 0.5)
            x = torch.where(flips[:, None, None, None], x.flip(-1), x)
        if self.size is not None:
            x = resize_to(x, self.size)
        return x.to(device) if device is not None else x
