"""What nsd prepare records for the app's views (surfaces, atlases, volumes, transforms) and its readers."""
import nibabel as nib
import numpy as np
import pytest

from brainit_core.data import display as dsp
from brainit_core.data.info import DatasetInfo
from brainit_core.errors import DataFormatError
from tests.data.nsd_fixtures import prepare_display_tree


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    out = {}
    for space in ("fsaverage", "func1pt8mm"):
        root = tmp_path_factory.mktemp(space)
        out[space] = (root, prepare_display_tree(root, space)[1])
    return out


def test_prepare_records_surfaces_and_atlases(trees):
    root, facts = trees["fsaverage"]
    rec = DatasetInfo(root / "prepared").display
    assert rec["space"] == "fsaverage" and rec["fsaverage_dir"] == str(facts["fsaverage_dir"])
    assert set(rec["atlases"]) == {"prf-visualrois", "floc-faces", "streams"}  # the ones the tree has
    entry = rec["atlases"]["prf-visualrois"]
    assert entry["lh"].endswith("label/lh.prf-visualrois.mgz") and entry["ctab"].endswith("prf-visualrois.mgz.ctab")
    labels, names = dsp.read_surface_atlas(entry, facts["n_vertices"], "prf-visualrois")
    assert labels.shape == (2, 10242) and names[:3] == ["", "V1v", "V1d"]
    assert set(np.unique(labels)) <= set(range(8)) and (labels > 0).sum() == sum(r.sum() for r in facts["regions"].values())
    with pytest.raises(DataFormatError, match="lh.prf-visualrois.mgz: 10242 labels, the mesh has 40962"):
        dsp.read_surface_atlas(entry, 40962)


def test_prepare_records_the_volume_grid_background_atlases_and_transforms(trees):
    root, facts = trees["func1pt8mm"]
    rec = DatasetInfo(root / "prepared").display
    sub = rec["subjects"]["subj02"]
    assert sub["shape"] == [12, 14, 12]
    np.testing.assert_allclose(sub["affine"], facts["volumes"][2]["affine"], atol=1e-5)
    assert sub["background"].endswith("subj02/func1pt8mm/mean.nii.gz")
    assert sub["atlases"]["floc-faces"]["path"].endswith("subj02/func1pt8mm/roi/floc-faces.nii.gz")
    assert sub["atlases"]["floc-faces"]["ctab"].endswith("freesurfer/subj02/label/floc-faces.mgz.ctab")
    assert sub["transforms"].endswith("subj02/transforms")
    labels, names = dsp.read_volume_atlas(sub["atlases"]["streams"], sub["shape"], "streams")
    assert labels.shape == (12, 14, 12) and labels.min() == 0 and names[1] == "early"
    with pytest.raises(DataFormatError, match=r"the dataset's voxels lie on a \(3, 3, 3\) grid"):
        dsp.read_volume(sub["background"], (3, 3, 3))


def test_projection_follows_nsd_transforms(trees, tmp_path):
    root, facts = trees["func1pt8mm"]
    tdir = root / "nsd" / "nsddata" / "ppdata" / "subj01" / "transforms"
    shape = (12, 14, 12)
    proj = dsp.projection_to_fsaverage(tdir, shape)
    assert proj.shape == (2, 10242)
    coords = np.asarray(nib.load(str(tdir / "lh.func1pt8-to-white.mgz")).dataobj).reshape(-1, 3)
    ijk = np.rint(coords[7] - 1).astype(int)  # white-to-fsaverage is the identity in the fixture
    assert proj[0, 7] == np.ravel_multi_index(tuple(ijk), shape)
    coords[7] = 9999  # NSD's "no position"
    odd = tmp_path / "t"
    odd.mkdir()
    for f in tdir.iterdir():
        (odd / f.name).write_bytes(f.read_bytes())
    nib.save(nib.MGHImage(coords.astype(np.float32).reshape(-1, 1, 1, 3), np.eye(4)), str(odd / "lh.func1pt8-to-white.mgz"))
    assert dsp.projection_to_fsaverage(odd, shape)[0, 7] == -1
    (odd / "rh.white-to-fsaverage.mgz").unlink()
    with pytest.raises(DataFormatError, match="white-to-fsaverage"):
        dsp.projection_to_fsaverage(odd, shape)


def test_colour_tables(tmp_path):
    p = tmp_path / "x.mgz.ctab"
    p.write_text("# comment\n0 Unknown 0 0 0 0\n1 V1v 255 0 0 0\n3 hV4\\t\n")
    assert dsp.read_ctab(p) == {0: "Unknown", 1: "V1v", 3: "hV4"}
    assert dsp.label_names(np.array([0, 3, 4]), str(p), "prf") == ["", "V1v", "prf 2", "hV4", "prf 4"]
    p.write_text("one two\n")
    with pytest.raises(DataFormatError, match="x.mgz.ctab"):
        dsp.read_ctab(p)


def test_where_the_fsaverage_folder_comes_from(tmp_path, monkeypatch):
    a, b, c = (tmp_path / n / "fsaverage" for n in "abc")
    for d in (a, b, c):
        (d / "surf").mkdir(parents=True)
    monkeypatch.delenv(dsp.FSAVERAGE_ENV, raising=False)
    monkeypatch.setenv("SUBJECTS_DIR", str(c.parent))
    assert dsp.resolve_fsaverage_dir() == c  # $SUBJECTS_DIR/fsaverage
    assert dsp.resolve_fsaverage_dir(None, str(b)) == b  # recorded by nsd prepare
    monkeypatch.setenv(dsp.FSAVERAGE_ENV, str(a.parent))  # a SUBJECTS_DIR is accepted too
    assert dsp.resolve_fsaverage_dir(None, str(b)) == a
    assert dsp.resolve_fsaverage_dir(str(b), str(c)) == b  # the app's setting first
    assert dsp.resolve_fsaverage_dir(str(tmp_path / "none"), None) == a  # a wrong setting falls through
    monkeypatch.delenv(dsp.FSAVERAGE_ENV)
    monkeypatch.delenv("SUBJECTS_DIR")
    assert dsp.resolve_fsaverage_dir(str(tmp_path / "none"), None) is None
