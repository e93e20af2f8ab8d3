"""Files a user uploads to the app, read and checked: one trial's betas, a photo.

Every reader raises :class:`~brainit_core.errors.DataFormatError` naming the file and what was
expected, so the app can show the message as it is.
"""
from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np

from brainit_core.errors import DataFormatError

MAX_UPLOAD_MB = 50


def read_betas(name: str, data: bytes, n_vertices: int, key: str | None = None,
               max_mb: float = MAX_UPLOAD_MB) -> np.ndarray:
    """One trial's betas from an uploaded file, checked against the subject's vertex count.

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
        Files larger than this are refused.

    Returns
    -------
    float32 (V,)
        A 2-D array with one row of V values (or one column) is accepted; several rows are
        averaged only if they are repeats the user meant, so they are refused instead.

    Raises
    ------
    DataFormatError
        With what was expected: unknown suffix, too large, unreadable, wrong shape, NaN or inf.
    """
    size_mb = len(data) / 2 ** 20
    if size_mb > max_mb:
        raise DataFormatError(f"{name}: {size_mb:.1f} MB is over the {max_mb:.0f} MB limit for one trial's betas")
    suffix = Path(name).suffix.lower()
    if suffix == ".gz" and name.lower().endswith(".mgh.gz"):
        suffix = ".mgz"
    try:
        if suffix == ".npy":
            arr = np.load(io.BytesIO(data), allow_pickle=False)
        elif suffix in (".h5", ".hdf5"):
            arr = _read_h5(data, key)
        elif suffix in (".mgh", ".mgz"):
            arr = _read_mgh(data, suffix)
        else:
            raise DataFormatError(f"{name}: unknown file type {suffix or '(none)'}; use .npy, .h5/.hdf5 or .mgh")
    except DataFormatError as exc:
        raise DataFormatError(f"{name}: {exc}" if not str(exc).startswith(name) else str(exc)) from exc
    except Exception as exc:  # any reader failure is the file's fault, reported as such
        raise DataFormatError(f"{name}: cannot read as {suffix} ({type(exc).__name__}: {exc})") from exc
    arr = np.asarray(arr)
    if not np.issubdtype(arr.dtype, np.number):
        raise DataFormatError(f"{name}: expected numbers, got dtype {arr.dtype}")
    squeezed = np.squeeze(arr)
    if squeezed.ndim != 1 or squeezed.shape[0] != n_vertices:
        raise DataFormatError(f"{name}: expected one trial of {n_vertices} values (shape ({n_vertices},) or "
                              f"(1, {n_vertices})), got shape {arr.shape}")
    out = squeezed.astype(np.float32)
    bad = ~np.isfinite(out)
    if bad.any():
        raise DataFormatError(f"{name}: {int(bad.sum())} of {n_vertices} values are NaN or inf "
                              "(set them to 0 after z-scoring)")
    return out


def _read_h5(data: bytes, key: str | None) -> np.ndarray:
    import h5py

    with h5py.File(io.BytesIO(data), "r") as f:
        if key:
            if key not in f or not isinstance(f[key], h5py.Dataset):
                raise DataFormatError(f"no dataset {key!r} in the file")
            return f[key][()]
        found = []
        f.visititems(lambda n, obj: found.append(n) if isinstance(obj, h5py.Dataset) and obj.ndim in (1, 2) else None)
        if not found:
            raise DataFormatError("no 1-D or 2-D dataset in the file")
        return f[found[0]][()]


def _read_mgh(data: bytes, suffix: str) -> np.ndarray:
    import nibabel as nib

    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / f"upload{suffix}"
        p.write_bytes(data)
        return np.asarray(nib.load(str(p)).get_fdata(dtype=np.float32))


def read_photo(name: str, data: bytes) -> np.ndarray:
    """An uploaded photo (anything Pillow reads) as RGB.

    Returns
    -------
    ndarray, uint8, (H, W, 3)
    """
    from PIL import Image

    try:
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    except Exception as exc:  # any decoder failure is the file's fault, reported as such
        raise DataFormatError(f"{name}: cannot read as an image ({exc})") from exc


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
    betas, ids = dataset.subject(subject).averaged("test")
    if len(ids) == 0:
        raise DataFormatError(f"{subject} has no test images in {dataset.path}")
    buf = io.BytesIO()
    np.save(buf, betas[0])
    return int(ids[0]), f"{subject}_image{ids[0]}.npy", buf.getvalue()
