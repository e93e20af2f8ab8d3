"""Files a user uploads to the app, read and checked: one trial's betas, a photo.

Every reader raises :class:`~brainit_core.errors.DataFormatError` naming the file and what was
expected, so the app can show the message as it is.
"""
from __future__ import annotations

import io
import tempfile
import warnings
from pathlib import Path

import numpy as np

from brainit_core.errors import DataFormatError

MAX_UPLOAD_MB = 50  # file size; the app's server.maxUploadSize (.streamlit/config.toml) is the same
MAX_PHOTO_PIXELS = 40_000_000  # width x height of a photo, checked from its header before decoding
NPY_MAX_HEADER = 10_000  # bytes of a .npy header


def read_betas(name: str, data: bytes, n_vertices: int, key: str | None = None,
               max_mb: float = MAX_UPLOAD_MB) -> np.ndarray:
    """One trial's betas from an uploaded file, checked against the subject's vertex count.

    The array's declared shape and type are checked from the file's header before its values are
    read or decompressed, so a small compressed file declaring a huge array is refused without
    allocating it.

    Parameters
    ----------
    name : str
        File name; its suffix picks the reader: ``.npy`` (``allow_pickle=False``), ``.h5`` /
        ``.hdf5`` (the dataset ``key``, else the first 1-D or 2-D dataset), ``.mgh`` / ``.mgz``
        (nibabel).
    data : bytes
    n_vertices : int
        The subject's vertex count V.
    key : str, optional
        HDF5 dataset name.
    max_mb : float
        Files larger than this are refused, and so are arrays declaring more decoded bytes.

    Returns
    -------
    float32 (V,)
        A 2-D array with one row of V values (or one column) is accepted; several rows are
        averaged only if they are repeats the user meant, so they are refused instead.

    Raises
    ------
    DataFormatError
        With what was expected: unknown suffix, too large (file or declared array), unreadable,
        wrong shape, NaN or inf.
    """
    size_mb = len(data) / 2 ** 20
    if size_mb > max_mb:
        raise DataFormatError(f"{name}: {size_mb:.1f} MB is over the {max_mb:.0f} MB limit for one trial's betas")
    suffix = Path(name).suffix.lower()
    if suffix == ".gz" and name.lower().endswith(".mgh.gz"):
        suffix = ".mgz"

    def check(shape, dtype) -> None:  # the declared array, before anything is read
        _check_declared(tuple(int(d) for d in shape), np.dtype(dtype), n_vertices, max_mb)

    try:
        if suffix == ".npy":
            arr = _read_npy(data, check)
        elif suffix in (".h5", ".hdf5"):
            arr = _read_h5(data, key, check)
        elif suffix in (".mgh", ".mgz"):
            arr = _read_mgh(data, suffix, check)
        else:
            raise DataFormatError(f"{name}: unknown file type {suffix or '(none)'}; use .npy, .h5/.hdf5 or .mgh")
    except DataFormatError as exc:
        raise DataFormatError(f"{name}: {exc}" if not str(exc).startswith(name) else str(exc)) from exc
    except Exception as exc:  # any reader failure is the file's fault, reported as such
        raise DataFormatError(f"{name}: cannot read as {suffix} ({type(exc).__name__}: {exc})") from exc
    arr = np.asarray(arr)
    squeezed = np.squeeze(arr)
    out = squeezed.astype(np.float32)
    bad = ~np.isfinite(out)
    if bad.any():
        raise DataFormatError(f"{name}: {int(bad.sum())} of {n_vertices} values are NaN or inf "
                              "(set them to 0 after z-scoring)")
    return out


def _check_declared(shape: tuple, dtype: np.dtype, n_vertices: int, max_mb: float) -> None:
    """Refuse an array from its declared shape and type: not numbers, too large, or not one trial."""
    if not np.issubdtype(dtype, np.number) or dtype.hasobject:
        raise DataFormatError(f"expected numbers, got dtype {dtype}")
    decoded_mb = float(np.prod(shape, dtype=np.float64)) * dtype.itemsize / 2 ** 20
    if decoded_mb > max_mb:
        raise DataFormatError(f"the array declares shape {shape} ({decoded_mb:.0f} MB decoded), over the "
                              f"{max_mb:.0f} MB limit; expected one trial of {n_vertices} values")
    if [d for d in shape if d != 1] != [n_vertices]:
        raise DataFormatError(f"expected one trial of {n_vertices} values (shape ({n_vertices},) or "
                              f"(1, {n_vertices})), got shape {shape}")


def _read_npy(data: bytes, check) -> np.ndarray:
    buf = io.BytesIO(data)
    version = np.lib.format.read_magic(buf)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(buf, max_header_size=NPY_MAX_HEADER)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(buf, max_header_size=NPY_MAX_HEADER)
    else:
        raise DataFormatError(f".npy format version {version[0]}.{version[1]} is not read; save it with numpy.save")
    check(shape, dtype)
    buf.seek(0)
    return np.load(buf, allow_pickle=False)


def _read_h5(data: bytes, key: str | None, check) -> np.ndarray:
    import h5py

    with h5py.File(io.BytesIO(data), "r") as f:
        if key:
            if key not in f or not isinstance(f[key], h5py.Dataset):
                raise DataFormatError(f"no dataset {key!r} in the file")
            ds = f[key]
        else:
            found = []
            f.visititems(lambda n, obj: found.append(n) if isinstance(obj, h5py.Dataset) and obj.ndim in (1, 2) else None)
            if not found:
                raise DataFormatError("no 1-D or 2-D dataset in the file")
            ds = f[found[0]]
        check(ds.shape, ds.dtype)
        return ds[()]


def _read_mgh(data: bytes, suffix: str, check) -> np.ndarray:
    import nibabel as nib

    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / f"upload{suffix}"
        p.write_bytes(data)
        img = nib.load(str(p))  # reads the header only
        check(img.shape, img.get_data_dtype())
        return np.asarray(img.get_fdata(dtype=np.float32))


def read_photo(name: str, data: bytes, square: bool = False, max_pixels: int = MAX_PHOTO_PIXELS) -> np.ndarray:
    """An uploaded photo (anything Pillow reads) as 8-bit RGB.

    The pixel count is checked from the header before the image is decoded. 16-bit and 32-bit
    grey images (Pillow modes ``I;16*``, ``I``, ``F``) are scaled to 8 bits rather than clipped.

    Parameters
    ----------
    name : str
    data : bytes
    square : bool
        Centre-crop to a square (the twin and the reconstructions' metrics then see the same image).
    max_pixels : int
        Larger images (width x height) are refused.

    Returns
    -------
    ndarray, uint8, (H, W, 3)

    Raises
    ------
    DataFormatError
        When the file is not an image or has more than ``max_pixels`` pixels.
    """
    from PIL import Image

    try:
        with warnings.catch_warnings():  # Pillow's own warning comes at twice our limit: ours refuses first
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
        w, h = img.size
    except Image.DecompressionBombError as exc:
        raise DataFormatError(f"{name}: over the {max_pixels / 1e6:.0f} MP limit for a photo ({exc})") from exc
    except Exception as exc:  # any decoder failure is the file's fault, reported as such
        raise DataFormatError(f"{name}: cannot read as an image ({exc})") from exc
    if w * h > max_pixels:
        raise DataFormatError(f"{name}: {w} x {h} pixels ({w * h / 1e6:.0f} MP) is over the "
                              f"{max_pixels / 1e6:.0f} MP limit for a photo; downscale it first")
    try:
        out = _rgb8(img)
    except Exception as exc:
        raise DataFormatError(f"{name}: cannot read as an image ({exc})") from exc
    if square:
        s = min(h, w)
        out = out[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    return np.ascontiguousarray(out)


def _rgb8(img) -> np.ndarray:
    """A Pillow image as uint8 (H, W, 3); high-bit-depth grey is scaled to 8 bits (Pillow would clip it)."""
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        a = np.asarray(img)
        if img.mode == "F" and np.nanmax(a, initial=0.0) <= 1.0:
            grey = np.clip(np.nan_to_num(a) * 255.0 + 0.5, 0, 255).astype(np.uint8)  # floats in [0, 1]
        elif img.mode.startswith("I;16") or np.nanmax(a, initial=0) > 255:
            grey = (np.clip(np.nan_to_num(a), 0, 65535).astype(np.uint32) >> 8).astype(np.uint8)  # 16 bits
        else:
            grey = np.clip(np.nan_to_num(a), 0, 255).astype(np.uint8)  # already 8-bit values
        return np.repeat(grey[..., None], 3, axis=2)
    return np.asarray(img.convert("RGB"))


def example_betas(dataset, subject: str) -> tuple[int, str, bytes]:
    """A file to try the upload with: the repeat-averaged betas of the subject's first test image.

    Returns
    -------
    image_id : int
    name : str
        ``"<subject>_image<id>.npy"``.
    data : bytes
        ``.npy`` of float32 (V,).
    """
    sd = dataset.subject(subject)
    test = np.unique(sd.test_image_ids)
    shown = [int(i) for i, g in zip(test, sd.trials_of(test)) if len(g)][:1]  # read one image's trials only
    betas, ids = sd.average_trials(shown)
    if len(ids) == 0:
        raise DataFormatError(f"{subject} has no test images in {dataset.path}")
    buf = io.BytesIO()
    np.save(buf, betas[0])
    return int(ids[0]), f"{subject}_image{ids[0]}.npy", buf.getvalue()
