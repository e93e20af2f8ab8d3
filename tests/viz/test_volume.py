"""Volume views: filling voxels, slices of continuous and categorical maps, nilearn's viewer offline."""
import numpy as np
import pytest

from brainit_core.viz import volume

SHAPE = (10, 12, 9)
AFFINE = np.diag([1.8, 1.8, 1.8, 1.0])


def test_fill_volume_places_values_and_checks_indices():
    vol = volume.fill_volume([1.0, 2.0], [0, 5], SHAPE)
    assert vol.shape == SHAPE and vol.reshape(-1)[5] == 2.0 and np.isnan(vol).sum() == np.prod(SHAPE) - 2
    with pytest.raises(ValueError, match=r"voxel indices must lie in \[0, 1080\)"):
        volume.fill_volume([1.0], [1080], SHAPE)
    with pytest.raises(ValueError, match="2 values for 1 voxels"):
        volume.fill_volume([1.0, 2.0], [3], SHAPE)


def test_slices_of_continuous_and_categorical_maps_with_outlines():
    rng = np.random.default_rng(0)
    vox = np.arange(300, 600)
    vol = volume.fill_volume(rng.standard_normal(len(vox)), vox, SHAPE)
    labels = np.zeros(SHAPE, np.int64)
    labels.reshape(-1)[vox[:100]] = 1
    fig = volume.slices_figure(vol, AFFINE, np.ones(SHAPE), symmetric=True, threshold=0.5, title="betas",
                               value_name="beta", unit="s.d.", atlas=(labels, ["", "V1"]))
    texts = [t.get_text() for t in fig.texts] + [t.get_text() for a in fig.axes for t in a.texts]
    assert "beta (s.d.)" in texts and "betas" in texts
    cat = volume.fill_volume(np.arange(len(vox)) % 4, vox, SHAPE)
    assert volume.slices_figure(cat, AFFINE, categorical=True, n_categories=4).axes


def test_interactive_viewer_needs_no_network():
    vol = volume.fill_volume(np.linspace(-1, 1, 50), np.arange(100, 150), SHAPE)
    html = volume.interactive_html(vol, AFFINE, np.ones(SHAPE), symmetric=True, title="x")
    assert "<html" in html.lower() and "brainsprite" in html.lower()
    assert 'href="http' not in html and 'src="http' not in html
