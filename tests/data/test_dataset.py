import json

import h5py
import numpy as np
import pytest

from brainit_core.data import load_dataset, standardize_session
from brainit_core.errors import DataFormatError
from tests.factories import make_tiny_dataset


def test_roundtrip_and_averaging(tmp_path):
    ds = make_tiny_dataset(tmp_path / "d")
    ds = load_dataset(ds.path)
    assert ds.subjects == ["sub01", "sub02"] and ds.heldout_subjects == ["sub02"]
    sub = ds.subject("sub01")
    assert sub.betas.shape == (sub.n_trials, 30) and sub.betas.dtype == np.float32
    betas, ids = sub.averaged("test")
    assert betas.shape == (4, 30)
    for row, i in enumerate(ids):
        trials = np.flatnonzero(sub.image_ids == i)
        np.testing.assert_allclose(betas[row], sub.betas[trials].mean(0), rtol=1e-6)
    imgs = ds.images(ids[::-1])
    assert imgs.shape == (4, 16, 16, 3) and imgs.dtype == np.uint8
    np.testing.assert_array_equal(imgs[0], ds.images([ids[-1]])[0])
    rows = sub.betas_for_trials(np.array([5, 1, 3]))
    np.testing.assert_array_equal(rows, sub.betas[[5, 1, 3]])


def test_unknown_image_id(tiny_dataset):
    with pytest.raises(KeyError, match="not in the store"):
        tiny_dataset.images([0])


def test_incomplete_dataset_is_refused(tmp_path):
    ds = make_tiny_dataset(tmp_path / "d")
    meta = json.loads((ds.path / "dataset.json").read_text())
    meta["complete"] = False
    (ds.path / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(DataFormatError, match="not finished"):
        load_dataset(ds.path)


def test_incomplete_subject_is_refused(tmp_path):
    ds = make_tiny_dataset(tmp_path / "d")
    with h5py.File(ds.path / "subjects" / "sub01.h5", "a") as f:
        f.attrs["complete"] = 0
    with pytest.raises(DataFormatError, match="incomplete"):
        load_dataset(ds.path).subject("sub01")


def test_missing_directory(tmp_path):
    with pytest.raises(DataFormatError, match="dataset.json"):
        load_dataset(tmp_path / "nope")


def test_standardize_session_values():
    x = np.array([[1.0, 5.0, np.nan, 2.0], [3.0, 5.0, np.nan, np.nan], [5.0, 5.0, np.nan, 4.0]])
    z, mean, std = standardize_session(x)
    np.testing.assert_allclose(z[:, 0], (x[:, 0] - 3) / np.std([1, 3, 5]))
    assert np.all(z[:, 1] == 0) and np.all(z[:, 2] == 0)  # zero variance, all NaN
    np.testing.assert_allclose(z[[0, 2], 3], [-1, 1])
    assert z[1, 3] == 0
    assert z.dtype == np.float32


def test_unknown_subject_is_a_clear_error_and_still_a_key_error(tiny_dataset, capsys):
    from brainit_core.cli import main
    from brainit_core.errors import BrainITError

    with pytest.raises(KeyError) as err:
        tiny_dataset.subject("nobody")
    assert isinstance(err.value, BrainITError)
    assert str(err.value) == f"{tiny_dataset.path}: no subject 'nobody'; subjects: {tiny_dataset.subjects}"
    # the CLI prints it as an error line (status 2), not a traceback
    from brainit_core.app_sources import bundle_dir

    assert main(["transfer", "--data", str(tiny_dataset.path), "--subject", "nobody", "--minutes", "60",
                 "--from", str(bundle_dir() / "run"), "--out", str(tiny_dataset.path / "x"), "--device", "cpu"]) == 2
    assert "no subject 'nobody'" in capsys.readouterr().err


def test_truncated_image_store_names_the_file(tmp_path):
    ds = make_tiny_dataset(tmp_path / "tiny")
    ids = ds.image_ids
    store = tmp_path / "tiny" / "images.h5"
    data = store.read_bytes()
    store.write_bytes(data[:300])  # not even the header
    with pytest.raises(DataFormatError, match=f"{store}.*cannot"):
        load_dataset(tmp_path / "tiny")
    store.write_bytes(data[: len(data) // 2])  # the index may survive, the pixels do not
    with pytest.raises(DataFormatError, match=str(store)):
        load_dataset(tmp_path / "tiny").images(ids)


def test_nonfinite_betas_are_refused_when_read(tmp_path):
    """Probe: NaN/inf written into a subject file after it was prepared used to be read (and trained on)
    silently; every read of betas now checks them and names the file, the subject and the count."""
    ds = make_tiny_dataset(tmp_path / "d")
    path = ds.path / "subjects" / "sub01.h5"
    with h5py.File(path, "a") as f:
        b = f["betas"][()]
        b[3, [0, 4]] = np.nan
        b[7, 1] = np.inf
        f["betas"][...] = b
    sub = load_dataset(ds.path).subject("sub01")
    with pytest.raises(DataFormatError, match=r"sub01\.h5: subject 'sub01' has 3 NaN or inf beta values.*first in trial 3"):
        _ = sub.betas
    with pytest.raises(DataFormatError, match="has 1 NaN or inf"):
        sub.betas_for_trials(np.array([7, 0]))
    with pytest.raises(DataFormatError, match="subject 'sub01'"):
        sub.averaged("train")
    with pytest.raises(DataFormatError, match="has 3 NaN"):
        sub.check_finite()
    np.testing.assert_array_equal(sub.betas_for_trials(np.array([1, 0])), b[[1, 0]])  # clean rows still read
    load_dataset(ds.path).subject("sub02").check_finite()  # the other subject is fine


def test_writer_refuses_nonfinite_session(tmp_path):
    from brainit_core.data import DatasetWriter

    w = DatasetWriter(tmp_path / "w", source="synthetic-test", mesh="fsaverage5", image_size=4)
    w.begin_subject("s", np.arange(4), np.array([0, 0, 1, 1], np.uint8))
    betas = np.zeros((2, 4), np.float32)
    betas[1, 2] = np.inf
    with pytest.raises(DataFormatError, match="session 3 of s: 1 of 8 betas are NaN or inf"):
        w.append_session("s", betas, np.array([1, 2]), session=3)


def test_averages_read_only_their_trials(tiny_dataset, monkeypatch):
    """A page that shows one image's average must not load the subject's single trials (4.8 GB at NSD scale)."""
    from brainit_core.data import load_dataset

    sd = load_dataset(tiny_dataset.path).subject("sub01")
    ids = [int(i) for i in sd.test_image_ids[:2]]
    read = []
    real = type(sd).betas_for_trials

    def spy(self, trials):
        read.append(len(trials))
        return real(self, trials)

    monkeypatch.setattr(type(sd), "betas_for_trials", spy)
    avg, got = sd.average_trials(ids)
    assert "betas" not in sd.__dict__ and sum(read) == sum(len(g) for g in sd.trials_of(ids))
    full = sd.betas  # the whole subject, for the expected values
    for row, i in enumerate(got):
        np.testing.assert_allclose(avg[row], full[sd.trials_of([i])[0]].mean(0), rtol=1e-6)
    np.testing.assert_allclose(sd.average_trials(ids)[0], avg)  # same values once betas are in memory
