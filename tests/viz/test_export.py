"""GIfTI and MGH export of per-vertex maps, and reading them back."""
import io
import zipfile

import numpy as np
import pytest

from brainit_core.errors import DataFormatError
from brainit_core.viz import export

VALUES = np.array([0.5, -1.25, 3.0, 7.5])
VERTS = np.array([0, 10, 10241, 3])
HEMIS = np.array([0, 0, 0, 1])


@pytest.mark.parametrize("fmt", ["gifti", "mgh"])
def test_round_trip(tmp_path, fmt):
    paths = export.write_surface_map(tmp_path, "m", VALUES, VERTS, HEMIS, fmt=fmt)
    assert [p.name for p in paths] == [f"lh.m{export.FORMATS[fmt]}", f"rh.m{export.FORMATS[fmt]}"]
    full = export.read_surface_map(paths)
    assert full.shape == (2, 10242) and full.dtype == np.float32
    np.testing.assert_array_equal(full[HEMIS, VERTS], VALUES.astype(np.float32))
    assert np.isnan(full).sum() == 2 * 10242 - 4


def test_mgh_shape_and_fill(tmp_path):
    import nibabel as nib

    paths = export.write_surface_map(tmp_path, "z", VALUES, VERTS, HEMIS, fmt="mgh", fill=0.0)
    img = nib.load(str(paths[1]))
    assert img.shape == (10242, 1, 1)
    data = np.asarray(img.dataobj).ravel()
    assert data[3] == 7.5 and np.count_nonzero(data) == 1


def test_gifti_is_a_single_float_array(tmp_path):
    import nibabel as nib

    img = nib.load(str(export.write_surface_map(tmp_path, "g", VALUES, VERTS, HEMIS)[0]))
    assert len(img.darrays) == 1 and img.darrays[0].data.shape == (10242,)
    assert img.darrays[0].data.dtype == np.float32


@pytest.mark.parametrize("fmt", ["gifti", "mgh"])
def test_zip_holds_both_hemispheres(tmp_path, fmt):
    data = export.surface_map_zip("token3", VALUES, VERTS, HEMIS, fmt=fmt)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        names = sorted(z.namelist())
        assert names == sorted(f"{h}.token3{export.FORMATS[fmt]}" for h in ("lh", "rh"))
        z.extractall(tmp_path)
    full = export.read_surface_map([tmp_path / n for n in sorted(names)])
    assert full[1, 3] == 7.5 and full[0, 10241] == 3.0


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match="fmt"):
        export.surface_map_bytes(VALUES, VERTS, HEMIS, fmt="nifti")
    bad = tmp_path / "lh.bad.func.gii"
    bad.write_text("not a gifti file")
    with pytest.raises(DataFormatError, match="lh.bad.func.gii"):
        export.read_hemisphere(bad)
    with pytest.raises(ValueError, match="left and the right"):
        export.read_surface_map([bad])
