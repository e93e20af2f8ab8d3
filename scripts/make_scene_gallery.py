"""Render 24 twin v2 scenes with their category masks into docs/img/twin_v2_scenes.png, and time the composer.

    .venv/bin/python scripts/make_scene_gallery.py [--seed 0] [--size 128] [--out docs/img/twin_v2_scenes.png]

Each cell is the scene (left) and its category masks (right, one colour per category, legend at the
bottom). It also prints the library's counts and the rendering speed of 500 scenes on one core.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from brainit_core.data.twin.library import load_library  # noqa: E402
from brainit_core.data.twin.scenes import render_scenes  # noqa: E402
from brainit_core.data.twin.sprites import SpriteCache  # noqa: E402
from brainit_core.data.twin.taxonomy import CATEGORIES, CATEGORY_LABELS  # noqa: E402

COLOURS = np.array([(230, 25, 75), (245, 130, 48), (255, 225, 25), (60, 180, 75), (0, 130, 200),
                    (145, 30, 180), (70, 240, 240), (240, 50, 230), (250, 190, 190)], np.uint8)


def mask_image(masks: np.ndarray) -> np.ndarray:
    """(C, H, W) bool -> (H, W, 3) uint8: each pixel the colour of its category, grey where none."""
    out = np.full(masks.shape[1:] + (3,), 40, np.uint8)
    for c in range(len(masks)):
        out[masks[c]] = COLOURS[c]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--out", default="docs/img/twin_v2_scenes.png")
    args = ap.parse_args()
    lib = load_library()
    print(lib.report())
    scenes = render_scenes(lib, 24, args.seed, args.size)
    s, cols, rows, label_h = args.size, 4, 6, 14
    sheet = Image.new("RGB", (cols * (2 * s + 8), rows * (s + label_h + 4) + 40), "white")
    draw = ImageDraw.Draw(sheet)
    for i in range(24):
        x, y = (i % cols) * (2 * s + 8), (i // cols) * (s + label_h + 4)
        sheet.paste(Image.fromarray(scenes.images[i]), (x, y))
        sheet.paste(Image.fromarray(mask_image(scenes.category_masks[i])), (x + s, y))
        names = ", ".join(CATEGORIES[c] for c in np.flatnonzero(scenes.labels[i]))
        draw.text((x + 2, y + s + 1), names, fill="black")
    lx, ly = 4, rows * (s + label_h + 4) + 6
    for c, name in enumerate(CATEGORIES):
        draw.rectangle([lx, ly, lx + 10, ly + 10], fill=tuple(int(v) for v in COLOURS[c]))
        draw.text((lx + 14, ly), CATEGORY_LABELS[name], fill="black")
        lx += 14 + int(draw.textlength(CATEGORY_LABELS[name])) + 12
        if lx > sheet.width - 120:
            lx, ly = 4, ly + 16
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"wrote {args.out}")
    cache = SpriteCache(lib, max_side=max(256, 2 * args.size))
    render_scenes(lib, 50, 999, args.size, cache=cache)  # warm: backgrounds loaded once per process
    t = time.perf_counter()
    timed = render_scenes(lib, 500, args.seed + 1, args.size, cache=cache)
    dt = time.perf_counter() - t
    print(f"rendered 500 scenes of {args.size} px in {dt:.1f} s: {500 / dt:.0f} scenes/s "
          f"({cache.loads} sprite loads); label frequency per category: "
          + ", ".join(f"{c} {f:.2f}" for c, f in zip(CATEGORIES, timed.labels.mean(0))))


if __name__ == "__main__":
    main()
