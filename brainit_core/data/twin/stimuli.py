"""Stimuli of the twin: procedural scenes with object masks, an OOD set, an unlabeled pool.

Scenes (the COCO analogue) are a background (sky over ground, an indoor wall and floor, a texture,
or a crop of a photograph bundled with scikit-image) with 1-4 objects of eight categories at
random positions, scales and colours, later objects occluding earlier ones. Each scene comes with
one mask per category (what the category-selective patches of the twin respond to) and an object
list. The out-of-distribution set (the NSD-synthetic analogue) holds gratings, noise, chromatic
patterns and words on plain backgrounds.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

CATEGORIES = ("face", "body", "word", "building", "vehicle", "animal", "plant", "round")
_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "hubble_deep_field", "immunohistochemistry")
_PHOTO_CACHE: dict = {}
_LETTERS = "ABCDEFGHKLMNPRSTUVWXYZ"


def _photos(size: int) -> list[np.ndarray]:
    if size not in _PHOTO_CACHE:
        import skimage.data

        out = []
        for name in _PHOTOS:
            try:
                im = np.asarray(getattr(skimage.data, name)())
            except Exception:  # a sample that needs a download is skipped
                continue
            if im.ndim == 2:
                im = np.stack([im] * 3, -1)
            im = Image.fromarray(im[..., :3].astype(np.uint8)).resize((size * 2, size * 2), Image.BILINEAR)
            out.append(np.asarray(im))
        _PHOTO_CACHE[size] = out
    return _PHOTO_CACHE[size]


def _colour(rng, lo=30, hi=230):
    return tuple(int(v) for v in rng.integers(lo, hi, 3))


def _background(rng, size: int) -> Image.Image:
    kind = rng.integers(4)
    if kind == 0:  # sky over ground, horizon at a random height
        img = Image.new("RGB", (size, size), _colour(rng, 120, 250))
        h = int(size * rng.uniform(0.35, 0.75))
        ImageDraw.Draw(img).rectangle([0, h, size, size], fill=_colour(rng, 20, 160))
        return img
    if kind == 1:  # indoor: wall and floor with a skirting line
        img = Image.new("RGB", (size, size), _colour(rng, 90, 230))
        d = ImageDraw.Draw(img)
        h = int(size * rng.uniform(0.55, 0.8))
        d.rectangle([0, h, size, size], fill=_colour(rng, 40, 180))
        d.line([0, h, size, h], fill=_colour(rng, 0, 80), width=max(1, size // 64))
        return img
    if kind == 2:  # texture: smooth coloured noise
        g = rng.standard_normal((8, 8, 3))
        tex = np.asarray(Image.fromarray(((g - g.min()) / np.ptp(g) * 255).astype(np.uint8)).resize(
            (size, size), Image.BICUBIC))
        return Image.fromarray(tex)
    photos = _photos(size)
    p = photos[rng.integers(len(photos))]
    y, x = rng.integers(0, p.shape[0] - size), rng.integers(0, p.shape[1] - size)
    return Image.fromarray(np.ascontiguousarray(p[y:y + size, x:x + size]))


def _draw_object(draw: ImageDraw.ImageDraw, mdraw: ImageDraw.ImageDraw, cat: str, cx, cy, s, rng) -> None:
    """Draw one object on the image and (in white) on its category mask."""
    col = _colour(rng)
    shapes = []  # (method, xy, kwargs) drawn on both
    if cat == "face":
        skin = tuple(int(v) for v in np.array([220, 180, 150]) * rng.uniform(0.55, 1.1))
        shapes.append(("ellipse", [cx - s * .4, cy - s * .5, cx + s * .4, cy + s * .5], dict(fill=skin)))
        d = s * 0.15
        for ex in (cx - s * .17, cx + s * .17):
            draw.ellipse([ex - d / 2, cy - s * .18 - d / 2, ex + d / 2, cy - s * .18 + d / 2], fill=(30, 30, 30))
        shapes_extra = [("line", [cx - s * .15, cy + s * .22, cx + s * .15, cy + s * .22],
                         dict(fill=(120, 30, 30), width=max(1, int(s * .06))))]
    elif cat == "body":
        shapes.append(("ellipse", [cx - s * .14, cy - s * .5, cx + s * .14, cy - s * .22], dict(fill=col)))
        shapes.append(("rectangle", [cx - s * .18, cy - s * .22, cx + s * .18, cy + s * .15], dict(fill=col)))
        shapes.append(("line", [cx - s * .1, cy + s * .15, cx - s * .22, cy + s * .5], dict(fill=col, width=max(1, int(s * .1)))))
        shapes.append(("line", [cx + s * .1, cy + s * .15, cx + s * .22, cy + s * .5], dict(fill=col, width=max(1, int(s * .1)))))
        shapes_extra = []
    elif cat == "word":
        n = int(rng.integers(3, 6))
        text = "".join(_LETTERS[i] for i in rng.integers(0, len(_LETTERS), n))
        w, h = s * 1.2, s * 0.35
        shapes.append(("rectangle", [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dict(fill=_colour(rng, 200, 255))))
        shapes_extra = [("text", (cx - w / 2 + 2, cy - h / 3), dict(text=text, fill=(10, 10, 10)))]
    elif cat == "building":
        w, h = s * 0.7, s
        shapes.append(("rectangle", [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dict(fill=col)))
        win = _colour(rng, 150, 255)
        shapes_extra = [("rectangle", [cx - w / 2 + w * (0.15 + 0.3 * i), cy - h / 2 + h * (0.1 + 0.22 * j),
                                       cx - w / 2 + w * (0.3 + 0.3 * i), cy - h / 2 + h * (0.22 + 0.22 * j)],
                         dict(fill=win)) for i in range(3) for j in range(4)]
    elif cat == "vehicle":
        shapes.append(("rectangle", [cx - s * .5, cy - s * .12, cx + s * .5, cy + s * .15], dict(fill=col)))
        shapes.append(("rectangle", [cx - s * .25, cy - s * .32, cx + s * .2, cy - s * .12], dict(fill=col)))
        for wx in (cx - s * .3, cx + s * .3):
            shapes.append(("ellipse", [wx - s * .12, cy + s * .05, wx + s * .12, cy + s * .29], dict(fill=(20, 20, 20))))
        shapes_extra = []
    elif cat == "animal":
        shapes.append(("ellipse", [cx - s * .4, cy - s * .15, cx + s * .3, cy + s * .2], dict(fill=col)))
        shapes.append(("ellipse", [cx + s * .2, cy - s * .35, cx + s * .5, cy - s * .05], dict(fill=col)))
        for lx in (cx - s * .3, cx - s * .1, cx + s * .05, cx + s * .2):
            shapes.append(("line", [lx, cy + s * .1, lx, cy + s * .45], dict(fill=col, width=max(1, int(s * .07)))))
        shapes_extra = []
    elif cat == "plant":
        shapes.append(("rectangle", [cx - s * .05, cy, cx + s * .05, cy + s * .5], dict(fill=(90, 60, 30))))
        green = tuple(int(v) for v in (rng.integers(10, 80), rng.integers(100, 220), rng.integers(10, 90)))
        shapes.append(("ellipse", [cx - s * .35, cy - s * .5, cx + s * .35, cy + s * .1], dict(fill=green)))
        shapes_extra = []
    else:  # round objects: balls, clocks, plates
        shapes.append(("ellipse", [cx - s * .35, cy - s * .35, cx + s * .35, cy + s * .35], dict(fill=col)))
        shapes_extra = [("ellipse", [cx - s * .12, cy - s * .12, cx + s * .12, cy + s * .12], dict(fill=_colour(rng)))]
    for method, xy, kw in shapes:
        getattr(draw, method)(xy, **kw)
        mkw = {k: (255 if k == "fill" else v) for k, v in kw.items()}
        getattr(mdraw, method)(xy, **mkw)
    for method, xy, kw in shapes_extra:
        getattr(draw, method)(xy, **kw)


def make_scene(rng: np.random.Generator, size: int = 128):
    """One scene.

    Returns
    -------
    image : uint8 (size, size, 3)
    masks : uint8 (n_categories, size, size), 1 where a visible object of that category is
    objects : list of dict (category, x, y, size), in drawing order
    """
    img = _background(rng, size)
    draw = ImageDraw.Draw(img)
    owner = np.full((size, size), -1, np.int16)  # which category owns each pixel (occlusion)
    objects = []
    for _ in range(int(rng.integers(1, 5))):
        cat = int(rng.integers(len(CATEGORIES)))
        s = size * rng.uniform(0.25, 0.6)
        cx, cy = rng.uniform(0.15, 0.85) * size, rng.uniform(0.2, 0.8) * size
        m = Image.new("L", (size, size), 0)
        _draw_object(draw, ImageDraw.Draw(m), CATEGORIES[cat], cx, cy, s, rng)
        owner[np.asarray(m) > 0] = cat
        objects.append({"category": CATEGORIES[cat], "x": float(cx / size), "y": float(cy / size), "size": float(s / size)})
    masks = np.stack([(owner == c) for c in range(len(CATEGORIES))]).astype(np.uint8)
    return np.asarray(img, dtype=np.uint8), masks, objects


def make_ood(rng: np.random.Generator, size: int = 128):
    """One out-of-distribution image (grating, noise, chromatic pattern or word), masks and objects."""
    kind = int(rng.integers(4))
    yy, xx = np.mgrid[0:size, 0:size] / size
    masks = np.zeros((len(CATEGORIES), size, size), np.uint8)
    if kind == 0:
        th, f = rng.uniform(0, np.pi), rng.uniform(2, 12)
        g = 0.5 + 0.5 * np.sin(2 * np.pi * f * (xx * np.cos(th) + yy * np.sin(th)))
        img = np.stack([g] * 3, -1) * 255
        objects = [{"category": "grating"}]
    elif kind == 1:
        img = rng.integers(0, 256, (size // 4, size // 4, 3)).repeat(4, 0).repeat(4, 1)
        objects = [{"category": "noise"}]
    elif kind == 2:
        a, b = np.array(_colour(rng, 0, 255)), np.array(_colour(rng, 0, 255))
        t = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(1, 5) * np.hypot(xx - .5, yy - .5))
        img = a * t[..., None] + b * (1 - t[..., None])
        objects = [{"category": "chromatic"}]
    else:
        im = Image.new("RGB", (size, size), _colour(rng, 150, 255))
        m = Image.new("L", (size, size), 0)
        _draw_object(ImageDraw.Draw(im), ImageDraw.Draw(m), "word", size / 2, size / 2, size * 0.7, rng)
        img = np.asarray(im)
        masks[CATEGORIES.index("word")] = np.asarray(m) > 0
        objects = [{"category": "word"}]
    return np.clip(img, 0, 255).astype(np.uint8), masks, objects
