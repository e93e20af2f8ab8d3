"""Write maps as GIfTI (``.func.gii``), FreeSurfer MGH (``.mgh``) or NIfTI (``.nii.gz``) files and read them back.

A map given on a subject's vertices is filled to the full hemispheres of its mesh (10,242 vertices
each on fsaverage5, 163,842 on fsaverage; vertices the subject lacks get ``fill``, NaN by default)
and written as one file per hemisphere, named FreeSurfer-style ``lh.<name>.<ext>`` /
``rh.<name>.<ext>``, so it opens in FreeSurfer (freeview), Connectome Workbench, nilearn or nibabel
over that mesh. GIfTI files name their hemisphere and mesh in their metadata and the zip of
:func:`surface_full_zip` can carry the mesh itself (``lh.<mesh>.inflated.surf.gii``). A volume map
is one NIfTI file with the subject's affine (:func:`volume_zip`).

Examples
--------
>>> paths = write_surface_map("out/", "token3", values, sd.vertices, sd.hemispheres, fmt="gifti")
>>> full = read_surface_map(paths)      # (2, 10242)
>>> data = surface_map_zip("token3", values, sd.vertices, sd.hemispheres, fmt="mgh")   # bytes
"""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from brainit_core.errors import DataFormatError
from brainit_core.viz.surface import N_VERTICES, fill_hemispheres

FORMATS = {"gifti": ".func.gii", "mgh": ".mgh"}


STRUCTURES = {"lh": "CortexLeft", "rh": "CortexRight"}


def _image(values: np.ndarray, fmt: str, hemi: str | None = None, mesh: str | None = None):
    import nibabel as nib

    v = np.asarray(values, dtype=np.float32)
    if fmt == "gifti":
        meta = {"AnatomicalStructurePrimary": STRUCTURES[hemi]} if hemi else {}
        if mesh:
            meta["Mesh"] = f"{mesh} ({len(v)} vertices)"
        arr = nib.gifti.GiftiDataArray(v, intent="NIFTI_INTENT_NONE", datatype="NIFTI_TYPE_FLOAT32")
        return nib.gifti.GiftiImage(darrays=[arr], meta=nib.gifti.GiftiMetaData(meta))
    if fmt == "mgh":
        return nib.MGHImage(v.reshape(-1, 1, 1), np.eye(4, dtype=np.float32))
    raise ValueError(f"fmt must be one of {tuple(FORMATS)}, got {fmt!r}")


def surface_map_bytes(values, vertices, hemispheres, fmt: str = "gifti", fill: float = np.nan,
                      n_vertices: int = N_VERTICES) -> dict:
    """Encode a per-vertex map, one file per hemisphere, in memory.

    Parameters
    ----------
    values : array-like, (V,)
        One value per subject vertex.
    vertices : array-like of int, (V,)
        fsaverage5 vertex numbers.
    hemispheres : array-like of int, (V,)
        0 = left, 1 = right.
    fmt : str
        ``"gifti"`` or ``"mgh"``.
    fill : float
        Value of vertices outside the subject's set.
    n_vertices : int
        Vertices per hemisphere (10,242 on fsaverage5).

    Returns
    -------
    dict
        ``{"lh": bytes, "rh": bytes}``.
    """
    full = fill_hemispheres(values, vertices, hemispheres, fill=fill, n_vertices=n_vertices)
    return {hemi: _image(full[h], fmt).to_bytes() for h, hemi in enumerate(("lh", "rh"))}


def write_surface_map(directory, name: str, values, vertices, hemispheres, fmt: str = "gifti",
                      fill: float = np.nan, n_vertices: int = N_VERTICES) -> list[Path]:
    """Write ``lh.<name>`` and ``rh.<name>`` (``.func.gii`` or ``.mgh``) into ``directory``.

    Parameters are those of :func:`surface_map_bytes`, plus ``directory`` (created if missing) and
    ``name`` (the map's file stem).

    Returns
    -------
    list of Path
        Left then right hemisphere file.
    """
    directory = Path(directory).expanduser()
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for hemi, data in surface_map_bytes(values, vertices, hemispheres, fmt, fill, n_vertices).items():
        path = directory / f"{hemi}.{name}{FORMATS[fmt]}"
        path.write_bytes(data)
        paths.append(path)
    return paths


def surface_map_zip(name: str, values, vertices, hemispheres, fmt: str = "gifti", fill: float = np.nan,
                    n_vertices: int = N_VERTICES) -> bytes:
    """A zip with ``lh.<name>`` and ``rh.<name>`` (for a single download button)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for hemi, data in surface_map_bytes(values, vertices, hemispheres, fmt, fill, n_vertices).items():
            z.writestr(f"{hemi}.{name}{FORMATS[fmt]}", data)
    return buf.getvalue()


def _geometry_bytes(coords, faces, hemi: str) -> bytes:
    import nibabel as nib

    meta = nib.gifti.GiftiMetaData({"AnatomicalStructurePrimary": STRUCTURES[hemi]})
    return nib.gifti.GiftiImage(darrays=[
        nib.gifti.GiftiDataArray(np.asarray(coords, np.float32), intent="NIFTI_INTENT_POINTSET",
                                 datatype="NIFTI_TYPE_FLOAT32", meta=meta),
        nib.gifti.GiftiDataArray(np.asarray(faces, np.int32), intent="NIFTI_INTENT_TRIANGLE",
                                 datatype="NIFTI_TYPE_INT32")]).to_bytes()


def surface_full_zip(name: str, full, fmt: str = "gifti", mesh: str = "fsaverage5", geometry=None) -> bytes:
    """A zip with ``lh.<name>`` and ``rh.<name>`` of a map already on every vertex of its mesh.

    Parameters
    ----------
    name : str
    full : ndarray, (2, n_vertices)
    fmt : str
        ``"gifti"`` or ``"mgh"``.
    mesh : str
        The mesh's name, written into GIfTI metadata (``"fsaverage5"``, ``"fsaverage"``).
    geometry : SurfaceGeometry, optional
        Added to a GIfTI zip as ``lh.<mesh>.<geometry.mesh>.surf.gii`` / ``rh...``.
    """
    full = np.asarray(full)
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {tuple(FORMATS)}, got {fmt!r}")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for h, hemi in enumerate(("lh", "rh")):
            z.writestr(f"{hemi}.{name}{FORMATS[fmt]}", _image(full[h], fmt, hemi, mesh).to_bytes())
            if fmt == "gifti" and geometry is not None and geometry.n_vertices == full.shape[1]:
                z.writestr(f"{hemi}.{mesh}.{geometry.mesh}.surf.gii",
                           _geometry_bytes(geometry.coords[h], geometry.faces[h], hemi))
    return buf.getvalue()


def volume_zip(name: str, volume, affine) -> bytes:
    """A zip with ``<name>.nii.gz``: the (X, Y, Z) map (NaN outside the voxels) with its affine."""
    import nibabel as nib

    img = nib.Nifti1Image(np.asarray(volume, np.float32), np.asarray(affine, np.float64))
    img.header.set_xyzt_units("mm")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{name}.nii.gz", gzip_bytes(img.to_bytes()))
    return buf.getvalue()


def gzip_bytes(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data, compresslevel=6, mtime=0)


def read_hemisphere(path) -> np.ndarray:
    """One hemisphere's map from a ``.gii`` or ``.mgh`` / ``.mgz`` file, float32 (n_vertices,)."""
    import nibabel as nib

    path = Path(path)
    try:
        img = nib.load(str(path))
    except Exception as e:  # nibabel raises many types for damaged files
        raise DataFormatError(f"{path}: cannot read a surface map ({e})") from e
    if isinstance(img, nib.gifti.GiftiImage):
        if not img.darrays:
            raise DataFormatError(f"{path}: the GIfTI file has no data array")
        data = np.asarray(img.darrays[0].data)
    else:
        data = np.asarray(img.dataobj)
    if data.ndim > 1 and int(np.prod(data.shape[1:])) != 1:
        raise DataFormatError(f"{path}: expected one value per vertex, got shape {data.shape}")
    return data.reshape(-1).astype(np.float32)


def read_surface_map(paths) -> np.ndarray:
    """Read back what :func:`write_surface_map` wrote: (2, n_vertices), left then right."""
    paths = [Path(p) for p in paths]
    if len(paths) != 2:
        raise ValueError(f"give the left and the right hemisphere file, got {len(paths)} paths")
    lh, rh = (read_hemisphere(p) for p in paths)
    if lh.shape != rh.shape:
        raise DataFormatError(f"{paths[0]} has {lh.size} vertices, {paths[1]} has {rh.size}")
    return np.stack([lh, rh])
