"""brainit_core.viz.images: fitting and resizing images for display."""
from __future__ import annotations

import numpy as np

from brainit_core.viz.images import fit_image, fit_images, resize_image


def test_fit_image_crops_to_a_centred_square():
    im = np.zeros((20, 40, 3), np.uint8)
    im[:, 10:30] = 200  # the centre square
    out = fit_image(im, 8)
    assert out.shape == (8, 8, 3) and (out == 200).all()
    assert fit_image(np.zeros((5, 5), np.uint8), 4).shape == (4, 4, 3)


def test_fit_images_keeps_images_of_the_right_size_and_fits_the_others():
    same = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    assert fit_images(same, (8, 8)) is same
    out = fit_images([np.zeros((20, 40, 3), np.uint8), np.full((10, 10, 3), 7, np.uint8)], (4, 4))
    assert out.shape == (2, 4, 4, 3) and (out[1] == 7).all()


def test_resize_image_methods():
    im = np.zeros((4, 4, 3), np.uint8)
    im[:2] = 255
    assert resize_image(im, 4) is not None and resize_image(im, 4).shape == (4, 4, 3)
    a, b = resize_image(im, 9), resize_image(im, 9, resample="bilinear")
    assert a.shape == b.shape == (9, 9, 3) and not np.array_equal(a, b)
