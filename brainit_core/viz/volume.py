"""Per-voxel maps on a subject's func1pt8mm volume: orthogonal slices and nilearn's interactive viewer.

Values are given on the dataset's voxels (flat C-order indices into the subject's volume grid,
``SubjectData.vertices`` of a func1pt8mm dataset) and drawn over a background image (NSD's
``mean.nii.gz`` or ``brainmask.nii.gz`` of the subject, else the dataset's own voxel mask):

- :func:`slices_figure`: three orthogonal slices (nilearn ``plot_stat_map``, or ``plot_roi`` for
  categorical ids) with ROI outlines, as a matplotlib figure;
- :func:`interactive_html`: nilearn's ``view_img`` (click to move the cut, the value under the cursor
  is shown) as a standalone HTML page that needs no network.

Examples
--------
>>> vol = fill_volume(values, sd.vertices, shape)
>>> fig = slices_figure(vol, affine, background, symmetric=True, unit="s.d.", atlas=(labels, names))
"""
from __future__ import annotations

import re

import numpy as np

from brainit_core.viz.colors import category_colors, value_range


def fill_volume(values, voxels, shape) -> np.ndarray:
    """Scatter per-voxel values into a (X, Y, Z) float32 volume (NaN elsewhere).

    Parameters
    ----------
    values : array-like, (V,)
    voxels : array-like of int, (V,)
        Flat C-order indices into ``shape``.
    shape : tuple of 3 int
    """
    values = np.asarray(values, dtype=np.float32).ravel()
    voxels = np.asarray(voxels, dtype=np.int64).ravel()
    n = int(np.prod(shape))
    if len(values) != len(voxels):
        raise ValueError(f"{len(values)} values for {len(voxels)} voxels")
    if len(voxels) and (voxels.min() < 0 or voxels.max() >= n):
        raise ValueError(f"voxel indices must lie in [0, {n}) for a {tuple(shape)} volume; got {voxels.min()}..{voxels.max()}")
    out = np.full(n, np.nan, np.float32)
    out[voxels] = values
    return out.reshape(tuple(shape))


def _image(data: np.ndarray, affine):
    import nibabel as nib

    return nib.Nifti1Image(np.asarray(data), np.asarray(affine, dtype=np.float64))


def _shown(volume, threshold, categorical) -> np.ndarray:
    v = np.asarray(volume, dtype=np.float32)
    if threshold and not categorical:
        v = np.where(np.abs(v) >= threshold, v, np.nan)
    return v


def slices_figure(volume, affine, background=None, *, categorical: bool = False, n_categories: int | None = None,
                  cmap: str | None = None, vmin: float | None = None, vmax: float | None = None,
                  symmetric: bool = False, threshold: float | None = None, title: str | None = None,
                  value_name: str = "value", unit: str | None = None, atlas=None, cut=None, width: float = 9.0):
    """Three orthogonal slices of a map over a background, with ROI outlines.

    Parameters
    ----------
    volume : ndarray, (X, Y, Z)
        The map; NaN = not shown.
    affine : array-like, (4, 4)
    background : ndarray, (X, Y, Z), optional
        Grey background (the subject's mean image or brain mask).
    categorical, n_categories : bool, int
        Integer ids drawn with the category palette (the V2C clusters).
    cmap, vmin, vmax, symmetric, threshold, title, value_name, unit
        As in :func:`brainit_core.viz.surface.surface_map_figure`.
    atlas : (ndarray (X, Y, Z) of int, list of str), optional
        ROI labels (0 = none) whose outlines are drawn, and their names.
    cut : tuple of 3 float, optional
        World coordinates of the cut (default: nilearn's choice, the centre of the strongest cluster).
    width : float
        Inches.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from nilearn import plotting

    v = _shown(volume, threshold, categorical)
    fig = plt.figure(figsize=(width, width * 0.36))
    bg = _image(background, affine) if background is not None else None
    label = f"{value_name} ({unit})" if unit else value_name
    common = {"bg_img": bg, "figure": fig, "black_bg": False, "draw_cross": False,
              "cut_coords": cut, "display_mode": "ortho", "annotate": True}
    if categorical:
        finite = v[np.isfinite(v)]
        n = int(n_categories or (finite.max() + 1 if finite.size else 1))
        ids = np.where(np.isfinite(v), v + 1, 0).astype(np.int32)
        display = plotting.plot_roi(_image(ids, affine), cmap=ListedColormap(list(category_colors(n))), vmin=1,
                                    vmax=n, colorbar=False, alpha=0.9, **common)
    else:
        lo, hi = value_range(v, vmin, vmax, symmetric)
        data = np.nan_to_num(v, nan=0.0)
        display = plotting.plot_stat_map(
            _image(data, affine), cmap=cmap or ("RdBu_r" if symmetric else "viridis"), vmin=lo if not symmetric else None,
            vmax=max(abs(lo), abs(hi)) if symmetric else hi, symmetric_cbar=symmetric, colorbar=True,
            threshold=max(float(threshold or 0.0), 1e-6), cbar_tick_format="%.2g", **common)
        fig.text(0.995, 0.995, label, ha="right", va="top", fontsize=8, color="#444")
    if title:
        display.title(title, color="black", bgcolor="white", size=11, alpha=0.0)
    if atlas is not None:
        labels, names = atlas
        present = [k for k in np.unique(labels) if k > 0]
        palette = category_colors(max(len(names), 2))
        for k in present:
            display.add_contours(_image((labels == k).astype(np.float32), affine), levels=[0.5],
                                 colors=[str(palette[k % len(palette)])], linewidths=1.0)
    return fig


def interactive_html(volume, affine, background=None, *, categorical: bool = False, cmap: str | None = None,
                     symmetric: bool = False, threshold: float | None = None, vmax: float | None = None,
                     title: str | None = None) -> str:
    """nilearn's interactive slice viewer of the map as a standalone HTML page (no network needed).

    Parameters are those of :func:`slices_figure`. Categorical ids are shown as numbers 1..n.
    """
    from nilearn import plotting

    v = _shown(volume, threshold, categorical)
    data = np.where(np.isfinite(v), v + 1, 0) if categorical else np.nan_to_num(v, nan=0.0)
    lo, hi = value_range(v, None, vmax, symmetric)
    view = plotting.view_img(_image(data.astype(np.float32), affine),
                             bg_img=_image(background, affine) if background is not None else False,
                             threshold=0.5 if categorical else max(float(threshold or 0.0), 1e-6),
                             symmetric_cmap=symmetric and not categorical,
                             cmap=cmap or ("tab20" if categorical else ("RdBu_r" if symmetric else "viridis")),
                             vmax=max(abs(lo), abs(hi)) if symmetric else hi, black_bg=False, title=title,
                             draw_cross=True, annotate=True)
    html = view.get_standalone()
    return re.sub(r"<link[^>]*rel=\"icon\"[^>]*>", "", re.sub(r"<link[^>]*href=\"https?://[^\"]*\"[^>]*>", "", html))
