"""Show what the twin's ventral network sees: held-out composites and real photographs, into docs/img/twin_v2_ventral.png.

    .venv/bin/python scripts/ventral_gallery.py [--weights assets/twin/ventral] [--out docs/img/twin_v2_ventral.png]

Each cell: the image as the network sees it (resized to its square input), the predicted category
map (each location coloured by its most probable category where that probability is >= 0.5, dark
where none is), the probability map of the image's top category (white = 1), and for composites the
true category masks (photographs have none). The photographs are scikit-image's, which the network
never saw in training. It also prints, per photograph, each category's probability (the maximum
over the map) as a Markdown table, and (``--json``) writes it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from brainit_core.data.twin.library import load_library  # noqa: E402
from brainit_core.data.twin.scenes import render_scenes  # noqa: E402
from brainit_core.data.twin.taxonomy import CATEGORIES, CATEGORY_LABELS  # noqa: E402
from brainit_core.data.twin.ventral import HELDOUT_SEED, as_batch, load_ventral, ventral_response  # noqa: E402
from brainit_core.fileio import write_json  # noqa: E402

COLOURS = np.array([(230, 25, 75), (245, 130, 48), (255, 225, 25), (60, 180, 75), (0, 130, 200),
                    (145, 30, 180), (70, 240, 240), (240, 50, 230), (250, 190, 190)], np.uint8)
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "coins", "camera")
SIDE = 128


def mask_image(masks: np.ndarray) -> np.ndarray:
    """(C, H, W) bool -> (H, W, 3) uint8: each pixel the colour of its category (the last one on top), dark where none."""
    out = np.full(masks.shape[1:] + (3,), 40, np.uint8)
    for c in range(len(masks)):
        out[masks[c]] = COLOURS[c]
    return out


def predicted_image(maps: np.ndarray) -> np.ndarray:
    """(C, h, w) probabilities -> (SIDE, SIDE, 3): the most probable category where it is >= 0.5."""
    import torch
    import torch.nn.functional as F

    up = F.interpolate(torch.from_numpy(maps[None]), size=(SIDE, SIDE), mode="bilinear", align_corners=False)[0]
    up = up.numpy()
    best = up.argmax(axis=0)
    out = np.full((SIDE, SIDE, 3), 40, np.uint8)
    on = up.max(axis=0) >= 0.5
    out[on] = COLOURS[best[on]]
    return out


def heat_image(prob: np.ndarray) -> np.ndarray:
    im = Image.fromarray(np.round(prob * 255).astype(np.uint8)).resize((SIDE, SIDE), Image.NEAREST)
    return np.repeat(np.asarray(im)[..., None], 3, axis=2)


def photos() -> dict[str, np.ndarray]:
    import skimage.data

    return {name: np.asarray(getattr(skimage.data, name)()) for name in PHOTOS}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=None, help="a trained network (X for X.safetensors/X.json); default the asset")
    ap.add_argument("--composites", type=int, default=6)
    ap.add_argument("--out", default="docs/img/twin_v2_ventral.png")
    ap.add_argument("--json", default=None, help="also write the photographs' probabilities here")
    args = ap.parse_args()
    net = load_ventral(args.weights)
    lib = load_library()
    scenes = render_scenes(lib, args.composites, HELDOUT_SEED, net.config.size)
    real = photos()
    images = list(scenes.images) + list(real.values())
    shown = (as_batch(images, SIDE).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    maps, head, _ = ventral_response(net, images)
    names = [f"held-out {i}" for i in range(args.composites)] + list(real)
    cell_w, cell_h, cols = 4 * SIDE + 12, SIDE + 30, 2
    rows = -(-len(images) // cols)
    sheet = Image.new("RGB", (cols * cell_w, rows * cell_h + 40), "white")
    draw = ImageDraw.Draw(sheet)
    for i, name in enumerate(names):
        x, y = (i % cols) * cell_w, (i // cols) * cell_h
        top = int(maps[i].max(axis=(1, 2)).argmax())
        panels = [shown[i], predicted_image(maps[i]), heat_image(maps[i, top])]
        if i < args.composites:
            panels.append(mask_image(scenes.category_masks[i]))
        for k, panel in enumerate(panels):
            sheet.paste(Image.fromarray(panel), (x + k * SIDE, y))
        if i >= args.composites:
            draw.text((x + 3 * SIDE + 8, y + SIDE // 2 - 6), "(no true mask)", fill="black")
        peaks = maps[i].max(axis=(1, 2))
        best = np.argsort(-peaks)[:3]
        text = f"{name}: " + ", ".join(f"{CATEGORIES[c]} {peaks[c]:.2f}" for c in best)
        if i < args.composites:
            text += "  | true: " + ",".join(CATEGORIES[c] for c in np.flatnonzero(scenes.labels[i]))
        draw.text((x + 2, y + SIDE + 2), text, fill="black")
        draw.text((x + 2, y + SIDE + 14), f"map of {CATEGORIES[top]} in the 3rd panel", fill="grey")
    lx, ly = 4, rows * cell_h + 6
    for c, name in enumerate(CATEGORIES):
        draw.rectangle([lx, ly, lx + 10, ly + 10], fill=tuple(int(v) for v in COLOURS[c]))
        draw.text((lx + 14, ly), CATEGORY_LABELS[name], fill="black")
        lx += 14 + int(draw.textlength(CATEGORY_LABELS[name])) + 12
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"wrote {args.out}\n")
    table = {}
    print("| photo | " + " | ".join(CATEGORY_LABELS[c] for c in CATEGORIES) + " |")
    print("|---|" + "---|" * len(CATEGORIES))
    for j, name in enumerate(real):
        i = args.composites + j
        peaks = maps[i].max(axis=(1, 2))
        table[name] = {"map_max": {c: float(p) for c, p in zip(CATEGORIES, peaks)},
                       "head": {c: float(p) for c, p in zip(CATEGORIES, head[i])}}
        top = set(np.argsort(-peaks)[:2])
        cells = [f"**{p:.2f}**" if c in top else f"{p:.2f}" for c, p in enumerate(peaks)]
        print(f"| {name} | " + " | ".join(cells) + " |")
    if args.json:
        write_json(args.json, table)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
