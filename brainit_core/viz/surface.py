"""Per-vertex maps on cortical meshes as interactive plotly figures.

A figure has one row of two scenes (left, right hemisphere) per mesh: the inflated or pial surface,
the flat map, or both (:func:`surface_map_figure`). The geometry comes from
:mod:`brainit_core.viz.meshes` (nilearn's bundled fsaverage5, or FreeSurfer's fsaverage from files)
and is cached per process. Each hemisphere is drawn as the cached grey mesh (numeric arrays only)
and a compact mesh of the faces that touch a vertex with a value, coloured per face through a numeric
``intensity`` and a colorscale; ROI borders are lines over the surface. Plotly validates only small
arrays on a redraw (``scripts/bench_surface.py`` measures a redraw at fsaverage5 and at the full
163,842-vertex fsaverage).

:func:`surface_figure` is the short form for values on a subject's fsaverage5 vertices
(``SubjectData.vertices`` / ``.hemispheres``).

Examples
--------
>>> fig = surface_figure(values, sd.vertices, sd.hemispheres, view="medial", title="betas")
>>> fig = surface_map_figure([MeshMap(load_surface("flat"), full)], symmetric=True, unit="s.d.")
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from brainit_core.viz.colors import (category_colors, discrete_colorscale, plotly_colorscale,  # noqa: F401
                                     value_range)
from brainit_core.viz.meshes import SurfaceGeometry, border_segments, load_surface

N_VERTICES = 10242  # per hemisphere on fsaverage5
HEMIS = ("left", "right")
MESHES = ("inflated", "pial", "flat")
# eye position of each hemisphere's camera (left, right), in scene units; up = +z except ventral
VIEWS = {
    "lateral": ((-1.3, 0.0, 0.05), (1.3, 0.0, 0.05)),
    "medial": ((1.3, 0.0, 0.05), (-1.3, 0.0, 0.05)),
    "ventral": ((0.0, 0.0, -1.35), (0.0, 0.0, -1.35)),
    "posterior": ((-0.3, -1.05, 0.1), (0.3, -1.05, 0.1)),
}
NAN_GREYS = ("#d9d9d9", "#a6a6a6")  # gyri, sulci
BORDER_COLOR = "#111111"
LIFT_MM = 0.5  # a full-resolution map above the fsaverage5-faced grey cortex behind it
LIGHTING = {"ambient": 0.8, "diffuse": 0.35, "specular": 0.02, "roughness": 0.9, "fresnel": 0.05}
FLAT_LIGHTING = {"ambient": 1.0, "diffuse": 0.0, "specular": 0.0, "roughness": 1.0, "fresnel": 0.0}


def fill_hemispheres(values, vertices, hemispheres, fill=np.nan, n_vertices: int = N_VERTICES) -> np.ndarray:
    """Scatter subject-vertex values onto the full mesh of each hemisphere.

    Parameters
    ----------
    values : array-like, (V,)
        One value per subject vertex (dataset order).
    vertices : array-like of int, (V,)
        Mesh vertex number of each value.
    hemispheres : array-like of int, (V,)
        0 = left, 1 = right.
    fill : float
        Value of the vertices the subject does not have.
    n_vertices : int
        Vertices per hemisphere (10,242 on fsaverage5, 163,842 on fsaverage).

    Returns
    -------
    ndarray, float64, (2, n_vertices)
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    vertices = np.asarray(vertices, dtype=np.int64).ravel()
    hemispheres = np.asarray(hemispheres, dtype=np.int64).ravel()
    if not (len(values) == len(vertices) == len(hemispheres)):
        raise ValueError(f"values ({len(values)}), vertices ({len(vertices)}) and hemispheres "
                         f"({len(hemispheres)}) must have the same length")
    if len(vertices) and (vertices.min() < 0 or vertices.max() >= n_vertices):
        raise ValueError(f"vertex numbers must lie in [0, {n_vertices}); got {vertices.min()}..{vertices.max()}")
    if len(hemispheres) and not np.isin(hemispheres, (0, 1)).all():
        raise ValueError("hemispheres must be 0 (left) or 1 (right)")
    out = np.full((2, n_vertices), fill, dtype=np.float64)
    out[hemispheres, vertices] = values
    return out


def fill_any(values, vertices, hemispheres, n_vertices: int = N_VERTICES) -> np.ndarray:
    """:func:`fill_hemispheres` for numbers (NaN fill) or strings (``""`` fill)."""
    values = np.asarray(values)
    if values.dtype.kind in "fiub":
        return fill_hemispheres(values.astype(np.float64), vertices, hemispheres, n_vertices=n_vertices)
    out = np.full((2, n_vertices), "", dtype=values.dtype if values.dtype.kind == "U" else object)
    out[np.asarray(hemispheres, np.int64), np.asarray(vertices, np.int64)] = values
    return out


def face_values(full_hemi: np.ndarray, faces: np.ndarray, categorical: bool = False) -> np.ndarray:
    """Per-face value of one hemisphere: the mean of its vertices' finite values (NaN if none).

    Categorical maps take the id of the face's first vertex that has one (ids are not averaged).

    Parameters
    ----------
    full_hemi : ndarray, (N,)
    faces : ndarray of int, (F, 3)

    Returns
    -------
    ndarray, float64, (F,)
    """
    out = np.full(len(faces), np.nan)
    touch = np.isfinite(full_hemi)[faces].any(1)  # only these faces get a value (a small part at full resolution)
    v = full_hemi[faces[touch]]  # (F', 3)
    ok = np.isfinite(v)
    n = ok.sum(1)
    if categorical:
        out[touch] = v[np.arange(len(v)), np.argmax(ok, axis=1)]
    else:
        out[touch] = np.where(ok, v, 0.0).sum(1) / n
    return out


def hover_text(full_hemi: np.ndarray, index: np.ndarray, hemi: str = "lh", *, value_name: str = "value",
               category_names=None, extra: dict | None = None, categorical: bool = False) -> list:
    """Hover text of some vertices of one hemisphere: vertex number, extra fields (area, ...), value.

    Parameters
    ----------
    full_hemi : ndarray, (N,)
        The hemisphere's filled map.
    index : ndarray of int, (n,)
        Vertices to describe.
    hemi : str
        ``"lh"`` or ``"rh"``.
    value_name : str
    category_names : sequence of str, optional
        Name of each category id (categorical maps).
    extra : dict of str -> ndarray (N,) of str or float, optional
        More per-vertex fields shown before the value (e.g. ``{"area": areas}``).
    categorical : bool

    Returns
    -------
    list of str, (n,)
    """
    index = np.asarray(index, dtype=np.int64)
    rows = [f"{hemi} vertex {i}" for i in index.tolist()]
    for name, arr in (extra or {}).items():
        col = np.asarray(arr)[index]
        if col.dtype.kind == "f":
            part = [f"<br>{name}: {a:.3g}" if np.isfinite(a) else "" for a in col.tolist()]
        else:
            part = [f"<br>{name}: {a}" if str(a) else "" for a in col.tolist()]
        rows = [r + p for r, p in zip(rows, part)]
    vals = full_hemi[index].tolist()
    if categorical:
        names = list(category_names) if category_names is not None else []
        shown = [("none" if not np.isfinite(v) else (names[int(v)] if int(v) < len(names) else int(v))) for v in vals]
    else:
        shown = ["none" if not np.isfinite(v) else f"{v:.4g}" for v in vals]
    return [f"{r}<br>{value_name}: {s}" for r, s in zip(rows, shown)]


@dataclass
class MeshMap:
    """One row of a figure: a mesh and what is drawn on it.

    Attributes
    ----------
    geometry : SurfaceGeometry
    values : ndarray, (2, n_vertices)
        The map on every vertex of both hemispheres; NaN = not shown (grey).
    hover : dict of str -> ndarray (2, n_vertices)
        More fields of the hover text (e.g. ``{"area": names}``).
    borders : ndarray of int, (2, n_vertices), optional
        Region labels whose borders are drawn as lines (0 = no region).
    """

    geometry: SurfaceGeometry
    values: np.ndarray
    hover: dict = field(default_factory=dict)
    borders: np.ndarray | None = None


@lru_cache(maxsize=16)
def _background(geom: SurfaceGeometry, hemi: int) -> dict:
    """The static grey trace of one hemisphere (sulcal shading), as a plotly trace dict."""
    xyz, tri, sulcal = geom.background[hemi]
    return {"type": "mesh3d", "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2],
            "i": tri[:, 0], "j": tri[:, 1], "k": tri[:, 2], "intensity": sulcal.astype(np.float32),
            "intensitymode": "vertex", "cmin": 0.0, "cmax": 1.0, "showscale": False, "hoverinfo": "skip",
            "colorscale": [[0.0, NAN_GREYS[0]], [1.0, NAN_GREYS[1]]], "name": HEMIS[hemi],
            "showlegend": False, "lighting": FLAT_LIGHTING if geom.is_flat else LIGHTING,
            "lightposition": {"x": 0, "y": 0, "z": 1e5}}


_BORDERS: dict = {}


def _borders(geom: SurfaceGeometry, hemi: int, labels: np.ndarray) -> np.ndarray:
    """:func:`border_segments` of one hemisphere, cached per mesh and labels (an atlas does not change
    between redraws)."""
    import hashlib

    labels = np.ascontiguousarray(labels, dtype=np.int64)
    key = (id(geom), hemi, hashlib.sha1(labels.tobytes()).hexdigest())
    if key not in _BORDERS:
        if len(_BORDERS) > 32:
            _BORDERS.clear()
        pts = border_segments(labels, geom, hemi, lift=0.0 if geom.is_flat else LIFT_MM + 0.4)
        if geom.is_flat:
            pts[:, 2] = 0.5
        _BORDERS[key] = (geom, pts)  # the geometry is kept alive, so its id is not reused
    return _BORDERS[key][1]


VISIBLE = {"lateral": (1, 2), "medial": (1, 2), "posterior": (0, 2), "ventral": (0, 1)}  # axes facing the camera


@lru_cache(maxsize=64)
def _aspect(geom: SurfaceGeometry, hemi: int, view: str) -> dict:
    """The scene's box in proportion to the mesh, sized so what faces the camera fills the scene
    (plotly's "data" aspect keeps a unit volume, which shrinks a brain and blows a flat map up)."""
    xyz = geom.coords[hemi][np.unique(geom.faces[hemi])]
    span = np.ptp(xyz, axis=0).astype(float)
    if geom.is_flat:
        return {"x": 2.2, "y": 2.2 * span[1] / span[0], "z": 0.05}
    span = 1.9 * span / span[list(VISIBLE[view])].max()
    return dict(zip("xyz", span.tolist()))


def _camera(view: str, hemi: int, flat: bool = False, reach: float = 1.3) -> dict:
    """Orthographic camera; ``reach`` (scene units) keeps the eye outside the scene's box (the zoom of an
    orthographic view does not depend on it, but what lies behind the eye is clipped)."""
    if flat:
        return {"eye": {"x": 0, "y": 0, "z": 0.9}, "up": {"x": 0, "y": 1, "z": 0}, "center": {"x": 0, "y": 0, "z": 0},
                "projection": {"type": "orthographic"}}
    eye = np.asarray(VIEWS[view][hemi], dtype=float)
    eye = (eye / np.linalg.norm(eye) * max(reach, 1.3)).round(3).tolist()
    up = {"x": 0, "y": 1, "z": 0} if view == "ventral" else {"x": 0, "y": 0, "z": 1}
    return {"eye": dict(zip("xyz", eye)), "up": up, "center": {"x": 0, "y": 0, "z": 0},
            "projection": {"type": "orthographic"}}


def _colors(values, categorical, n_categories, cmap, vmin, vmax, symmetric, title) -> tuple[dict, int]:
    if categorical:
        finite = values[np.isfinite(values)]
        n_categories = int(n_categories or (finite.max() + 1 if finite.size else 1))
        return ({"colorscale": discrete_colorscale(n_categories), "cmin": -0.5, "cmax": n_categories - 0.5,
                 "showscale": False}, n_categories)
    lo, hi = value_range(values, vmin, vmax, symmetric)
    return ({"colorscale": plotly_colorscale(cmap), "cmin": lo, "cmax": hi, "showscale": True,
             "colorbar": {"title": {"text": title, "side": "right"}, "thickness": 14, "len": 0.75, "x": 1.0}},
            n_categories)


def surface_map_figure(rows, *, view: str = "lateral", categorical: bool = False, category_names=None,
                       n_categories: int | None = None, cmap: str | None = None, vmin: float | None = None,
                       vmax: float | None = None, symmetric: bool = False, threshold: float | None = None,
                       title: str | None = None, value_name: str = "value", unit: str | None = None,
                       height: int = 450, legend: bool = True):
    """Both hemispheres of one or more meshes (one row each) coloured by a map.

    Parameters
    ----------
    rows : list of MeshMap
        Top to bottom (e.g. the inflated mesh, then the flat map).
    view : str
        ``"lateral"``, ``"medial"``, ``"ventral"`` or ``"posterior"`` (per hemisphere; a flat mesh
        is always seen from above).
    categorical : bool
        Colour integer ids with a qualitative palette and a legend instead of a colorbar.
    category_names : sequence of str, optional
        Names of the ids (legend and hover).
    n_categories : int, optional
        Number of ids (fixes the palette across figures; default ``max + 1``).
    cmap : str, optional
        Matplotlib colormap (default ``"viridis"``, ``"RdBu_r"`` when ``symmetric``).
    vmin, vmax : float, optional
        Colour limits (default: 2nd-98th percentile, symmetric around 0 when ``symmetric``).
    symmetric : bool
        Limits symmetric around 0 (signed values).
    threshold : float, optional
        Leave vertices with ``|value| < threshold`` grey (continuous maps).
    title, value_name, unit : str
        Figure title; name of the value (hover, colorbar) and its unit (colorbar).
    height : int
        Pixels per row.
    legend : bool
        Show the legend of categorical maps (at most 24 entries).

    Returns
    -------
    plotly.graph_objects.Figure
    """
    import plotly.graph_objects as go

    if view not in VIEWS:
        raise ValueError(f"view must be one of {tuple(VIEWS)}, got {view!r}")
    cmap = cmap or ("RdBu_r" if symmetric else "viridis")
    shown = []
    for row in rows:
        v = np.asarray(row.values, dtype=np.float64)
        if v.shape != (2, row.geometry.n_vertices):
            raise ValueError(f"values {v.shape} do not fit the {row.geometry.name} mesh (2, {row.geometry.n_vertices})")
        if threshold and not categorical:
            v = np.where(np.abs(v) >= threshold, v, np.nan)
        shown.append(v)
    colorbar_title = f"{value_name} ({unit})" if unit else value_name
    color, n_categories = _colors(shown[0], categorical, n_categories, cmap, vmin, vmax, symmetric, colorbar_title)
    # plain dicts, validated once by go.Figure; hover texts as object arrays (plotly copies them without
    # checking every string): a full-resolution redraw stays within the budget (scripts/bench_surface.py)
    traces, scene_names, n = [], [], len(rows)
    for r, (row, full) in enumerate(zip(rows, shown)):
        geom = row.geometry
        light = {"lighting": FLAT_LIGHTING if geom.is_flat else LIGHTING, "lightposition": {"x": 0, "y": 0, "z": 1e5}}
        for h, hemi in enumerate(("lh", "rh")):
            scene = "scene" if r == 0 and h == 0 else f"scene{2 * r + h + 1}"
            scene_names.append(scene)
            traces.append({**_background(geom, h), "scene": scene})
            fv = face_values(full[h], geom.faces[h], categorical)
            keep = np.isfinite(fv)
            if keep.any():
                tri = geom.faces[h][keep]
                used, local = np.unique(tri, return_inverse=True)
                local = local.reshape(tri.shape).astype(np.int32)
                xyz = geom.coords[h][used]
                if geom.background[h][0] is not geom.coords[h]:  # over a coarser grey mesh: lift it clear
                    xyz = xyz + (0.0 if geom.is_flat else LIFT_MM) * geom.normals[h][used]
                    if geom.is_flat:
                        xyz[:, 2] = 0.25
                texts = hover_text(full[h], used, hemi, value_name=value_name, category_names=category_names,
                                   extra={k: a[h] for k, a in row.hover.items()}, categorical=categorical)
                traces.append({
                    "type": "mesh3d", "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2], "i": local[:, 0],
                    "j": local[:, 1], "k": local[:, 2], "intensity": fv[keep].astype(np.float32),
                    "intensitymode": "cell", "text": np.asarray(texts, dtype=str), "hoverinfo": "text",
                    "name": HEMIS[h], "showlegend": False, "scene": scene, **light,
                    **{**color, "showscale": color["showscale"] and h == 1 and r == 0}})
            if row.borders is not None:
                pts = _borders(geom, h, row.borders[h])
                traces.append({"type": "scatter3d", "x": pts[:, 0], "y": pts[:, 1], "z": pts[:, 2], "mode": "lines",
                               "hoverinfo": "skip", "line": {"color": BORDER_COLOR, "width": 2}, "showlegend": False,
                               "scene": scene, "connectgaps": False, "name": "borders"})
    if categorical and legend:
        present = np.unique(shown[0][np.isfinite(shown[0])]).astype(np.int64)
        if 0 < len(present) <= 24:
            palette = category_colors(n_categories)
            for c in present:
                name = str(category_names[c]) if category_names is not None and c < len(category_names) else str(c)
                traces.append({"type": "scatter3d", "x": [None], "y": [None], "z": [None], "mode": "markers",
                               "name": name, "showlegend": True, "scene": "scene", "hoverinfo": "skip",
                               "marker": {"size": 8, "color": palette[c], "symbol": "square"}})
    axis = {"visible": False, "showbackground": False}
    layout = {
        "height": height * n, "margin": {"l": 0, "r": 0, "t": 36 if title else 8, "b": 0},
        "title": {"text": title, "x": 0.02, "y": 0.98, "font": {"size": 14}} if title else None,
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 0.0, "x": 0.02, "font": {"size": 10},
                   "itemclick": False, "itemdoubleclick": False},
        "paper_bgcolor": "rgba(0,0,0,0)", "uirevision": f"{'-'.join(r.geometry.mesh for r in rows)}-{view}",
        "annotations": [{"text": f"{t} ({row.geometry.mesh})" if n > 1 else t, "x": x, "y": 1 - r / n,
                         "xref": "paper", "yref": "paper", "showarrow": False, "font": {"size": 11, "color": "#666"}}
                        for r, row in enumerate(rows) for t, x in (("left", 0.24), ("right", 0.72))]}
    for r, row in enumerate(rows):
        flat = row.geometry.is_flat
        y0, y1 = 1 - (r + 1) / n, 1 - r / n
        for h in range(2):
            aspect = {"aspectmode": "manual", "aspectratio": _aspect(row.geometry, h, view)}
            layout[scene_names[2 * r + h]] = {
                "xaxis": axis, "yaxis": axis, "zaxis": axis, **aspect,
                "dragmode": "pan" if flat else "orbit", "domain": {"x": [0.48 * h, 0.48 * (h + 1)], "y": [y0, y1]},
                "camera": _camera(view, h, flat, reach=max(aspect["aspectratio"].values()) + 0.5)}
    return go.Figure({"data": traces, "layout": {k: v for k, v in layout.items() if v is not None}})


def surface_figure(values, vertices, hemispheres, *, mesh: str = "inflated", hover: dict | None = None,
                   borders=None, **kw):
    """Both hemispheres of the bundled fsaverage5 coloured by a map given on a subject's vertices.

    Parameters
    ----------
    values : array-like, (V,)
        One value per subject vertex; NaN = not shown (grey). Integer ids when ``categorical``.
    vertices : array-like of int, (V,)
        fsaverage5 vertex numbers (``SubjectData.vertices``).
    hemispheres : array-like of int, (V,)
        0 = left, 1 = right (``SubjectData.hemispheres``).
    mesh : str
        ``"inflated"``, ``"pial"`` or ``"flat"``.
    hover : dict of str -> array-like (V,), optional
        Extra per-vertex fields for the hover text (e.g. ``{"area": area_names}``).
    borders : array-like of int, (V,), optional
        Region label per subject vertex, drawn as borders.
    **kw
        The options of :func:`surface_map_figure` (``view``, ``categorical``, ``cmap``, ...).
    """
    geom = load_surface(mesh)
    full = fill_hemispheres(values, vertices, hemispheres)
    extra = {k: fill_any(v, vertices, hemispheres) for k, v in (hover or {}).items()}
    labels = None
    if borders is not None:
        labels = np.nan_to_num(fill_hemispheres(borders, vertices, hemispheres, fill=0)).astype(np.int64)
    return surface_map_figure([MeshMap(geom, full, extra, labels)], **kw)
