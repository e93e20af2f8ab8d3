"""Exports of a reconstruction grid: a PNG of its columns side by side and its per-image metrics as CSV."""
from __future__ import annotations

import csv
import io

import numpy as np

from brainit_core.viz.images import resize_image

METRIC_FIELDS = ("subject", "image_id", "reconstruction", "PixCorr", "SSIM")


def metrics_csv(rows: list[dict]) -> str:
    """Rows of :meth:`brainit_core.reconstruction.grids.GridResult.rows` as CSV text."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(METRIC_FIELDS), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: r[k] for k in METRIC_FIELDS})
    return buf.getvalue()


def grid_image(columns: dict, cell: int = 128, pad: int = 4, header: int = 18) -> np.ndarray:
    """Columns of images side by side, one row per image, with a header naming each column.

    Parameters
    ----------
    columns : dict
        Column name -> uint8 (N, H, W, 3); all with the same N.
    cell : int
        Size of each image in the grid (pixels).

    Returns
    -------
    uint8 (header + N * (cell + pad) + pad, n_columns * (cell + pad) + pad, 3)
    """
    from PIL import Image, ImageDraw

    names = list(columns)
    n = {len(v) for v in columns.values()}
    if len(n) != 1:
        raise ValueError(f"all columns need the same number of images, got {sorted(n)}")
    n = n.pop()
    W = len(names) * (cell + pad) + pad
    H = header + n * (cell + pad) + pad
    canvas = Image.new("RGB", (W, H), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for c, name in enumerate(names):
        x = pad + c * (cell + pad)
        draw.text((x + 2, 3), name, fill=(0, 0, 0))
        for r, im in enumerate(columns[name]):
            tile = Image.fromarray(resize_image(im, cell, resample="bilinear"))
            canvas.paste(tile, (x, header + r * (cell + pad)))
    return np.asarray(canvas)


def grid_png(columns: dict, cell: int = 128) -> bytes:
    """:func:`grid_image` encoded as PNG bytes (for a download button)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(grid_image(columns, cell=cell)).save(buf, format="PNG")
    return buf.getvalue()
