"""Feature-based scores: two-way identification and correlation distance (MindEye2's protocol).

Features are flattened per image. Correlations are Pearson r computed in float64. A feature
vector with zero variance has no defined correlation (``np.corrcoef`` returns NaN); here its
correlation is taken as 0, so such an image counts as unidentified and at distance 1.
"""
from __future__ import annotations

import numpy as np
import torch

_CHUNK = 8192  # feature columns converted to float64 at a time


def as_feature_matrix(features, name: str = "features") -> np.ndarray:
    """(N, ...) NumPy array or torch tensor -> float (N, D), checked to be finite.

    float64 input stays float64; anything else becomes float32 (correlations are always
    accumulated in float64).
    """
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu()
        features = (features if features.dtype == torch.float64 else features.float()).numpy()
    x = np.asarray(features)
    if x.ndim < 2:
        raise ValueError(f"{name}: expected (N, ...) with one row per image, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"{name}: expected numbers, got dtype {x.dtype}")
    x = x.reshape(len(x), -1).astype(np.float64 if x.dtype == np.float64 else np.float32, copy=False)
    if x.shape[1] == 0:
        raise ValueError(f"{name}: empty feature vectors (shape {x.shape})")
    if not np.isfinite(x).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    return x


def _pair(real, recon) -> tuple[np.ndarray, np.ndarray]:
    a = as_feature_matrix(real, "real features")
    b = as_feature_matrix(recon, "reconstruction features")
    if a.shape != b.shape:
        raise ValueError(f"real features {a.shape} and reconstruction features {b.shape} differ in shape "
                         "(same number of images and the same features per image are needed)")
    return a, b


def correlation_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r between every row of ``a`` (N, D) and every row of ``b`` (M, D) -> (N, M) float64."""
    mean_a = a.mean(1, dtype=np.float64)
    mean_b = b.mean(1, dtype=np.float64)
    gram = np.zeros((len(a), len(b)))
    sq_a, sq_b = np.zeros(len(a)), np.zeros(len(b))
    for s in range(0, a.shape[1], _CHUNK):  # float64 accumulation without a float64 copy of all features
        ca = a[:, s:s + _CHUNK].astype(np.float64) - mean_a[:, None]
        cb = b[:, s:s + _CHUNK].astype(np.float64) - mean_b[:, None]
        gram += ca @ cb.T
        sq_a += np.einsum("ij,ij->i", ca, ca)
        sq_b += np.einsum("ij,ij->i", cb, cb)
    denom = np.sqrt(sq_a)[:, None] * np.sqrt(sq_b)[None, :]
    return np.divide(gram, denom, out=np.zeros_like(gram), where=denom > 0)


def paired_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r between row i of ``a`` and row i of ``b`` (both (N, D)) -> (N,) float64."""
    ca = a.astype(np.float64)
    cb = b.astype(np.float64)
    ca -= ca.mean(1, keepdims=True)
    cb -= cb.mean(1, keepdims=True)
    denom = np.sqrt(np.einsum("ij,ij->i", ca, ca) * np.einsum("ij,ij->i", cb, cb))
    num = np.einsum("ij,ij->i", ca, cb)
    return np.divide(num, denom, out=np.zeros_like(num), where=denom > 0)


def two_way_identification(real_features, recon_features, reduce: bool = True):
    """Two-way identification of reconstructions among all real images.

    With r[j, i] = corr(real_j, recon_i), reconstruction i scores the fraction of the other N - 1
    real images j with r[j, i] < r[i, i] (strict: ties count as failures). All N - 1 distractors
    are used.

    Parameters
    ----------
    real_features, recon_features : array or tensor, shape (N, ...)
        Features of the ground-truth images and of their reconstructions (row i of both belongs
        to image i); flattened per image.
    reduce : bool, default=True
        Return the mean over reconstructions (the table's number) instead of the per-image scores.

    Returns
    -------
    float or numpy.ndarray of shape (N,)
        Fraction correct in [0, 1]; chance is 0.5.
    """
    a, b = _pair(real_features, recon_features)
    n = len(a)
    if n < 2:
        raise ValueError(f"two-way identification needs at least 2 images, got {n}")
    r = correlation_matrix(a, b)  # (N_real, N_recon)
    wins = (r < np.diag(r)[None, :]).sum(0)  # the diagonal itself never counts (not < itself)
    per_image = wins / (n - 1)
    return float(per_image.mean()) if reduce else per_image


def correlation_distance(real_features, recon_features, reduce: bool = True):
    """Correlation distance 1 - r between each image's features and its reconstruction's.

    Parameters
    ----------
    real_features, recon_features : array or tensor, shape (N, ...)
    reduce : bool, default=True
        Return the mean over images instead of the per-image distances.

    Returns
    -------
    float or numpy.ndarray of shape (N,)
        In [0, 2]; lower is better.
    """
    a, b = _pair(real_features, recon_features)
    dist = 1.0 - paired_correlation(a, b)
    return float(dist.mean()) if reduce else dist
