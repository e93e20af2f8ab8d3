"""The canonical dataset format: one layout for prepared NSD and for the digital twin.

Every later stage (training, reconstruction, evaluation, the app) reads datasets through
:func:`load_dataset` and cannot tell where the data came from.

Layout of a dataset directory::

    DIR/
      dataset.json            metadata: format_version, source, mesh, image_size, subjects,
                              heldout_subjects, provenance (how it was made)
      images.h5               "ids" int64 (n_images,) sorted, "images" uint8 (n_images, H, W, 3)
                              chunked one image per chunk (lazy reads); optional group "sets/"
                              with extra id lists (e.g. "sets/unlabeled", "sets/ood")
      subjects/<name>.h5      "betas" float32 (n_trials, n_vertices), z-scored per session per
                              vertex; "image_ids" int64 (n_trials,); "sessions" int32 (n_trials,);
                              "vertices" int64 (n_vertices,) mesh vertex numbers; "hemispheres"
                              uint8 (n_vertices,) 0 = left, 1 = right; "train_image_ids",
                              "val_image_ids", "test_image_ids" int64; attrs: "complete" = 1 once
                              the writer finished
      ground_truth/           (digital twin only) never read by this module or by the decoder

Vertex order is left hemisphere then right, each in increasing vertex number.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Iterable, Sequence

import h5py
import numpy as np

from brainit_core.fileio import write_json
from brainit_core.data.info import FORMAT_VERSION, METADATA, DatasetInfo
from brainit_core.errors import DataFormatError, UnknownSubjectError

SPLITS = ("train", "val", "test")
HEMISPHERES = ("lh", "rh")


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------
class SubjectData:
    """One subject's single-trial betas and their bookkeeping (read lazily from ``<name>.h5``).

    Attributes
    ----------
    name : str
    betas : ndarray, float32, shape (n_trials, n_vertices)
    image_ids : ndarray, int64, shape (n_trials,)
    sessions : ndarray, int32, shape (n_trials,)
    vertices : ndarray, int64, shape (n_vertices,)
        Mesh vertex numbers (fsaverage numbering; within each hemisphere).
    hemispheres : ndarray, uint8, shape (n_vertices,)
        0 for the left hemisphere, 1 for the right.
    train_image_ids, val_image_ids, test_image_ids : ndarray, int64
    """

    def __init__(self, path: Path, name: str):
        self.path = Path(path)
        self.name = name
        with self._open() as f:
            missing = [k for k in ("betas", "image_ids", "sessions", "vertices", "hemispheres") if k not in f]
            if missing:
                raise DataFormatError(f"{self.path}: missing datasets {missing} of a canonical subject file")
            if not f.attrs.get("complete", 0):
                raise DataFormatError(
                    f"{self.path}: subject file is incomplete (its writer did not finish); rebuild or re-prepare it"
                )
            self.n_trials, self.n_vertices = f["betas"].shape
            for key, length in (("image_ids", self.n_trials), ("sessions", self.n_trials),
                                ("vertices", self.n_vertices), ("hemispheres", self.n_vertices)):
                if f[key].shape != (length,):
                    raise DataFormatError(f"{self.path}: '{key}' has shape {f[key].shape}, expected ({length},)")

    def _open(self):
        try:
            return h5py.File(self.path, "r")
        except (OSError, FileNotFoundError) as exc:
            raise DataFormatError(f"{self.path}: cannot open as HDF5 ({exc})") from exc

    def _read(self, key: str) -> np.ndarray:
        with self._open() as f:
            if key not in f:
                raise DataFormatError(f"{self.path}: dataset '{key}' not found")
            return f[key][()]

    @cached_property
    def betas(self) -> np.ndarray:
        return self._read("betas").astype(np.float32, copy=False)

    def betas_for_trials(self, trials: np.ndarray) -> np.ndarray:
        """Read only some trials' rows, in the given order. Shape (len(trials), n_vertices)."""
        trials = np.asarray(trials, dtype=np.int64)
        if "betas" in self.__dict__:
            return self.betas[trials]
        order = np.argsort(trials)
        with self._open() as f:
            rows = f["betas"][np.sort(trials)]
        out = np.empty_like(rows)
        out[order] = rows
        return out.astype(np.float32, copy=False)

    @cached_property
    def image_ids(self) -> np.ndarray:
        return self._read("image_ids").astype(np.int64)

    @cached_property
    def sessions(self) -> np.ndarray:
        return self._read("sessions").astype(np.int32)

    @cached_property
    def vertices(self) -> np.ndarray:
        return self._read("vertices").astype(np.int64)

    @cached_property
    def hemispheres(self) -> np.ndarray:
        return self._read("hemispheres").astype(np.uint8)

    def split_image_ids(self, split: str) -> np.ndarray:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return self._read(f"{split}_image_ids").astype(np.int64)

    @property
    def train_image_ids(self) -> np.ndarray:
        return self.split_image_ids("train")

    @property
    def val_image_ids(self) -> np.ndarray:
        return self.split_image_ids("val")

    @property
    def test_image_ids(self) -> np.ndarray:
        return self.split_image_ids("test")

    def trials_of(self, image_ids: Sequence[int]) -> list[np.ndarray]:
        """For each image id, the indices of the trials that showed it."""
        order = np.argsort(self.image_ids, kind="stable")
        sorted_ids = self.image_ids[order]
        out = []
        for i in np.asarray(image_ids, dtype=np.int64):
            lo, hi = np.searchsorted(sorted_ids, i, "left"), np.searchsorted(sorted_ids, i, "right")
            out.append(order[lo:hi])
        return out

    def averaged(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Repeat-averaged betas of a split.

        Returns
        -------
        betas : ndarray, float32, shape (n_images, n_vertices)
            Mean over the repeats of each image (NaN-aware).
        image_ids : ndarray, int64, shape (n_images,)
            The split's image ids that have at least one trial, in increasing order.
        """
        ids = np.unique(self.split_image_ids(split))
        return self.average_trials(ids)

    def average_trials(self, image_ids: Sequence[int], max_repeats: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Average the trials of each given image (optionally only the first ``max_repeats``)."""
        groups = self.trials_of(image_ids)
        keep = [k for k, g in enumerate(groups) if len(g)]
        ids = np.asarray(image_ids, dtype=np.int64)[keep]
        out = np.zeros((len(keep), self.n_vertices), dtype=np.float32)
        betas = self.betas
        for row, k in enumerate(keep):
            g = np.sort(groups[k])[:max_repeats]
            with np.errstate(invalid="ignore"):
                out[row] = np.nan_to_num(np.nanmean(betas[g], axis=0))
        return out, ids

    def __repr__(self) -> str:
        return f"SubjectData({self.name!r}, trials={self.n_trials}, vertices={self.n_vertices})"


class Dataset:
    """A canonical dataset directory (see the module docstring for the layout).

    Use :func:`load_dataset` to open one.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.info = DatasetInfo(self.path)
        self.metadata: dict = self.info.metadata
        self._images_path = self.path / "images.h5"
        if not self._images_path.exists():
            raise DataFormatError(f"{self._images_path} not found (the dataset's image store)")
        with h5py.File(self._images_path, "r") as f:
            if "ids" not in f or "images" not in f:
                raise DataFormatError(f"{self._images_path}: expected datasets 'ids' and 'images'")
            self._image_ids = f["ids"][()].astype(np.int64)
            self.image_shape = tuple(f["images"].shape[1:])
            self._sets = sorted(f["sets"].keys()) if "sets" in f else []
        if np.any(np.diff(self._image_ids) <= 0):
            raise DataFormatError(f"{self._images_path}: 'ids' must be strictly increasing")
        self._subjects: dict[str, SubjectData] = {}

    # -- metadata ---------------------------------------------------------------------------
    @property
    def subjects(self) -> list[str]:
        """All subject names, in the dataset's order (held-out ones included)."""
        return self.info.subjects

    @property
    def heldout_subjects(self) -> list[str]:
        """Subjects kept out of default training (the twin's transfer subject)."""
        return self.info.heldout_subjects

    @property
    def training_subjects(self) -> list[str]:
        return self.info.training_subjects

    @property
    def source(self) -> str:
        return self.info.source

    @property
    def mesh(self) -> str:
        return self.info.mesh

    @property
    def image_ids(self) -> np.ndarray:
        """Every image id in the store, increasing."""
        return self._image_ids

    @property
    def image_sets(self) -> list[str]:
        """Names of extra image-id lists (e.g. ``"unlabeled"``, ``"ood"``)."""
        return list(self._sets)

    def image_set(self, name: str) -> np.ndarray:
        if name not in self._sets:
            raise KeyError(f"{self._images_path}: no image set {name!r}; available: {self._sets}")
        with h5py.File(self._images_path, "r") as f:
            return f["sets"][name][()].astype(np.int64)

    def subject(self, name: str) -> SubjectData:
        if name not in self.subjects:
            raise UnknownSubjectError(f"{self.path}: no subject {name!r}; subjects: {self.subjects}")
        if name not in self._subjects:
            p = self.path / "subjects" / f"{name}.h5"
            if not p.exists():
                raise DataFormatError(f"{p} not found (listed in {self.path / 'dataset.json'})")
            self._subjects[name] = SubjectData(p, name)
        return self._subjects[name]

    # -- images -----------------------------------------------------------------------------
    def rows_of(self, ids: Iterable[int]) -> np.ndarray:
        ids = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=np.int64)
        rows = np.searchsorted(self._image_ids, ids)
        bad = (rows >= len(self._image_ids)) | (self._image_ids[np.minimum(rows, len(self._image_ids) - 1)] != ids)
        if np.any(bad):
            raise KeyError(f"{self._images_path}: image ids not in the store: {ids[bad][:10].tolist()}")
        return rows

    def images(self, ids: Iterable[int]) -> np.ndarray:
        """Read images by id. Returns uint8 (n, H, W, 3), in the order of ``ids``."""
        rows = self.rows_of(ids)
        if len(rows) == 0:
            return np.zeros((0, *self.image_shape), dtype=np.uint8)
        order = np.argsort(rows)
        uniq, inverse = np.unique(rows[order], return_inverse=True)
        with h5py.File(self._images_path, "r") as f:
            block = f["images"][uniq]
        out = np.empty((len(rows), *self.image_shape), dtype=np.uint8)
        out[order] = block[inverse]
        return out

    def __repr__(self) -> str:
        return f"Dataset({str(self.path)!r}, source={self.source!r}, subjects={self.subjects})"


def load_dataset(path: str | os.PathLike) -> Dataset:
    """Open a canonical dataset directory.

    Parameters
    ----------
    path : str or PathLike
        A directory written by ``twin build`` or ``nsd prepare``.

    Raises
    ------
    DataFormatError
        When the directory or one of its files is missing, unfinished or malformed.
    """
    return Dataset(path)


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------
@dataclass
class _SubjectState:
    path: Path
    n_vertices: int
    n_trials: int = 0
    sessions_written: list = field(default_factory=list)


class DatasetWriter:
    """Write a canonical dataset incrementally (bounded memory: one session at a time).

    Files are written under ``DIR`` with ``complete`` flags that are set only by
    :meth:`finalize_subject` and :meth:`finalize`, so an interrupted build is detected on load.

    Examples
    --------
    >>> w = DatasetWriter(out, source="twin", mesh="fsaverage5", image_size=128)
    >>> w.add_images(ids, images)
    >>> w.begin_subject("twin01", vertices, hemispheres)
    >>> w.append_session("twin01", betas, image_ids, session=1)
    >>> w.finalize_subject("twin01", train_ids, val_ids, test_ids)
    >>> w.finalize(heldout_subjects=["twin05"], provenance={...})
    """

    def __init__(self, path, *, source: str, mesh: str, image_size: int, overwrite: bool = True, **metadata):
        self.path = Path(path)
        if self.path.exists() and overwrite:
            for name in ("dataset.json", "images.h5"):
                if (self.path / name).exists():
                    (self.path / name).unlink()
            if (self.path / "subjects").exists():
                shutil.rmtree(self.path / "subjects")
        (self.path / "subjects").mkdir(parents=True, exist_ok=True)
        self.metadata = {
            "format_version": FORMAT_VERSION,
            "source": source,
            "mesh": mesh,
            "image_size": int(image_size),
            "subjects": [],
            "complete": False,
            **metadata,
        }
        self._write_meta()
        self._subjects: dict[str, _SubjectState] = {}
        self._images_path = self.path / "images.h5"
        self._image_size = int(image_size)

    def _write_meta(self) -> None:
        write_json(self.path / METADATA, self.metadata)

    # -- images -----------------------------------------------------------------------------
    def add_images(self, ids: np.ndarray, images: np.ndarray) -> None:
        """Append images (uint8 (n, H, W, 3)); ids must be larger than every id added so far."""
        ids = np.asarray(ids, dtype=np.int64)
        images = np.asarray(images)
        s = self._image_size
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (s, s, 3):
            raise DataFormatError(f"images must be uint8 (n, {s}, {s}, 3), got {images.dtype} {images.shape}")
        if len(ids) != len(images):
            raise DataFormatError(f"{len(ids)} ids for {len(images)} images")
        with h5py.File(self._images_path, "a") as f:
            if "ids" not in f:
                f.create_dataset("ids", shape=(0,), maxshape=(None,), dtype="i8", chunks=(4096,))
                f.create_dataset("images", shape=(0, s, s, 3), maxshape=(None, s, s, 3), dtype="u1",
                                 chunks=(1, s, s, 3), compression="gzip", compression_opts=1)
            n = f["ids"].shape[0]
            last = f["ids"][n - 1] if n else -1
            if len(ids) and (ids[0] <= last or np.any(np.diff(ids) <= 0)):
                raise DataFormatError("image ids must be added in strictly increasing order")
            f["ids"].resize((n + len(ids),))
            f["ids"][n:] = ids
            f["images"].resize((n + len(ids), s, s, 3))
            f["images"][n:] = images

    def add_image_set(self, name: str, ids: np.ndarray) -> None:
        with h5py.File(self._images_path, "a") as f:
            grp = f.require_group("sets")
            if name in grp:
                del grp[name]
            grp.create_dataset(name, data=np.asarray(ids, dtype=np.int64))

    # -- subjects ---------------------------------------------------------------------------
    def begin_subject(self, name: str, vertices: np.ndarray, hemispheres: np.ndarray) -> None:
        vertices = np.asarray(vertices, dtype=np.int64)
        hemispheres = np.asarray(hemispheres, dtype=np.uint8)
        if vertices.shape != hemispheres.shape or vertices.ndim != 1:
            raise DataFormatError(f"vertices {vertices.shape} and hemispheres {hemispheres.shape} must be equal 1-D")
        path = self.path / "subjects" / f"{name}.h5"
        with h5py.File(path, "w") as f:
            nv = len(vertices)
            f.create_dataset("vertices", data=vertices)
            f.create_dataset("hemispheres", data=hemispheres)
            f.create_dataset("betas", shape=(0, nv), maxshape=(None, nv), dtype="f4",
                             chunks=(min(64, 750), nv) if nv else None)
            f.create_dataset("image_ids", shape=(0,), maxshape=(None,), dtype="i8", chunks=(1024,))
            f.create_dataset("sessions", shape=(0,), maxshape=(None,), dtype="i4", chunks=(1024,))
            f.attrs["complete"] = 0
        self._subjects[name] = _SubjectState(path=path, n_vertices=len(vertices))

    def append_session(self, name: str, betas: np.ndarray, image_ids: np.ndarray, session: int) -> None:
        """Append one session's trials: betas float32 (n_trials, n_vertices), already z-scored."""
        st = self._subjects[name]
        betas = np.asarray(betas, dtype=np.float32)
        image_ids = np.asarray(image_ids, dtype=np.int64)
        if betas.ndim != 2 or betas.shape[1] != st.n_vertices or betas.shape[0] != len(image_ids):
            raise DataFormatError(
                f"session {session} of {name}: betas {betas.shape} and {len(image_ids)} image ids do not match "
                f"(expected (n_trials, {st.n_vertices}))"
            )
        if not np.all(np.isfinite(betas)):
            raise DataFormatError(f"session {session} of {name}: betas contain NaN/inf after normalisation")
        with h5py.File(st.path, "a") as f:
            n = f["betas"].shape[0]
            m = n + len(image_ids)
            f["betas"].resize((m, st.n_vertices))
            f["betas"][n:m] = betas
            f["image_ids"].resize((m,))
            f["image_ids"][n:m] = image_ids
            f["sessions"].resize((m,))
            f["sessions"][n:m] = session
        st.n_trials = m
        st.sessions_written.append(int(session))

    def finalize_subject(self, name: str, train_ids, val_ids, test_ids, **attrs) -> None:
        st = self._subjects[name]
        with h5py.File(st.path, "a") as f:
            for split, ids in zip(SPLITS, (train_ids, val_ids, test_ids)):
                if f"{split}_image_ids" in f:
                    del f[f"{split}_image_ids"]
                f.create_dataset(f"{split}_image_ids", data=np.asarray(ids, dtype=np.int64))
            for k, v in attrs.items():
                f.attrs[k] = v
            f.attrs["complete"] = 1
        if name not in self.metadata["subjects"]:
            self.metadata["subjects"].append(name)
        self._write_meta()

    def finalize(self, heldout_subjects: Sequence[str] = (), **metadata) -> Dataset:
        self.metadata.update(metadata)
        self.metadata["heldout_subjects"] = list(heldout_subjects)
        self.metadata["complete"] = True
        self._write_meta()
        return load_dataset(self.path)


def standardize_session(betas: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Z-score one session per vertex over its trials (population std, ddof=0).

    NaN values are ignored in the statistics and become 0; vertices with zero variance or
    no finite value become 0.

    Parameters
    ----------
    betas : ndarray, shape (n_trials, n_vertices)

    Returns
    -------
    z : ndarray, float32, shape (n_trials, n_vertices)
    mean, std : ndarray, float64, shape (n_vertices,)
        The statistics used (std is 0 where the vertex was set to 0).
    """
    x = np.asarray(betas, dtype=np.float64)
    finite = np.isfinite(x)
    count = finite.sum(0)
    xs = np.where(finite, x, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, xs.sum(0) / np.maximum(count, 1), 0.0)
        var = np.where(count > 0, (np.where(finite, x - mean, 0.0) ** 2).sum(0) / np.maximum(count, 1), 0.0)
    std = np.sqrt(var)
    ok = std > 1e-12 * np.maximum(1.0, np.abs(mean))
    z = np.where(finite & ok, (x - mean) / np.where(ok, std, 1.0), 0.0).astype(np.float32)
    return z, mean, np.where(ok, std, 0.0)
