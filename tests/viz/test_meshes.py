"""Meshes from FreeSurfer files (a fake icosahedral fsaverage), flat patches, fsaverage -> fsaverage5, borders."""
import numpy as np
import pytest

from brainit_core.errors import DataFormatError
from brainit_core.viz import meshes
from tests.data.nsd_fixtures import fake_fsaverage, write_fsaverage_dir, write_patch


@pytest.fixture(scope="module")
def fsdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("fs") / "fsaverage"
    write_fsaverage_dir(d, fake_fsaverage(1))
    return d


def test_freesurfer_surfaces_load_and_nest_fsaverage5(fsdir):
    geom = meshes.load_surface("inflated", str(fsdir))
    assert geom.n_vertices == 40962 and [len(f) for f in geom.faces] == [81920, 81920]
    assert geom.name == "fsaverage" and geom.source == str(fsdir) and geom.sulcal.shape == (2, 40962)
    fs5 = meshes.load_surface("inflated")
    np.testing.assert_allclose(geom.coords[0][:10242], fs5.coords[0], atol=1e-3)  # the nested vertices
    assert meshes.has_surfaces(fsdir) and meshes.has_flat_patches(fsdir)
    assert meshes.surface_vertex_count(fsdir) == 40962
    n = geom.normals[0]
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0, atol=1e-4)


def test_flat_patch_is_read_and_bad_patches_are_named(fsdir, tmp_path):
    flat = meshes.load_surface("flat", str(fsdir))
    assert flat.is_flat and np.all(flat.coords[0][:, 2] == 0)
    assert 0 < len(flat.faces[0]) < 81920  # the cut leaves the medial wall out
    coords, inside = meshes.read_patch(fsdir / "surf" / "lh.full.flat.patch.3d", 40962)
    assert inside.sum() == len(np.unique(flat.faces[0])) and np.isnan(coords[~inside]).all()
    bad = tmp_path / "lh.bad.patch"
    bad.write_bytes(b"\x00\x01")
    with pytest.raises(DataFormatError, match="lh.bad.patch"):
        meshes.read_patch(bad, 10)
    write_patch(bad, np.zeros((5, 3), np.float32), np.array([[0, 1, 4]]))
    with pytest.raises(DataFormatError, match="outside 1..3"):
        meshes.read_patch(bad, 3)
    write_fsaverage_dir(tmp_path / "noflat", fake_fsaverage(0), flat=False)
    with pytest.raises(DataFormatError, match="no flat patch"):
        meshes.load_surface("flat", str(tmp_path / "noflat"))
    with pytest.raises(DataFormatError, match="lh.pial not found"):
        meshes.load_surface("pial", str(tmp_path / "none"))


def test_downsample_nested_and_averaged(fsdir):
    rng = np.random.default_rng(0)
    full = rng.standard_normal((2, 40962))
    np.testing.assert_array_equal(meshes.downsample(full), full[:, :10242])
    spheres = meshes.sphere_coordinates(str(fsdir))
    assert spheres is not None
    parents = meshes.nearest_parents(spheres)
    assert parents.shape == (2, 40962)
    np.testing.assert_array_equal(parents[:, :10242], np.tile(np.arange(10242), (2, 1)))  # a vertex is its own parent
    avg = meshes.downsample(full, parents)
    k = 5
    children = np.flatnonzero(parents[0] == k)
    assert len(children) > 1 and avg[0, k] == pytest.approx(full[0, children].mean())
    full[0, children] = np.nan
    assert np.isnan(meshes.downsample(full, parents)[0, k])
    cat = meshes.downsample(np.where(np.isfinite(full), 3.0, np.nan), parents, categorical=True)
    assert np.all(cat[np.isfinite(cat)] == 3.0)  # ids are never averaged
    with pytest.raises(ValueError, match="fsaverage map"):
        meshes.downsample(np.zeros((2, 100)))


def test_a_sphere_that_is_not_icosahedral_is_not_used(tmp_path):
    mesh = fake_fsaverage(0)
    for m in mesh.values():
        m["sphere"] = m["sphere"][::-1].copy()
    write_fsaverage_dir(tmp_path / "other", mesh, flat=False)
    assert meshes.sphere_coordinates(str(tmp_path / "other")) is None


def test_border_segments_follow_label_changes():
    geom = meshes.load_surface("inflated")
    labels = (geom.coords[0][:, 1] < np.median(geom.coords[0][:, 1])).astype(int)  # posterior half = 1
    pts = meshes.border_segments(labels, geom, 0, lift=0.0)
    mixed = (labels[geom.faces[0]].min(1) != labels[geom.faces[0]].max(1)).sum()
    assert len(pts) == 3 * mixed  # two points and a gap per mixed face
    assert np.isnan(pts[2::3]).all() and np.isfinite(pts[0::3]).all()
    y = pts[0::3, 1]
    assert np.abs(y - np.median(geom.coords[0][:, 1])).max() < 10  # on the dividing line
    assert len(meshes.border_segments(np.zeros(10242, int), geom, 0)) == 0
