"""Twin v2 brain: published pRF slopes, ipsilateral pRFs, shared trial noise, subjects that differ,
more vertices (docs/data.md, "Twin v2 brain"). Layout tests need no build (the layout is cheap)."""
from __future__ import annotations

import numpy as np
import pytest

from brainit_core.data.twin import TwinConfig, load_ground_truth, respond
from brainit_core.data.twin import geometry
from brainit_core.data.twin.experiment import design_subject, noise_smoother, subject_layout, trial_noise, vertex_counts
from brainit_core.data.twin.validation import repeat_blocks, residual_correlation

KAY_2013 = {"V1": 0.16, "V2": 0.20, "V3": 0.32, "hV4": 0.60}  # pRF size / eccentricity, deg per deg
OLD_DEMO_MAX = 2290  # twin v1 demo: 2,020-2,290 vertices per subject (docs/data.md)


@pytest.fixture(scope="module")
def layouts():
    """Full layouts (every region vertex kept) of three demo subjects."""
    cortex = geometry.load_visual_cortex()
    config = TwinConfig.preset("demo", vertex_fraction=1.0)
    return [subject_layout(cortex, k, config) for k in range(3)]


@pytest.fixture
def twin(ci_twin):
    return ci_twin


def test_prf_size_grows_with_eccentricity_at_published_slopes(layouts):
    for _, _, area, x, y, sigma, _, prf_scale in layouts:
        ecc = np.hypot(x, y)
        slopes = {}
        for a, published in KAY_2013.items():
            v = area == a
            slope, icpt = np.polyfit(ecc[v], sigma[v] / prf_scale, 1)
            slopes[a] = slope
            assert abs(slope - published) < 0.15 * published, (a, slope, published)
            assert 0 <= icpt < 0.6, (a, icpt)  # a small intercept
        assert slopes["V1"] < slopes["V2"] < slopes["V3"] < slopes["hV4"]
        for a in geometry.HIGH + geometry.PATCHES:  # larger in higher and category areas
            v = area == a
            assert np.median(sigma[v]) > 2 * np.median(sigma[area == "V1"]) and np.median(sigma[v]) > 1.5, a


def test_some_but_not_most_prfs_are_ipsilateral(layouts):
    cortex = geometry.load_visual_cortex()
    for _, keep, area, x, y, sigma, _, _ in layouts:
        ipsi = geometry.ipsilateral(x, cortex.hemispheres[keep])
        assert 0.03 < ipsi.mean() < 0.20, ipsi.mean()
        early, higher = np.isin(area, geometry.EARLY), np.isin(area, geometry.HIGH + geometry.PATCHES)
        assert 0 < ipsi[early].mean() < 0.05  # V1-V3: only near the vertical meridian ...
        assert np.abs(x[early & ipsi]).max() < 1.5
        assert np.abs(x[early & ipsi]).max() < np.abs(x[early]).max() / 4
        assert ipsi[higher].mean() > 4 * ipsi[early].mean()  # ... more in higher areas,
        assert 0.1 < ipsi[higher].mean() < 0.45
        assert np.abs(x[higher & ipsi]).max() < 6  # centres up to a few degrees into the ipsilateral field


def test_subjects_differ_in_vertex_sets_and_area_boundaries(layouts):
    (_, k1, a1, *_), (_, k2, a2, *_) = layouts[:2]
    shared = np.intersect1d(k1, k2)
    jaccard = len(shared) / len(np.union1d(k1, k2))
    assert jaccard < 0.95, jaccard  # their own edges, even with every vertex kept
    lab1 = dict(zip(k1.tolist(), a1))
    lab2 = dict(zip(k2.tolist(), a2))
    moved = np.mean([lab1[v] != lab2[v] for v in shared.tolist()])
    assert 0.03 < moved < 0.4, moved  # boundaries shift, the map stays recognisable
    config = TwinConfig.preset("demo")
    cortex = geometry.load_visual_cortex()
    s1, s2 = (subject_layout(cortex, k, config)[1] for k in range(2))
    assert len(np.intersect1d(s1, s2)) / len(np.union1d(s1, s2)) < 0.9


def test_demo_has_twice_the_old_vertex_count():
    counts = vertex_counts(TwinConfig.preset("demo"))
    assert min(counts.values()) >= 2 * OLD_DEMO_MAX, counts
    assert max(vertex_counts(TwinConfig.preset("ci")).values()) < 500  # tests stay fast


@pytest.mark.parametrize("shared, lo, hi", [(0.25, 0.06, 0.3), (0.0, -0.02, 0.02)])
def test_shared_noise_correlates_vertices(shared, lo, hi):
    config = TwinConfig.preset("ci", shared_noise=shared, vertex_fraction=0.15)
    sub = design_subject(geometry.load_visual_cortex(), 0, config)
    mixer = noise_smoother(sub["hemispheres"], sub["vertices"], config.smooth_noise)
    noise = trial_noise(sub, mixer, 3000, np.random.default_rng(0)).astype(np.float64)
    np.testing.assert_allclose(noise.std(0) / sub["noise_sd"], 1, atol=0.1)  # designed variance kept
    c = np.corrcoef(noise, rowvar=False)
    mean_r = c[~np.eye(len(c), dtype=bool)].mean()
    assert lo < mean_r < hi, mean_r
    same = sub["area"][:, None] == sub["area"][None]
    if shared:  # a per-area part on top of the global one
        assert c[same & ~np.eye(len(c), dtype=bool)].mean() > c[~same].mean() + 0.02


def test_residuals_of_the_dataset_and_of_respond_are_correlated(twin):
    from brainit_core.data import load_dataset

    ds = load_dataset(twin)
    blocks, _ = repeat_blocks(ds.subject("twin01"))
    assert residual_correlation(blocks) > 0.05
    ids = ds.subject("twin01").test_image_ids[:20]
    out = respond(twin, "twin01", ds.images(np.unique(ids)), repeats=3, seed=1)
    assert residual_correlation(out) > 0.05


def test_ground_truth_api_and_noise_ceilings(twin):
    gt = load_ground_truth(twin, "twin01")["subject"]
    for key in ("area_names", "x", "y", "sigma", "vertices", "hemispheres", "noise_global", "warp"):
        assert key in gt
    assert len(gt["x"]) == len(gt["vertices"]) == len(gt["area_names"])
    assert set(gt["area_names"]) <= set(geometry.AREAS)
    assert 0.3 < np.median(gt["designed_nc"]) < 0.5  # NSD's range
