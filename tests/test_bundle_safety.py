"""`bundle --out DIR` and `bundle-grids` never delete what they did not write: a folder of other
files is refused, an existing bundle (every file listed in its MANIFEST.json) is replaced."""
from __future__ import annotations

import shutil

import pytest

from brainit_core.app_sources import bundle_dir
from brainit_core.bundle import add_grids, verify_bundle
from brainit_core.cli import main
from brainit_core.errors import BrainITError

BUNDLE = bundle_dir()


def bundle_args(out) -> list[str]:
    """Re-bundle the shipped bundle's own run, generators and data (float32 copies, no grids)."""
    return ["bundle", "--data", str(BUNDLE / "dataset"), "--run", str(BUNDLE / "run"),
            "--generators", str(BUNDLE / "generators"), "--out", str(out), "--n-test", "2",
            "--full", "--grid-subjects", "0"]


def test_bundle_refuses_an_out_folder_holding_a_users_files(tmp_path, capsys):
    out = tmp_path / "Documents"
    (out / "photos").mkdir(parents=True)
    (out / "photos" / "cat.jpg").write_bytes(b"not ours")
    (out / "notes.txt").write_text("not ours")
    assert main(bundle_args(out)) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "notes.txt" in err and "choose a new or empty folder" in err
    assert (out / "notes.txt").read_text() == "not ours" and (out / "photos" / "cat.jpg").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Documents"]  # no .tmp, no lock left behind


def test_bundle_replaces_its_own_bundle_but_not_added_files(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(bundle_args(out)) == 0
    assert verify_bundle(out) == []
    assert main(bundle_args(out)) == 0  # a bundle over a bundle: replaced
    assert verify_bundle(out) == []
    (out / "run" / "my-notes.md").write_text("added by hand")
    capsys.readouterr()
    assert main(bundle_args(out)) == 2
    assert "run/my-notes.md" in capsys.readouterr().err
    assert (out / "run" / "my-notes.md").exists() and verify_bundle(out) == []


def test_bundle_keeps_a_users_folder_named_like_its_temporary(tmp_path, capsys):
    (tmp_path / "demo.tmp").mkdir()
    (tmp_path / "demo.tmp" / "draft.txt").write_text("not ours")
    assert main(bundle_args(tmp_path / "demo")) == 2
    assert (tmp_path / "demo.tmp" / "draft.txt").exists() and not (tmp_path / "demo").exists()


def test_bundle_grids_never_remove_other_files_in_grids(tmp_path):
    root = tmp_path / "b"
    root.mkdir()
    shutil.copy(BUNDLE / "MANIFEST.json", root / "MANIFEST.json")
    (root / "grids").mkdir()
    (root / "grids" / "notes.txt").write_text("not a grid")
    with pytest.raises(BrainITError, match=r"grids holds notes.txt, which are not reconstruction grids"):
        add_grids(root, subjects=["twin01"], n=1, pipeline=object())
    assert (root / "grids" / "notes.txt").exists()
