"""CortexDisplay: maps of fsaverage5, fsaverage (full resolution or resampled) and func1pt8mm data."""
import io
import json
import shutil
import zipfile

import nibabel as nib
import numpy as np
import plotly.io as pio
import pytest

from brainit_core.data import load_dataset
from brainit_core.data.info import DatasetInfo
from brainit_core.viz.cortex import CortexDisplay
from tests.data.nsd_fixtures import prepare_display_tree


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    out = {}
    for space in ("fsaverage", "func1pt8mm"):
        out[space] = prepare_display_tree(tmp_path_factory.mktemp(space), space, subjects=(1,), order=1)
    return out


@pytest.fixture(autouse=True)
def no_fsaverage_env(monkeypatch):
    monkeypatch.delenv("BRAINIT_FSAVERAGE_DIR", raising=False)
    monkeypatch.delenv("SUBJECTS_DIR", raising=False)


def display(ds, **kw):
    sd = ds.subject(ds.subjects[0])
    return CortexDisplay(ds.info, sd.name, sd.vertices, sd.hemispheres, **kw), sd


class NoFolder:
    """A DatasetInfo whose record forgot the fsaverage folder (the user has no surfaces)."""

    def __init__(self, info):
        self.info = info

    @property
    def display(self):
        return {**self.info.display, "fsaverage_dir": None}


def mesh_traces(fig, scene="scene"):
    return [t for t in fig.data if t.type == "mesh3d" and t.scene == scene]


def test_fsaverage_full_resolution(prepared):
    ds, facts = prepared["fsaverage"]
    d, sd = display(ds)
    assert d.space == "fsaverage" and d.full == 40962 and not d.resampled("inflated")
    values = np.arange(len(sd.vertices), dtype=float)
    geom, full = d.on_mesh(values, "inflated")
    assert geom.n_vertices == 40962 and full[sd.hemispheres, sd.vertices].tolist() == values.tolist()
    fig = d.surface_figure(values, "inflated + flat", atlas="floc-faces", view="lateral")
    background, front = mesh_traces(fig, "scene")[:2]
    assert geom.nested and len(background.x) == 10242  # the grey cortex: fsaverage5's faces over the nested vertices
    assert len(front.x) > 2 * (sd.vertices[sd.hemispheres == 0] < 10242).sum()  # the map: every vertex it touches
    assert mesh_traces(fig, "scene3")[0].x is not None
    assert fig.layout.scene3.camera.eye.z > 0  # the flat row is seen from above
    assert "full resolution (40,962" in d.note("inflated")
    codes, names = d.atlas_at_vertices("prf-visualrois")
    assert names[0] == "V1v" and np.isfinite(codes).all()  # the fixture's atlas covers the whole mask
    rows = {r["for"]: r["read from"] for r in d.sources()}
    assert rows["surfaces"] == str(facts["fsaverage_dir"]) and "ROI atlas streams" in rows


def test_fsaverage_without_surfaces_is_a_resampled_fsaverage5_view(prepared):
    ds, _ = prepared["fsaverage"]
    sd = ds.subject("subj01")
    d = CortexDisplay(NoFolder(ds.info), "subj01", sd.vertices, sd.hemispheres)
    assert d.full is None and d.resampled("inflated") and "Resampled view" in d.note("inflated")
    assert "its own value" in d.note("inflated")
    values = np.random.default_rng(0).standard_normal(len(sd.vertices))
    geom, full = d.on_mesh(values, "inflated")
    nested = sd.vertices < 10242
    assert geom.n_vertices == 10242
    np.testing.assert_allclose(full[sd.hemispheres[nested], sd.vertices[nested]], values[nested])
    assert np.isfinite(full).sum() == nested.sum()
    fig = d.surface_figure(values, "inflated", atlas="prf-visualrois")
    assert sum(t.name == "borders" for t in fig.data) == 2
    with zipfile.ZipFile(io.BytesIO(d.export_zip("m", values, "mgh"))) as z:  # exports keep fsaverage
        assert sorted(z.namelist()) == ["lh.m.mgh", "rh.m.mgh"]
        assert nib.MGHImage.from_bytes(z.read("lh.m.mgh")).shape == (40962, 1, 1)  # as nsd prepare recorded


def test_flat_without_patches_averages_on_the_sphere(prepared, tmp_path):
    ds, facts = prepared["fsaverage"]
    fsdir = tmp_path / "fsaverage"
    shutil.copytree(facts["fsaverage_dir"] / "surf", fsdir / "surf")
    for p in (fsdir / "surf").glob("*.patch.3d"):
        p.unlink()
    d, sd = display(ds, fsaverage_dir=str(fsdir))
    assert d.fs_dir == fsdir and not d.resampled("inflated") and d.resampled("flat")
    assert "nearest to it on the sphere" in d.note("flat")
    geom, full = d.on_mesh(np.ones(len(sd.vertices)), "flat")
    assert geom.n_vertices == 10242 and np.nanmax(full) == 1.0
    assert np.isfinite(full).sum() > (sd.vertices < 10242).sum()  # averaging reaches non-nested vertices


def test_exports_carry_their_mesh(prepared):
    ds, _ = prepared["fsaverage"]
    d, sd = display(ds)
    values = np.linspace(-1, 1, len(sd.vertices))
    assert d.export_formats == ["gifti", "mgh"] and "fsaverage (40,962 vertices each)" in d.export_label("gifti")
    with zipfile.ZipFile(io.BytesIO(d.export_zip("m", values, "gifti"))) as z:
        names = sorted(z.namelist())
        assert names == ["lh.fsaverage.inflated.surf.gii", "lh.m.func.gii", "rh.fsaverage.inflated.surf.gii",
                         "rh.m.func.gii"]
        img = nib.GiftiImage.from_bytes(z.read("rh.m.func.gii"))
        assert img.meta["AnatomicalStructurePrimary"] == "CortexRight" and img.meta["Mesh"].startswith("fsaverage (")
        data = img.darrays[0].data
        right = sd.hemispheres == 1
        np.testing.assert_allclose(data[sd.vertices[right]], values[right], rtol=1e-6)
        surf = nib.GiftiImage.from_bytes(z.read("lh.fsaverage.inflated.surf.gii"))
        assert surf.darrays[0].data.shape == (40962, 3) and surf.darrays[1].data.shape == (81920, 3)


def test_func1pt8mm_volume_views_projection_and_nifti(prepared):
    ds, facts = prepared["func1pt8mm"]
    d, sd = display(ds)
    assert d.space == "func1pt8mm" and d.modes == ["slices", "interactive", "inflated", "inflated + flat", "flat"]
    assert d.atlases == ["prf-visualrois", "floc-faces", "streams"]
    values = np.random.default_rng(1).standard_normal(len(sd.vertices))
    fig = d.volume_figure(values, atlas="prf-visualrois", symmetric=True, unit="s.d.", threshold=0.2)
    assert fig.axes and "s.d." in " ".join(t.get_text() for t in fig.texts)
    html = d.volume_html(values, symmetric=True)
    assert "brainsprite" in html.lower() and 'href="https://' not in html
    # projected: an fsaverage vertex shows the value of its voxel
    proj = d.projection
    column = {int(v): k for k, v in enumerate(sd.vertices)}
    h, v = next((h, v) for h in range(2) for v in range(proj.shape[1]) if int(proj[h, v]) in column)
    _, on = d.on_mesh(values, "inflated")
    assert on[h, v] == pytest.approx(values[column[int(proj[h, v])]])
    surf = d.surface_figure(values, "flat", atlas="streams")
    assert sum(t.name == "borders" for t in surf.data) == 2
    with zipfile.ZipFile(io.BytesIO(d.export_zip("m", values, "nifti"))) as z:
        img = nib.Nifti1Image.from_bytes(__import__("gzip").decompress(z.read("m.nii.gz")))
    np.testing.assert_allclose(img.affine, facts["volumes"][1]["affine"], atol=1e-5)
    flat = np.asarray(img.dataobj).reshape(-1)
    np.testing.assert_allclose(flat[sd.vertices], values, rtol=1e-6)
    assert np.isnan(flat).sum() == flat.size - len(sd.vertices)
    codes, names = d.atlas_at_vertices("floc-faces")
    assert names == ["OFA", "FFA-1", "FFA-2"] and np.isnan(codes).any()


def test_volume_without_its_record_says_why(prepared):
    ds, _ = prepared["func1pt8mm"]
    sd = ds.subject("subj01")

    class Old:
        display = {"space": "func1pt8mm", "fsaverage_dir": None, "atlases": {}, "subjects": {}}

    d = CortexDisplay(Old(), "subj01", sd.vertices, sd.hemispheres)
    assert d.modes == [] and "prepare it again" in d.problems[0] and d.export_formats == []


def test_twin_fsaverage5_with_true_areas(tiny_dataset):
    sd = tiny_dataset.subject("sub01")
    codes = np.where(np.arange(len(sd.vertices)) % 2, 2.0, 1.0)
    d = CortexDisplay(tiny_dataset.info, "sub01", sd.vertices, sd.hemispheres,
                      extra_atlases={"areas": (codes, ["", "V1", "V2"])})
    assert d.space == "fsaverage5" and d.atlases == ["areas"] and not d.resampled("flat")
    fig = d.surface_figure(np.ones(len(sd.vertices)), "flat", atlas="areas", hover={"eccentricity": codes})
    spec = json.loads(pio.to_json(fig, validate=False))
    text = " ".join(s for t in spec["data"] if t["type"] == "mesh3d" and "text" in t for s in t["text"])
    assert "area: V1" in text and "area: V2" in text and "eccentricity: " in text
    assert d.atlas_at_vertices("areas")[1] == ["V1", "V2"]
    assert DatasetInfo(tiny_dataset.path).display["space"] == "fsaverage5"
    assert load_dataset(tiny_dataset.path).mesh == "fsaverage5"
