"""COCO-like scenes composed from the stimulus library: objects on a photograph, with masks and labels.

A scene is a random square crop of a background photograph (a ``scene`` background of the library:
landscape, sky, water or texture, so that nothing unlabelled stands behind the objects), randomly
scaled and mirrored, with 1-4 objects pasted in order at varied positions and sizes, later objects
occluding earlier ones (alpha compositing of premultiplied sprites). Each object's category is drawn
uniformly from the taxonomy's categories (balanced, so that every category is in about a quarter of
the scenes), then an item uniformly within it; a word/sign object is, when the font is installed,
half of the time a word drawn in DejaVu Sans Bold (on a sign plate or as plain letters).

Scene ``i`` of seed ``s`` is drawn from ``numpy.random.default_rng([s, i])`` alone, so it is the same
whatever batch it is rendered in, and the same for the same library version (item ids follow the
sorted paths of the index).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from brainit_core.data.twin.sprites import WORDS, SpriteCache, render_word
from brainit_core.data.twin.taxonomy import CATEGORIES
from brainit_core.errors import BrainITError

MAX_OBJECTS = 4
_MAX_COVER = 0.5  # a new object may cover at most this fraction of an earlier object's box
_TRIES = 8


@dataclass
class Scenes:
    """Rendered scenes (N scenes of H x W pixels, C = len(categories), K = 4 object slots).

    Attributes
    ----------
    images : numpy.ndarray
        uint8 (N, H, W, 3).
    object_alpha : numpy.ndarray
        uint8 (N, K, H, W): each object's own alpha (0-255) where it was pasted; 0 in empty slots.
    visible_alpha : numpy.ndarray
        uint8 (N, K, H, W): the part of each object left visible by the objects pasted after it.
    object_category : numpy.ndarray
        int8 (N, K): index into ``categories`` of each object, -1 in empty slots.
    n_objects : numpy.ndarray
        int8 (N,): objects per scene, 1-4.
    category_masks : numpy.ndarray
        bool (N, C, H, W): where the visible alpha of the category's objects sums to at least one half.
    labels : numpy.ndarray
        bool (N, C): the image-level multi-label vector, a category's mask not empty.
    objects : list of list of dict
        Per scene, per object: ``category``, ``item`` (library path, or ``None`` for a drawn word),
        ``text`` (drawn words), ``box`` (x0, y0, x1, y1 in pixels, may extend past the border),
        ``flipped``, ``visible`` (fraction of its alpha left visible).
    backgrounds : list of dict
        Per scene: ``path``, ``crop`` (x0, y0, side in the reduced background), ``flipped``.
    categories : tuple of str
    library_version : str
    seed : int
    """

    images: np.ndarray
    object_alpha: np.ndarray
    visible_alpha: np.ndarray
    object_category: np.ndarray
    n_objects: np.ndarray
    category_masks: np.ndarray
    labels: np.ndarray
    objects: list
    backgrounds: list
    categories: tuple
    library_version: str
    seed: int


def _cover(a, b) -> float:
    """Fraction of box ``a``'s area covered by box ``b``."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    area = (a[2] - a[0]) * (a[3] - a[1])
    return max(0, w) * max(0, h) / max(area, 1)


def plan_scene(library, rng: np.random.Generator, size: int, words: bool = True, backgrounds=None) -> dict:
    """Draw one scene's layout: background crop, objects with their boxes (no pixels yet, except drawn words).

    Parameters
    ----------
    library : LibraryIndex
    rng : numpy.random.Generator
        The scene's own generator.
    size : int
        Image side in pixels.
    words : bool
        Draw words with the font (when installed) as half of the word/sign objects.
    backgrounds : list of int, optional
        Background ids to draw from; default ``library.scene_backgrounds()``.

    Returns
    -------
    dict
        ``background`` (id, crop fraction, crop position in [0, 1)^2, flipped) and ``objects``.
    """
    by_cat = library.by_category()
    font = library.font_path() if words else None
    cats = [c for c in CATEGORIES if by_cat[c] or (c == "word" and font is not None)]
    bgs = backgrounds if backgrounds is not None else library.scene_backgrounds()
    if not bgs or not cats:
        raise BrainITError(f"stimulus library {library.version} has no scene backgrounds or no objects to compose; "
                           "is it fully installed? (see docs/data.md)")
    plan = {"background": (int(bgs[rng.integers(len(bgs))]), float(rng.uniform(0.4, 1.0)),
                           float(rng.random()), float(rng.random()), bool(rng.random() < 0.5)), "objects": []}
    n = int(rng.integers(1, MAX_OBJECTS + 1))
    for k in range(n):
        cat = cats[rng.integers(len(cats))]
        ext = rng.uniform(0.45, 0.9) if n == 1 else float(np.exp(rng.uniform(np.log(0.25), np.log(0.7))))
        obj = {"category": cat, "item": None, "text": None, "sprite": None, "flipped": False}
        if cat == "word" and font is not None and (not by_cat["word"] or rng.random() < 0.5):
            text = WORDS[rng.integers(len(WORDS))]
            colour = tuple(int(v) for v in rng.integers(0, 256, 3))
            plate = tuple(int(255 - v * 0.8) if rng.random() < 0.5 else int(v) for v in colour[::-1]) \
                if rng.random() < 0.6 else None
            if plate is not None and abs(np.mean(plate) - np.mean(colour)) < 80:
                plate = (250, 250, 240) if np.mean(colour) < 128 else (20, 30, 40)
            height = max(6, int(size * ext * rng.uniform(0.15, 0.3)))
            obj.update(text=text, sprite=render_word(text, height, colour, plate, font))
            h, w = obj["sprite"].shape[:2]
            if w > size * 0.95:  # a long word shrinks to fit
                w, h = int(size * 0.95), max(4, int(h * size * 0.95 / w))
        else:
            item = library.items[by_cat[cat][rng.integers(len(by_cat[cat]))]]
            bw, bh = item["box"][2] - item["box"][0], item["box"][3] - item["box"][1]
            longest = size * ext * (1.2 if cat == "place" else 1.0)
            w, h = max(3, round(longest * bw / max(bw, bh))), max(3, round(longest * bh / max(bw, bh)))
            obj.update(item=item["id"], flipped=bool(cat != "word" and rng.random() < 0.5))
        for _ in range(_TRIES):
            x0 = int(rng.uniform(-0.15 * w, size - 0.85 * w)) if w < size else int((size - w) / 2)
            y0 = int(rng.uniform(-0.15 * h, size - 0.85 * h)) if h < size else int((size - h) / 2)
            box = (x0, y0, x0 + w, y0 + h)
            if all(_cover(o["box"], box) <= _MAX_COVER for o in plan["objects"]):
                break
        else:
            continue  # no place that leaves the earlier objects visible enough: this object is left out
        obj["box"] = box
        plan["objects"].append(obj)
    return plan


def _paste(canvas: np.ndarray, alpha_out: np.ndarray, sprite: np.ndarray, box) -> None:
    """Composite a premultiplied float sprite (h, w, 4) over ``canvas`` (H, W, 3) at ``box``; write its alpha."""
    size_y, size_x = canvas.shape[:2]
    x0, y0, x1, y1 = box
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, size_x), min(y1, size_y)
    if cx1 <= cx0 or cy1 <= cy0:
        return
    part = sprite[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
    a = part[..., 3:]
    region = canvas[cy0:cy1, cx0:cx1]
    region *= 1.0 - a
    region += part[..., :3]
    alpha_out[cy0:cy1, cx0:cx1] = a[..., 0]


def render_plan(plan: dict, cache: SpriteCache, size: int):
    """Pixels of one planned scene.

    Returns
    -------
    image : numpy.ndarray
        float32 (size, size, 3) in [0, 1].
    alphas : numpy.ndarray
        float32 (n_objects, size, size), each object's own alpha.
    crop : tuple
        (x0, y0, side) of the background crop, in pixels of the reduced background.
    """
    from PIL import Image

    bg_id, frac, px, py, bflip = plan["background"]
    bg = cache.background(bg_id, 3 * size)
    side = max(size, int(min(bg.shape[:2]) * frac))
    x0, y0 = int(px * (bg.shape[1] - side + 1)), int(py * (bg.shape[0] - side + 1))
    im = Image.fromarray(bg).resize((size, size), Image.BILINEAR, box=(x0, y0, x0 + side, y0 + side))
    canvas = np.asarray(im, dtype=np.float32) / 255.0
    if bflip:
        canvas = canvas[:, ::-1].copy()
    alphas = np.zeros((len(plan["objects"]), size, size), np.float32)
    for k, obj in enumerate(plan["objects"]):
        src = obj["sprite"] if obj["sprite"] is not None else cache.sprite(obj["item"])
        w, h = obj["box"][2] - obj["box"][0], obj["box"][3] - obj["box"][1]
        if src.shape[:2] != (h, w):
            src = np.asarray(Image.fromarray(src, "RGBa").resize((w, h), Image.BILINEAR))
        spr = src.astype(np.float32) / 255.0
        if obj["flipped"]:
            spr = spr[:, ::-1]
        _paste(canvas, alphas[k], spr, obj["box"])
    return np.clip(canvas, 0.0, 1.0), alphas, (x0, y0, side)


def visible_alpha(alphas: np.ndarray) -> np.ndarray:
    """What each object shows of its alpha after the objects pasted later: float32 (K, H, W) from (K, H, W)."""
    vis = alphas.copy()
    through = np.ones(alphas.shape[1:], np.float32)  # transmittance of everything pasted after object k
    for k in range(len(alphas) - 1, -1, -1):
        vis[k] *= through
        through *= 1.0 - alphas[k]
    return vis


def render_scenes(library, n: int, seed: int, size: int = 128, start: int = 0, words: bool = True,
                  backgrounds=None, cache: SpriteCache | None = None) -> Scenes:
    """Render scenes ``start .. start + n - 1`` of ``seed``.

    Parameters
    ----------
    library : LibraryIndex
        From :func:`brainit_core.data.twin.library.load_library`.
    n : int
        Number of scenes.
    seed : int
        Scene ``i`` is drawn from ``default_rng([seed, i])``.
    size : int
        Image side in pixels (default 128).
    start : int
        Index of the first scene (render a long sequence in batches).
    words : bool
        Draw words with the library's font as word/sign objects.
    backgrounds : list of int, optional
        Background ids; default the library's ``scene`` backgrounds.
    cache : SpriteCache, optional
        Reuse loaded sprites across calls.

    Returns
    -------
    Scenes
    """
    if n < 0 or size < 16 or seed < 0 or start < 0:
        raise BrainITError(f"render_scenes: n ({n}), seed ({seed}) and start ({start}) must be >= 0 "
                           f"and size ({size}) >= 16")
    cache = cache or SpriteCache(library, max_side=max(256, 2 * size))
    c = len(CATEGORIES)
    images = np.zeros((n, size, size, 3), np.uint8)
    own = np.zeros((n, MAX_OBJECTS, size, size), np.uint8)
    vis_out = np.zeros_like(own)
    cats = np.full((n, MAX_OBJECTS), -1, np.int8)
    counts = np.zeros(n, np.int8)
    masks = np.zeros((n, c, size, size), bool)
    objects, bgs = [], []
    for i in range(n):
        plan = plan_scene(library, np.random.default_rng([seed, start + i]), size, words, backgrounds)
        canvas, alphas, crop = render_plan(plan, cache, size)
        vis = visible_alpha(alphas)
        images[i] = np.round(canvas * 255.0)
        k = len(plan["objects"])
        counts[i] = k
        own[i, :k] = np.round(alphas * 255.0)
        vis_out[i, :k] = np.round(vis * 255.0)
        scene_objects = []
        for j, obj in enumerate(plan["objects"]):
            ci = CATEGORIES.index(obj["category"])
            cats[i, j] = ci
            total = float(alphas[j].sum())
            scene_objects.append({"category": obj["category"], "text": obj["text"], "box": list(obj["box"]),
                                  "item": None if obj["item"] is None else library.items[obj["item"]]["path"],
                                  "flipped": obj["flipped"], "visible": float(vis[j].sum()) / total if total else 0.0})
        for ci in range(c):
            sel = cats[i, :k] == ci
            if sel.any():
                masks[i, ci] = vis[sel].sum(axis=0) >= 0.5
        objects.append(scene_objects)
        bgs.append({"path": library.backgrounds[plan["background"][0]]["path"], "crop": list(crop),
                    "flipped": plan["background"][4]})
    labels = masks.any(axis=(2, 3))
    return Scenes(images, own, vis_out, cats, counts, masks, labels, objects, bgs, CATEGORIES, library.version, seed)
