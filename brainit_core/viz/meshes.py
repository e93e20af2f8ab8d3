"""Cortical meshes for the maps: nilearn's bundled fsaverage5, or FreeSurfer's fsaverage from files.

Two sources of geometry, both cached per process:

- the bundled fsaverage5 (10,242 vertices per hemisphere; inflated, pial and flat meshes and the
  sulcal depth ship with nilearn, nothing is downloaded): :func:`load_surface` with no directory;
- a FreeSurfer subject directory holding ``surf/`` (NSD ships fsaverage's under
  ``nsddata/freesurfer/fsaverage/``; FreeSurfer's own is ``$SUBJECTS_DIR/fsaverage``):
  ``surf/{lh,rh}.inflated`` / ``.pial``, ``{lh,rh}.sulc`` for the grey shading and, for the flat
  view, a FreeSurfer patch ``{lh,rh}.full.flat.patch.3d`` when the directory has one.

fsaverage's icosahedral vertices nest: the first 10,242 of each fsaverage hemisphere are
fsaverage5's. :func:`downsample` brings a full-resolution map to fsaverage5 either by keeping those
nested vertices or, when the sphere of the full mesh is known, by averaging every vertex into its
nearest fsaverage5 vertex on the sphere (:func:`nearest_parents`).

Examples
--------
>>> geom = load_surface("inflated")                                  # fsaverage5, bundled
>>> geom = load_surface("inflated", "~/nsd/nsddata/freesurfer/fsaverage")
>>> small = downsample(full, parents=nearest_parents(sphere_coordinates(directory)))
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np

from brainit_core.errors import DataFormatError

N_FSAVERAGE5 = 10242  # vertices per hemisphere of fsaverage5 (the first ones of every finer fsaverage)
HEMIS = ("left", "right")
FS_HEMIS = ("lh", "rh")
MESHES = ("inflated", "pial", "flat")
PATCH_NAMES = ("{hemi}.full.flat.patch.3d", "{hemi}.flat.patch.3d", "{hemi}.cortex.patch.flat")
SPHERE_NAMES = ("{hemi}.sphere.reg", "{hemi}.sphere")


@dataclass(frozen=True, eq=False)
class SurfaceGeometry:
    """Both hemispheres of one mesh, ready for plotly.

    Attributes
    ----------
    mesh : str
        ``"inflated"``, ``"pial"`` or ``"flat"``.
    coords : tuple of ndarray, float32, (n_vertices, 3)
        Left and right vertex coordinates (mm). A flat mesh leaves out the vertices its patch does
        not hold: they get the patch's centre and belong to no face.
    faces : tuple of ndarray, int32, (F, 3)
    sulcal : ndarray, bool, (2, n_vertices)
        True where the vertex lies in a sulcus (drawn in the darker grey).
    name : str
        ``"fsaverage5"`` (bundled) or the name of the FreeSurfer directory (``"fsaverage"``).
    source : str
        Where the geometry was read from.
    nested : bool
        The mesh is an icosahedral fsaverage finer than fsaverage5 whose first 10,242 vertices are
        fsaverage5's (checked on its sphere): its grey background can be drawn with fsaverage5's
        faces over those vertices (:attr:`background`).
    """

    mesh: str
    coords: tuple
    faces: tuple
    sulcal: np.ndarray
    name: str = "fsaverage5"
    source: str = "nilearn (bundled fsaverage5)"
    nested: bool = False

    @property
    def n_vertices(self) -> int:
        return int(self.coords[0].shape[0])

    @property
    def is_flat(self) -> bool:
        return self.mesh == "flat"

    @cached_property
    def background(self) -> tuple:
        """(coords, faces, sulcal) per hemisphere of the grey cortex drawn behind a map.

        The mesh itself, or, for a nested fine inflated or flat mesh, its first 10,242 vertices joined
        by fsaverage5's faces: the same surface with 16 times fewer triangles (a map on it is drawn
        at full resolution, lifted slightly above it), which keeps a redraw fast.
        """
        if not self.nested or self.mesh == "pial":
            return tuple((c, f, s) for c, f, s in zip(self.coords, self.faces, self.sulcal))
        coarse = load_surface(self.mesh)
        out = []
        for c, f, s, cf in zip(self.coords, self.faces, self.sulcal, coarse.faces):
            inside = np.zeros(N_FSAVERAGE5, bool)
            inside[f[f < N_FSAVERAGE5]] = True
            if self.is_flat:  # the coarse faces whose corners are all in the fine patch
                cf = cf[inside[cf].all(1)]
            out.append((c[:N_FSAVERAGE5], cf, s[:N_FSAVERAGE5]))
        return tuple(out)

    @cached_property
    def normals(self) -> tuple:
        """Unit vertex normals per hemisphere (area-weighted face normals; +z on a flat mesh)."""
        out = []
        for xyz, tri in zip(self.coords, self.faces):
            if self.is_flat:
                n = np.zeros_like(xyz)
                n[:, 2] = 1.0
                out.append(n)
                continue
            fn = np.cross(xyz[tri[:, 1]] - xyz[tri[:, 0]], xyz[tri[:, 2]] - xyz[tri[:, 0]])
            n = np.zeros_like(xyz)
            for c in range(3):
                np.add.at(n, tri[:, c], fn)
            out.append(n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-9))
        return tuple(out)


def _centre_unused(coords: np.ndarray, faces: np.ndarray) -> np.ndarray:
    used = np.zeros(len(coords), bool)
    used[faces.ravel()] = True
    out = coords.copy()
    if used.any() and not used.all():
        out[~used] = coords[used].mean(0)
    return out


@lru_cache(maxsize=8)
def load_surface(mesh: str = "inflated", directory: str | None = None) -> SurfaceGeometry:
    """The ``mesh`` of both hemispheres (cached; nothing is downloaded).

    Parameters
    ----------
    mesh : str
        ``"inflated"``, ``"pial"`` or ``"flat"``.
    directory : str, optional
        A FreeSurfer subject directory (holding ``surf/``); default: nilearn's bundled fsaverage5.

    Raises
    ------
    DataFormatError
        When a file of ``directory`` is missing or unreadable (naming it), or it has no flat patch.
    """
    if mesh not in MESHES:
        raise ValueError(f"mesh must be one of {MESHES}, got {mesh!r}")
    if directory is not None:
        return _load_freesurfer(mesh, Path(directory).expanduser())
    from nilearn.datasets import load_fsaverage, load_fsaverage_data

    poly = load_fsaverage("fsaverage5")[mesh]
    sulc = load_fsaverage_data(mesh="fsaverage5", data_type="sulcal")
    faces = tuple(np.asarray(poly.parts[h].faces, dtype=np.int32) for h in HEMIS)
    coords = tuple(_centre_unused(np.asarray(poly.parts[h].coordinates, dtype=np.float32), f)
                   for h, f in zip(HEMIS, faces))
    sulcal = np.stack([np.asarray(sulc.data.parts[h]).ravel() > 0 for h in HEMIS])
    return SurfaceGeometry(mesh, coords, faces, sulcal)


def _read_geometry(path: Path):
    import nibabel as nib

    if not path.is_file():
        raise DataFormatError(f"{path} not found (a FreeSurfer surface)")
    try:
        coords, faces = nib.freesurfer.read_geometry(str(path))
    except Exception as exc:  # nibabel raises several types for damaged files
        raise DataFormatError(f"{path}: cannot read as a FreeSurfer surface ({exc})") from exc
    return np.asarray(coords, np.float32), np.asarray(faces, np.int32)


def _read_sulc(surf: Path, hemi: str, n: int) -> np.ndarray:
    import nibabel as nib

    path = surf / f"{hemi}.sulc"
    if not path.is_file():
        return np.zeros(n, bool)  # no shading: one grey
    try:
        sulc = np.asarray(nib.freesurfer.read_morph_data(str(path)))
    except Exception as exc:
        raise DataFormatError(f"{path}: cannot read as FreeSurfer morphometry data ({exc})") from exc
    if sulc.shape != (n,):
        raise DataFormatError(f"{path}: {sulc.size} values, the surface has {n} vertices")
    return sulc > 0


def read_patch(path, n_vertices: int) -> tuple[np.ndarray, np.ndarray]:
    """A FreeSurfer binary patch (``?h.full.flat.patch.3d``): its vertices' 3-D positions.

    Returns
    -------
    coords : ndarray, float32, (n_vertices, 3)
        NaN for the vertices the patch does not hold.
    inside : ndarray, bool, (n_vertices,)
    """
    path = Path(path)
    raw = path.read_bytes()
    if len(raw) < 8:
        raise DataFormatError(f"{path}: too short for a FreeSurfer patch")
    version, n = np.frombuffer(raw[:8], ">i4")
    if version != -1 or n < 0 or len(raw) != 8 + 16 * n:
        raise DataFormatError(f"{path}: not a FreeSurfer binary patch (version {version}, {n} points, "
                              f"{len(raw)} bytes)")
    rec = np.frombuffer(raw[8:], np.dtype([("vno", ">i4"), ("xyz", ">f4", 3)]))
    vno = np.abs(rec["vno"]) - 1  # 1-based, negative on the border
    if n and (vno.min() < 0 or vno.max() >= n_vertices):
        raise DataFormatError(f"{path}: vertex numbers outside 1..{n_vertices}")
    coords = np.full((n_vertices, 3), np.nan, np.float32)
    coords[vno] = rec["xyz"]
    inside = np.zeros(n_vertices, bool)
    inside[vno] = True
    return coords, inside


def find_patch(surf: Path, hemi: str) -> Path | None:
    for pattern in PATCH_NAMES:
        p = surf / pattern.format(hemi=hemi)
        if p.is_file():
            return p
    return None


def _load_freesurfer(mesh: str, directory: Path) -> SurfaceGeometry:
    surf = directory / "surf"
    coords, faces, sulcal = [], [], []
    for hemi in FS_HEMIS:
        xyz, tri = _read_geometry(surf / f"{hemi}.{'inflated' if mesh == 'flat' else mesh}")
        if mesh == "flat":
            patch = find_patch(surf, hemi)
            if patch is None:
                raise DataFormatError(f"{surf}: no flat patch ({', '.join(p.format(hemi=hemi) for p in PATCH_NAMES)})")
            flat, inside = read_patch(patch, len(xyz))
            tri = tri[inside[tri].all(1)]
            xyz = _centre_unused(np.nan_to_num(flat[:, [0, 1, 2]]), tri)
            xyz[:, 2] = 0.0
        coords.append(xyz)
        faces.append(tri)
        sulcal.append(_read_sulc(surf, hemi, len(xyz)))
    if coords[0].shape != coords[1].shape:
        raise DataFormatError(f"{surf}: the hemispheres have {len(coords[0])} and {len(coords[1])} vertices")
    nested = len(coords[0]) > N_FSAVERAGE5 and sphere_coordinates(str(directory)) is not None
    return SurfaceGeometry(mesh, tuple(coords), tuple(faces), np.stack(sulcal), name=directory.name,
                           source=str(directory), nested=nested)


def has_surfaces(directory) -> bool:
    """``directory`` is a FreeSurfer subject directory with both inflated surfaces."""
    if directory is None:
        return False
    surf = Path(directory).expanduser() / "surf"
    return all((surf / f"{h}.inflated").is_file() for h in FS_HEMIS)


def has_flat_patches(directory) -> bool:
    surf = Path(directory).expanduser() / "surf"
    return all(find_patch(surf, h) is not None for h in FS_HEMIS)


def surface_vertex_count(directory) -> int:
    """Vertices per hemisphere of the directory's inflated surface (read from the file header)."""
    return load_surface("inflated", str(Path(directory).expanduser())).n_vertices


# ------------------------------------------------------------------------------------------------
# full resolution -> fsaverage5

@lru_cache(maxsize=4)
def sphere_coordinates(directory: str) -> tuple | None:
    """Both hemispheres' sphere (``?h.sphere.reg``, else ``?h.sphere``), or None when missing.

    Returns None too when the sphere's first 10,242 vertices are not fsaverage5's (a mesh that is
    not an icosahedral fsaverage), so nothing is averaged into the wrong vertices.
    """
    from nilearn.datasets import load_fsaverage

    surf = Path(directory).expanduser() / "surf"
    ico5 = load_fsaverage("fsaverage5")["sphere"]
    out = []
    for hemi, part in zip(FS_HEMIS, HEMIS):
        path = next((surf / p.format(hemi=hemi) for p in SPHERE_NAMES if (surf / p.format(hemi=hemi)).is_file()), None)
        if path is None:
            return None
        xyz, _ = _read_geometry(path)
        ref = np.asarray(ico5.parts[part].coordinates, np.float64)
        if len(xyz) < N_FSAVERAGE5:
            return None
        unit = xyz[:N_FSAVERAGE5] / np.linalg.norm(xyz[:N_FSAVERAGE5], axis=1, keepdims=True)
        if np.abs(unit - ref / np.linalg.norm(ref, axis=1, keepdims=True)).max() > 1e-3:
            return None
        out.append(xyz)
    return tuple(out)


def nearest_parents(spheres: tuple) -> np.ndarray:
    """For every vertex of each hemisphere's sphere, its nearest fsaverage5 vertex (by direction).

    Returns
    -------
    ndarray, int64, (2, n_vertices)
    """
    from nilearn.datasets import load_fsaverage
    from scipy.spatial import cKDTree

    ico5 = load_fsaverage("fsaverage5")["sphere"]
    out = []
    for xyz, part in zip(spheres, HEMIS):
        ref = np.asarray(ico5.parts[part].coordinates, np.float64)
        tree = cKDTree(ref / np.linalg.norm(ref, axis=1, keepdims=True))
        _, idx = tree.query(xyz / np.linalg.norm(xyz, axis=1, keepdims=True))
        out.append(idx)
    return np.stack(out).astype(np.int64)


def downsample(full: np.ndarray, parents: np.ndarray | None = None, categorical: bool = False) -> np.ndarray:
    """A full-resolution fsaverage map on fsaverage5.

    Parameters
    ----------
    full : ndarray, (2, N)
        Values of both hemispheres on an icosahedral fsaverage mesh (N >= 10,242); NaN = none.
    parents : ndarray of int, (2, N), optional
        Nearest fsaverage5 vertex of every vertex (:func:`nearest_parents`). Continuous values are
        then averaged over every vertex whose parent is a fsaverage5 vertex; without it (or for
        categorical ids) each fsaverage5 vertex keeps its own, nested, value.
    categorical : bool

    Returns
    -------
    ndarray, float64, (2, 10242)
    """
    full = np.asarray(full, dtype=np.float64)
    if full.ndim != 2 or full.shape[0] != 2 or full.shape[1] < N_FSAVERAGE5:
        raise ValueError(f"expected a (2, N >= {N_FSAVERAGE5}) fsaverage map, got {full.shape}")
    nested = full[:, :N_FSAVERAGE5].copy()
    if parents is None or categorical:
        return nested
    out = np.empty_like(nested)
    for h in range(2):
        ok = np.isfinite(full[h])
        total = np.bincount(parents[h][ok], weights=full[h][ok], minlength=N_FSAVERAGE5)
        count = np.bincount(parents[h][ok], minlength=N_FSAVERAGE5)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[h] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return out


# ------------------------------------------------------------------------------------------------
# borders

def border_segments(labels: np.ndarray, geom: SurfaceGeometry, hemi: int, lift: float = 0.4) -> np.ndarray:
    """Line segments along the borders between labels on one hemisphere, for a plotly line trace.

    Inside each face whose vertices carry different labels (at least one of them > 0), the
    midpoints of its mixed edges are joined (through the face centre when all three differ).

    Parameters
    ----------
    labels : ndarray of int, (n_vertices,)
        Label per vertex; 0 or negative = no region.
    geom : SurfaceGeometry
    hemi : int
        0 = left, 1 = right.
    lift : float
        Millimetres along the vertex normals, so the lines sit above the surface.

    Returns
    -------
    ndarray, float32, (n, 3)
        Points; consecutive segments are separated by a row of NaN.
    """
    labels = np.asarray(labels)
    xyz = geom.coords[hemi] + lift * geom.normals[hemi]
    tri = geom.faces[hemi]
    lab = labels[tri]  # (F, 3)
    differ = np.stack([lab[:, 0] != lab[:, 1], lab[:, 1] != lab[:, 2], lab[:, 2] != lab[:, 0]], 1)
    some = (lab > 0).any(1) & differ.any(1)
    tri, differ = tri[some], differ[some]
    mids = np.stack([(xyz[tri[:, 0]] + xyz[tri[:, 1]]) / 2, (xyz[tri[:, 1]] + xyz[tri[:, 2]]) / 2,
                     (xyz[tri[:, 2]] + xyz[tri[:, 0]]) / 2], 1)  # (F, 3 edges, 3)
    gap = np.full((1, 3), np.nan, np.float32)
    two = differ.sum(1) == 2
    pairs = mids[two][differ[two]].reshape(-1, 2, 3)  # the two mixed edges of each face
    parts = [np.concatenate([pairs, np.broadcast_to(gap, (len(pairs), 1, 3))], 1).reshape(-1, 3)]
    three = differ.sum(1) == 3
    if three.any():
        centre = xyz[tri[three]].mean(1)
        for e in range(3):
            seg = np.stack([mids[three][:, e], centre], 1)
            parts.append(np.concatenate([seg, np.broadcast_to(gap, (len(seg), 1, 3))], 1).reshape(-1, 3))
    return np.concatenate(parts).astype(np.float32)
