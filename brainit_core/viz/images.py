"""Attention over the image grid drawn on the stimulus, with location and pRF markers.

Grids are (h, w) maps over the image (row 0 at the top); they are upsampled bilinearly to the
image size and alpha-blended on it. Marker positions are normalised image coordinates
(x in [0, 1] left to right, y in [0, 1] top to bottom); :func:`degrees_to_image` converts pRF
centres in degrees (x right, y up) to them.
"""
from __future__ import annotations

import numpy as np

from brainit_core.stimulus import IMAGE_DEG


def upsample(grid, size) -> np.ndarray:
    """Bilinear upsampling of an (h, w) map to ``size`` = (H, W); float32 (H, W)."""
    from PIL import Image

    g = np.asarray(grid, dtype=np.float32)
    H, W = int(size[0]), int(size[1])
    return np.asarray(Image.fromarray(g, mode="F").resize((W, H), Image.BILINEAR), dtype=np.float32)


def resize_image(image, size: int, resample: str = "bicubic") -> np.ndarray:
    """uint8 (H, W, 3) image resized to ``size`` x ``size`` (``"bicubic"`` or ``"bilinear"``), for display."""
    from PIL import Image

    img = np.asarray(image, dtype=np.uint8)
    if img.shape[0] == size and img.shape[1] == size:
        return img
    method = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR}[resample]
    return np.asarray(Image.fromarray(img).resize((size, size), method))


def fit_image(image, size: int) -> np.ndarray:
    """An image centre-cropped to a square and resized to ``size`` (bilinear).

    Parameters
    ----------
    image : ndarray, (H, W) grey or (H, W, 3 or 4) colour
    size : int

    Returns
    -------
    ndarray, uint8, (size, size, 3)
    """
    im = np.asarray(image)
    if im.ndim == 2:
        im = np.repeat(im[..., None], 3, axis=2)
    im = im[..., :3].astype(np.uint8)
    h, w = im.shape[:2]
    s = min(h, w)
    im = im[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    return resize_image(im, size, resample="bilinear")


def fit_images(images, hw) -> np.ndarray:
    """Images of any size fitted (:func:`fit_image`) to ``hw`` = (H, W) of a square; unchanged when they
    already have that size.

    Parameters
    ----------
    images : uint8 (N, H', W', 3), or a sequence of images
    hw : tuple of int

    Returns
    -------
    ndarray, uint8, (N, H, W, 3)
    """
    if isinstance(images, np.ndarray) and tuple(images.shape[1:3]) == tuple(hw):
        return images
    return np.stack([fit_image(im, hw[0]) for im in images])


def colorize(values, cmap: str = "inferno", vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """float array -> uint8 RGB with a matplotlib colormap (limits default to min / max)."""
    from matplotlib import colormaps

    v = np.asarray(values, dtype=np.float64)
    lo = np.nanmin(v) if vmin is None else vmin
    hi = np.nanmax(v) if vmax is None else vmax
    t = np.clip((v - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    return (colormaps[cmap](np.nan_to_num(t))[..., :3] * 255).round().astype(np.uint8)


def overlay(image, grid, alpha: float = 0.6, cmap: str = "inferno", vmin: float | None = None,
            vmax: float | None = None, size: int | None = None) -> np.ndarray:
    """Blend an attention grid on an image.

    Parameters
    ----------
    image : ndarray, uint8, (H, W, 3)
    grid : ndarray, (h, w)
        Attention over the image (row 0 at the top).
    alpha : float
        Opacity of the heatmap where it is strongest; it fades with the value, so low attention
        leaves the image visible.
    cmap, vmin, vmax
        Colormap and limits of the heatmap (default: the grid's min and max).
    size : int, optional
        Output side in pixels (default: the image's).

    Returns
    -------
    ndarray, uint8, (S, S, 3)
    """
    img = resize_image(image, size) if size else np.asarray(image, dtype=np.uint8)
    heat = upsample(grid, img.shape[:2])
    g = np.asarray(grid, dtype=np.float64)
    lo = float(g.min()) if vmin is None else vmin
    hi = float(g.max()) if vmax is None else vmax
    t = np.clip((heat - lo) / (hi - lo if hi > lo else 1.0), 0, 1)[..., None]
    a = alpha * (0.35 + 0.65 * t)
    rgb = colorize(heat, cmap, lo, hi).astype(np.float32)
    return (img.astype(np.float32) * (1 - a) + rgb * a).round().clip(0, 255).astype(np.uint8)


def degrees_to_image(x_deg, y_deg, image_deg: float = IMAGE_DEG) -> tuple[np.ndarray, np.ndarray]:
    """Visual-field degrees (x right, y up, 0 = fixation) -> normalised image (x, y top-down)."""
    return np.asarray(x_deg) / image_deg + 0.5, 0.5 - np.asarray(y_deg) / image_deg


def centroid_to_image(cx: float, cy: float) -> tuple[float, float]:
    """:func:`~brainit_core.analysis.attention.attention_centroid` coordinates ([-1, 1], y up) -> normalised image."""
    return (cx + 1) / 2, (1 - cy) / 2


def centroid_markers(centroid, prf_deg=None) -> list[dict]:
    """Markers for :func:`attention_figure`: a token's attention centroid and, optionally, its pRF centroid.

    Parameters
    ----------
    centroid : (float, float)
        Attention centroid in [-1, 1] (x right, y up), as
        :func:`~brainit_core.analysis.attention.attention_centroid` gives it.
    prf_deg : (float, float), optional
        Mean pRF centre of the token's voxels in degrees (x right, y up).

    Returns
    -------
    list of dict
    """
    x, y = centroid_to_image(*centroid)
    out = [{"x": [x], "y": [y], "name": "attention centroid", "symbol": "x", "color": "#00e5ff",
            "text": ["attention centroid"]}]
    if prf_deg is not None:
        px, py = degrees_to_image(prf_deg[0], prf_deg[1])
        out.append({"x": [px], "y": [py], "name": "truth: mean pRF of its voxels", "symbol": "circle-open",
                    "color": "#7CFC00", "text": [f"pRF centroid ({prf_deg[0]:+.1f}, {prf_deg[1]:+.1f}) deg"]})
    return out


def attention_figure(image, grid=None, *, markers=None, cell=None, alpha: float = 0.6, cmap: str = "inferno",
                     size: int = 256, title: str | None = None, height: int = 330):
    """The stimulus with an attention heatmap, markers and a highlighted grid cell (plotly).

    Parameters
    ----------
    image : ndarray, uint8, (H, W, 3)
    grid : ndarray, (h, w), optional
        Attention over the image; ``None`` draws the image alone.
    markers : list of dict, optional
        Each ``{"x": [...], "y": [...], "name": str, "symbol": str, "color": str, "text": [...]}``
        with normalised coordinates.
    cell : tuple, optional
        ``((h, w), (row, col))``: a grid cell to outline (the selected query location).
    alpha, cmap
        Heatmap opacity and colormap.
    size : int
        Displayed image side in pixels.
    title : str, optional
    height : int

    Returns
    -------
    plotly.graph_objects.Figure
    """
    import plotly.graph_objects as go

    shown = overlay(image, grid, alpha, cmap, size=size) if grid is not None else resize_image(image, size)
    fig = go.Figure(go.Image(z=shown, hoverinfo="skip"))
    for m in markers or []:
        xs = np.asarray(m["x"], dtype=np.float64) * size
        ys = np.asarray(m["y"], dtype=np.float64) * size
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", name=m.get("name", ""), text=m.get("text"),
                                 hovertemplate="%{text}<extra></extra>" if m.get("text") is not None else None,
                                 marker={"symbol": m.get("symbol", "circle"), "size": m.get("size", 11),
                                         "color": m.get("color", "#00e5ff"),
                                         "line": {"width": 1.5, "color": "white"}}))
    if cell is not None:
        (h, w), (r, c) = cell
        fig.add_shape(type="rect", x0=c * size / w, x1=(c + 1) * size / w, y0=r * size / h, y1=(r + 1) * size / h,
                      line={"color": "#00e5ff", "width": 3})
    fig.update_xaxes(visible=False, range=[0, size])
    fig.update_yaxes(visible=False, range=[size, 0], scaleanchor="x")
    fig.update_layout(height=height, margin={"l": 0, "r": 0, "t": 28 if title else 4, "b": 0},
                      title={"text": title, "x": 0.02, "font": {"size": 13}} if title else None,
                      showlegend=bool(markers), legend={"orientation": "h", "y": -0.02, "yanchor": "top",
                                                        "font": {"size": 10}})
    return fig


def feature_tiles(maps, channels, size: int = 96, cmap: str = "viridis", limits=None) -> list:
    """Feature-map channels as colour images, for comparing predicted and true maps.

    Parameters
    ----------
    maps : ndarray, (C, h, w)
    channels : sequence of int
    size : int
        Output side (nearest-neighbour upsampling keeps the grid visible).
    limits : list of (vmin, vmax), optional
        Per chosen channel; share them between predicted and true maps (:func:`channel_limits`).

    Returns
    -------
    list of ndarray, uint8, (size, size, 3)
    """
    from PIL import Image

    m = np.asarray(maps, dtype=np.float64)
    out = []
    for k, ch in enumerate(channels):
        lo, hi = limits[k] if limits is not None else (m[ch].min(), m[ch].max())
        rgb = colorize(m[ch], cmap, lo, hi)
        out.append(np.asarray(Image.fromarray(rgb).resize((size, size), Image.NEAREST)))
    return out


def channel_limits(*maps, channels) -> list:
    """Shared (vmin, vmax) per channel over several (C, h, w) maps (2nd-98th percentile)."""
    out = []
    for ch in channels:
        v = np.concatenate([np.asarray(m)[ch].ravel() for m in maps])
        lo, hi = np.percentile(v, [2, 98])
        out.append((float(lo), float(hi if hi > lo else lo + 1e-6)))
    return out


def token_weights_figure(weights, names=None, title: str = "attention over tokens", height: int = 220):
    """Bar chart of one query's attention over the C brain tokens (plotly), one colour per token.

    Parameters
    ----------
    weights : array-like, (C,)
    names : list of str, optional
        Bar labels (default ``token k``); tick labels are hidden beyond 32 tokens.
    title : str
    height : int

    Returns
    -------
    plotly.graph_objects.Figure
    """
    import plotly.graph_objects as go

    from brainit_core.viz.surface import category_colors

    w = np.asarray(weights, dtype=np.float64)
    names = list(names) if names is not None else [f"token {k}" for k in range(len(w))]
    fig = go.Figure(go.Bar(x=names, y=w, marker_color=list(category_colors(len(w))),
                           hovertemplate="%{x}: %{y:.3f}<extra></extra>"))
    fig.update_layout(height=height, margin={"l": 0, "r": 0, "t": 24, "b": 0},
                      title={"text": title, "font": {"size": 13}}, yaxis={"title": None},
                      xaxis={"showticklabels": len(w) <= 32})
    return fig
