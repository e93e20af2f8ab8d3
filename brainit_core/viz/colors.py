"""Colours of the maps: matplotlib colormaps as plotly colorscales, category palettes, robust limits."""
from __future__ import annotations

from functools import lru_cache

import numpy as np

CATEGORICAL = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
               "#bcbd22", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d",
               "#31a354", "#756bb1", "#636363", "#9c9ede", "#cedb9c", "#e7ba52", "#e7969c", "#de9ed6")


def hex_colors(rgb) -> np.ndarray:
    """``"#rrggbb"`` strings of RGB rows in [0, 1]."""
    rgb = np.clip(np.round(np.asarray(rgb, dtype=np.float64) * 255), 0, 255).astype(np.int64)
    return np.array([f"#{r:02x}{g:02x}{b:02x}" for r, g, b in rgb])


@lru_cache(maxsize=32)
def colormap_lut(cmap: str, n: int = 256) -> np.ndarray:
    """``n`` hex colours sampled from a matplotlib colormap (cached)."""
    from matplotlib import colormaps

    return hex_colors(colormaps[cmap](np.linspace(0.0, 1.0, n))[:, :3])


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
    return hex_colors([colorsys.hsv_to_rgb(h, 0.65 + 0.3 * (k % 2), 0.85 - 0.25 * (k % 3 == 2))
                       for k, h in enumerate(hues)])


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


def is_signed(values) -> bool:
    """The finite values take both signs clearly (a diverging, symmetric colour map suits them)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return False
    lo, hi = np.percentile(v, [2, 98])
    return bool(lo < 0 < hi and min(-lo, hi) > 0.1 * max(-lo, hi))


def discrete_colorscale(n: int) -> list:
    """A stepped plotly colorscale giving id ``k`` of ``0..n-1`` the colour ``category_colors(n)[k]``.

    Use with ``cmin=-0.5, cmax=n-0.5``.
    """
    colors = category_colors(max(n, 1))
    scale = []
    for k, c in enumerate(colors):
        scale += [[k / len(colors), str(c)], [(k + 1) / len(colors), str(c)]]
    return scale
