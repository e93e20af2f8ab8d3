"""What a prepared dataset's maps are drawn on: meshes, ROI atlases, volumes and surface projections.

``nsd prepare`` calls :func:`find_display_sources` and records the answer in ``dataset.json``
(``DatasetInfo.display``): where NSD's fsaverage surfaces are, which of NSD's ROI atlases are there
(``prf-visualrois``, ``floc-faces``, ``floc-places``, ``floc-bodies``, ``floc-words``, ``streams``),
and, in func1pt8mm space, each subject's volume grid (shape and affine of the ROI it was masked
with), mean image, brain mask and the transforms that project the volume to fsaverage. The readers
below load those files when a page draws a map; every file is optional (a view that needs a
missing one says so) and a damaged one raises :class:`DataFormatError` naming it.

NSD's files (docs/data.md, "What each view reads"):

- ``nsddata/freesurfer/fsaverage/surf/{lh,rh}.inflated`` (and ``.pial``, ``.sulc``, ``.sphere``);
- ``nsddata/freesurfer/fsaverage/label/{lh,rh}.<atlas>.mgz``, names in ``<atlas>.mgz.ctab``
  (there, or in ``nsddata/freesurfer/subjXX/label/``);
- ``nsddata/ppdata/subjXX/func1pt8mm/{mean,brainmask}.nii.gz`` and ``roi/<atlas>.nii.gz``;
- ``nsddata/ppdata/subjXX/transforms/{lh,rh}.func1pt8-to-<surface>.mgz`` (1-based volume
  coordinates of each native vertex, 9999 = none) and ``{lh,rh}.white-to-fsaverage.mgz`` (1-based
  native vertex of each fsaverage vertex), as ``nsd_mapdata`` reads them.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from brainit_core.errors import DataFormatError

ATLASES = ("prf-visualrois", "floc-faces", "floc-places", "floc-bodies", "floc-words", "streams")
BACKGROUNDS = ("mean", "brainmask")  # nsddata/ppdata/subjXX/func1pt8mm/<name>.nii.gz, first found is drawn
NATIVE_SURFACES = ("layerB2", "white", "pial")  # sampled for the projection, first found is used
FSAVERAGE_ENV = "BRAINIT_FSAVERAGE_DIR"
HEMIS = ("lh", "rh")


def _load(path: Path, what: str):
    import nibabel as nib

    if not Path(path).is_file():
        raise DataFormatError(f"{path} not found ({what})")
    try:
        return nib.load(str(path))
    except Exception as exc:  # nibabel raises several types for damaged files
        raise DataFormatError(f"{path}: cannot read {what} ({exc})") from exc


# ------------------------------------------------------------------------------------------------
# finding the files (nsd prepare)

def _ctab(root: Path, name: str, subject: int | None, label_dir: Path) -> str | None:
    candidates = [label_dir / f"{name}.mgz.ctab"]
    if subject is not None:
        candidates.append(root / "nsddata" / "freesurfer" / f"subj{subject:02d}" / "label" / f"{name}.mgz.ctab")
    candidates += sorted((root / "nsddata" / "freesurfer").glob(f"subj*/label/{name}.mgz.ctab"))
    return next((str(p) for p in candidates if p.is_file()), None)


def find_display_sources(root, subjects, space: str, roi_paths: dict | None = None,
                         n_vertices: int | None = None) -> dict:
    """What the app can draw from the NSD tree at ``root`` (paths of the files that are there).

    Parameters
    ----------
    root : path
        The NSD root.
    subjects : list of int
    space : str
        ``"fsaverage"`` or ``"func1pt8mm"``.
    roi_paths : dict of int -> path, optional
        func1pt8mm: the ROI each subject was masked with (its grid and affine are recorded).
    n_vertices : int, optional
        fsaverage: vertices per hemisphere of the betas (163,842 for NSD).

    Returns
    -------
    dict
        ``{"space", "n_vertices", "fsaverage_dir" (or None), "atlases": {name: {"lh", "rh", "ctab"}},
        "subjects": {"subjXX": {...}}}``; a func1pt8mm subject has ``"shape"``, ``"affine"``,
        ``"background"``, ``"atlases"`` ({name: {"path", "ctab"}}) and ``"transforms"``.
    """
    root = Path(root)
    fsdir = root / "nsddata" / "freesurfer" / "fsaverage"
    label_dir = fsdir / "label"
    first = subjects[0] if subjects else None
    out = {"space": space, "n_vertices": n_vertices, "fsaverage_dir": str(fsdir) if (fsdir / "surf" / "lh.inflated").is_file() else None,
           "atlases": {}, "subjects": {}}
    for name in ATLASES:
        paths = [label_dir / f"{h}.{name}.mgz" for h in HEMIS]
        if all(p.is_file() for p in paths):
            out["atlases"][name] = {"lh": str(paths[0]), "rh": str(paths[1]), "ctab": _ctab(root, name, first, label_dir)}
    if space != "func1pt8mm":
        return out
    for s in subjects:
        pp = root / "nsddata" / "ppdata" / f"subj{s:02d}"
        func = pp / "func1pt8mm"
        entry = {"background": next((str(func / f"{b}.nii.gz") for b in BACKGROUNDS if (func / f"{b}.nii.gz").is_file()),
                                    None),
                 "atlases": {n: {"path": str(func / "roi" / f"{n}.nii.gz"),
                                 "ctab": _ctab(root, n, s, root / "nsddata" / "freesurfer" / f"subj{s:02d}" / "label")}
                             for n in ATLASES if (func / "roi" / f"{n}.nii.gz").is_file()},
                 "transforms": str(pp / "transforms") if find_projection_files(pp / "transforms") else None}
        roi = (roi_paths or {}).get(s)
        if roi is not None:
            img = _load(Path(roi), "the func1pt8mm ROI")
            entry["shape"] = [int(n) for n in img.shape[:3]]
            entry["affine"] = np.asarray(img.affine, dtype=float).round(6).tolist()
        out["subjects"][f"subj{s:02d}"] = entry
    return out


def find_projection_files(directory) -> dict | None:
    """The NSD transforms that take func1pt8mm to fsaverage: ``{"lh": (volume->native, native->fsaverage),
    "rh": ...}``, or None when a file is missing."""
    d = Path(directory)
    out = {}
    for h in HEMIS:
        to_native = next((d / f"{h}.func1pt8-to-{s}.mgz" for s in NATIVE_SURFACES
                          if (d / f"{h}.func1pt8-to-{s}.mgz").is_file()), None)
        to_fs = d / f"{h}.white-to-fsaverage.mgz"
        if to_native is None or not to_fs.is_file():
            return None
        out[h] = (to_native, to_fs)
    return out


def resolve_fsaverage_dir(setting=None, recorded=None) -> Path | None:
    """Where fsaverage's FreeSurfer files are: the app's setting, else ``$BRAINIT_FSAVERAGE_DIR``, else
    what ``nsd prepare`` recorded, else ``$SUBJECTS_DIR/fsaverage``; None when none has ``surf/``."""
    subjects_dir = os.environ.get("SUBJECTS_DIR")
    for candidate in (setting, os.environ.get(FSAVERAGE_ENV), recorded,
                      Path(subjects_dir) / "fsaverage" if subjects_dir else None):
        if candidate and str(candidate).strip():
            p = Path(str(candidate).strip()).expanduser()
            if (p / "surf").is_dir():
                return p
            if (p / "fsaverage" / "surf").is_dir():  # a SUBJECTS_DIR
                return p / "fsaverage"
    return None


# ------------------------------------------------------------------------------------------------
# reading

def read_ctab(path) -> dict[int, str]:
    """Label names of a FreeSurfer colour table (``<index> <name> [r g b a]`` per line)."""
    names = {}
    path = Path(path)
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        raise DataFormatError(f"{path}: cannot read the colour table ({exc})") from exc
    for line in lines:
        parts = line.replace("\\", " ").split()
        if len(parts) >= 2 and not parts[0].startswith("#"):
            try:
                names[int(parts[0])] = parts[1]
            except ValueError:
                raise DataFormatError(f"{path}: expected '<index> <name>' lines, got {line!r}") from None
    return names


def label_names(labels: np.ndarray, ctab: str | None, atlas: str) -> list[str]:
    """Name of every label id ``0..max`` (the colour table's, else ``"<atlas> <id>"``; 0 = "")."""
    table = read_ctab(ctab) if ctab else {}
    top = int(labels.max()) if labels.size else 0
    return [""] + [table.get(k, f"{atlas} {k}") for k in range(1, max(top, 0) + 1)]


def read_surface_atlas(entry: dict, n_vertices: int | None = None, atlas: str = "atlas") -> tuple[np.ndarray, list[str]]:
    """A fsaverage ROI atlas: labels (2, n_vertices) int64 (0 = none) and the name of each id.

    ``n_vertices`` (per hemisphere) is checked when given; both hemispheres must agree.
    """
    labels = []
    for h in HEMIS:
        img = _load(Path(entry[h]), f"the {atlas} labels")
        data = np.asarray(img.dataobj).reshape(-1)
        n = n_vertices if n_vertices is not None else (len(labels[0]) if labels else data.size)
        if data.size != n:
            raise DataFormatError(f"{entry[h]}: {data.size} labels, the mesh has {n} vertices per hemisphere")
        labels.append(np.clip(np.nan_to_num(data), 0, None).astype(np.int64))
    labels = np.stack(labels)
    return labels, label_names(labels, entry.get("ctab"), atlas)


def read_volume(path, shape, what: str = "volume") -> np.ndarray:
    """A 3-D volume on the func1pt8mm grid ``shape`` (float32; the first frame of a 4-D file)."""
    img = _load(Path(path), what)
    data = np.asarray(img.dataobj)
    if data.ndim == 4:
        data = data[..., 0]
    if tuple(data.shape) != tuple(shape):
        raise DataFormatError(f"{path}: shape {data.shape}, the dataset's voxels lie on a {tuple(shape)} grid")
    return np.nan_to_num(data.astype(np.float32))


def read_volume_atlas(entry: dict, shape, atlas: str = "atlas") -> tuple[np.ndarray, list[str]]:
    """A func1pt8mm ROI atlas: labels (X, Y, Z) int64 (0 = none, NSD's -1 too) and the name of each id."""
    labels = np.clip(read_volume(entry["path"], shape, f"the {atlas} ROIs"), 0, None).astype(np.int64)
    return labels, label_names(labels, entry.get("ctab"), atlas)


def projection_to_fsaverage(directory, shape) -> np.ndarray:
    """The func1pt8mm voxel (flat C-order index into ``shape``, -1 = none) of every fsaverage vertex.

    Composes NSD's two transforms as ``nsd_mapdata`` does: fsaverage vertex -> nearest native vertex
    (``?h.white-to-fsaverage.mgz``) -> its volume position (``?h.func1pt8-to-<surface>.mgz``),
    rounded to the nearest voxel.

    Returns
    -------
    ndarray, int64, (2, n_fsaverage_vertices)
    """
    files = find_projection_files(directory)
    if files is None:
        raise DataFormatError(f"{directory}: the transforms lh/rh.func1pt8-to-<{'|'.join(NATIVE_SURFACES)}>.mgz and "
                              "lh/rh.white-to-fsaverage.mgz are needed to project func1pt8mm onto fsaverage")
    out = []
    for h in HEMIS:
        to_native, to_fs = files[h]
        coords = np.asarray(_load(to_native, "a volume-to-surface transform").dataobj, np.float64)
        coords = coords.reshape(coords.shape[0], -1)
        native = np.asarray(_load(to_fs, "a surface-to-fsaverage transform").dataobj).reshape(-1).astype(np.int64) - 1
        if coords.shape[1] != 3:
            raise DataFormatError(f"{to_native}: expected 3 coordinates per vertex, got shape {coords.shape}")
        if native.min() < 0 or native.max() >= len(coords):
            raise DataFormatError(f"{to_fs}: native vertex numbers outside 1..{len(coords)} (of {to_native.name})")
        xyz = coords[native]
        ok = np.isfinite(xyz).all(1) & (xyz != 9999).all(1)
        ijk = np.rint(np.where(ok[:, None], xyz, 1.0) - 1).astype(np.int64)
        ok &= ((ijk >= 0) & (ijk < np.asarray(shape))).all(1)
        flat = np.full(len(native), -1, np.int64)
        flat[ok] = np.ravel_multi_index(tuple(ijk[ok].T), tuple(shape))
        out.append(flat)
    if len(out[0]) != len(out[1]):
        raise DataFormatError(f"{directory}: the hemispheres' transforms give {len(out[0])} and {len(out[1])} vertices")
    return np.stack(out)
