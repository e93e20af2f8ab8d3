"""Where one subject's maps are drawn, for any prepared dataset: :class:`CortexDisplay`.

A map is one value per dataset vertex (``SubjectData.vertices``). Which figure it becomes depends
on the dataset's space (``DatasetInfo.display``) and on the fsaverage folder the user has:

============  ====================================================================================
space         drawn on
============  ====================================================================================
fsaverage5    the bundled fsaverage5 (the twin): inflated, pial, flat
fsaverage     fsaverage at full resolution when its FreeSurfer files are found
              (:func:`~brainit_core.data.display.resolve_fsaverage_dir`); else resampled to the
              bundled fsaverage5 (its nested vertices, or the average of the nearest-vertex
              neighbourhoods when the sphere is known) and said so by :meth:`CortexDisplay.note`
func1pt8mm    the subject's volume (orthogonal slices, nilearn's interactive viewer) over its mean
              image or brain mask; projected to fsaverage too when NSD's transforms are there
============  ====================================================================================

ROI borders come from NSD's atlases recorded at preparation (fsaverage labels, func1pt8mm ROI
volumes) and from ``extra_atlases`` the caller gives per dataset vertex (the twin's true areas).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from brainit_core.data import display as dsp
from brainit_core.errors import DataFormatError
from brainit_core.viz import export, meshes, volume
from brainit_core.viz.surface import MeshMap, fill_hemispheres, surface_map_figure

SURFACE_MODES = ("inflated", "inflated + flat", "flat", "pial")
VOLUME_MODES = ("slices", "interactive")
N_FSAVERAGE = 163842


def meshes_of(mode: str) -> tuple:
    """The meshes a surface view draws, top to bottom."""
    return ("inflated", "flat") if mode == "inflated + flat" else (mode,)


@lru_cache(maxsize=4)
def _parents(directory: str):
    spheres = meshes.sphere_coordinates(directory)
    return None if spheres is None else meshes.nearest_parents(spheres)


@lru_cache(maxsize=8)
def _projection(directory: str, shape: tuple) -> np.ndarray:
    return dsp.projection_to_fsaverage(directory, shape)


@lru_cache(maxsize=32)
def _surface_atlas(lh: str, rh: str, ctab, n: int, name: str):
    return dsp.read_surface_atlas({"lh": lh, "rh": rh, "ctab": ctab}, n, name)


class CortexDisplay:
    """How one subject's maps are drawn.

    Parameters
    ----------
    info : DatasetInfo
    subject : str
    vertices, hemispheres : array-like, (V,)
        The subject's vertex numbers (or flat voxel indices) and hemispheres.
    fsaverage_dir : str, optional
        The user's fsaverage folder (FreeSurfer subject directory or a ``SUBJECTS_DIR``).
    extra_atlases : dict of str -> (array (V,) of int, list of str), optional
        More ROI atlases given per dataset vertex (label ids, 0 = none, and their names).
    """

    def __init__(self, info, subject: str, vertices, hemispheres, *, fsaverage_dir=None, extra_atlases=None):
        rec = info.display
        self.subject = subject
        self.vertices = np.asarray(vertices, dtype=np.int64)
        self.hemispheres = np.asarray(hemispheres, dtype=np.int64)
        self.space = rec["space"] if rec["space"] in ("fsaverage", "func1pt8mm") else "fsaverage5"
        if self.space == "fsaverage5" and len(self.vertices) and self.vertices.max() >= meshes.N_FSAVERAGE5:
            self.space = "fsaverage"  # an unrecorded dataset on a finer fsaverage
        self.problems: list[str] = []
        self.fs_dir = dsp.resolve_fsaverage_dir(fsaverage_dir, rec["fsaverage_dir"])
        self.full = None  # vertices per hemisphere of the full-resolution mesh in use (None: fsaverage5 only)
        self.extra = dict(extra_atlases or {})
        self.subject_rec = rec["subjects"].get(subject, {})
        self.recorded_n = rec.get("n_vertices")
        self.surface_atlases = rec["atlases"] if self.space != "fsaverage5" else {}
        self.projection = None
        if self.space == "func1pt8mm":
            self._init_volume()
        if self.space == "fsaverage" or self.projection is not None:
            self._init_full()

    # -- set-up -----------------------------------------------------------------------------
    def _init_volume(self) -> None:
        rec = self.subject_rec
        if "shape" not in rec or "affine" not in rec:
            self.problems.append(f"the dataset does not record {self.subject}'s volume grid: prepare it again with "
                                 "this version of `nsd prepare` to see volume views")
            self.shape = self.affine = None
            return
        self.shape = tuple(int(n) for n in rec["shape"])
        self.affine = np.asarray(rec["affine"], dtype=np.float64)
        if rec.get("transforms"):
            try:
                self.projection = _projection(str(rec["transforms"]), self.shape)
            except DataFormatError as exc:
                self.problems.append(f"no surface projection: {exc}")

    def _init_full(self) -> None:
        need = int(self.vertices.max()) + 1 if self.projection is None and len(self.vertices) else 0
        if self.projection is not None:
            need = self.projection.shape[1]
        if self.fs_dir is not None:
            try:
                n = meshes.surface_vertex_count(str(self.fs_dir))
                if n >= need and (self.projection is None or n == need):
                    self.full = n
                else:
                    self.problems.append(f"{self.fs_dir} has {n} vertices per hemisphere, the maps need {need}")
            except DataFormatError as exc:
                self.problems.append(str(exc))
        self.n_full = self.full or max(int(self.recorded_n or N_FSAVERAGE), need)

    # -- what can be shown ------------------------------------------------------------------
    @property
    def modes(self) -> list[str]:
        """The views this subject's maps have (surface meshes, volume views)."""
        if self.space != "func1pt8mm":
            return list(SURFACE_MODES)
        out = list(VOLUME_MODES) if self.shape is not None else []
        return out + ([m for m in SURFACE_MODES if m != "pial"] if self.projection is not None else [])

    @property
    def unit(self) -> str:
        """What one of the dataset's columns is: ``"voxel"`` (func1pt8mm) or ``"vertex"``."""
        return "voxel" if self.space == "func1pt8mm" else "vertex"

    @property
    def units(self) -> str:
        return "voxels" if self.space == "func1pt8mm" else "vertices"

    @staticmethod
    def is_volume(mode: str) -> bool:
        return mode in VOLUME_MODES

    @property
    def atlases(self) -> list[str]:
        """Names of the ROI atlases that can be outlined."""
        found = self.subject_rec.get("atlases", {}) if self.space == "func1pt8mm" else self.surface_atlases
        order = {name: k for k, name in enumerate(dsp.ATLASES)}
        return list(self.extra) + sorted(found, key=lambda n: (order.get(n, len(order)), n))

    def resampled(self, mode: str) -> bool:
        """Whether ``mode`` shows a fsaverage (or projected) map on the coarser fsaverage5."""
        if self.space == "fsaverage5" or self.is_volume(mode):
            return False
        return self.full is None or (mode in ("flat", "inflated + flat") and not meshes.has_flat_patches(self.fs_dir))

    def note(self, mode: str) -> str:
        """One sentence on what the view shows (resampling, projection, where the files are from)."""
        if self.space == "fsaverage5":
            return "Drawn on fsaverage5 (10,242 vertices per hemisphere, bundled with nilearn)."
        if self.is_volume(mode):
            bg = self.subject_rec.get("background")
            return (f"{self.subject}'s func1pt8mm volume over " + (f"`{Path(bg).name}` from the NSD tree." if bg else
                    "its voxel mask (no mean.nii.gz or brainmask.nii.gz was found at preparation)."))
        parts = ["Projected from the volume to fsaverage through NSD's transforms."] if self.projection is not None else []
        if self.full is not None:
            parts.append(f"Drawn on fsaverage at full resolution ({self.full:,} vertices per hemisphere) from "
                         f"`{self.fs_dir}`.")
        if self.resampled(mode):
            how = ("each fsaverage5 vertex shows the mean of the fsaverage vertices nearest to it on the sphere"
                   if self.fs_dir is not None and _parents(str(self.fs_dir)) is not None else
                   "each fsaverage5 vertex shows its own value (fsaverage's first 10,242 vertices are fsaverage5's; "
                   "the others are not drawn)")
            parts.append(f"**Resampled view** on the bundled fsaverage5 ({how}). "
                         + ("" if self.full else "Give the fsaverage folder in the sidebar to draw every vertex."))
        return " ".join(parts)

    # -- values onto meshes and volumes -----------------------------------------------------
    def _on_fsaverage(self, values) -> np.ndarray:
        """(2, n_full) values on the full fsaverage numbering (NaN where none)."""
        values = np.asarray(values, dtype=np.float64)
        if self.projection is None:
            return fill_hemispheres(values, self.vertices, self.hemispheres, n_vertices=self.n_full)
        column = np.full(int(np.prod(self.shape)), -1, np.int64)
        column[self.vertices] = np.arange(len(self.vertices))
        col = np.where(self.projection >= 0, column[np.maximum(self.projection, 0)], -1)
        return np.where(col >= 0, values[np.maximum(col, 0)], np.nan)

    def _mesh(self, mesh: str):
        """(geometry, full-resolution?) of ``mesh`` for this subject's maps."""
        if self.space == "fsaverage5" or self.full is None:
            return meshes.load_surface(mesh), False
        if mesh == "flat" and not meshes.has_flat_patches(self.fs_dir):
            return meshes.load_surface("flat"), False
        return meshes.load_surface(mesh, str(self.fs_dir)), True

    def on_mesh(self, values, mesh: str, categorical: bool = False):
        """``values`` (V,) on ``mesh``: (geometry, (2, n_vertices) array)."""
        geom, full = self._mesh(mesh)
        if self.space == "fsaverage5":
            return geom, fill_hemispheres(values, self.vertices, self.hemispheres)
        on_fs = self._on_fsaverage(values)
        if full:
            return geom, on_fs
        parents = _parents(str(self.fs_dir)) if self.fs_dir is not None else None
        return geom, meshes.downsample(on_fs, parents if parents is not None and parents.shape == on_fs.shape else None,
                                       categorical)

    def _atlas_on_mesh(self, name: str, mesh: str):
        geom, full = self._mesh(mesh)
        if name in self.extra:
            codes, names = self.extra[name]
            _, labels = self.on_mesh(np.asarray(codes, np.float64), mesh, categorical=True)
            return np.nan_to_num(labels).astype(np.int64), list(names)
        if self.space == "func1pt8mm":
            vol, names = self.volume_atlas(name)
            flat = vol.reshape(-1)
            on_fs = np.where(self.projection >= 0, flat[np.maximum(self.projection, 0)], 0).astype(np.float64)
        else:
            entry = self.surface_atlases[name]
            on_fs, names = _surface_atlas(entry["lh"], entry["rh"], entry.get("ctab"), self.full, name)
        if not full:
            on_fs = meshes.downsample(on_fs.astype(np.float64), categorical=True)
        return np.nan_to_num(on_fs).astype(np.int64), names

    def volume_atlas(self, name: str):
        """ROI labels (X, Y, Z) and names of a func1pt8mm atlas (or an extra one given per voxel)."""
        if name in self.extra:
            codes, names = self.extra[name]
            return np.nan_to_num(volume.fill_volume(codes, self.vertices, self.shape)).astype(np.int64), list(names)
        return dsp.read_volume_atlas(self.subject_rec["atlases"][name], self.shape, name)

    def background(self) -> np.ndarray:
        """The volume's grey background: the recorded mean image or brain mask, else the voxel mask."""
        path = self.subject_rec.get("background")
        if path and Path(path).is_file():
            return dsp.read_volume(path, self.shape, "the background image")
        return np.nan_to_num(volume.fill_volume(np.ones(len(self.vertices)), self.vertices, self.shape))

    def atlas_at_vertices(self, name: str) -> tuple[np.ndarray, list[str]]:
        """An atlas on the subject's own vertices: codes (V,) (NaN outside every ROI) and ROI names.

        Code ``k`` names ``names[k]`` (the atlas's id ``k + 1``), ready for a categorical map.
        """
        if name in self.extra:
            codes, names = self.extra[name]
            ids = np.nan_to_num(np.asarray(codes, np.float64)).astype(np.int64)
        elif self.space == "func1pt8mm":
            vol, names = self.volume_atlas(name)
            ids = vol.reshape(-1)[self.vertices]
        else:
            entry = self.surface_atlases[name]
            labels, names = _surface_atlas(entry["lh"], entry["rh"], entry.get("ctab"), self.full, name)
            ids = labels[self.hemispheres, self.vertices]
        return np.where(ids > 0, ids - 1.0, np.nan), list(names[1:])

    def sources(self) -> list[dict]:
        """What this subject's views are drawn from: one row per source, ``{"for", "read from"}``."""
        rows = []
        if self.space == "func1pt8mm" and self.shape is not None:
            rows.append({"for": "volume grid", "read from": f"{'x'.join(map(str, self.shape))} voxels, affine of the ROI"})
            rows.append({"for": "volume background", "read from": self.subject_rec.get("background") or "the voxel mask"})
            rows.append({"for": "projection to fsaverage", "read from": self.subject_rec.get("transforms") or "none"})
        if self.space != "fsaverage5":
            rows.append({"for": "surfaces", "read from": str(self.fs_dir) if self.full else
                         "bundled fsaverage5 (resampled view)"})
        else:
            rows.append({"for": "surfaces", "read from": "bundled fsaverage5 (nilearn)"})
        for name in self.atlases:
            if name in self.extra:
                where = "the twin's ground truth"
            elif self.space == "func1pt8mm":
                where = self.subject_rec["atlases"][name]["path"]
            else:
                where = str(Path(self.surface_atlases[name]["lh"]).parent / f"?h.{name}.mgz")
            rows.append({"for": f"ROI atlas {name}", "read from": where})
        return rows

    # -- figures ----------------------------------------------------------------------------
    def surface_figure(self, values, mode: str = "inflated", *, atlas: str | None = None, hover: dict | None = None,
                       categorical: bool = False, **kw):
        """A plotly figure of ``values`` (V,) on the meshes of ``mode`` (one row per mesh).

        ``hover`` gives more per-vertex fields ({name: (V,) array}); the chosen ``atlas`` is
        outlined and names the hovered area. Other options are those of ``surface_map_figure``.
        """
        rows = []
        for mesh in meshes_of(mode):
            geom, full = self.on_mesh(values, mesh, categorical)
            extra = {}
            for k, v in (hover or {}).items():
                v = np.asarray(v)
                if v.dtype.kind in "fiub":
                    extra[k] = self.on_mesh(v.astype(np.float64), mesh)[1]
                else:  # strings: carried to the mesh as ids of their distinct values
                    uniq, ids = np.unique(v.astype(str), return_inverse=True)
                    on = self.on_mesh(ids.astype(np.float64), mesh, categorical=True)[1]
                    extra[k] = np.append(uniq, "")[np.nan_to_num(on, nan=len(uniq)).astype(np.int64)]
            borders = None
            if atlas:
                borders, names = self._atlas_on_mesh(atlas, mesh)
                extra["area"] = np.asarray(names + [""], dtype=object)[np.clip(borders, 0, len(names))]
            rows.append(MeshMap(geom, full, extra, borders))
        return surface_map_figure(rows, categorical=categorical, **kw)

    def volume_figure(self, values, *, atlas: str | None = None, **kw):
        """Orthogonal slices of ``values`` (V,) over the background (matplotlib figure)."""
        vol = volume.fill_volume(values, self.vertices, self.shape)
        return volume.slices_figure(vol, self.affine, self.background(),
                                    atlas=self.volume_atlas(atlas) if atlas else None, **kw)

    def volume_html(self, values, **kw) -> str:
        """nilearn's interactive viewer of ``values`` (V,) as standalone HTML."""
        vol = volume.fill_volume(values, self.vertices, self.shape)
        return volume.interactive_html(vol, self.affine, self.background(), **kw)

    # -- export -----------------------------------------------------------------------------
    @property
    def export_formats(self) -> list[str]:
        """``"gifti"``, ``"mgh"`` on surfaces, ``"nifti"`` for a volume (surfaces too when projected)."""
        if self.space == "func1pt8mm":
            return (["nifti"] if self.shape is not None else []) + (list(export.FORMATS) if self.projection is not None else [])
        return list(export.FORMATS)

    def export_label(self, fmt: str) -> str:
        """What the download holds, for its button."""
        if fmt == "nifti":
            return f"NIfTI, {self.subject}'s func1pt8mm grid {'x'.join(map(str, self.shape))}"
        n = meshes.N_FSAVERAGE5 if self.space == "fsaverage5" else self.n_full
        return f"{fmt.upper()}, lh + rh, {'fsaverage5' if self.space == 'fsaverage5' else 'fsaverage'} ({n:,} vertices each)"

    def export_zip(self, name: str, values, fmt: str) -> bytes:
        """The map as files on its own mesh or grid (a zip): surfaces carry their mesh name and, in
        GIfTI, the inflated geometry when it is on this machine; a volume carries the subject's affine."""
        if fmt == "nifti":
            return export.volume_zip(name, volume.fill_volume(values, self.vertices, self.shape), self.affine)
        if self.space == "fsaverage5":
            full, mesh, geom = fill_hemispheres(values, self.vertices, self.hemispheres), "fsaverage5", meshes.load_surface()
        else:
            full, mesh = self._on_fsaverage(values), "fsaverage"
            geom = meshes.load_surface("inflated", str(self.fs_dir)) if self.full is not None else None
        return export.surface_full_zip(name, full, fmt, mesh=mesh, geometry=geom)
