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
    with pytest.raises(DataFormatError, match="obj.npy: expected numbers, got dtype object"):
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


def _refused_without_allocating(call, match: str, max_mb: float = 8.0) -> None:
    """``call()`` raises DataFormatError matching ``match`` within a second, allocating under ``max_mb``."""
    import time
    import tracemalloc

    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(DataFormatError, match=match):
            call()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - t0 < 1.0
    assert peak < max_mb * 2 ** 20, f"peak {peak / 2 ** 20:.0f} MB"


def test_a_small_gzip_hdf5_declaring_a_huge_array_is_refused_before_reading():
    """Probe: a 1.4 KB gzip HDF5 declaring (1, 2^28) float32 made the server allocate 1 GB."""
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.create_dataset("betas", shape=(1, 2 ** 28), dtype="f4", compression="gzip")
    data = buf.getvalue()
    assert len(data) < 20_000
    _refused_without_allocating(lambda: read_betas("bomb.h5", data, 10),
                                r"bomb.h5: the array declares shape \(1, 268435456\) \(1024 MB decoded\), over the 50 MB limit")
    _refused_without_allocating(lambda: read_betas("bomb.h5", data, 2 ** 28), "over the 50 MB limit")
    _refused_without_allocating(lambda: read_betas("bomb.h5", data, 10, key="betas"), "declares shape")


def test_an_mgz_header_declaring_a_huge_volume_is_refused_before_reading(tmp_path):
    """Probe: a 1 MB .mgz bomb was decompressed whole (2 GB) before its shape was looked at."""
    import gzip
    import struct

    import nibabel as nib

    nib.save(nib.MGHImage(np.zeros((10, 1, 1), np.float32), np.eye(4)), str(tmp_path / "small.mgh"))
    raw = bytearray((tmp_path / "small.mgh").read_bytes())
    raw[4:16] = struct.pack(">iii", 2 ** 15, 2 ** 14, 1)  # width, height, depth: 2 GB of float32
    data = gzip.compress(bytes(raw))
    _refused_without_allocating(lambda: read_betas("bomb.mgz", data, 10),
                                r"bomb.mgz: the array declares shape \(32768, 16384, 1\) \(2048 MB decoded\)")


def test_an_npy_header_declaring_a_huge_array_is_refused_before_reading():
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": (2 ** 27,)})
    _refused_without_allocating(lambda: read_betas("bomb.npy", buf.getvalue(), 10),
                                r"bomb.npy: the array declares shape \(134217728,\) \(1024 MB decoded\)")
    with pytest.raises(DataFormatError, match=r"bomb.npy: expected one trial of 10 values.*got shape \(3, 10\)"):
        read_betas("bomb.npy", _npy(np.zeros((3, 10))), 10)


def _png_declaring(width: int, height: int) -> bytes:
    """A 1 x 1 PNG whose header (IHDR) is rewritten to declare ``width`` x ``height``."""
    import struct
    import zlib

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(buf, format="PNG")
    png = bytearray(buf.getvalue())
    ihdr = bytes(png[12:16]) + struct.pack(">II", width, height) + bytes(png[24:29])
    png[16:24] = ihdr[4:12]
    png[29:33] = struct.pack(">I", zlib.crc32(ihdr) & 0xFFFFFFFF)
    return bytes(png)


def test_a_photo_with_too_many_pixels_is_refused_before_decoding():
    """Probe: a 420 KB 12000 x 12000 PNG on the In-silico tab peaked at 2.7 GB."""
    _refused_without_allocating(lambda: read_photo("huge.png", _png_declaring(12000, 12000)),
                                r"huge.png: 12000 x 12000 pixels \(144 MP\) is over the 40 MP limit for a photo")
    _refused_without_allocating(lambda: read_photo("huger.png", _png_declaring(30000, 30000)),
                                "huger.png: over the 40 MP limit for a photo")


def test_16_bit_photos_are_scaled_to_8_bits_not_clipped():
    """Probe: a 16-bit grey PNG became almost all white (Pillow clips its values to 255)."""
    from PIL import Image

    grey = np.array([[0, 16384, 32768, 65535]], np.uint16).repeat(3, axis=0)
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, format="PNG")
    assert Image.open(io.BytesIO(buf.getvalue())).mode.startswith("I")
    photo = read_photo("deep.png", buf.getvalue())
    assert photo.shape == (3, 4, 3) and photo.dtype == np.uint8
    np.testing.assert_array_equal(photo[0, :, 0], [0, 64, 128, 255])
    assert (photo[..., 0] == photo[..., 2]).all()


def test_a_square_photo_is_what_the_twin_and_the_metrics_both_see():
    """Probe: the In-silico tab scored a centre crop of a non-square photo while the twin saw it stretched;
    with ``square=True`` the photo is centre-cropped once, so stretching and cropping agree."""
    from PIL import Image

    from brainit_core.viz.images import fit_image

    rgb = np.random.default_rng(0).integers(0, 256, (40, 64, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    photo = read_photo("wide.png", buf.getvalue(), square=True)
    np.testing.assert_array_equal(photo, rgb[:, 12:52])
    stretched = np.asarray(Image.fromarray(photo).resize((16, 16), Image.BILINEAR))  # what respond() does
    np.testing.assert_array_equal(stretched, fit_image(photo, 16))  # what the metrics compare with
