"""Pixel metrics and feature scores against direct NumPy / scikit-image / torchvision computations."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import correlation as scipy_correlation
from skimage.color import rgb2gray
from skimage.metrics import structural_similarity
from torchvision import transforms

from brainit_core.metrics import correlation_distance, pixcorr, ssim, to_float_nchw, two_way_identification


@pytest.fixture
def pair(rng):
    gt = rng.random((4, 3, 40, 40)).astype(np.float32)
    recon = np.clip(gt + 0.3 * rng.standard_normal(gt.shape), 0, 1).astype(np.float32)
    return gt, recon


def _protocol_425(x: np.ndarray) -> torch.Tensor:
    """MindEye2's notebook: Resize((256, 256)) when loading, then Resize(425, bilinear)."""
    x = transforms.Resize((256, 256))(torch.from_numpy(x))
    return transforms.Resize(425, interpolation=transforms.InterpolationMode.BILINEAR)(x)


def test_pixcorr_matches_direct_computation(pair):
    gt, recon = pair
    a, b = _protocol_425(gt).flatten(1).numpy(), _protocol_425(recon).flatten(1).numpy()
    expected = np.array([np.corrcoef(x, y)[0, 1] for x, y in zip(a, b)])
    np.testing.assert_allclose(pixcorr(gt, recon, reduce=False), expected, atol=1e-6)
    assert pixcorr(gt, recon) == pytest.approx(expected.mean(), abs=1e-6)
    assert 0.3 < expected.mean() < 0.95  # a real signal, not a degenerate case
    assert pixcorr(gt, gt) == pytest.approx(1.0)


def test_ssim_matches_scikit_image(pair):
    gt, recon = pair
    a = rgb2gray(_protocol_425(gt).permute(0, 2, 3, 1).numpy())
    b = rgb2gray(_protocol_425(recon).permute(0, 2, 3, 1).numpy())
    expected = np.array([structural_similarity(y, x, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                               data_range=1.0) for x, y in zip(a, b)])
    np.testing.assert_allclose(ssim(gt, recon, reduce=False), expected, atol=1e-6)
    assert ssim(gt, recon) == pytest.approx(expected.mean(), abs=1e-6)
    assert ssim(gt, gt) == pytest.approx(1.0)


def _brute_two_way(real, recon):
    n = len(real)
    per = []
    for i in range(n):
        own = np.corrcoef(real[i], recon[i])[0, 1]
        per.append(sum(np.corrcoef(real[j], recon[i])[0, 1] < own for j in range(n) if j != i) / (n - 1))
    return np.array(per)


def test_two_way_identification_matches_brute_force(rng):
    real = rng.standard_normal((7, 5, 3))
    recon = real + 1.5 * rng.standard_normal(real.shape)
    real[3] = real[1]  # ties: r[3, 1] == r[1, 1] and r[1, 3] == r[3, 3], which count as failures
    flat_real, flat_recon = real.reshape(7, -1), recon.reshape(7, -1)
    expected = _brute_two_way(flat_real, flat_recon)
    got = two_way_identification(real, recon, reduce=False)
    np.testing.assert_allclose(got, expected, atol=1e-12)
    assert expected[1] < 1 and expected[3] < 1  # the ties really were failures
    assert two_way_identification(real, recon) == pytest.approx(expected.mean())


def test_two_way_identification_known_values():
    real = np.array([[0.0, 1, 2], [2, 1, 0], [0, 2, 1]])
    assert two_way_identification(real, real) == 1.0  # each image identifies itself
    # r(a, b) = -1, r(a, c) = 0.5, r(b, c) = -0.5; reconstructions b, c, a win 0/2, 0/2, 1/2
    assert two_way_identification(real, real[[1, 2, 0]]) == pytest.approx(1 / 6)
    assert two_way_identification(real, np.ones_like(real)) == 0.0  # constant: undefined r, counts as failure


def test_correlation_distance_matches_scipy(rng):
    real, recon = rng.standard_normal((6, 10)), rng.standard_normal((6, 10))
    expected = np.array([scipy_correlation(a, b) for a, b in zip(real, recon)])
    np.testing.assert_allclose(correlation_distance(real, recon, reduce=False), expected, atol=1e-12)
    assert correlation_distance(real, real) == pytest.approx(0.0, abs=1e-12)
    assert correlation_distance(real, -real) == pytest.approx(2.0)


def test_numpy_torch_and_uint8_inputs_agree(pair, rng):
    gt, recon = pair
    tg, tr = torch.from_numpy(gt), torch.from_numpy(recon)
    assert pixcorr(gt, recon) == pytest.approx(pixcorr(tg, tr), abs=1e-12)
    assert ssim(gt, recon) == pytest.approx(ssim(tg, tr), abs=1e-12)
    assert two_way_identification(gt, recon) == two_way_identification(tg, tr)
    assert correlation_distance(gt, recon) == pytest.approx(correlation_distance(tg, tr), abs=1e-12)
    u8 = rng.integers(0, 256, (3, 20, 24, 3), dtype=np.uint8)
    as_float = to_float_nchw(u8)
    assert as_float.shape == (3, 3, 20, 24) and as_float.dtype == torch.float32
    np.testing.assert_allclose(as_float.numpy(), u8.transpose(0, 3, 1, 2) / 255.0, atol=1e-7)
    assert pixcorr(u8, u8[::-1].copy()) == pytest.approx(pixcorr(as_float, as_float.flip(0)), abs=1e-12)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((2, 8, 8, 3), np.float32), r"\(N, 3, H, W\)"),
    (np.zeros((2, 3, 8, 8), np.int64), "uint8 or float"),
    (np.zeros((2, 8, 8), np.uint8), r"\(N, H, W, 3\)"),
    (np.full((2, 3, 8, 8), 255.0, np.float32), r"\[0, 1\]"),
    (np.full((2, 3, 8, 8), np.nan, np.float32), "NaN"),
])
def test_bad_images_raise_clear_errors(bad, message):
    good = np.zeros((2, 3, 8, 8), np.float32)
    with pytest.raises(ValueError, match=message):
        pixcorr(good, bad)
    with pytest.raises(ValueError, match=message):
        ssim(bad, good)


def test_bad_counts_and_features_raise():
    with pytest.raises(ValueError, match="3 ground-truth images but 2"):
        pixcorr(np.zeros((3, 3, 8, 8), np.float32), np.zeros((2, 3, 8, 8), np.float32))
    with pytest.raises(ValueError, match="at least 2"):
        two_way_identification(np.ones((1, 4)), np.ones((1, 4)))
    with pytest.raises(ValueError, match="differ in shape"):
        correlation_distance(np.ones((3, 4)), np.ones((3, 5)))
    with pytest.raises(ValueError, match="NaN"):
        two_way_identification(np.array([[1.0, np.nan], [0, 1]]), np.ones((2, 2)))
    with pytest.raises(ValueError, match="one row per image"):
        correlation_distance(np.ones(4), np.ones(4))
