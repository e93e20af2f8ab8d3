"""Low-level scores of the protocol: PixCorr and SSIM, both at 425 x 425."""
from __future__ import annotations

import numpy as np

from brainit_core.metrics.identification import paired_correlation
from brainit_core.metrics.images import iter_image_pairs, resize

PIXEL_SIZE = 425


def _batches(gt, recon, batch_size: int):
    for x, y in iter_image_pairs(gt, recon, batch_size, device="cpu"):
        yield resize(x, PIXEL_SIZE), resize(y, PIXEL_SIZE)


def pixcorr(gt, recon, reduce: bool = True, batch_size: int = 32):
    """Pixel correlation: Pearson r over all pixels and channels of each image and its reconstruction.

    Both sets are resized to 256 and then 425 px (bilinear), flattened with their three
    channels, and correlated pairwise.

    Parameters
    ----------
    gt, recon : array or tensor
        Ground truth and reconstructions: float (N, 3, H, W) in [0, 1] or uint8 (N, H, W, 3)
        (see :func:`to_float_nchw`); sizes may differ between the two.
    reduce : bool, default=True
        Return the mean over images (the table's number) instead of per-image values.
    batch_size : int, default=32
        Images resized at a time (bounds memory).

    Returns
    -------
    float or numpy.ndarray of shape (N,)
        Higher is better. A constant image has no defined correlation and scores 0.
    """
    out = [paired_correlation(x.flatten(1).numpy(), y.flatten(1).numpy()) for x, y in _batches(gt, recon, batch_size)]
    per_image = np.concatenate(out)
    return float(per_image.mean()) if reduce else per_image


def ssim(gt, recon, reduce: bool = True, batch_size: int = 32):
    """Structural similarity of grayscale images at 425 px (scikit-image, the protocol's settings).

    Resize to 256 then 425 (bilinear); ``skimage.color.rgb2gray``; ``structural_similarity`` with
    ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0``, computed in
    float32 as MindEye2's notebook does.

    Parameters
    ----------
    gt, recon, reduce, batch_size
        As in :func:`pixcorr`.

    Returns
    -------
    float or numpy.ndarray of shape (N,)
        Higher is better.
    """
    from skimage.color import rgb2gray
    from skimage.metrics import structural_similarity

    out = []
    for x, y in _batches(gt, recon, batch_size):
        gx = rgb2gray(x.permute(0, 2, 3, 1).numpy())  # (B, 425, 425) float32
        gy = rgb2gray(y.permute(0, 2, 3, 1).numpy())
        out += [structural_similarity(ry, rx, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                      data_range=1.0) for rx, ry in zip(gx, gy)]
    per_image = np.asarray(out, dtype=np.float64)
    return float(per_image.mean()) if reduce else per_image
