"""Token attention maps, location queries, contralaterality and image overlays."""
import numpy as np
import pytest

from brainit_core.viz import attention as att
from brainit_core.viz import images as vimg


def test_centroid_and_grid_cell():
    g = np.zeros((4, 4))
    g[:, 3] = 1  # right column
    cx, cy = att.attention_centroid(g)
    assert cx == pytest.approx(0.75) and cy == pytest.approx(0.0)
    g = np.zeros((4, 4))
    g[0] = 1  # top row: upward
    assert att.attention_centroid(g)[1] == pytest.approx(0.75)
    assert att.attention_centroid(np.zeros((2, 2))) == (0.0, 0.0)
    assert att.grid_cell((4, 8), 0.0, 0.0) == (0, 0)
    assert att.grid_cell((4, 8), 1.0, 1.0) == (3, 7)
    assert att.grid_cell((4, 8), 0.3, 0.6) == (2, 2)


def _contra_case(contralateral: bool):
    # token 0: left-hemisphere voxels, token 1: right-hemisphere voxels, token 2: mixed, token 3: empty
    clusters = np.array([0, 0, 0, 1, 1, 2, 2])
    hemis = np.array([0, 0, 0, 1, 1, 0, 1])
    grids = np.zeros((4, 2, 2))
    right, left = (1, 0) if contralateral else (0, 1)
    grids[0][:, right] = 1  # token 0 attends to one side
    grids[1][:, left] = 1
    grids[2] = 1
    grids[3] = 1
    return att.contralaterality(grids, clusters, hemis)


def test_contralaterality_sign_and_fraction():
    good = _contra_case(True)
    assert good.index > 0.2 and good.fraction == 1.0
    np.testing.assert_allclose(good.balance[:3], [1, -1, 0])
    assert np.isnan(good.balance[3]) and np.isnan(good.score[3])
    bad = _contra_case(False)
    assert bad.index == pytest.approx(-good.index) and bad.fraction == 0.0


def test_hemisphere_balance_weighted():
    bal = att.hemisphere_balance([0, 0, 0], [0, 1, 1], 1, weights=[0.8, 0.1, 0.1])
    assert bal[0] == pytest.approx(0.6)


def _maps():
    rng = np.random.default_rng(0)
    C = 3
    cross_sem = rng.random((4, C))
    cross_sem /= cross_sem.sum(1, keepdims=True)
    cross_low = rng.random((16 + 4, C))
    cross_low /= cross_low.sum(1, keepdims=True)
    clusters = np.array([0, 0, 1, 2, 2, 2])
    tok = np.array([0.25, 0.75, 1.0, 0.2, 0.3, 0.5])
    return att.AttentionMaps(clusters, {"semantic": tok, "lowlevel": tok[::-1].copy()},
                             {"semantic": cross_sem, "lowlevel": cross_low},
                             {"semantic": [("semantic", (2, 2), 0)], "lowlevel": [("a", (4, 4), 0), ("b", (2, 2), 16)]})


def test_attention_maps_views():
    m = _maps()
    assert m.n_tokens == 3
    g = m.token_grid("lowlevel", 1, 2)
    np.testing.assert_array_equal(g.ravel(), m.cross["lowlevel"][16:20, 2])
    assert m.token_grids("lowlevel", 0).shape == (3, 4, 4)
    np.testing.assert_array_equal(m.location_weights("lowlevel", 0, 0.9, 0.1), m.cross["lowlevel"][3])
    np.testing.assert_array_equal(m.location_weights("semantic", 0, 0.1, 0.9), m.cross["semantic"][2])
    tv = m.token_vertices("semantic", 0)
    np.testing.assert_array_equal(tv[:2], [0.25, 0.75])
    assert np.isnan(tv[2:]).all()
    vm = att.vertex_map([1.0, 0.0, 2.0], m.tokenizer["semantic"], m.clusters)
    np.testing.assert_allclose(vm, [0.25, 0.75, 0.0, 0.4, 0.6, 1.0])
    con = att.maps_contralaterality(m, "lowlevel", np.array([0, 0, 1, 1, 1, 0]))
    assert con.centroid_x.shape == (3,)


def test_receptive_field_centroids_and_prf_response():
    rf = att.receptive_field_centroids([0, 0, 1], [1.0, 3.0, 1.0], [0.0, 4.0, -2.0], [1.0, 1.0, 0.0], 3)
    np.testing.assert_allclose(rf[0], [3.0, 1.0])
    assert np.isnan(rf[2]).all()
    drive = att.prf_response([2.1, -2.1], [0.0, 0.0], [1.0, 1.0], x=0.75, y=0.5)
    assert drive[0] == pytest.approx(1.0) and drive[1] < 0.01
    px, py = vimg.degrees_to_image(2.1, 2.1)
    assert (px, py) == (pytest.approx(0.75), pytest.approx(0.25))


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
