"""brainit_core.viz.grids: a reconstruction grid as PNG and its metrics as CSV."""
from __future__ import annotations

import io

import numpy as np
import pytest

from brainit_core.reconstruction.grids import GridResult
from brainit_core.viz.grids import grid_image, grid_png, metrics_csv


def test_rows_csv_and_png_grid():
    ims = np.zeros((2, 8, 8, 3), np.uint8)
    ims[1] = 255
    g = GridResult("s", np.array([4, 9]), {"ground truth": ims, "fused": ims},
                         {"fused": {"PixCorr": np.array([0.5, 0.25]), "SSIM": np.array([0.1, 0.2])}})
    text = metrics_csv(g.rows())
    assert text.splitlines() == ["subject,image_id,reconstruction,PixCorr,SSIM", "s,4,fused,0.5,0.1", "s,9,fused,0.25,0.2"]
    grid = grid_image(g.images, cell=16, pad=2, header=10)
    assert grid.shape == (10 + 2 * 18 + 2, 2 * 18 + 2, 3)
    assert (grid[10 + 18 + 4, 2 + 4] == 255).all() and (grid[10 + 4, 2 + 4] == 0).all()  # row 2 white, row 1 black
    from PIL import Image

    assert Image.open(io.BytesIO(grid_png(g.images))).size == (2 * 132 + 4, 18 + 2 * 132 + 4)
    with pytest.raises(ValueError, match="same number"):
        grid_image({"a": ims, "b": ims[:1]})
