"""brainit_core.data.uploads: one trial's betas and a photo from uploaded files, checked."""
from __future__ import annotations

import io

import h5py
import numpy as np
import pytest

from brainit_core.data.uploads import example_betas, read_betas, read_photo
from brainit_core.errors import DataFormatError


def _npy(a) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def test_read_betas_formats_and_checks(tmp_path):
    v = np.arange(10, dtype=np.float32) / 10
    np.testing.assert_array_equal(read_betas("a.npy", _npy(v), 10), v)
    np.testing.assert_array_equal(read_betas("a.npy", _npy(v[None].astype(np.float64)), 10), v)
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f["meta/notes"] = np.zeros((2, 2, 2))  # 3-D: skipped
        f["betas"] = v[None]
        f["other"] = v[::-1].copy()
    np.testing.assert_array_equal(read_betas("b.h5", buf.getvalue(), 10), v)
    np.testing.assert_array_equal(read_betas("b.h5", buf.getvalue(), 10, key="other"), v[::-1])
    with pytest.raises(DataFormatError, match="no dataset 'nope'"):
        read_betas("b.h5", buf.getvalue(), 10, key="nope")
    import nibabel as nib

    nib.save(nib.MGHImage(v.reshape(10, 1, 1), np.eye(4)), str(tmp_path / "c.mgh"))
    np.testing.assert_allclose(read_betas("c.mgh", (tmp_path / "c.mgh").read_bytes(), 10), v)

    with pytest.raises(DataFormatError, match=r"expected one trial of 12 values.*got shape \(10,\)"):
        read_betas("a.npy", _npy(v), 12)
    with pytest.raises(DataFormatError, match="got shape \\(2, 10\\)"):
        read_betas("a.npy", _npy(np.stack([v, v])), 10)
    bad = v.copy()
    bad[[2, 5]] = np.nan
    with pytest.raises(DataFormatError, match="2 of 10 values are NaN"):
        read_betas("a.npy", _npy(bad), 10)
    with pytest.raises(DataFormatError, match="cannot read as .npy"):
        read_betas("obj.npy", _npy(np.array([{"x": 1}], dtype=object)), 1)
    with pytest.raises(DataFormatError, match="cannot read as .h5"):
        read_betas("broken.h5", b"not hdf5", 10)
    with pytest.raises(DataFormatError, match="unknown file type .txt"):
        read_betas("a.txt", b"1 2 3", 3)
    with pytest.raises(DataFormatError, match="over the 1 MB limit"):
        read_betas("big.npy", b"0" * (2 * 2 ** 20), 10, max_mb=1)


def test_read_photo_and_example_betas(tiny_dataset):
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((6, 9, 4), 200, np.uint8)).save(buf, format="PNG")  # RGBA: converted to RGB
    photo = read_photo("p.png", buf.getvalue())
    assert photo.shape == (6, 9, 3) and photo.dtype == np.uint8 and (photo == 200).all()
    with pytest.raises(DataFormatError, match="broken.jpg: cannot read as an image"):
        read_photo("broken.jpg", b"not an image")
    betas, ids = tiny_dataset.subject("sub01").averaged("test")
    image_id, name, data = example_betas(tiny_dataset, "sub01")
    assert (image_id, name) == (int(ids[0]), f"sub01_image{ids[0]}.npy")
    np.testing.assert_array_equal(read_betas(name, data, betas.shape[1]), betas[0])
