"""Attention maps of one image: views, location queries, vertex maps, and both heads from a real model."""
from types import SimpleNamespace

import numpy as np
import pytest

from brainit_core.analysis import maps as am
from tests.factories import tiny_bit_model


def _maps():
    rng = np.random.default_rng(0)
    C = 3
    cross_sem = rng.random((4, C))
    cross_sem /= cross_sem.sum(1, keepdims=True)
    cross_low = rng.random((16 + 4, C))
    cross_low /= cross_low.sum(1, keepdims=True)
    clusters = np.array([0, 0, 1, 2, 2, 2])
    tok = np.array([0.25, 0.75, 1.0, 0.2, 0.3, 0.5])
    return am.AttentionMaps(clusters, {"semantic": tok, "lowlevel": tok[::-1].copy()},
                            {"semantic": cross_sem, "lowlevel": cross_low},
                            {"semantic": [("semantic", (2, 2), 0)], "lowlevel": [("a", (4, 4), 0), ("b", (2, 2), 16)]})


def test_grid_cell():
    assert am.grid_cell((4, 8), 0.0, 0.0) == (0, 0)
    assert am.grid_cell((4, 8), 1.0, 1.0) == (3, 7)
    assert am.grid_cell((4, 8), 0.3, 0.6) == (2, 2)


def test_attention_maps_views():
    m = _maps()
    assert m.n_tokens == 3 and m.grids("lowlevel") == [(4, 4), (2, 2)]
    g = m.token_grid("lowlevel", 1, 2)
    np.testing.assert_array_equal(g.ravel(), m.cross["lowlevel"][16:20, 2])
    assert m.token_grids("lowlevel", 0).shape == (3, 4, 4)
    np.testing.assert_array_equal(m.token_grids("lowlevel", 0)[1], m.token_grid("lowlevel", 0, 1))
    np.testing.assert_array_equal(m.location_weights("lowlevel", 0, 0.9, 0.1), m.cross["lowlevel"][3])
    np.testing.assert_array_equal(m.location_weights("semantic", 0, 0.1, 0.9), m.cross["semantic"][2])
    tv = m.token_vertices("semantic", 0)
    np.testing.assert_array_equal(tv[:2], [0.25, 0.75])
    assert np.isnan(tv[2:]).all()
    vm = am.vertex_map([1.0, 0.0, 2.0], m.tokenizer["semantic"], m.clusters)
    np.testing.assert_allclose(vm, [0.25, 0.75, 0.0, 0.4, 0.6, 1.0])


def test_area_codes_and_token_area_shares():
    names = np.array(["V2", "", "V1", "V2", "face", "V2"])
    codes, areas = am.area_codes(names)
    assert areas == ["V1", "V2", "face"]
    np.testing.assert_array_equal(codes, [1, np.nan, 0, 1, 2, 1])
    clusters = np.array([0, 0, 0, 0, 1, 1])
    assert am.token_area_shares(names, clusters, 0) == [("V2", 0.5), ("other", 0.25), ("V1", 0.25)]
    assert am.token_area_shares(names, clusters, 0, top=1) == [("V2", 0.5)]
    assert am.token_area_shares(names, clusters, 5) == []


@pytest.fixture
def tiny_run():
    import torch

    from brainit_core.models.run import BrainITRun

    model = tiny_bit_model()
    space = SimpleNamespace(semantic_spec=model.semantic_spec, lowlevel_specs=model.lowlevel_specs)
    return BrainITRun("tiny", space, {}, None, model.eval(), "0" * 64, torch.device("cpu"))


def test_compute_attention_keeps_each_heads_tokenizer(tiny_run):
    import torch

    betas = np.random.default_rng(1).normal(size=20).astype(np.float32)
    maps = am.compute_attention(tiny_run, betas, "a", image_id=7)
    pred = tiny_run.predict(betas[None], "a", return_attention=True)
    C = tiny_run.model.config.n_clusters
    assert maps.image_id == 7 and maps.n_tokens == C and maps.clusters.shape == (20,)
    assert maps.levels == {"semantic": [("semantic", (2, 2), 0)], "lowlevel": [("l0", (4, 4), 0), ("l1", (2, 2), 16)]}
    for head in am.HEADS:
        np.testing.assert_allclose(maps.tokenizer[head], pred.tokenizer_attention[head][0].numpy(), rtol=1e-6)
        np.testing.assert_allclose(maps.cross[head], pred.cross_attention[head][0].numpy(), rtol=1e-6)
        np.testing.assert_allclose(np.bincount(maps.clusters, maps.tokenizer[head]), 1, rtol=1e-5)
    assert not torch.allclose(pred.tokenizer_attention["semantic"], pred.tokenizer_attention["lowlevel"])
    assert maps.cross["lowlevel"].shape == (20, C) and maps.cross["semantic"].shape == (4, C)
