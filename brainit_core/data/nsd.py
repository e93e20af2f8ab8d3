"""Natural Scenes Dataset -> the canonical dataset format (the files NSD distributes; docs/data.md, "NSD preparation").

Reads the NSD files as the authors ship them and writes them session by session, so memory stays
bounded by one session of one subject:

- ``nsddata/experiments/nsd/nsd_expdesign.mat``: ``masterordering`` (1-based into the subject's
  10k list), ``subjectim`` (1-based 73k ids), ``sharedix``;
- fsaverage betas ``nsddata_betas/ppdata/subjXX/fsaverage/betas_fithrf_GLMdenoise_RR/
  {lh,rh}.betas_sessionNN.mgh`` (163842 x 1 x 1 x 750, percent signal change, NaN allowed), or
  func1pt8mm volumes ``betas_sessionNN.hdf5`` (``betas`` int16 (750, Z, Y, X), x300) / ``.nii.gz``;
- vertex masks (nsdgeneral ``.mgz`` labels, Algonauts ``.npy`` or a user file);
- ``nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5`` ``imgBrick`` (73000, 425, 425, 3), read lazily.

Each session is z-scored per vertex (ddof=0; NaN and zero variance -> 0); train = images whose
``masterordering`` index is > 1000, test = the shared 1000; a seeded subset of the training
images is held out for validation. Canonical image id = 0-based 73k id.
"""
from __future__ import annotations

import logging
import resource
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from brainit_core.data.display import find_display_sources
from brainit_core.data.nsd_files import (
    load_fsaverage_mask, read_expdesign, read_mgh_betas, read_volume_session, volume_mask, volume_roi_path,
)
from brainit_core.data.writer import DatasetWriter, standardize_session
from brainit_core.errors import DataFormatError
from brainit_core.progress import track

log = logging.getLogger(__name__)

SESSIONS_COMPLETED = {1: 40, 2: 40, 3: 32, 4: 30, 5: 40, 6: 32, 7: 40, 8: 30}
N_VERTICES_FSAVERAGE = 163842
TRIALS_PER_SESSION = 750


@dataclass
class NSDLayout:
    """Where the NSD files live under ``root`` (the standard layout of the NSD bucket)."""

    root: Path

    @property
    def expdesign(self) -> Path:
        return self.root / "nsddata" / "experiments" / "nsd" / "nsd_expdesign.mat"

    @property
    def stimuli(self) -> Path:
        return self.root / "nsddata_stimuli" / "stimuli" / "nsd" / "nsd_stimuli.hdf5"

    def betas_dir(self, subject: int, space: str) -> Path:
        return self.root / "nsddata_betas" / "ppdata" / f"subj{subject:02d}" / space / "betas_fithrf_GLMdenoise_RR"

    def mgh(self, subject: int, hemi: str, session: int) -> Path:
        return self.betas_dir(subject, "fsaverage") / f"{hemi}.betas_session{session:02d}.mgh"

    def volume(self, subject: int, session: int) -> Path:
        d = self.betas_dir(subject, "func1pt8mm")
        h5 = d / f"betas_session{session:02d}.hdf5"
        return h5 if h5.exists() else d / f"betas_session{session:02d}.nii.gz"

    def nsdgeneral_label(self, hemi: str) -> Path:
        return self.root / "nsddata" / "freesurfer" / "fsaverage" / "label" / f"{hemi}.nsdgeneral.mgz"

    def algonauts_mask(self, subject: int, hemi: str) -> Path:
        return (self.root / "algonauts_2023" / f"subj{subject:02d}" / "roi_masks"
                / f"{hemi}.all-vertices_fsaverage_space.npy")

    def volume_roi(self, subject: int) -> Path:
        return self.root / "nsddata" / "ppdata" / f"subj{subject:02d}" / "func1pt8mm" / "roi" / "nsdgeneral.nii.gz"

    def available_sessions(self, subject: int, space: str) -> list[int]:
        """Sessions (1-based) of ``subject`` whose betas are present in ``space``."""
        found = []
        for s in range(1, SESSIONS_COMPLETED[subject] + 1):
            if space == "fsaverage":
                ok = self.mgh(subject, "lh", s).exists() and self.mgh(subject, "rh", s).exists()
            else:
                ok = self.volume(subject, s).exists()
            if ok:
                found.append(s)
        return found


@dataclass
class PrepareReport:
    """What ``prepare_nsd`` did, for the user (nothing is dropped silently)."""

    subjects: dict = field(default_factory=dict)
    peak_rss_mb: float = 0.0

    def lines(self) -> list[str]:
        out = []
        for s, r in self.subjects.items():
            out.append(f"subj{s:02d}: {r['n_vertices']} vertices ({r['nan_only_vertices']} NaN in every session, "
                       f"{r['zero_variance_vertices']} constant; both set to 0), {r['n_trials']} trials in "
                       f"{len(r['sessions'])} sessions, {r['n_train']} train / {r['n_val']} val / "
                       f"{r['n_test']} test images")
        out.append(f"peak RSS {self.peak_rss_mb:.0f} MB")
        return out


def prepare_nsd(nsd_root, subjects, out, space: str = "fsaverage", mask: str = "nsdgeneral", sessions: int | None = None,
                image_size: int = 256, val_images: int | None = None, seed: int = 0,
                trials_per_session: int = TRIALS_PER_SESSION, n_vertices_per_hemi: int = N_VERTICES_FSAVERAGE,
                overwrite: bool = False):
    """Write NSD subjects to a canonical dataset directory, one session at a time.

    Parameters
    ----------
    nsd_root : path
        The NSD root (holding ``nsddata/``, ``nsddata_betas/``, ``nsddata_stimuli/``).
    subjects : list of int
        Subject numbers in 1..8.
    out : path
        Output dataset directory.
    space : {"fsaverage", "func1pt8mm"}
    mask : str
        ``"nsdgeneral"``, ``"algonauts"`` or a file path (``{hemi}`` is replaced by lh/rh; for
        func1pt8mm a NIfTI ROI path).
    sessions : int, optional
        Use the first N sessions (default: all the subject completed).
    image_size : int
        Stored image size (images are resized from 425 px).
    val_images : int, optional
        Training images held out for validation (default: 2,500 x the fraction of sessions used).
    trials_per_session, n_vertices_per_hemi : int
        750 and 163842 for real NSD; fixtures use smaller values.
    overwrite : bool
        Replace a finished NSD dataset already in ``out`` (never another kind of dataset or other
        files; an unfinished NSD dataset is replaced without it).

    Returns
    -------
    (Dataset, PrepareReport)
    """
    for name, value, least in (("sessions", sessions, 1), ("val_images", val_images, 0), ("image_size", image_size, 1),
                               ("seed", seed, 0), ("trials_per_session", trials_per_session, 1),
                               ("n_vertices_per_hemi", n_vertices_per_hemi, 1)):
        if value is not None and (not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < least):
            raise DataFormatError(f"{name} must be {'a positive integer' if least else 'an integer >= 0'}, got {value!r}")
    layout = NSDLayout(Path(nsd_root))
    if not layout.root.exists():
        raise DataFormatError(f"NSD root {layout.root} does not exist")
    subjects = [int(s) for s in subjects]
    for s in subjects:
        if s not in SESSIONS_COMPLETED:
            raise DataFormatError(f"subject {s} is not an NSD subject (expected 1..8)")
    if space not in ("fsaverage", "func1pt8mm"):
        raise DataFormatError(f"space must be 'fsaverage' or 'func1pt8mm', got {space!r}")
    design = read_expdesign(layout.expdesign)
    if not layout.stimuli.exists():
        raise DataFormatError(f"{layout.stimuli} not found (NSD stimuli, dataset 'imgBrick')")

    plans = {}
    for s in subjects:
        if sessions is not None and sessions > SESSIONS_COMPLETED[s]:
            raise DataFormatError(f"subject {s} completed {SESSIONS_COMPLETED[s]} sessions; {sessions} were requested")
        have = layout.available_sessions(s, space)
        if sessions is None:
            # all sessions on disk; a gap (session k missing but a later one present) is an error below
            n_sess = max(have) if have else 1
            if have and n_sess < SESSIONS_COMPLETED[s]:
                log.warning("subject %d: %d of %d sessions on disk; preparing those", s, n_sess, SESSIONS_COMPLETED[s])
        else:
            n_sess = sessions
        missing = [k for k in range(1, n_sess + 1) if k not in have]
        if missing:
            where = layout.betas_dir(s, space)
            raise DataFormatError(f"{where}: sessions {missing} missing for subject {s} "
                                  f"(found sessions {have or 'none'}); use --sessions to prepare fewer")
        n_trials = n_sess * trials_per_session
        if n_trials > len(design.masterordering):
            raise DataFormatError(f"{layout.expdesign}: masterordering has {len(design.masterordering)} trials, "
                                  f"{n_trials} needed for {n_sess} sessions")
        plans[s] = (n_sess, design.trial_image_ids(s, n_trials))
        if space == "fsaverage":  # a missing or empty mask is refused before anything is written
            load_fsaverage_mask(layout, s, mask, n_vertices_per_hemi)
    needed = np.unique(np.concatenate([p[1] for p in plans.values()]))
    mesh = "fsaverage" if space == "fsaverage" else "func1pt8mm"
    rois = {s: volume_roi_path(layout, s, mask) for s in subjects} if space == "func1pt8mm" else None
    display = find_display_sources(layout.root, subjects, space, rois,  # the app's meshes, atlases, volumes
                                   n_vertices_per_hemi if space == "fsaverage" else None)
    writer = DatasetWriter(out, source="nsd", mesh=mesh, image_size=image_size, overwrite=overwrite,
                           space=space, mask=str(mask), display=display)
    _write_images(layout.stimuli, needed, writer, image_size)

    report = PrepareReport()
    rng = np.random.default_rng(seed)
    for s, (n_sess, trial_ids) in plans.items():
        name = f"subj{s:02d}"
        if space == "fsaverage":
            masks = load_fsaverage_mask(layout, s, mask, n_vertices_per_hemi)
            vertices = np.concatenate([np.flatnonzero(masks["lh"]), np.flatnonzero(masks["rh"])])
            hemis = np.r_[np.zeros(masks["lh"].sum()), np.ones(masks["rh"].sum())].astype(np.uint8)
        else:
            flat_idx, shape_xyz, hemis = volume_mask(layout, s, mask)
            vertices = flat_idx
        writer.begin_subject(name, vertices, hemis)
        finite_any = np.zeros(len(vertices), bool)
        constant_all = np.ones(len(vertices), bool)
        for k in track(range(1, n_sess + 1), desc=f"{name} sessions"):
            if space == "fsaverage":
                betas = np.concatenate([
                    read_mgh_betas(layout.mgh(s, h, k), n_vertices_per_hemi, trials_per_session)[:, masks[h]]
                    for h in ("lh", "rh")], axis=1)
            else:
                betas = read_volume_session(layout.volume(s, k), flat_idx, shape_xyz, trials_per_session)
            finite_any |= np.isfinite(betas).any(0)
            z, _, std = standardize_session(betas)
            constant_all &= std == 0
            del betas
            rows = slice((k - 1) * trials_per_session, k * trials_per_session)
            writer.append_session(name, z, trial_ids[rows], k)
        is_test = design.is_test_trial(len(trial_ids))
        test_ids = np.unique(trial_ids[is_test])
        train_all = np.unique(trial_ids[~is_test])
        n_val = val_images if val_images is not None else int(round(2500 * n_sess / SESSIONS_COMPLETED[s]))
        n_val = min(n_val, max(0, len(train_all) - 1))
        val_ids = np.sort(rng.choice(train_all, n_val, replace=False)) if n_val else np.zeros(0, np.int64)
        train_ids = np.setdiff1d(train_all, val_ids)
        writer.finalize_subject(name, train_ids, val_ids, test_ids)
        report.subjects[s] = {
            "n_vertices": int(len(vertices)), "nan_only_vertices": int((~finite_any).sum()),
            "zero_variance_vertices": int((constant_all & finite_any).sum()), "n_trials": int(len(trial_ids)),
            "sessions": list(range(1, n_sess + 1)), "n_train": int(len(train_ids)), "n_val": int(len(val_ids)),
            "n_test": int(len(test_ids)),
        }
    report.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ds = writer.finalize(provenance={"nsd_root": str(layout.root), "report": report.subjects,
                                     "trials_per_session": trials_per_session})
    return ds, report


def _write_images(path: Path, ids: np.ndarray, writer: DatasetWriter, size: int, chunk: int = 64) -> None:
    from PIL import Image

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataFormatError(f"{path}: cannot open as HDF5 ({exc}); truncated or corrupt?") from exc
    with f:
        if "imgBrick" not in f:
            raise DataFormatError(f"{path}: dataset 'imgBrick' missing")
        brick = f["imgBrick"]
        if brick.ndim != 4 or brick.shape[-1] != 3:
            raise DataFormatError(f"{path}: imgBrick shape {brick.shape}, expected (73000, 425, 425, 3)")
        if brick.dtype != np.uint8:
            raise DataFormatError(f"{path}: imgBrick has dtype {brick.dtype}, expected uint8 (0..255 RGB)")
        if len(ids) and ids.max() >= brick.shape[0]:
            raise DataFormatError(f"{path}: image id {ids.max()} outside the brick of {brick.shape[0]} images")
        for i in track(range(0, len(ids), chunk), desc="images"):
            block = ids[i:i + chunk]
            raw = brick[block]  # h5py reads only these rows (ids are increasing)
            if raw.shape[1] != size or raw.shape[2] != size:
                raw = np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR)) for im in raw])
            writer.add_images(block, raw.astype(np.uint8))
