"""Batched feature extraction, cached on disk per dataset and feature space.

The cache is ``<dataset>/features/<space.cache_key()>-<dataset key>.h5`` (the dataset key is a hash
of the dataset's ``content_id``, i.e. its ``build_id``, so a rebuilt dataset never reads features of
another build's images) with datasets ``ids`` (int64), ``semantic`` (n, N_sem, D_sem) and
``lowlevel/<i>`` (n, C_i, h_i, w_i), stored float16, and attributes ``space``, ``dataset`` (the
content id) and ``writing`` (1 while a block is appended). New ids are appended; what is already
there is never recomputed. A file that fails :func:`cache_problem` (unreadable, interrupted
mid-block, of another build, wrong shapes) is moved aside and rebuilt; writers are serialised by
a lock file (:mod:`brainit_core.locks`).
"""
from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from brainit_core import distributed
from brainit_core.errors import BrainITError, DataFormatError
from brainit_core.features.base import FeatureSpace, images_to_tensor
from brainit_core.locks import FileLock, LockedError, lock_path_for
from brainit_core.progress import track
from brainit_core.utils import assets_dir, default_data_dir

log = logging.getLogger(__name__)

#: Seconds a process waits for another one's lock on a feature cache file before it gives up.
LOCK_WAIT_S = 10.0
#: The same for the processes of one job appending their shards (each waits for the others' appends).
SHARD_LOCK_WAIT_S = 600.0


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
        tokens, maps = space.extract(x)
        sem.append(tokens.half().cpu().numpy())
        maps = [m.half().cpu().numpy() for m in maps]
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
    """``<dataset>/features/<space key>-<dataset content id>.h5``: a rebuilt dataset gets another file.

    A dataset shipped inside the project's ``assets/`` (the demo bundle, whose files its manifest
    lists) keeps its cache under ``<data dir>/bundle-features/<folder name>/features/`` instead, so
    the repository's files never change."""
    root = Path(dataset.path).resolve()
    if root.is_relative_to(assets_dir().resolve()):
        root = default_data_dir() / "bundle-features" / root.name
    return root / "features" / f"{space.cache_key()}-{dataset_key(dataset)}.h5"


def dataset_key(dataset) -> str:
    """The short form of ``dataset.content_id`` used in cache file names."""
    return hashlib.sha256(str(dataset.content_id).encode()).hexdigest()[:16]


def _open_h5(path: Path, mode: str) -> h5py.File:
    """Open a cache file; while another process has it open for writing (HDF5's own file lock, e.g. a
    process outside this lock protocol) wait up to :data:`LOCK_WAIT_S` seconds, then raise
    :class:`~brainit_core.locks.LockedError`. A busy file is never mistaken for a damaged one."""
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            return h5py.File(path, mode)
        except OSError as exc:
            if not (isinstance(exc, BlockingIOError) or "unable to lock file" in str(exc)):
                raise
            if time.monotonic() >= deadline:
                raise LockedError(f"feature cache {path} is open in another process (HDF5 file lock) for more "
                                  f"than {LOCK_WAIT_S:.0f} s; wait for it to finish, then run this again") from exc
            time.sleep(0.5)


def cache_problem(path, space: FeatureSpace, dataset) -> str | None:
    """Why the cache file ``path`` cannot be trusted (None when it is sound or missing).

    Checks that it opens as HDF5, was not left mid-write (the ``writing`` flag), belongs to this
    dataset build and feature space, and that its datasets have the space's shapes and one row per id.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        with _open_h5(path, "r") as f:
            if int(f.attrs.get("writing", 0)):
                return "an extraction was interrupted while writing it"
            if f.attrs.get("dataset") != str(dataset.content_id):
                return f"it was computed for another build of the dataset ({f.attrs.get('dataset')!r})"
            s = space.semantic_spec
            shapes = {"semantic": (s.n_tokens, s.dim)}
            shapes.update({f"lowlevel/{i}": (t.dim, *t.grid) for i, t in enumerate(space.lowlevel_specs)})
            if "ids" not in f:
                return "it has no 'ids'"
            n = f["ids"].shape[0]
            for key, shape in shapes.items():
                if key not in f:
                    return f"it has no {key!r}"
                if tuple(f[key].shape[1:]) != shape or f[key].shape[0] < n:
                    return f"{key!r} has shape {f[key].shape}, expected ({n}+, {', '.join(map(str, shape))})"
            if "lowlevel" in f and len(f["lowlevel"]) != len(space.lowlevel_specs):
                return f"it has {len(f['lowlevel'])} low-level maps, the space {len(space.lowlevel_specs)}"
            if len(np.unique(f["ids"][()])) != n:
                return "its 'ids' repeat"
    except (OSError, KeyError, ValueError) as exc:
        return f"it is not a readable HDF5 file ({exc})"
    return None


def extract_features(dataset, ids, space: FeatureSpace, batch_size: int = 32, device=None, cache: bool = True,
                     read_lowlevel: bool = True) -> FeatureSet:
    """Features of dataset images by id, computed once and cached on disk.

    The cache file has a lock (:mod:`brainit_core.locks`): readers share it, one writer excludes
    everyone else; a process that finds it in use waits :data:`LOCK_WAIT_S` seconds, then raises a
    :class:`~brainit_core.locks.LockedError` naming the owner's pid. A damaged cache file
    (:func:`cache_problem`) is moved aside to ``<file>.damaged`` and rebuilt.

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
        Read/write ``<dataset>/features/<key>.h5`` (:func:`feature_cache_path`); ``False`` computes in memory.
    read_lowlevel : bool
        Skip reading the (large) low-level maps when only semantic tokens are needed.
    """
    ids = np.asarray(ids, dtype=np.int64)
    if not cache:
        fs = compute_features(space, dataset.images(ids), batch_size, device)
        fs.ids = ids
        return fs
    path = feature_cache_path(dataset, space)
    what = f"feature cache {path}"
    if distributed.is_distributed():  # every process takes the same branch, then extracts its shard
        with FileLock(lock_path_for(path), what, shared=True, timeout=LOCK_WAIT_S):
            complete = path.exists() and cache_problem(path, space, dataset) is None and _cache_has(path, ids)
        if distributed.any_rank(not complete):
            _extract_sharded(path, ids, dataset, space, batch_size, device)
        with FileLock(lock_path_for(path), what, shared=True, timeout=LOCK_WAIT_S):
            return _read(path, ids, space, read_lowlevel)
    with FileLock(lock_path_for(path), what, shared=True, timeout=LOCK_WAIT_S):
        if path.exists() and cache_problem(path, space, dataset) is None and _cache_has(path, ids):
            return _read(path, ids, space, read_lowlevel)
    with FileLock(lock_path_for(path), what, timeout=LOCK_WAIT_S):
        _set_aside_if_damaged(path, space, dataset)
        _append_missing(path, ids, dataset, space, batch_size, device)
        return _read(path, ids, space, read_lowlevel)


def _set_aside_if_damaged(path: Path, space: FeatureSpace, dataset) -> None:
    problem = cache_problem(path, space, dataset)
    if problem is not None:
        log.warning("feature cache %s is damaged (%s); moving it to %s.damaged and rebuilding it",
                    path, problem, path.name)
        os.replace(path, path.with_name(path.name + ".damaged"))


def _extract_sharded(path: Path, ids: np.ndarray, dataset, space: FeatureSpace, batch_size: int, device) -> None:
    """Each process of a job computes a shard of the missing images and appends it block by block.

    Rank 0 first sets a damaged file aside and creates the file; every process then reads the same
    list of missing ids, computes its shard (whole batches, so each batch is the one a single process
    would run) without holding the lock, and takes the writer lock only to append a block.
    """
    what = f"feature cache {path}"
    if distributed.is_main():
        with FileLock(lock_path_for(path), what, timeout=LOCK_WAIT_S):
            _set_aside_if_damaged(path, space, dataset)
            _append_missing(path, np.zeros(0, np.int64), dataset, space, batch_size, device)
    distributed.barrier()
    with FileLock(lock_path_for(path), what, shared=True, timeout=LOCK_WAIT_S):
        with _open_h5(path, "r") as f:
            todo = np.setdiff1d(np.unique(ids), f["ids"][()])
    distributed.barrier()  # every process has the same list before any appends
    mine = distributed.shard_of(len(todo), align=batch_size).take(todo)
    chunk = batch_size * 16
    for start in track(range(0, len(mine), chunk), desc=f"features ({space.name}, {len(todo)} images shared)"):
        block = mine[start:start + chunk]
        fs = compute_features(space, dataset.images(block), batch_size, device, desc="batch")
        with FileLock(lock_path_for(path), what, timeout=SHARD_LOCK_WAIT_S):
            with _open_h5(path, "a") as f:
                new = ~np.isin(block, f["ids"][()])  # (another job may have added some meanwhile)
                _append_block(f, block[new], fs.subset(new))
    distributed.barrier()


def _read(path: Path, ids: np.ndarray, space: FeatureSpace, read_lowlevel: bool) -> FeatureSet:
    with _open_h5(path, "r") as f:
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
    with _open_h5(path, "r") as f:
        return bool(np.isin(np.unique(ids), f["ids"][()]).all())


def _append_missing(path: Path, ids, dataset, space: FeatureSpace, batch_size: int, device) -> None:
    """Compute the features of the ids the cache lacks and append them, in blocks (caller holds the lock).

    The ``writing`` flag is set while a block is written: a process killed meanwhile leaves a file
    that :func:`cache_problem` rejects, instead of one that is trusted or that blocks every later run.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with _open_h5(path, "a") as f:
        if "ids" not in f:
            s = space.semantic_spec
            f.attrs["space"] = str(space.describe())
            f.attrs["dataset"] = str(dataset.content_id)
            f.create_dataset("ids", shape=(0,), maxshape=(None,), dtype="i8")
            f.create_dataset("semantic", shape=(0, s.n_tokens, s.dim), maxshape=(None, s.n_tokens, s.dim),
                             dtype="f2", chunks=(16, s.n_tokens, s.dim))
            for i, t in enumerate(space.lowlevel_specs):
                f.create_dataset(f"lowlevel/{i}", shape=(0, t.dim, *t.grid), maxshape=(None, t.dim, *t.grid),
                                 dtype="f2", chunks=(16, t.dim, *t.grid))
            f.attrs["writing"] = 0
            f.flush()
        todo = np.setdiff1d(np.unique(ids), f["ids"][()])
        chunk = batch_size * 16  # append in blocks so an interruption loses little
        for start in track(range(0, len(todo), chunk), desc=f"features ({space.name})"):
            block = todo[start:start + chunk]
            _append_block(f, block, compute_features(space, dataset.images(block), batch_size, device, desc="batch"))


def _append_block(f: h5py.File, block: np.ndarray, fs: FeatureSet) -> None:
    """Append the features of ``block`` (ids) to an open cache file, flagged ``writing`` meanwhile."""
    f.attrs["writing"] = 1
    f.flush()
    n = f["ids"].shape[0]
    for key, arr in [("semantic", fs.semantic)] + [(f"lowlevel/{i}", m) for i, m in enumerate(fs.lowlevel)]:
        f[key].resize((n + len(block), *arr.shape[1:]))
        f[key][n:] = arr
    f["ids"].resize((n + len(block),))
    f["ids"][n:] = block  # ids last: a row counts only once its features are written
    f.attrs["writing"] = 0
    f.flush()
