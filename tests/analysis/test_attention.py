"""Attention analysis: centroids, hemisphere balance, pRFs; the page's and the benchmark's contralaterality agree."""
import math

import numpy as np
import pytest

from brainit_core.analysis import attention as att
from brainit_core.analysis.maps import AttentionMaps
from brainit_core.stimulus import IMAGE_DEG

LOW_LEVELS = [("a", (4, 4), 0), ("b", (2, 2), 16)]
SEM_LEVELS = [("semantic", (2, 2), 0)]
GRIDS = [(4, 4), (2, 2)]


def test_attention_centroid_is_the_token_centroid_of_one_map():
    g = np.zeros((4, 4))
    g[:, 3] = 1  # right column
    assert att.attention_centroid(g) == (pytest.approx(0.75), pytest.approx(0.0))
    g = np.zeros((4, 4))
    g[0] = 1  # top row: upward
    assert att.attention_centroid(g)[1] == pytest.approx(0.75)
    assert att.attention_centroid(np.zeros((2, 2))) == (0.0, 0.0)
    g = np.random.default_rng(0).random((3, 5))
    centroid, spread = att.token_centroids(g.reshape(-1, 1), att.query_positions([(3, 5)]))
    assert att.attention_centroid(g) == (pytest.approx(centroid[0, 0]), pytest.approx(centroid[0, 1]))
    assert spread[0] > 0


def test_query_positions_and_centroid_spread():
    pos = att.query_positions([(2, 3), (1, 1)])
    np.testing.assert_allclose(pos[:3], [[-2 / 3, 0.5], [0, 0.5], [2 / 3, 0.5]])
    np.testing.assert_allclose(pos[6], [0, 0])
    a = np.zeros((7, 2))
    a[0, 0] = a[2, 0] = 1  # token 0 read by the two top corners, token 1 only by the centre query
    a[6, 1] = 1
    centroid, spread = att.token_centroids(a, pos)
    np.testing.assert_allclose(centroid, [[0, 0.5], [0, 0]])
    np.testing.assert_allclose(spread, [2 / 3, 0])
    with pytest.raises(ValueError, match="queries"):
        att.token_centroids(a[:5], pos)


def test_hemisphere_balance_weighted_and_averaged_over_images():
    bal = att.hemisphere_balance([0, 0, 0, 2], [0, 1, 1, 0], 3, weights=[0.8, 0.1, 0.1, 1.0])
    assert bal[0] == pytest.approx(0.6) and math.isnan(bal[1]) and bal[2] == 1.0
    assert att.hemisphere_balance([0, 0, 0], [0, 1, 1], 1)[0] == pytest.approx(-1 / 3)
    w2 = np.array([[0.6, 0.2, 0.2], [1.0, 0.0, 0.0]])  # mean (0.8, 0.1, 0.1)
    assert att.hemisphere_balance([0, 0, 0], [0, 1, 1], 1, weights=w2)[0] == pytest.approx(0.6)


def test_receptive_field_centroids_and_prf_response():
    rf = att.receptive_field_centroids([0, 0, 1], [1.0, 3.0, 1.0], [0.0, 4.0, -2.0], [1.0, 1.0, 0.0], 3)
    np.testing.assert_allclose(rf[0], [3.0, 1.0])
    np.testing.assert_allclose(rf[1], [-2.0, 0.0])
    assert np.isnan(rf[2]).all()
    np.testing.assert_allclose(att.receptive_field_centroids([0, 0], None, [1.0, 3.0], [0.0, 2.0], 1), [[2.0, 1.0]])
    assert IMAGE_DEG == 8.4 and att.IMAGE_DEG == IMAGE_DEG
    drive = att.prf_response([IMAGE_DEG / 4, -IMAGE_DEG / 4], [0.0, 0.0], [1.0, 1.0], x=0.75, y=0.5)
    assert drive[0] == pytest.approx(1.0) and drive[1] < 0.01
    assert att.prf_response([0.0], [1.0], [1.0], x=0.5, y=0.5 - 1 / IMAGE_DEG)[0] == pytest.approx(1.0)  # y up


def _lateral_case(contralateral: bool, n_images: int = 1):
    """Cortex of 4 tokens: 0 left-hemisphere voxels, 1 right, 2 mostly left (75/25), 3 empty.

    Low-level attention: token 0 (and 2) is read by one half of the image, token 1 by the other,
    token 3 uniformly. ``contralateral``: left-hemisphere tokens are read by the right half.
    Returns cross (n_images, n_queries, C) of all-equal images, grids, clusters, hemispheres, tokenizer (V,).
    """
    clusters = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    hemis = np.array([0, 0, 0, 1, 1, 0, 0, 0, 1])
    tok = np.array([0.2, 0.3, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25])
    pos = att.query_positions(GRIDS)
    right = pos[:, 0] > 0
    cross = np.full((len(pos), 4), 0.01)
    left_hemi_side = right if contralateral else ~right
    cross[left_hemi_side, 0] = cross[left_hemi_side, 2] = 1.0
    cross[~left_hemi_side, 1] = 1.0
    cross /= cross.sum(1, keepdims=True)  # softmax-like: each query sums to 1 over tokens
    return np.repeat(cross[None], n_images, 0), clusters, hemis, tok


def _maps(cross, clusters, tok):
    sem = np.full((4, cross.shape[-1]), 1 / cross.shape[-1])
    return AttentionMaps(clusters, {"semantic": np.ones(len(clusters)), "lowlevel": tok},
                         {"semantic": sem, "lowlevel": cross}, {"semantic": SEM_LEVELS, "lowlevel": LOW_LEVELS})


@pytest.mark.parametrize("contralateral, expected", [(True, 1.0), (False, 0.0)])
def test_page_and_benchmark_contralaterality_agree_on_a_known_map(contralateral, expected):
    cross, clusters, hemis, tok = _lateral_case(contralateral, n_images=3)
    bench = att.contralaterality(cross, GRIDS, clusters, hemis, np.tile(tok, (3, 1)))  # benchmark: mean over images
    page = _maps(cross[0], clusters, tok).contralaterality("lowlevel", hemis)  # the page: one image
    assert bench["index"] == page["index"] == expected
    assert bench["n_scored"] == page["n_scored"] == 3 and bench["n_lateralised"] == 3  # the empty token is not scored
    sign = 1 if contralateral else -1
    assert sign * page["signed_mean"] > 0.4 and page["signed_mean"] == pytest.approx(bench["signed_mean"])
    assert [t["contralateral"] for t in page["per_token"]] == [contralateral] * 3 + [None]
    assert page["per_token"][2]["balance"] == pytest.approx(0.5) and page["per_token"][3]["balance"] is None
    for a, b in zip(page["per_token"], bench["per_token"]):
        assert a == pytest.approx(b)


def test_page_contralaterality_uses_the_heads_own_tokenizer_weights():
    cross, clusters, hemis, tok = _lateral_case(True)
    maps = _maps(cross[0], clusters, tok)
    assert maps.contralaterality("lowlevel", hemis)["per_token"][2]["balance"] == pytest.approx(0.5)
    maps.tokenizer["lowlevel"] = np.array([1, 1, 1, 1, 1, 0.01, 0.01, 0.01, 0.97])  # token 2: right-hemisphere weight
    res = maps.contralaterality("lowlevel", hemis)
    assert res["per_token"][2]["balance"] < -0.9 and res["index"] == pytest.approx(2 / 3)
    assert res == att.contralaterality(cross[0], GRIDS, clusters, hemis, maps.tokenizer["lowlevel"])


def test_semantic_head_uniform_attention_scores_no_token():
    cross, clusters, hemis, tok = _lateral_case(True)
    res = _maps(cross[0], clusters, tok).contralaterality("semantic", hemis)
    assert res["n_scored"] == 0 and math.isnan(res["index"]) and res["n_tokens"] == 4


def test_prf_agreement_follows_the_tokens_prfs():
    cross, clusters, hemis, tok = _lateral_case(True)
    prf_x = np.where(hemis == 0, 2.0, -2.0) + np.linspace(-0.1, 0.1, len(hemis))
    prf_y = np.linspace(-1, 1, len(hemis))
    good = att.prf_agreement(cross, GRIDS, clusters, tok, prf_x, prf_y, areas=np.array(["V1"] * 5 + ["V2"] * 4))
    assert good["voxel_r_x"] > 0.7 and good["token_r_x"] > 0.9 and good["n_tokens"] == 4 and set(good["per_area"]) == {"V1", "V2"}
    assert good["per_area"]["V1"]["prf_eccentricity"] > 0.4  # 2 deg of 4.2 deg half-width
    assert att.prf_agreement(cross, GRIDS, clusters, tok, -prf_x, prf_y)["voxel_r_x"] < -0.7
