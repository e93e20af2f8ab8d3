import numpy as np
import nibabel as nib
import pytest

from brainit_core.data import load_dataset
from brainit_core.data.nsd import prepare_nsd
from brainit_core.errors import DataFormatError
from tests.data.nsd_fixtures import make_nsd_tree

KW = dict(trials_per_session=12, n_vertices_per_hemi=50, image_size=16, val_images=2)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("nsd")
    fx = make_nsd_tree(root, subjects=(1, 2), sessions={1: 3, 2: 2})
    ds, report = prepare_nsd(root, [1, 2], root / "out", sessions=2, **KW)
    return fx, ds, report


def test_values_of_betas_ids_and_splits(prepared):
    fx, ds, report = prepared
    ds = load_dataset(ds.path)
    sub = ds.subject("subj01")
    m = fx["masks"]
    verts = np.r_[np.flatnonzero(m["lh"]), np.flatnonzero(m["rh"])]
    np.testing.assert_array_equal(sub.vertices, verts)
    assert sub.hemispheres.tolist() == [0] * m["lh"].sum() + [1] * m["rh"].sum()
    # z-score of session 2, lh vertex 0 (population std over the session's trials)
    v = np.flatnonzero(m["lh"])[0]
    raw = fx["raw"][(1, 2, "lh")][:, v]
    np.testing.assert_allclose(sub.betas[12:24, 0], (raw - raw.mean()) / raw.std(), rtol=1e-5, atol=1e-5)
    # the all-NaN vertex is 0; the single NaN trial is 0 and the rest use NaN-aware statistics
    col = int(np.flatnonzero(verts[: m["lh"].sum()] == 3)[0])
    assert np.all(sub.betas[:, col] == 0)
    col1 = int(np.flatnonzero(verts[: m["lh"].sum()] == 4)[0]) if m["lh"][4] else None
    if col1 is not None:
        r = fx["raw"][(1, 1, "lh")][1:, 4]
        assert sub.betas[0, col1] == 0
        np.testing.assert_allclose(sub.betas[1:12, col1], (r - r.mean()) / r.std(), rtol=1e-5, atol=1e-5)
    # trial -> 0-based 73k id through the 1-based tables
    mo, si = fx["masterordering"], fx["subjectim"]
    np.testing.assert_array_equal(sub.image_ids, si[0, mo[:24] - 1] - 1)
    np.testing.assert_array_equal(sub.sessions, np.repeat([1, 2], 12))
    test = np.unique(sub.image_ids[mo[:24] <= 1000])
    np.testing.assert_array_equal(sub.test_image_ids, test)
    assert set(sub.train_image_ids).isdisjoint(test) and len(sub.val_image_ids) == 2
    assert set(sub.train_image_ids) | set(sub.val_image_ids) == set(np.unique(sub.image_ids[mo[:24] > 1000]))
    # test ids are shared across subjects; images are the brick's rows
    assert set(ds.subject("subj02").test_image_ids) <= set(range(100))
    import h5py
    with h5py.File(fx["layout"].stimuli) as f:
        np.testing.assert_array_equal(ds.images(test[:2]), f["imgBrick"][np.sort(test[:2])])
    avg, ids = sub.averaged("test")
    rows = np.flatnonzero(sub.image_ids == ids[0])
    np.testing.assert_allclose(avg[0], sub.betas[rows].mean(0), rtol=1e-5)
    assert report.subjects[1]["nan_only_vertices"] >= 1


def test_fewer_sessions_and_missing_session(tmp_path):
    fx = make_nsd_tree(tmp_path, subjects=(1, 2), sessions={1: 3, 2: 3}, skip_sessions={(2, 3)})
    ds, _ = prepare_nsd(tmp_path, [1], tmp_path / "o1", **KW)
    assert ds.subject("subj01").n_trials == 36
    with pytest.raises(DataFormatError, match=r"sessions \[3\] missing for subject 2.*found sessions \[1, 2\]"):
        prepare_nsd(tmp_path, [2], tmp_path / "o2", sessions=3, **KW)
    gap = fx["layout"].mgh(1, "lh", 2)
    gap.unlink()
    with pytest.raises(DataFormatError, match=r"sessions \[2\] missing for subject 1"):
        prepare_nsd(tmp_path, [1], tmp_path / "o4", **KW)
    ds, _ = prepare_nsd(tmp_path, [2], tmp_path / "o3", sessions=2, **KW)
    assert ds.subject("subj02").n_trials == 24


@pytest.mark.parametrize("case, pattern", [
    ("subject", "not an NSD subject"),
    ("too_many_sessions", "completed 30 sessions"),
    ("wrong_vertices", r"expected \(60, 1, 1, 12\)"),
    ("mask_length", "mask has 50 values, but the betas have 60"),
    ("corrupt_mgh", "cannot read as .mgh"),
    ("corrupt_h5", "cannot open as HDF5"),
    ("brick_range", "outside the brick"),
    ("no_expdesign", "nsd_expdesign.mat not found"),
])
def test_bad_inputs(tmp_path, case, pattern):
    fx = make_nsd_tree(tmp_path, subjects=(1,), sessions={1: 1})
    lay = fx["layout"]
    kw = dict(KW)
    subjects = [1]
    if case == "subject":
        subjects = [9]
    elif case == "too_many_sessions":
        subjects, kw["sessions"] = [4], 31
    elif case == "wrong_vertices":
        kw["n_vertices_per_hemi"] = 60
        b = np.zeros((60, 1, 1, 12), np.float32)
        for h in ("lh", "rh"):
            nib.save(nib.MGHImage(np.ones((60, 1, 1), np.float32), np.eye(4)), str(lay.nsdgeneral_label(h)))
        nib.save(nib.MGHImage(np.zeros((50, 1, 1, 12), np.float32), np.eye(4)), str(lay.mgh(1, "lh", 1)))
        nib.save(nib.MGHImage(b, np.eye(4)), str(lay.mgh(1, "rh", 1)))
    elif case == "mask_length":
        kw["n_vertices_per_hemi"] = 60
    elif case == "corrupt_mgh":
        data = lay.mgh(1, "lh", 1).read_bytes()
        lay.mgh(1, "lh", 1).write_bytes(data[: len(data) // 3])
    elif case == "corrupt_h5":
        lay.stimuli.write_bytes(lay.stimuli.read_bytes()[:500])
    elif case == "brick_range":
        import h5py
        with h5py.File(lay.stimuli, "w") as f:
            f.create_dataset("imgBrick", data=np.zeros((50, 16, 16, 3), np.uint8))
    elif case == "no_expdesign":
        lay.expdesign.unlink()
    with pytest.raises(DataFormatError, match=pattern):
        prepare_nsd(tmp_path, subjects, tmp_path / "out", **kw)


def test_real_fsaverage_shape_is_accepted(tmp_path):
    fx = make_nsd_tree(tmp_path, subjects=(1,), sessions={1: 1}, trials=3, n_vert=163842, n_brick=200)
    ds, _ = prepare_nsd(tmp_path, [1], tmp_path / "o", trials_per_session=3, image_size=16, val_images=0)
    sub = ds.subject("subj01")
    assert sub.n_vertices == fx["masks"]["lh"].sum() + fx["masks"]["rh"].sum()
    assert sub.vertices.max() < 163842


def test_cli_check_and_prepare_help(tmp_path, capsys):
    from brainit_core.cli import main

    make_nsd_tree(tmp_path, subjects=(1,), sessions={1: 1})
    assert main(["nsd", "check", "--nsd-root", str(tmp_path), "--subjects", "1"]) == 0
    assert "1/40 sessions" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["nsd", "prepare", "--help"])


def test_check_returns_what_is_present_and_missing(tmp_path, capsys):
    from brainit_core.cli import main
    from brainit_core.data.nsd_cli import check_nsd

    missing = check_nsd(tmp_path / "missing")
    assert not missing.ok and missing.lines() == [f"MISSING NSD root: {tmp_path / 'missing'} is not a directory"]
    found = check_nsd(tmp_path, subjects=[1, 9])
    assert not found.ok
    assert [(label, present) for label, present, _ in found.items] == [
        ("experiment design", False), ("stimuli", False), ("subj01 fsaverage", False), ("subject 9", False)]
    assert found.lines()[-1] == "MISSING subject 9: not an NSD subject (1..8)"
    root = tmp_path / "nsd"
    make_nsd_tree(root, subjects=(1,), sessions={1: 2})
    ok = check_nsd(root, subjects=[1])
    assert ok.ok and ok.lines()[2].startswith("ok      subj01 fsaverage: 2/40 sessions under ")
    capsys.readouterr()
    assert main(["nsd", "check", "--nsd-root", str(root), "--subjects", "1"]) == 0
    assert capsys.readouterr().out.splitlines() == ok.lines()  # the command prints the same lines


@pytest.mark.parametrize("case, pattern", [
    ("zero_mask", r"nsdgeneral.*selects no vertex"),
    ("float_brick", r"nsd_stimuli.hdf5: imgBrick has dtype float32, expected uint8"),
    ("sessions", r"sessions must be a positive integer, got -1"),
    ("val_images", r"val_images must be an integer >= 0, got -5"),
    ("image_size", r"image_size must be a positive integer, got 0"),
    ("trials", r"trials_per_session must be a positive integer, got -3"),
])
def test_prepare_refuses_bad_values(tmp_path, case, pattern):
    import h5py

    fx = make_nsd_tree(tmp_path, subjects=(1,), sessions={1: 1})
    lay = fx["layout"]
    kw = dict(KW)
    if case == "zero_mask":
        for h in ("lh", "rh"):
            nib.save(nib.MGHImage(np.zeros((50, 1, 1), np.float32), np.eye(4)), str(lay.nsdgeneral_label(h)))
    elif case == "float_brick":
        with h5py.File(lay.stimuli, "w") as f:
            f.create_dataset("imgBrick", data=np.random.default_rng(0).random((200, 16, 16, 3), np.float32))
    elif case == "sessions":
        kw["sessions"] = -1
    elif case == "val_images":
        kw["val_images"] = -5
    elif case == "image_size":
        kw["image_size"] = 0
    elif case == "trials":
        kw["trials_per_session"] = -3
    with pytest.raises(DataFormatError, match=pattern):
        prepare_nsd(tmp_path, [1], tmp_path / "out", **kw)
    with pytest.raises(DataFormatError):  # no dataset was finished
        load_dataset(tmp_path / "out")
