"""The canonical dataset format: one layout for prepared NSD and for the digital twin.

Every later stage (training, reconstruction, evaluation, the app) reads datasets through
:func:`load_dataset` and cannot tell where the data came from.

Layout of a dataset directory::

    DIR/
      dataset.json            metadata: format_version, source, mesh, image_size, subjects,
                              heldout_subjects, complete, build_id (new at every build),
                              provenance (how it was made)
      images.h5               "ids" int64 (n_images,) sorted, "images" uint8 (n_images, H, W, 3)
                              chunked one image per chunk (lazy reads); optional group "sets/"
                              with extra id lists (e.g. "sets/unlabeled", "sets/ood")
      subjects/<name>.h5      "betas" float32 (n_trials, n_vertices), z-scored per session per
                              vertex (float16 in a compact slice such as the demo bundle's; read
                              as float32 either way); "image_ids" int64 (n_trials,); "sessions" int32 (n_trials,);
                              "vertices" int64 (n_vertices,) mesh vertex numbers; "hemispheres"
                              uint8 (n_vertices,) 0 = left, 1 = right; "train_image_ids",
                              "val_image_ids", "test_image_ids" int64; attrs: "complete" = 1 once
                              the writer finished
      ground_truth/           (digital twin only) never read by this module or by the decoder

Vertex order is left hemisphere then right, each in increasing vertex number.
"""
from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Iterable, Sequence

import h5py
import numpy as np

from brainit_core.data.info import DatasetInfo
from brainit_core.errors import DataFormatError, UnknownSubjectError

SPLITS = ("train", "val", "test")
HEMISPHERES = ("lh", "rh")
BETA_BLOCK_ROWS = 256  # rows of betas read and checked at a time


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
        """All trials' betas, float32 (n_trials, n_vertices), read in blocks and checked to be finite.

        Raises
        ------
        DataFormatError
            When any value is NaN or inf (naming the file, the subject and how many values).
        """
        out = np.empty((self.n_trials, self.n_vertices), dtype=np.float32)
        with self._open() as f:
            ds = f["betas"]
            for start in range(0, self.n_trials, BETA_BLOCK_ROWS):
                stop = min(start + BETA_BLOCK_ROWS, self.n_trials)
                out[start:stop] = ds[start:stop]
        self.check_finite(out, np.arange(self.n_trials))
        return out

    def betas_for_trials(self, trials: np.ndarray) -> np.ndarray:
        """Read only some trials' rows, in the given order. Shape (len(trials), n_vertices).

        Raises
        ------
        DataFormatError
            When a value read is NaN or inf.
        """
        trials = np.asarray(trials, dtype=np.int64)
        if "betas" in self.__dict__:
            return self.betas[trials]
        order = np.argsort(trials, kind="stable")
        wanted = trials[order]
        rows = np.empty((len(trials), self.n_vertices), np.float32)
        with self._open() as f:  # one slice per run of consecutive rows: h5py's fancy indexing is ~6x slower
            ds = f["betas"]
            for run in np.split(np.arange(len(wanted)), np.flatnonzero(np.diff(wanted) != 1) + 1) if len(wanted) else []:
                rows[run[0]:run[-1] + 1] = ds[wanted[run[0]]:wanted[run[-1]] + 1]
        out = np.empty_like(rows)
        out[order] = rows
        self.check_finite(out, trials)
        return out

    def check_finite(self, betas: np.ndarray | None = None, trials: np.ndarray | None = None) -> None:
        """Refuse NaN or inf betas (the canonical format holds finite, z-scored values).

        Parameters
        ----------
        betas : ndarray, shape (n, n_vertices), optional
            Rows already read; by default every trial is read from the file in blocks of
            ``BETA_BLOCK_ROWS`` rows (bounded memory).
        trials : ndarray of int, shape (n,), optional
            The trial index of each row of ``betas`` (for the message).

        Raises
        ------
        DataFormatError
            Naming the file, the subject, how many values are not finite and the first trial holding one.
        """
        if betas is None:
            with self._open() as f:
                ds = f["betas"]
                for start in range(0, self.n_trials, BETA_BLOCK_ROWS):
                    stop = min(start + BETA_BLOCK_ROWS, self.n_trials)
                    self.check_finite(ds[start:stop], np.arange(start, stop))
            return
        first, bad = None, 0
        for start in range(0, len(betas), BETA_BLOCK_ROWS):
            per_row = np.count_nonzero(~np.isfinite(betas[start:start + BETA_BLOCK_ROWS]), axis=1)
            bad += int(per_row.sum())
            if first is None and bad:
                first = start + int(np.flatnonzero(per_row)[0])
        if bad:
            trial = int(trials[first]) if trials is not None else first
            raise DataFormatError(
                f"{self.path}: subject {self.name!r} has {bad} NaN or inf beta values (of "
                f"{betas.size} read; first in trial {trial}); the canonical format holds finite z-scored betas "
                "(missing values set to 0): fix the file or prepare the dataset again"
            )

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
        """Average the trials of each given image (optionally only the first ``max_repeats``).

        Only those trials' rows are read (in blocks of ``BETA_BLOCK_ROWS`` trials), unless
        :attr:`betas` is already in memory: a page that shows one image's average never loads a
        whole subject (30,000 trials x 40,000 vertices is 4.8 GB).
        """
        groups = self.trials_of(image_ids)
        keep = [k for k, g in enumerate(groups) if len(g)]
        ids = np.asarray(image_ids, dtype=np.int64)[keep]
        out = np.zeros((len(keep), self.n_vertices), dtype=np.float32)
        chosen = [np.sort(groups[k])[:max_repeats] for k in keep]
        for start in range(0, len(chosen), max(1, BETA_BLOCK_ROWS // 4)):
            block = chosen[start:start + max(1, BETA_BLOCK_ROWS // 4)]
            trials = np.unique(np.concatenate(block)) if block else np.zeros(0, np.int64)
            rows = self.betas_for_trials(trials)
            for row, g in enumerate(block, start=start):
                with np.errstate(invalid="ignore"):
                    out[row] = np.nan_to_num(np.nanmean(rows[np.searchsorted(trials, g)], axis=0))
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
        with self._read_images() as f:
            if "ids" not in f or "images" not in f:
                raise DataFormatError(f"{self._images_path}: expected datasets 'ids' and 'images'")
            self._image_ids = f["ids"][()].astype(np.int64)
            self.image_shape = tuple(f["images"].shape[1:])
            self._sets = sorted(f["sets"].keys()) if "sets" in f else []
        if np.any(np.diff(self._image_ids) <= 0):
            raise DataFormatError(f"{self._images_path}: 'ids' must be strictly increasing")
        self._subjects: dict[str, SubjectData] = {}

    @contextmanager
    def _read_images(self):
        """The open image store; HDF5 errors (a truncated or corrupt file) become a DataFormatError naming it."""
        try:
            with h5py.File(self._images_path, "r") as f:
                yield f
        except (OSError, RuntimeError) as exc:
            raise DataFormatError(f"{self._images_path}: cannot read the image store ({exc}); the file may be "
                                  "truncated or corrupt: rebuild or re-copy the dataset") from exc

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

    @cached_property
    def content_id(self) -> str:
        """What identifies this dataset's images in caches keyed by image id (the feature cache).

        The writer's ``build_id`` (new at every build); for a dataset written before builds had ids,
        a sha256 of its image ids and of up to 64 images spread over the store.
        """
        if self.info.build_id:
            return self.info.build_id
        digest = hashlib.sha256(self._image_ids.tobytes())
        if len(self._image_ids):
            rows = np.unique(np.linspace(0, len(self._image_ids) - 1, 64).astype(np.int64))
            with h5py.File(self._images_path, "r") as f:
                digest.update(np.ascontiguousarray(f["images"][rows]).tobytes())
        return "sha256-" + digest.hexdigest()

    def image_set(self, name: str) -> np.ndarray:
        if name not in self._sets:
            raise KeyError(f"{self._images_path}: no image set {name!r}; available: {self._sets}")
        with self._read_images() as f:
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
        with self._read_images() as f:
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
