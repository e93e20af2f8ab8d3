"""The contralaterality index and the pRF agreement on constructed cases."""
from __future__ import annotations

import math

import numpy as np
import pytest

from brainit_core.analysis.attention import contralaterality, prf_agreement, query_positions

GRIDS = [(4, 4), (2, 2)]


def _constructed(contra: bool, n_tokens: int = 6, seed: int = 0):
    """Tokens 0..2 hold left-hemisphere voxels, 3..5 right; each token's attention comes from one
    side of the image (the contralateral side when ``contra``)."""
    rng = np.random.default_rng(seed)
    pos = query_positions(GRIDS)  # (20, 2)
    hemis = np.repeat([0, 0, 0, 1, 1, 1], 5).astype(np.uint8)  # 30 voxels
    clusters = np.repeat(np.arange(n_tokens), 5)
    att = rng.random((len(pos), n_tokens)) * 0.05
    for k in range(n_tokens):
        right_side = (k < 3) == contra  # left hemisphere -> right visual field
        side = pos[:, 0] > 0 if right_side else pos[:, 0] < 0
        att[side, k] += 1.0
    att /= att.sum(1, keepdims=True)  # like a softmax: each query's weights over tokens sum to 1
    return att[None], clusters, hemis, pos


def test_query_positions_row_major_left_negative_top_positive():
    pos = query_positions([(2, 3)])
    np.testing.assert_allclose(pos[:3, 0], [-2 / 3, 0, 2 / 3])
    np.testing.assert_allclose(pos[:, 1], [0.5] * 3 + [-0.5] * 3)


def test_contralaterality_index_on_a_known_case():
    att, clusters, hemis, _ = _constructed(contra=True)
    res = contralaterality(att, GRIDS, clusters, hemis)
    assert res["index"] == 1.0 and res["n_scored"] == 6 and res["pass"] is True
    assert res["signed_mean"] > 0.4 and res["ratio"] == pytest.approx(1 / 0.8)
    left = [t for t in res["per_token"] if t["token"] < 3]
    assert all(t["balance"] == 1.0 and t["centroid_x"] > 0.4 for t in left)


def test_contralaterality_index_fails_when_tokens_attend_ipsilaterally():
    att, clusters, hemis, _ = _constructed(contra=False)
    res = contralaterality(att, GRIDS, clusters, hemis)
    assert res["index"] == 0.0 and res["pass"] is False and res["signed_mean"] < -0.4
    good, *_ = _constructed(contra=True)  # half the tokens flipped: 0.5, below the target
    mixed = np.concatenate([good[..., :3], att[..., 3:]], -1)
    assert contralaterality(mixed, GRIDS, clusters, hemis)["index"] == 0.5


def test_tokenizer_weights_decide_a_mixed_token_and_empty_tokens_are_not_scored():
    att, clusters, hemis, _ = _constructed(contra=True)
    clusters = clusters.copy()
    clusters[25:] = 0  # token 5 empty; token 0 gets 5 right-hemisphere voxels beside its 5 left ones
    w = np.ones(len(clusters))
    w[25:] = 0.1  # ... which carry little tokenizer attention: token 0 stays left-dominated
    res = contralaterality(att, GRIDS, clusters, hemis, tokenizer_attention=w)
    assert res["per_token"][5]["balance"] is None and res["n_scored"] == 5
    assert res["per_token"][0]["balance"] == pytest.approx((5 - 0.5) / 5.5)
    assert res["index"] == 1.0
    w[25:] = 10.0  # now its right-hemisphere voxels dominate token 0, whose attention is on the right
    assert contralaterality(att, GRIDS, clusters, hemis, tokenizer_attention=w)["index"] == pytest.approx(0.8)
    w[25:] = 1.2  # token 0 nearly bilateral (balance -0.09): counted as ipsilateral by the index, left
    res = contralaterality(att, GRIDS, clusters, hemis, tokenizer_attention=w)  # out of the lateralised one
    assert res["per_token"][0]["balance"] == pytest.approx(-1 / 11) and res["index"] == pytest.approx(0.8)
    assert res["index_lateralised"] == 1.0 and res["n_lateralised"] == 4


def test_prf_agreement_is_high_when_tokens_sit_at_their_voxels_prfs():
    att, clusters, hemis, _ = _constructed(contra=True)
    rng = np.random.default_rng(1)
    prf_x = np.where(hemis == 0, 3.0, -3.0) + rng.normal(0, 0.1, len(hemis))
    prf_y = rng.normal(0, 0.1, len(hemis))
    res = prf_agreement(att, GRIDS, clusters, None, prf_x, prf_y, areas=np.array(["V1"] * 15 + ["face"] * 15))
    assert res["voxel_r_x"] > 0.95 and res["token_r_x"] > 0.95
    assert set(res["per_area"]) == {"V1", "face"}
    assert prf_agreement(att, GRIDS, clusters, None, -prf_x, prf_y)["voxel_r_x"] < -0.95


def test_tokens_on_the_meridian_are_not_scored():
    att, clusters, hemis, _ = _constructed(contra=True)
    uniform = np.full_like(att, 1 / att.shape[-1])
    res = contralaterality(uniform, GRIDS, clusters, hemis)
    assert res["n_scored"] == 0 and math.isnan(res["index"]) and res["pass"] is False
