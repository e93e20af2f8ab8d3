"""Readers of NSD's files (the experiment design, fsaverage and volume betas, masks), for :mod:`.nsd`.

Each reader checks shapes and values and raises :class:`DataFormatError` naming the file.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np

from brainit_core.errors import DataFormatError

if TYPE_CHECKING:
    from brainit_core.data.nsd import NSDLayout

N_IMAGES_73K = 73000


@dataclass
class ExpDesign:
    """The experiment design: 1-based indices as in the file."""

    masterordering: np.ndarray  # (n_trials,) 1-based into the 10k list
    subjectim: np.ndarray  # (8, 10000) 1-based 73k ids
    sharedix: np.ndarray  # (1000,) 1-based 73k ids

    def trial_image_ids(self, subject: int, n_trials: int) -> np.ndarray:
        """0-based 73k id of each of the subject's first ``n_trials`` trials."""
        mo = self.masterordering[:n_trials]
        return self.subjectim[subject - 1, mo - 1].astype(np.int64) - 1

    def is_test_trial(self, n_trials: int) -> np.ndarray:
        return self.masterordering[:n_trials] <= 1000


def read_expdesign(path: Path) -> ExpDesign:
    import scipy.io

    if not path.exists():
        raise DataFormatError(f"{path} not found (NSD experiment design, expected nsddata/experiments/nsd/)")
    try:
        m = scipy.io.loadmat(str(path))
    except Exception as exc:  # scipy raises several types for broken .mat files
        raise DataFormatError(f"{path}: cannot read as a MATLAB file ({exc})") from exc
    for key in ("masterordering", "subjectim", "sharedix"):
        if key not in m:
            raise DataFormatError(f"{path}: variable '{key}' missing (expected masterordering, subjectim, sharedix)")
    mo = np.asarray(m["masterordering"]).astype(np.int64).ravel()
    si = np.asarray(m["subjectim"]).astype(np.int64)
    sh = np.asarray(m["sharedix"]).astype(np.int64).ravel()
    if si.ndim != 2 or si.shape[0] != 8:
        raise DataFormatError(f"{path}: 'subjectim' has shape {si.shape}, expected (8, 10000)")
    if mo.min() < 1 or mo.max() > si.shape[1]:
        raise DataFormatError(f"{path}: 'masterordering' must be 1-based indices in 1..{si.shape[1]}")
    if si.min() < 1 or si.max() > N_IMAGES_73K:
        raise DataFormatError(f"{path}: 'subjectim' must hold 1-based 73k ids in 1..{N_IMAGES_73K}")
    return ExpDesign(mo, si, sh)


def read_mgh_betas(path: Path, n_vertices: int, n_trials: int) -> np.ndarray:
    import nibabel as nib

    if not path.exists():
        raise DataFormatError(f"{path} not found")
    try:
        data = np.asarray(nib.load(str(path)).get_fdata(dtype=np.float32))
    except Exception as exc:
        raise DataFormatError(f"{path}: cannot read as .mgh ({exc}); the file may be truncated") from exc
    if data.ndim != 4 or data.shape[0] != n_vertices or data.shape[1:3] != (1, 1):
        raise DataFormatError(f"{path}: shape {data.shape}, expected ({n_vertices}, 1, 1, {n_trials}) "
                              "(fsaverage betas; 10242 would be fsaverage5)")
    if data.shape[3] != n_trials:
        raise DataFormatError(f"{path}: {data.shape[3]} trials, expected {n_trials} per session")
    return data[:, 0, 0, :].T  # (n_trials, n_vertices)


def load_fsaverage_mask(layout: NSDLayout, subject: int, mask: str, n_vertices: int) -> dict[str, np.ndarray]:
    """Boolean vertex mask per hemisphere: ``nsdgeneral``, ``algonauts`` or a file path with {hemi}."""
    import nibabel as nib

    out = {}
    for hemi in ("lh", "rh"):
        if mask == "nsdgeneral":
            path = layout.nsdgeneral_label(hemi)
        elif mask == "algonauts":
            path = layout.algonauts_mask(subject, hemi)
        else:
            path = Path(str(mask).format(hemi=hemi, subject=subject))
        if not path.exists():
            raise DataFormatError(f"{path} not found (vertex mask '{mask}' for {hemi})")
        try:
            if path.suffix == ".npy":
                values = np.load(path, allow_pickle=False)
            else:
                values = np.asarray(nib.load(str(path)).get_fdata())
        except Exception as exc:
            raise DataFormatError(f"{path}: cannot read vertex mask ({exc})") from exc
        values = np.asarray(values).ravel()
        if len(values) != n_vertices:
            raise DataFormatError(f"{path}: mask has {len(values)} values, but the betas have {n_vertices} "
                                  "vertices per hemisphere")
        out[hemi] = values > 0
    if not any(m.any() for m in out.values()):
        raise DataFormatError(f"vertex mask '{mask}' ({path.parent}) selects no vertex of subject {subject} in "
                              "either hemisphere (every value is 0); use another --mask")
    return out


def read_volume_session(path: Path, flat_idx: np.ndarray, shape_xyz: tuple, n_trials: int) -> np.ndarray:
    """Masked voxels of one func1pt8mm session, percent signal change. Returns (n_trials, n_voxels)."""
    if not path.exists():
        raise DataFormatError(f"{path} not found")
    if path.suffix == ".hdf5":
        try:
            with h5py.File(path, "r") as f:
                if "betas" not in f:
                    raise DataFormatError(f"{path}: dataset 'betas' missing")
                d = f["betas"]
                if d.shape != (n_trials, *shape_xyz[::-1]):
                    raise DataFormatError(f"{path}: 'betas' shape {d.shape}, expected ({n_trials}, {shape_xyz[::-1]})")
                x, y, z = np.unravel_index(flat_idx, shape_xyz)
                out = np.empty((n_trials, len(flat_idx)), np.float32)
                for t in range(n_trials):  # one trial at a time: (Z, Y, X) slab, masked
                    out[t] = d[t][z, y, x]
        except OSError as exc:
            raise DataFormatError(f"{path}: cannot read HDF5 ({exc}); truncated or corrupt?") from exc
        return out / 300.0
    import nibabel as nib

    try:
        img = nib.load(str(path))
        if tuple(img.shape) != (*shape_xyz, n_trials):
            raise DataFormatError(f"{path}: shape {img.shape}, expected {(*shape_xyz, n_trials)}")
        data = np.asarray(img.dataobj)
    except DataFormatError:
        raise
    except Exception as exc:
        raise DataFormatError(f"{path}: cannot read NIfTI ({exc})") from exc
    return data.reshape(-1, n_trials)[flat_idx].T.astype(np.float32) / 300.0


def volume_roi_path(layout: NSDLayout, subject: int, mask: str) -> Path:
    """The func1pt8mm ROI file ``mask`` names for ``subject`` (NSD's nsdgeneral, or a path)."""
    return layout.volume_roi(subject) if mask in ("nsdgeneral", "algonauts") else Path(str(mask))


def volume_mask(layout: NSDLayout, subject: int, mask: str):
    """Flat C-order indices of ROI voxels (> 0), the volume shape, and a hemisphere per voxel.

    func1pt8mm volumes carry no hemisphere labels, so the hemisphere is a convention: voxels with
    x below the middle of the volume get 1, the others 0. Check it against your data's orientation
    before reading anything into hemisphere-level results in volume space.
    """
    import nibabel as nib

    path = volume_roi_path(layout, subject, mask)
    if not path.exists():
        raise DataFormatError(f"{path} not found (func1pt8mm ROI)")
    roi = np.asarray(nib.load(str(path)).get_fdata())
    flat = np.flatnonzero(roi.ravel() > 0)
    if not len(flat):
        raise DataFormatError(f"{path}: the ROI selects no voxel (every value is 0); use another --mask")
    x = np.unravel_index(flat, roi.shape)[0]
    hemis = (x < roi.shape[0] / 2).astype(np.uint8)
    return flat, roi.shape, hemis
