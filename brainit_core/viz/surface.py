"""Per-vertex maps on nilearn's bundled fsaverage5 surface as interactive plotly figures.

The mesh geometry (both hemispheres, inflated or pial, with sulcal depth for the grey background)
is loaded once per process (:func:`load_surface`, offline: nilearn ships fsaverage5 in its package
data). Each hemisphere is drawn as two traces: the cached grey mesh (numeric arrays only) and a
compact mesh of the faces that touch a vertex with a value, coloured per face through a numeric
``intensity`` and a colorscale. Plotly validates only small arrays on a redraw, so a new map costs
about 0.2 s of CPU (``scripts/bench_surface.py``).

Values are given on a subject's vertices (``SubjectData.vertices``: fsaverage5 vertex numbers,
``SubjectData.hemispheres``: 0 = left, 1 = right) and filled to the full mesh with NaN; faces with
no value are drawn grey, shaded by sulcal depth.

Examples
--------
>>> fig = surface_figure(values, sd.vertices, sd.hemispheres, view="medial", title="betas")
>>> fig = surface_figure(labels, sd.vertices, sd.hemispheres, categorical=True)
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

N_VERTICES = 10242  # per hemisphere on fsaverage5
HEMIS = ("left", "right")
MESHES = ("inflated", "pial")
# eye position of each hemisphere's camera (left, right), in scene units; up = +z except ventral
VIEWS = {
    "lateral": ((-1.3, 0.0, 0.05), (1.3, 0.0, 0.05)),
    "medial": ((1.3, 0.0, 0.05), (-1.3, 0.0, 0.05)),
    "ventral": ((0.0, 0.0, -1.35), (0.0, 0.0, -1.35)),
    "posterior": ((-0.3, -1.05, 0.1), (0.3, -1.05, 0.1)),
}
NAN_GREYS = ("#d9d9d9", "#a6a6a6")  # gyri, sulci
CATEGORICAL = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
               "#bcbd22", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d",
               "#31a354", "#756bb1", "#636363", "#9c9ede", "#cedb9c", "#e7ba52", "#e7969c", "#de9ed6")


@dataclass(frozen=True)
class SurfaceGeometry:
    """Both hemispheres of one fsaverage5 mesh, ready for plotly.

    Attributes
    ----------
    mesh : str
        ``"inflated"`` or ``"pial"``.
    coords : tuple of ndarray, float32, (N_VERTICES, 3)
        Left and right vertex coordinates (mm).
    faces : tuple of ndarray, int32, (20480, 3)
    sulcal : ndarray, bool, (2, N_VERTICES)
        True where the vertex lies in a sulcus (drawn in the darker grey).
    """

    mesh: str
    coords: tuple
    faces: tuple
    sulcal: np.ndarray


@lru_cache(maxsize=len(MESHES))
def load_surface(mesh: str = "inflated") -> SurfaceGeometry:
    """The fsaverage5 ``mesh`` of both hemispheres (cached; nothing is downloaded).

    Parameters
    ----------
    mesh : str
        ``"inflated"`` or ``"pial"``.
    """
    from nilearn.datasets import load_fsaverage, load_fsaverage_data

    if mesh not in MESHES:
        raise ValueError(f"mesh must be one of {MESHES}, got {mesh!r}")
    poly = load_fsaverage("fsaverage5")[mesh]
    sulc = load_fsaverage_data(mesh="fsaverage5", data_type="sulcal")
    coords = tuple(np.asarray(poly.parts[h].coordinates, dtype=np.float32) for h in HEMIS)
    faces = tuple(np.asarray(poly.parts[h].faces, dtype=np.int32) for h in HEMIS)
    sulcal = np.stack([np.asarray(sulc.data.parts[h]).ravel() > 0 for h in HEMIS])
    return SurfaceGeometry(mesh, coords, faces, sulcal)


def fill_hemispheres(values, vertices, hemispheres, fill=np.nan, n_vertices: int = N_VERTICES) -> np.ndarray:
    """Scatter subject-vertex values onto the full mesh of each hemisphere.

    Parameters
    ----------
    values : array-like, (V,)
        One value per subject vertex (dataset order).
    vertices : array-like of int, (V,)
        fsaverage5 vertex number of each value.
    hemispheres : array-like of int, (V,)
        0 = left, 1 = right.
    fill : float
        Value of the vertices the subject does not have.
    n_vertices : int
        Vertices per hemisphere.

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


# ------------------------------------------------------------------------------------------------
# colours

def _hex(rgb: np.ndarray) -> np.ndarray:
    rgb = np.clip(np.round(np.asarray(rgb, dtype=np.float64) * 255), 0, 255).astype(np.int64)
    return np.array([f"#{r:02x}{g:02x}{b:02x}" for r, g, b in rgb])


@lru_cache(maxsize=32)
def colormap_lut(cmap: str, n: int = 256) -> np.ndarray:
    """``n`` hex colours sampled from a matplotlib colormap (cached)."""
    from matplotlib import colormaps

    return _hex(colormaps[cmap](np.linspace(0.0, 1.0, n))[:, :3])


def plotly_colorscale(cmap: str, n: int = 11) -> list:
    """A plotly colorscale sampled from a matplotlib colormap (for the colorbar)."""
    lut = colormap_lut(cmap)
    return [[k / (n - 1), str(lut[round(k / (n - 1) * (len(lut) - 1))])] for k in range(n)]


def category_colors(n: int) -> np.ndarray:
    """``n`` distinct hex colours (a fixed palette, then evenly spaced hues)."""
    if n <= len(CATEGORICAL):
        return np.array(CATEGORICAL[:n])
    import colorsys

    hues = (np.arange(n) * 0.618033988749895) % 1.0
    return _hex([colorsys.hsv_to_rgb(h, 0.65 + 0.3 * (k % 2), 0.85 - 0.25 * (k % 3 == 2)) for k, h in enumerate(hues)])


def value_range(values, vmin=None, vmax=None, symmetric: bool = False) -> tuple[float, float]:
    """Colour limits: given ones, else the 2nd-98th percentile of the finite values."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return (0.0 if vmin is None else float(vmin), 1.0 if vmax is None else float(vmax))
    if symmetric and vmin is None and vmax is None:
        m = float(np.percentile(np.abs(finite), 98)) or 1.0
        return -m, m
    lo = float(np.percentile(finite, 2)) if vmin is None else float(vmin)
    hi = float(np.percentile(finite, 98)) if vmax is None else float(vmax)
    if hi <= lo:
        hi = lo + 1e-6 if vmax is None else hi
        lo = hi - 1e-6 if hi <= lo else lo
    return lo, hi


def discrete_colorscale(n: int) -> list:
    """A stepped plotly colorscale giving id ``k`` of ``0..n-1`` the colour ``category_colors(n)[k]``.

    Use with ``cmin=-0.5, cmax=n-0.5``.
    """
    colors = category_colors(max(n, 1))
    scale = []
    for k, c in enumerate(colors):
        scale += [[k / len(colors), str(c)], [(k + 1) / len(colors), str(c)]]
    return scale


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
    v = full_hemi[faces]  # (F, 3)
    ok = np.isfinite(v)
    n = ok.sum(1)
    if categorical:
        first = np.argmax(ok, axis=1)
        out = v[np.arange(len(v)), first]
        out[n == 0] = np.nan
        return out
    with np.errstate(invalid="ignore"):
        return np.where(n > 0, np.where(ok, v, 0.0).sum(1) / np.maximum(n, 1), np.nan)


# ------------------------------------------------------------------------------------------------
# figures

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
    fields = [(k, np.asarray(v)) for k, v in (extra or {}).items()]
    rows = []
    for i in np.asarray(index, dtype=np.int64).tolist():
        parts = [f"{hemi} vertex {i}"]
        for name, arr in fields:
            a = arr[i]
            if isinstance(a, (float, np.floating)):
                if np.isfinite(a):
                    parts.append(f"{name}: {a:.3g}")
            elif str(a):
                parts.append(f"{name}: {a}")
        v = full_hemi[i]
        if not np.isfinite(v):
            parts.append(f"{value_name}: none")
        elif categorical:
            k = int(v)
            parts.append(f"{value_name}: {category_names[k] if category_names is not None and k < len(category_names) else k}")
        else:
            parts.append(f"{value_name}: {v:.4g}")
        rows.append("<br>".join(parts))
    return rows


@lru_cache(maxsize=2 * len(MESHES))
def _background(mesh: str, hemi: int) -> dict:
    """The static grey trace of one hemisphere (sulcal shading), as a plotly trace dict."""
    geom = load_surface(mesh)
    xyz, tri = geom.coords[hemi], geom.faces[hemi]
    return {"type": "mesh3d", "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2],
            "i": tri[:, 0], "j": tri[:, 1], "k": tri[:, 2], "intensity": geom.sulcal[hemi].astype(np.float32),
            "intensitymode": "vertex", "cmin": 0.0, "cmax": 1.0, "showscale": False, "hoverinfo": "skip",
            "colorscale": [[0.0, NAN_GREYS[0]], [1.0, NAN_GREYS[1]]], "name": ("left", "right")[hemi],
            "showlegend": False, "lighting": LIGHTING, "lightposition": {"x": 0, "y": 0, "z": 1e5}}


LIGHTING = {"ambient": 0.8, "diffuse": 0.35, "specular": 0.02, "roughness": 0.9, "fresnel": 0.05}


def _camera(view: str, hemi: int) -> dict:
    eye = VIEWS[view][hemi]
    up = {"x": 0, "y": 1, "z": 0} if view == "ventral" else {"x": 0, "y": 0, "z": 1}
    return {"eye": dict(zip("xyz", eye)), "up": up, "center": {"x": 0, "y": 0, "z": 0}, "projection": {"type": "orthographic"}}


def surface_figure(values, vertices, hemispheres, *, mesh: str = "inflated", view: str = "lateral",
                   categorical: bool = False, category_names=None, n_categories: int | None = None,
                   cmap: str | None = None, vmin: float | None = None, vmax: float | None = None,
                   symmetric: bool = False, title: str | None = None, value_name: str = "value",
                   hover: dict | None = None, height: int = 450, legend: bool = True):
    """Both hemispheres of fsaverage5 coloured by a per-vertex map, side by side.

    Parameters
    ----------
    values : array-like, (V,)
        One value per subject vertex; NaN = not shown (grey). Integer ids when ``categorical``.
    vertices : array-like of int, (V,)
        fsaverage5 vertex numbers (``SubjectData.vertices``).
    hemispheres : array-like of int, (V,)
        0 = left, 1 = right (``SubjectData.hemispheres``).
    mesh : str
        ``"inflated"`` or ``"pial"``.
    view : str
        ``"lateral"``, ``"medial"``, ``"ventral"`` or ``"posterior"`` (per hemisphere).
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
    title, value_name : str
        Figure title; name of the value in the hover text and on the colorbar.
    hover : dict of str -> array-like (V,), optional
        Extra per-vertex fields for the hover text (e.g. ``{"area": area_names}``).
    height : int
        Pixels.
    legend : bool
        Show the legend of categorical maps (at most 24 entries).

    Returns
    -------
    plotly.graph_objects.Figure
    """
    import plotly.graph_objects as go

    if view not in VIEWS:
        raise ValueError(f"view must be one of {tuple(VIEWS)}, got {view!r}")
    geom = load_surface(mesh)
    full = fill_hemispheres(values, vertices, hemispheres)
    cmap = cmap or ("RdBu_r" if symmetric else "viridis")
    if categorical:
        finite = full[np.isfinite(full)]
        n_categories = int(n_categories or (finite.max() + 1 if finite.size else 1))
        color = {"colorscale": discrete_colorscale(n_categories), "cmin": -0.5, "cmax": n_categories - 0.5,
                 "showscale": False}
    else:
        lo, hi = value_range(full, vmin, vmax, symmetric)
        color = {"colorscale": plotly_colorscale(cmap), "cmin": lo, "cmax": hi, "showscale": True,
                 "colorbar": {"title": {"text": value_name, "side": "right"}, "thickness": 14, "len": 0.75, "x": 1.0}}
    extra = {k: _fill_any(v, vertices, hemispheres) for k, v in (hover or {}).items()}
    traces = []
    for h, hemi in enumerate(("lh", "rh")):
        scene = "scene" if h == 0 else "scene2"
        traces.append(go.Mesh3d(_background(mesh, h), scene=scene))
        # the coloured faces: those touching a vertex with a value, as a compact re-indexed mesh
        fv = face_values(full[h], geom.faces[h], categorical)
        keep = np.isfinite(fv)
        if not keep.any():
            continue
        tri = geom.faces[h][keep]
        used, local = np.unique(tri, return_inverse=True)
        local = local.reshape(tri.shape).astype(np.int32)
        xyz = geom.coords[h][used]
        texts = hover_text(full[h], used, hemi, value_name=value_name, category_names=category_names,
                           extra={k: v[h] for k, v in extra.items()}, categorical=categorical)
        traces.append(go.Mesh3d(
            x=xyz[:, 0], y=xyz[:, 1], z=xyz[:, 2], i=local[:, 0], j=local[:, 1], k=local[:, 2],
            intensity=fv[keep].astype(np.float32), intensitymode="cell", text=texts, hoverinfo="text",
            name=("left", "right")[h], showlegend=False, scene=scene, lighting=LIGHTING,
            lightposition={"x": 0, "y": 0, "z": 1e5}, **{**color, "showscale": color["showscale"] and h == 1}))
    if categorical and legend:
        present = np.unique(full[np.isfinite(full)]).astype(np.int64)
        if 0 < len(present) <= 24:
            palette = category_colors(n_categories)
            for c in present:
                name = str(category_names[c]) if category_names is not None and c < len(category_names) else str(c)
                traces.append(go.Scatter3d(x=[None], y=[None], z=[None], mode="markers", name=name, showlegend=True,
                                           marker={"size": 8, "color": palette[c], "symbol": "square"},
                                           scene="scene", hoverinfo="skip"))
    fig = go.Figure(traces)
    axis = {"visible": False, "showbackground": False}
    scene = {"xaxis": axis, "yaxis": axis, "zaxis": axis, "aspectmode": "data", "dragmode": "orbit"}
    fig.update_layout(
        height=height, margin={"l": 0, "r": 0, "t": 36 if title else 8, "b": 0},
        title={"text": title, "x": 0.02, "y": 0.98, "font": {"size": 14}} if title else None,
        scene={**scene, "domain": {"x": [0.0, 0.48], "y": [0, 1]}, "camera": _camera(view, 0)},
        scene2={**scene, "domain": {"x": [0.48, 0.96], "y": [0, 1]}, "camera": _camera(view, 1)},
        legend={"orientation": "h", "yanchor": "bottom", "y": 0.0, "x": 0.02, "font": {"size": 10},
                "itemclick": False, "itemdoubleclick": False},
        paper_bgcolor="rgba(0,0,0,0)", uirevision=f"{mesh}-{view}",
        annotations=[{"text": t, "x": x, "y": 1.0, "xref": "paper", "yref": "paper", "showarrow": False,
                      "font": {"size": 11, "color": "#666"}} for t, x in (("left", 0.24), ("right", 0.72))])
    return fig


def _fill_any(values, vertices, hemispheres) -> np.ndarray:
    values = np.asarray(values)
    if values.dtype.kind in "fiub":
        return fill_hemispheres(values.astype(np.float64), vertices, hemispheres)
    out = np.full((2, N_VERTICES), "", dtype=values.dtype if values.dtype.kind == "U" else object)
    out[np.asarray(hemispheres, np.int64), np.asarray(vertices, np.int64)] = values
    return out
