"""Writing a canonical dataset (the layout is described in :mod:`brainit_core.data.dataset`).

:class:`DatasetWriter` writes incrementally, one session at a time, and sets ``complete`` flags only
when a subject and then the whole dataset are finished, so an interrupted build is detected on load.
"""
from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np

from brainit_core.data.dataset import SPLITS, Dataset, load_dataset
from brainit_core.data.info import FORMAT_VERSION, METADATA
from brainit_core.errors import DataFormatError
from brainit_core.fileio import check_output_dir, read_json, write_json
from brainit_core.locks import FileLock, lock_path_for

#: What a writer owns in its folder and removes when it replaces a dataset of its own kind
#: (other files a user keeps beside a dataset are left alone).
OWNED_FILES = ("images.h5",)
OWNED_FOLDERS = ("subjects", "features", "ground_truth")


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

    ``DIR`` must be new or empty, or hold a dataset of the same ``source``: an unfinished one (an
    interrupted build) is replaced, a finished one only with ``overwrite=True``; a dataset of another
    source, or a folder of other files, is refused (:class:`~brainit_core.errors.DataFormatError`).
    The writer holds ``DIR``'s lock (:mod:`brainit_core.locks`) until :meth:`finalize` or :meth:`close`,
    so a second build into ``DIR`` is refused while this one runs. Every build gets a new
    ``build_id`` (in ``dataset.json``), which keys the feature cache.

    Examples
    --------
    >>> w = DatasetWriter(out, source="twin", mesh="fsaverage5", image_size=128)
    >>> w.add_images(ids, images)
    >>> w.begin_subject("twin01", vertices, hemispheres)
    >>> w.append_session("twin01", betas, image_ids, session=1)
    >>> w.finalize_subject("twin01", train_ids, val_ids, test_ids)
    >>> w.finalize(heldout_subjects=["twin05"], provenance={...})

    ``compact_betas=True`` stores betas as float16, byte-shuffled and gzip-compressed (about 0.43 of
    the float32 size; z-scores keep about 3 significant digits, an error below 0.004 for |z| < 8, of the
    order of the quantisation of NSD's own int16 betas, 1/300 of a percent signal change). Readers get
    float32 either way. The demo bundle's slice uses it (:func:`brainit_core.bundle.export_dataset_slice`).
    """

    def __init__(self, path, *, source: str, mesh: str, image_size: int, overwrite: bool = False,
                 compact_betas: bool = False, **metadata):
        self.path = Path(path).expanduser()
        self.compact_betas = bool(compact_betas)
        self._lock = FileLock(lock_path_for(self.path), what=f"dataset {self.path}").acquire()
        self.build_id = uuid.uuid4().hex
        try:
            if check_output_dir(self.path, f"a {source} dataset", marker=METADATA):
                self._check_replaceable(source, overwrite)
        except BaseException:
            self._lock.release()
            raise
        self.metadata = {
            "format_version": FORMAT_VERSION,
            "source": source,
            "mesh": mesh,
            "image_size": int(image_size),
            "subjects": [],
            "complete": False,
            **metadata,
            "build_id": self.build_id,
        }
        self._write_meta()  # the in-progress marker first: an interrupted clean-up is still ours
        for name in OWNED_FILES:
            if (self.path / name).is_file():
                (self.path / name).unlink()
        for name in OWNED_FOLDERS:
            if (self.path / name).is_dir():
                shutil.rmtree(self.path / name)
        (self.path / "subjects").mkdir(parents=True, exist_ok=True)
        self._subjects: dict[str, _SubjectState] = {}
        self._images_path = self.path / "images.h5"
        self._image_size = int(image_size)

    def _check_replaceable(self, source: str, overwrite: bool) -> None:
        """Refuse to replace a dataset of another kind, or a finished one unless ``overwrite``."""
        meta_path = self.path / METADATA
        meta = read_json(meta_path)
        if not isinstance(meta, dict) or "source" not in meta:
            raise DataFormatError(f"{meta_path} is not a dataset record (expected a JSON object with 'source'); "
                                  f"{self.path} is left as it is: choose a new or empty folder")
        old = str(meta["source"])
        if old != source:
            raise DataFormatError(f"{self.path} holds a {old} dataset; a {source} dataset never replaces another "
                                  "kind: choose a new or empty folder")
        if meta.get("complete") and not overwrite:
            raise DataFormatError(f"{self.path} already holds a finished {old} dataset (subjects "
                                  f"{', '.join(map(str, meta.get('subjects', [])))}); pass --overwrite "
                                  "(overwrite=True) to replace it, or choose another folder")

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
            compact = {"compression": "gzip", "compression_opts": 4, "shuffle": True} if self.compact_betas else {}
            f.create_dataset("betas", shape=(0, nv), maxshape=(None, nv), dtype="f2" if self.compact_betas else "f4",
                             chunks=(min(64, 750), nv) if nv else None, **compact)
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
        if self.compact_betas:
            betas = betas.astype(np.float16)  # |z| beyond float16's 65504 would turn inf: refused below
        bad = int(np.count_nonzero(~np.isfinite(betas)))
        if bad:
            raise DataFormatError(f"{st.path}: session {session} of {name}: {bad} of {betas.size} betas are NaN or inf "
                                  "(z-score them and set missing values to 0 before writing)")
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
        """Set the dataset's ``complete`` flag, release its lock and open it."""
        self.metadata.update(metadata)
        self.metadata["heldout_subjects"] = list(heldout_subjects)
        self.metadata["build_id"] = self.build_id
        self.metadata["complete"] = True
        self._write_meta()
        self.close()
        return load_dataset(self.path)

    def close(self) -> None:
        """Release the dataset's lock (without finishing it: an unfinished dataset stays unfinished)."""
        self._lock.release()


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
