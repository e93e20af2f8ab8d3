"""Real photographs the twin's ventral network never saw: its photo check, and the twin's OOD set.

Offline sources, all installed with the project's requirements or the library: the photographs
scikit-image ships (``skimage.data``: an astronaut, a cameraman, a cat, a cup of coffee, a rocket, a
motorcycle, text, coins, textures...), scikit-learn's two sample photographs (a temple, a flower),
matplotlib's portrait of Grace Hopper, and the library's ``closeup`` backgrounds (a ladybird, boats,
an architectural detail, cups, flowers), which scenes never use, so the network was not trained on
them (:mod:`.taxonomy`). Each photo carries the category it
shows (:data:`.taxonomy.CATEGORIES`) or ``None`` (a texture, the sky at night, a micrograph).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SKIMAGE_PHOTOS = (("astronaut", "face"), ("camera", "face"), ("chelsea", "animal"), ("coffee", "food"),
                  ("rocket", "vehicle"), ("stereo_motorcycle", "vehicle"), ("text", "word"), ("page", "word"),
                  ("coins", "object"), ("clock", "object"), ("brick", None), ("grass", None), ("gravel", None),
                  ("moon", None), ("hubble_deep_field", None), ("immunohistochemistry", None))
"""scikit-image's photographs and the category each shows (face/person: the astronaut, the cameraman)."""


@dataclass
class Photo:
    """A real photograph: ``name`` (``skimage:astronaut``, ``library:<path>``), ``category`` (or None), ``image``
    (uint8 (H, W, 3), centre-cropped to a square)."""

    name: str
    category: str | None
    image: np.ndarray


def _square(im: np.ndarray) -> np.ndarray:
    im = np.asarray(im)
    if im.dtype != np.uint8:
        im = (np.clip(im, 0, 1) * 255).astype(np.uint8) if im.dtype.kind == "f" else im.astype(np.uint8)
    if im.ndim == 2:
        im = np.repeat(im[..., None], 3, axis=2)
    im = im[..., :3]
    h, w = im.shape[:2]
    s = min(h, w)
    return np.ascontiguousarray(im[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s])


def skimage_photos() -> list[Photo]:
    """scikit-image's bundled photographs of :data:`SKIMAGE_PHOTOS` (one that needs a download is left out)."""
    import skimage.data

    out = []
    for name, category in SKIMAGE_PHOTOS:
        try:
            im = getattr(skimage.data, name)()
        except Exception:  # not bundled with this scikit-image version (it would need a download)
            continue
        if isinstance(im, tuple):  # stereo_motorcycle: (left, right, disparity)
            im = im[0]
        out.append(Photo(f"skimage:{name}", category, _square(im)))
    return out


OTHER_PHOTOS = (("sklearn:china.jpg", "place"), ("sklearn:flower.jpg", "plant"),
                ("matplotlib:grace_hopper.jpg", "face"))
"""scikit-learn's sample photographs (a temple, a flower) and matplotlib's portrait of Grace Hopper."""


def package_photos() -> list[Photo]:
    """The photographs of :data:`OTHER_PHOTOS` (one whose package lacks it is left out)."""
    out = []
    for name, category in OTHER_PHOTOS:
        package, file = name.split(":")
        try:
            if package == "sklearn":
                from sklearn.datasets import load_sample_image

                im = load_sample_image(file)
            else:
                from matplotlib import cbook
                from PIL import Image

                with cbook.get_sample_data(file) as f:
                    im = np.asarray(Image.open(f).convert("RGB"))
        except Exception:  # an older or trimmed package without its sample data
            continue
        out.append(Photo(name, category, _square(im)))
    return out


def library_photos(library, max_side: int = 512) -> list[Photo]:
    """The library's close-up photographs (backgrounds of kind ``closeup``), reduced to ``max_side``."""
    from brainit_core.data.twin.sprites import SpriteCache

    cache = SpriteCache(library)
    return [Photo(f"library:{library.backgrounds[b]['path']}", library.backgrounds[b]["shows"],
                  _square(cache.background(b, max_side)))
            for b in library.scene_backgrounds(kinds=("closeup",))]


def real_photos(library=None) -> list[Photo]:
    """scikit-image's photographs, scikit-learn's and matplotlib's, then (with ``library``) the library's close-ups."""
    return skimage_photos() + package_photos() + (library_photos(library) if library is not None else [])


def resized(photos, size: int) -> np.ndarray:
    """The photos' images as uint8 (n, size, size, 3) (bilinear, antialiased)."""
    from PIL import Image

    if not photos:
        return np.zeros((0, size, size, 3), np.uint8)
    return np.stack([np.asarray(Image.fromarray(p.image).resize((size, size), Image.BILINEAR, reducing_gap=2.0))
                     for p in photos])
