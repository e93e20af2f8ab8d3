"""Dataset builds never delete what they did not write: a folder of other files or a dataset of
another kind is refused, a finished dataset of the same kind is replaced only with overwrite, and a
rebuilt dataset never reuses its predecessor's feature cache."""
from __future__ import annotations

import numpy as np
import pytest

from brainit_core.cli import main
from brainit_core.data import DatasetWriter, load_dataset
from brainit_core.errors import BrainITError
from tests.factories import make_tiny_dataset


def nsd_like(path):
    """A finished dataset of another source (stands in for prepared NSD)."""
    w = DatasetWriter(path, source="nsd", mesh="fsaverage", image_size=8)
    w.add_images(np.arange(3), np.zeros((3, 8, 8, 3), np.uint8))
    w.begin_subject("subj01", np.arange(4), np.r_[0, 0, 1, 1])
    w.append_session("subj01", np.zeros((3, 4), np.float32), np.arange(3), 1)
    w.finalize_subject("subj01", np.arange(2), np.zeros(0), np.arange(2, 3))
    return w.finalize()


def test_twin_build_refuses_a_prepared_nsd_dataset(tmp_path, capsys):
    out = tmp_path / "nsd"
    nsd_like(out)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    assert main(["twin", "build", "--out", str(out), "--preset", "ci"]) == 2
    assert "holds a nsd dataset" in capsys.readouterr().err
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert main(["twin", "build", "--out", str(out), "--preset", "ci", "--overwrite"]) == 2  # never another kind
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert load_dataset(out).source == "nsd"


def test_a_folder_of_other_files_is_refused(tmp_path):
    out = tmp_path / "mine"
    (out / "subjects").mkdir(parents=True)
    (out / "subjects" / "notes.txt").write_text("keep me")
    (out / "thesis.tex").write_text("keep me too")
    with pytest.raises(BrainITError, match=r"mine already holds subjects/, thesis.tex.*choose a new or empty"):
        make_tiny_dataset(out, overwrite=True)
    assert (out / "subjects" / "notes.txt").read_text() == "keep me" and (out / "thesis.tex").exists()
    assert not (out / "dataset.json").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(BrainITError, match="is a file"):
        make_tiny_dataset(tmp_path / "file")


def test_a_finished_dataset_is_replaced_only_with_overwrite(tmp_path):
    out = tmp_path / "d"
    first = make_tiny_dataset(out)
    (out / "README.txt").write_text("the user's own notes beside the dataset")
    with pytest.raises(BrainITError, match="already holds a finished synthetic-test dataset.*--overwrite"):
        make_tiny_dataset(out, seed=1)
    assert load_dataset(out).content_id == first.content_id
    second = make_tiny_dataset(out, seed=1, overwrite=True)
    assert second.content_id != first.content_id
    assert (out / "README.txt").exists()  # not the writer's: left alone


def test_an_unfinished_dataset_of_the_same_kind_is_replaced(tmp_path):
    out = tmp_path / "d"
    w = DatasetWriter(out, source="synthetic-test", mesh="fsaverage5", image_size=16)
    w.add_images(np.arange(2), np.zeros((2, 16, 16, 3), np.uint8))
    w.close()  # interrupted: dataset.json says complete = false
    make_tiny_dataset(out)
    assert len(load_dataset(out).image_ids) > 2


def test_a_running_build_locks_its_folder(tmp_path):
    from brainit_core.locks import LockedError

    out = tmp_path / "d"
    w = DatasetWriter(out, source="synthetic-test", mesh="fsaverage5", image_size=16)
    with pytest.raises(LockedError, match=r"dataset .*d is in use by another process \(pid \d+"):
        DatasetWriter(out, source="synthetic-test", mesh="fsaverage5", image_size=16)
    w.close()


def test_a_rebuilt_dataset_never_reads_the_old_feature_cache(tmp_path):
    from brainit_core.features import extract_features, get_feature_space

    space = get_feature_space("lite0", preset="ci")
    out = tmp_path / "twin"
    ds = make_tiny_dataset(out, seed=0)
    ids = ds.image_ids[:3]
    old = extract_features(ds, ids, space, batch_size=4)
    old_images = ds.images(ids)
    rebuilt = make_tiny_dataset(out, seed=1, overwrite=True)  # same ids, other images
    assert not np.array_equal(rebuilt.images(ids), old_images)
    cached = extract_features(rebuilt, ids, space, batch_size=4)
    direct = extract_features(rebuilt, ids, space, cache=False)
    assert np.abs(old.semantic.astype(np.float32) - direct.semantic).max() > 0.5  # stale features would show
    np.testing.assert_allclose(cached.semantic.astype(np.float32), direct.semantic.astype(np.float32), atol=1e-2)
