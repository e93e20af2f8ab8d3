"""``twin respond`` on the shipped demo twin (read only): clear errors and the path it really wrote."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from brainit_core.cli import main
from brainit_core.utils import assets_dir
from tests.factories import refused

DATA = str(assets_dir() / "demo" / "dataset")


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(np.full((20, 30, 3), 100, np.uint8)).save(folder / "grey.png")
    return folder


def test_respond_unknown_subject_is_one_line(images, tmp_path, capsys):
    line = refused(capsys, ["twin", "respond", "--data", DATA, "--subject", "nosuch", "--images", str(images),
                            "--out", str(tmp_path / "r.npy")], "nosuch")
    assert "twin01" in line and not (tmp_path / "r.npy").exists()


def test_respond_says_the_file_it_wrote(images, tmp_path, capsys):
    out = tmp_path / "betas"
    assert main(["twin", "respond", "--data", DATA, "--subject", "twin01", "--images", str(images),
                 "--repeats", "2", "--out", str(out), "--noiseless"]) == 0
    assert f"wrote {out}.npy:" in capsys.readouterr().out
    assert np.load(f"{out}.npy").shape[:2] == (1, 2)


def test_respond_into_a_directory_is_refused(images, tmp_path, capsys):
    refused(capsys, ["twin", "respond", "--data", DATA, "--subject", "twin01", "--images", str(images),
                     "--out", str(tmp_path)], "--out")
    assert not (tmp_path.parent / f"{tmp_path.name}.npy").exists()
