"""brainit_core.ui.recon: the disk cache, per-image metrics, exports and the uploaded-betas reader."""
from __future__ import annotations

import io

import h5py
import numpy as np
import pytest

from brainit_core.errors import DataFormatError
from brainit_core.ui import recon


@pytest.fixture(scope="module")
def pipe_and_data(app_data):
    import torch

    from brainit_core.data import load_dataset
    from brainit_core.models.run import BrainITRun
    from brainit_core.reconstruction import BrainITPipeline, Generators

    torch.set_num_threads(1)
    run = BrainITRun.load(app_data.run, device="cpu")
    gens = Generators.load(app_data.generators, device="cpu", space=run.space)
    return BrainITPipeline(run, gens), load_dataset(app_data.dataset)


def test_cache_root_follows_brainit_data(monkeypatch, tmp_path):
    monkeypatch.setenv("BRAINIT_DATA", str(tmp_path))
    assert recon.cache_root() == tmp_path / "cache" / "app"


def test_grid_is_cached_on_disk_and_keyed_by_settings(pipe_and_data, tmp_path):
    pipe, ds = pipe_and_data
    s = recon.ReconSettings()
    assert recon.reconstruct_grid(pipe, ds, "twin01", 3, s, root=tmp_path, compute=False) is None
    first = recon.reconstruct_grid(pipe, ds, "twin01", 3, s, root=tmp_path)
    assert not first.cached and list(first.images) == list(recon.COLUMNS)
    _, ids = ds.subject("twin01").averaged("test")
    np.testing.assert_array_equal(first.image_ids, ids[:3])
    size = first.images["fused"].shape[1]  # ground truth is shown at the reconstructions' size
    np.testing.assert_array_equal(first.images["ground truth"],
                                  np.stack([recon.fit_image(im, size) for im in ds.images(ids[:3])]))
    again = recon.reconstruct_grid(pipe, ds, "twin01", 3, s, root=tmp_path)
    assert again.cached and again.key == first.key
    for c in recon.COLUMNS:
        np.testing.assert_array_equal(again.images[c], first.images[c])
    for c in first.metrics:
        np.testing.assert_allclose(again.metrics[c]["SSIM"], first.metrics[c]["SSIM"])
    # another seed or another subject is another entry
    assert recon.reconstruct_grid(pipe, ds, "twin01", 3, recon.ReconSettings(seed=1), root=tmp_path,
                                  compute=False) is None
    assert recon.reconstruct_grid(pipe, ds, "twin02", 3, s, root=tmp_path, compute=False) is None
    # a damaged entry is recomputed, not shown
    (tmp_path / f"{first.key}.npz").write_bytes(b"garbage")
    fixed = recon.reconstruct_grid(pipe, ds, "twin01", 3, s, root=tmp_path)
    assert not fixed.cached
    np.testing.assert_array_equal(fixed.images["fused"], first.images["fused"])
    assert recon.cached_grids(tmp_path) == 1


def test_one_image_matches_its_row_in_the_grid(pipe_and_data, tmp_path):
    pipe, ds = pipe_and_data
    grid = recon.reconstruct_grid(pipe, ds, "twin01", 3, root=tmp_path)
    one = recon.reconstruct_grid(pipe, ds, "twin01", image_ids=[grid.image_ids[2]], root=tmp_path, cache=False)
    # seed = seed + image id, so the image alone equals its row; a batch of 1 and a batch of 3 may
    # round a few float sums differently (seen: 1 pixel of 12,288 off by 1 with other package versions)
    diff = np.abs(one.images["fused"][0].astype(int) - grid.images["fused"][2].astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3, (diff.max(), (diff > 0).mean())
    other = recon.reconstruct_grid(pipe, ds, "twin01", image_ids=[grid.image_ids[1]], root=tmp_path, cache=False)
    assert np.abs(other.images["fused"][0].astype(int) - grid.images["fused"][2].astype(int)).mean() > 1
    with pytest.raises(DataFormatError, match="no test betas"):
        recon.reconstruct_grid(pipe, ds, "twin01", image_ids=[10 ** 9], root=tmp_path)


def test_branch_toggles_change_the_columns(pipe_and_data, tmp_path):
    pipe, ds = pipe_and_data
    low = recon.reconstruct_grid(pipe, ds, "twin01", 2, recon.ReconSettings(branches=("low_level",)), root=tmp_path)
    assert list(low.images) == ["ground truth", "low-level"] and list(low.metrics) == ["low-level"]
    sem = recon.reconstruct_grid(pipe, ds, "twin01", 2, recon.ReconSettings(branches=("semantic",)), root=tmp_path)
    assert list(sem.images) == ["ground truth", "semantic"]


def test_image_metrics_per_image():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    m = recon.image_metrics(a, a)
    np.testing.assert_allclose(m["PixCorr"], 1, atol=1e-5)
    np.testing.assert_allclose(m["SSIM"], 1, atol=1e-4)
    flipped = recon.image_metrics(a, 255 - a)
    assert (flipped["PixCorr"] < -0.99).all() and m["PixCorr"].shape == (3,)


def test_rows_csv_and_png_grid():
    ims = np.zeros((2, 8, 8, 3), np.uint8)
    ims[1] = 255
    g = recon.GridResult("s", np.array([4, 9]), {"ground truth": ims, "fused": ims},
                         {"fused": {"PixCorr": np.array([0.5, 0.25]), "SSIM": np.array([0.1, 0.2])}})
    text = recon.metrics_csv(g.rows())
    assert text.splitlines() == ["subject,image_id,reconstruction,PixCorr,SSIM", "s,4,fused,0.5,0.1", "s,9,fused,0.25,0.2"]
    grid = recon.grid_image(g.images, cell=16, pad=2, header=10)
    assert grid.shape == (10 + 2 * 18 + 2, 2 * 18 + 2, 3)
    assert (grid[10 + 18 + 4, 2 + 4] == 255).all() and (grid[10 + 4, 2 + 4] == 0).all()  # row 2 white, row 1 black
    from PIL import Image

    assert Image.open(io.BytesIO(recon.grid_png(g.images))).size == (2 * 132 + 4, 18 + 2 * 132 + 4)
    with pytest.raises(ValueError, match="same number"):
        recon.grid_image({"a": ims, "b": ims[:1]})


def _npy(a) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def test_read_betas_formats_and_checks(tmp_path):
    v = np.arange(10, dtype=np.float32) / 10
    np.testing.assert_array_equal(recon.read_betas("a.npy", _npy(v), 10), v)
    np.testing.assert_array_equal(recon.read_betas("a.npy", _npy(v[None].astype(np.float64)), 10), v)
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f["meta/notes"] = np.zeros((2, 2, 2))  # 3-D: skipped
        f["betas"] = v[None]
        f["other"] = v[::-1].copy()
    np.testing.assert_array_equal(recon.read_betas("b.h5", buf.getvalue(), 10), v)
    np.testing.assert_array_equal(recon.read_betas("b.h5", buf.getvalue(), 10, key="other"), v[::-1])
    with pytest.raises(DataFormatError, match="no dataset 'nope'"):
        recon.read_betas("b.h5", buf.getvalue(), 10, key="nope")
    import nibabel as nib

    nib.save(nib.MGHImage(v.reshape(10, 1, 1), np.eye(4)), str(tmp_path / "c.mgh"))
    np.testing.assert_allclose(recon.read_betas("c.mgh", (tmp_path / "c.mgh").read_bytes(), 10), v)

    with pytest.raises(DataFormatError, match=r"expected one trial of 12 values.*got shape \(10,\)"):
        recon.read_betas("a.npy", _npy(v), 12)
    with pytest.raises(DataFormatError, match="got shape \\(2, 10\\)"):
        recon.read_betas("a.npy", _npy(np.stack([v, v])), 10)
    bad = v.copy()
    bad[[2, 5]] = np.nan
    with pytest.raises(DataFormatError, match="2 of 10 values are NaN"):
        recon.read_betas("a.npy", _npy(bad), 10)
    with pytest.raises(DataFormatError, match="cannot read as .npy"):
        recon.read_betas("obj.npy", _npy(np.array([{"x": 1}], dtype=object)), 1)
    with pytest.raises(DataFormatError, match="cannot read as .h5"):
        recon.read_betas("broken.h5", b"not hdf5", 10)
    with pytest.raises(DataFormatError, match="unknown file type .txt"):
        recon.read_betas("a.txt", b"1 2 3", 3)
    with pytest.raises(DataFormatError, match="over the 1 MB limit"):
        recon.read_betas("big.npy", b"0" * (2 * 2 ** 20), 10, max_mb=1)


def test_nsd_check_and_report_rows(tmp_path):
    ok, lines = recon.nsd_check(tmp_path / "missing")
    assert not ok and "not a directory" in lines[0]
    ok, lines = recon.nsd_check(tmp_path, subjects=[1, 9])
    assert not ok and any(line.startswith("MISSING stimuli") for line in lines)
    assert any("subject 9: not an NSD subject" in line for line in lines)
    report = {"twin01": {"n_vertices": 5, "contralateral_fraction": 1.0, "eccentricity_gradient_rho": 0.8,
                         "noise_ceiling_median": {"designed": 0.4, "measured": 0.38},
                         "noise_ceiling_under_10pct": 0.2, "category_selectivity_dprime": {"face": 3.1}}}
    (row,) = recon.twin_report_rows(report)
    assert row["NC measured"] == 0.38 and row["d' face"] == 3.1 and row["vertices"] == 5


def test_fit_image_crops_to_a_centred_square():
    im = np.zeros((20, 40, 3), np.uint8)
    im[:, 10:30] = 200  # the centre square
    out = recon.fit_image(im, 8)
    assert out.shape == (8, 8, 3) and (out == 200).all()
    assert recon.fit_image(np.zeros((5, 5), np.uint8), 4).shape == (4, 4, 3)


def test_a_bundle_ships_its_grids_to_any_checkout(pipe_and_data, tmp_path):
    import json
    import shutil

    from brainit_core.bundle import add_grids, file_table, verify_bundle
    from brainit_core.data import load_dataset

    pipe, ds = pipe_and_data
    subject = pipe.run.subjects[0]
    bundle = tmp_path / "a" / "bundle"
    shutil.copytree(ds.path, bundle / "dataset")
    (bundle / "MANIFEST.json").write_text(json.dumps({"files": file_table(bundle)}))
    empty = tmp_path / "empty-cache"

    def lookup(root, n=2):
        return recon.reconstruct_grid(pipe, load_dataset(root / "dataset"), subject, n, recon.GRID_SETTINGS,
                                      root=empty, compute=False)

    assert lookup(bundle) is None
    manifest = add_grids(bundle, subjects=[subject], n=2, pipeline=pipe)
    assert verify_bundle(bundle) == [] and sum(k.startswith("grids/") for k in manifest["files"]) == 1
    # the same bundle in another checkout (another path) reads the shipped grid, with nothing in its cache
    moved = tmp_path / "b" / "bundle"
    shutil.copytree(bundle, moved)
    got = lookup(moved)
    assert got is not None and got.cached and not empty.exists()
    fresh = recon.reconstruct_grid(pipe, ds, subject, 2, recon.GRID_SETTINGS, cache=False)
    np.testing.assert_array_equal(got.images["fused"], fresh.images["fused"])
    np.testing.assert_array_equal(got.image_ids, fresh.image_ids)
    assert lookup(moved, n=3) is None  # another grid size was not shipped
    # a dataset file that no longer matches the manifest's listing changes the key: nothing stale is shown
    mf = json.loads((moved / "MANIFEST.json").read_text())
    first = next(k for k in mf["files"] if k.startswith("dataset/"))
    mf["files"][first]["sha256"] = "0" * 64
    (moved / "MANIFEST.json").write_text(json.dumps(mf))
    assert lookup(moved) is None
    # outside a bundle the dataset is identified by its path, and nothing is shipped
    assert recon.dataset_identity(ds.path) == str(ds.path.resolve()) and recon.shipped_grids_dir(ds.path) is None
    with pytest.raises(DataFormatError, match="not the dataset/ of a bundle"):
        recon.add_shipped_grids(pipe, ds, [subject], 2)
