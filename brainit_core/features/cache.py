"""Batched feature extraction, cached on disk per dataset and feature space.

The cache is ``<dataset>/features/<space.cache_key()>.h5`` with datasets ``ids`` (int64, sorted),
``semantic`` (n, N_sem, D_sem) and ``lowlevel/<i>`` (n, C_i, h_i, w_i), stored float16. New ids
are appended; what is already there is never recomputed, so an interrupted extraction resumes.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from brainit_core.errors import BrainITError, DataFormatError
from brainit_core.features.base import FeatureSpace, images_to_tensor
from brainit_core.progress import track


@dataclass
class FeatureSet:
    """Features of a list of images, in the order of ``ids``.

    Attributes
    ----------
    ids : ndarray, int64, (n,)
    semantic : ndarray, float16, (n, N_sem, D_sem)
    lowlevel : list of ndarray, float16, [(n, C_l, h_l, w_l), ...]
    """

    ids: np.ndarray
    semantic: np.ndarray
    lowlevel: list

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, rows) -> "FeatureSet":
        return FeatureSet(self.ids[rows], self.semantic[rows], [m[rows] for m in self.lowlevel])

    def nonfinite(self) -> dict:
        """Where the features hold NaN or inf.

        Returns
        -------
        dict
            Array name (``"semantic"``, ``"lowlevel/<i>"``) -> (count of non-finite values, ids of the
            images holding them); only arrays with at least one.
        """
        out = {}
        for key, arr in [("semantic", self.semantic)] + [(f"lowlevel/{i}", m) for i, m in enumerate(self.lowlevel)]:
            per_image = np.count_nonzero(~np.isfinite(arr.reshape(len(arr), -1)), axis=1)
            if per_image.any():
                out[key] = (int(per_image.sum()), np.asarray(self.ids)[per_image > 0])
        return out


def nonfinite_message(where: str, found: dict) -> str:
    """``"<where>: 12 NaN or inf values in semantic (images 4, 9), ..."`` for :meth:`FeatureSet.nonfinite`."""
    parts = [f"{n} in {key} (images {', '.join(map(str, ids[:5].tolist()))}{', ...' if len(ids) > 5 else ''})"
             for key, (n, ids) in found.items()]
    return f"{where}: NaN or inf feature values: {'; '.join(parts)}"


@torch.no_grad()
def compute_features(space: FeatureSpace, images, batch_size: int = 32, device=None, desc: str = "features") -> FeatureSet:
    """Features of in-memory images (uint8 (n, H, W, 3)) without caching."""
    device = device or next(space.parameters()).device
    n = len(images)
    sem, low = [], None
    for start in track(range(0, n, batch_size), desc=desc):
        x = images_to_tensor(images[start:start + batch_size], device)
        sem.append(space.semantic_tokens(x).half().cpu().numpy())
        maps = [m.half().cpu().numpy() for m in space.lowlevel_maps(x)]
        low = [[m] for m in maps] if low is None else [acc + [m] for acc, m in zip(low, maps)]
    if n == 0:
        s = space.semantic_spec
        return FeatureSet(np.zeros(0, np.int64), np.zeros((0, s.n_tokens, s.dim), np.float16),
                          [np.zeros((0, t.dim, *t.grid), np.float16) for t in space.lowlevel_specs])
    fs = FeatureSet(np.arange(n), np.concatenate(sem), [np.concatenate(m) for m in low])
    found = fs.nonfinite()
    if found:  # a network gone wrong, or values beyond float16's range: never cache or train on them
        raise BrainITError(nonfinite_message(f"feature space {space.name!r} (rows of this batch)", found)
                           + " (values beyond float16's +-65504 become inf)")
    return fs


def feature_cache_path(dataset, space: FeatureSpace) -> Path:
    return Path(dataset.path) / "features" / f"{space.cache_key()}.h5"


def _open_locked(path: Path, mode: str, wait_s: float = 900.0) -> h5py.File:
    """Open an HDF5 cache file, waiting while another process holds its lock.

    Two jobs on one dataset (e.g. two transfers started side by side) share the cache; HDF5 locks a
    file while it is written, so the second job waits for the first instead of failing.
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return h5py.File(path, mode)
        except BlockingIOError as err:
            if time.monotonic() > deadline:
                raise BrainITError(f"feature cache {path} stayed locked by another process for {wait_s:.0f} s; "
                                   "is another extraction still running?") from err
            time.sleep(2.0)


def extract_features(dataset, ids, space: FeatureSpace, batch_size: int = 32, device=None, cache: bool = True,
                     read_lowlevel: bool = True) -> FeatureSet:
    """Features of dataset images by id, computed once and cached on disk.

    Parameters
    ----------
    dataset : brainit_core.data.Dataset
    ids : array-like of int
        Image ids (any order, repeats allowed); the result follows this order.
    space : FeatureSpace
    batch_size : int
    device : torch.device, optional
        Defaults to the device of ``space``.
    cache : bool
        Read/write ``<dataset>/features/<key>.h5``; ``False`` computes in memory.
    read_lowlevel : bool
        Skip reading the (large) low-level maps when only semantic tokens are needed.
    """
    ids = np.asarray(ids, dtype=np.int64)
    if not cache:
        fs = compute_features(space, dataset.images(ids), batch_size, device)
        fs.ids = ids
        return fs
    path = feature_cache_path(dataset, space)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not _cache_has(path, ids):
        _append_missing(path, ids, dataset, space, batch_size, device)
    with _open_locked(path, "r") as f:
        all_ids = f["ids"][()]
        order = np.argsort(all_ids)
        rows = order[np.searchsorted(all_ids[order], ids)]
        uniq, inverse = np.unique(rows, return_inverse=True)
        sem = f["semantic"][uniq][inverse]
        low = [f[f"lowlevel/{i}"][uniq][inverse] for i in range(len(space.lowlevel_specs))] if read_lowlevel else []
    fs = FeatureSet(ids, sem, low)
    found = fs.nonfinite()
    if found:
        raise DataFormatError(nonfinite_message(f"feature cache {path}", found)
                              + "; delete the file and its features are computed again")
    return fs


def _cache_has(path: Path, ids: np.ndarray) -> bool:
    if not path.exists():
        return False
    with _open_locked(path, "r") as f:
        return "ids" in f and bool(np.isin(np.unique(ids), f["ids"][()]).all())


def _append_missing(path: Path, ids, dataset, space: FeatureSpace, batch_size: int, device) -> None:
    """Compute the features of the ids the cache lacks and append them, in blocks."""
    with _open_locked(path, "a") as f:
        if "ids" not in f:
            s = space.semantic_spec
            f.attrs["space"] = str(space.describe())
            f.create_dataset("ids", shape=(0,), maxshape=(None,), dtype="i8")
            f.create_dataset("semantic", shape=(0, s.n_tokens, s.dim), maxshape=(None, s.n_tokens, s.dim),
                             dtype="f2", chunks=(16, s.n_tokens, s.dim))
            for i, t in enumerate(space.lowlevel_specs):
                f.create_dataset(f"lowlevel/{i}", shape=(0, t.dim, *t.grid), maxshape=(None, t.dim, *t.grid),
                                 dtype="f2", chunks=(16, t.dim, *t.grid))
        todo = np.setdiff1d(np.unique(ids), f["ids"][()])
        chunk = batch_size * 16  # append in blocks so an interruption loses little
        for start in track(range(0, len(todo), chunk), desc=f"features ({space.name})"):
            block = todo[start:start + chunk]
            fs = compute_features(space, dataset.images(block), batch_size, device, desc="batch")
            n = f["ids"].shape[0]
            for key, arr in [("semantic", fs.semantic)] + [(f"lowlevel/{i}", m) for i, m in enumerate(fs.lowlevel)]:
                f[key].resize((n + len(block), *arr.shape[1:]))
                f[key][n:] = arr
            f["ids"].resize((n + len(block),))
            f["ids"][n:] = block  # ids last: a row counts only once its features are written
            f.flush()
