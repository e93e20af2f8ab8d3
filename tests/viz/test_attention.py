"""Attention drawn on the image: overlays, markers at the analysis centroids, token bars."""
import numpy as np
import pytest

from brainit_core.analysis.attention import attention_centroid
from brainit_core.stimulus import IMAGE_DEG
from brainit_core.viz import images as vimg


def test_degrees_and_centroids_to_image():
    px, py = vimg.degrees_to_image(IMAGE_DEG / 4, IMAGE_DEG / 4)
    assert (px, py) == (pytest.approx(0.75), pytest.approx(0.25))
    g = np.zeros((4, 4))
    g[0, 3] = 1  # top-right cell: its centre is at (7/8, 1/8) of the image
    assert vimg.centroid_to_image(*attention_centroid(g)) == (pytest.approx(7 / 8), pytest.approx(1 / 8))


def test_centroid_markers():
    g = np.zeros((2, 2))
    g[1, 0] = 1  # bottom-left
    m = vimg.centroid_markers(attention_centroid(g))
    assert len(m) == 1 and (m[0]["x"][0], m[0]["y"][0]) == (pytest.approx(0.25), pytest.approx(0.75))
    m = vimg.centroid_markers((0.0, 0.0), prf_deg=(-IMAGE_DEG / 4, 0.0))
    assert len(m) == 2 and (m[1]["x"][0], m[1]["y"][0]) == (pytest.approx(0.25), pytest.approx(0.5))
    assert "-2.1" in m[1]["text"][0]


def test_token_weights_figure():
    fig = vimg.token_weights_figure([0.2, 0.5, 0.3])
    assert list(fig.data[0].x) == ["token 0", "token 1", "token 2"] and list(fig.data[0].y) == [0.2, 0.5, 0.3]
    assert fig.layout.xaxis.showticklabels is True
    assert vimg.token_weights_figure(np.ones(40) / 40).layout.xaxis.showticklabels is False


def test_overlay_and_figure():
    img = np.zeros((32, 32, 3), np.uint8)
    grid = np.zeros((4, 4))
    grid[0, 0] = 1
    out = vimg.overlay(img, grid, size=64)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    assert out[:8, :8].mean() > out[-8:, -8:].mean() + 20  # the hot corner is brighter
    fig = vimg.attention_figure(img, grid, markers=[{"x": [0.5], "y": [0.25], "name": "c"}], cell=((4, 4), (1, 2)),
                                size=128)
    assert fig.data[1].x[0] == 64 and fig.data[1].y[0] == 32
    assert fig.layout.shapes[0].x0 == 64 and fig.layout.shapes[0].y0 == 32
    tiles = vimg.feature_tiles(np.random.default_rng(0).random((5, 3, 3)), [1, 4], size=30,
                               limits=[(0, 1), (0, 1)])
    assert len(tiles) == 2 and tiles[0].shape == (30, 30, 3)
