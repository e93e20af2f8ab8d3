"""Figures of docs/data.md, "Twin v2": stimuli with masks and labels, selectivity, the in-silico experiment.

Run (after `twin build` and `scripts/bench_twin_selectivity.py --json FILE`):
  .venv/bin/python scripts/make_twin_v2_figures.py --data ~/.brainit/twin-demo-seed0 --bench FILE --out docs/img
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def stimuli_figure(data, out: Path, n=8):
    """Test images of the twin, their category masks (re-rendered, full resolution) and labels, and OOD photos."""
    from brainit_core.data import load_dataset
    from brainit_core.data.twin import load_ground_truth
    from brainit_core.data.twin.library import load_library
    from brainit_core.data.twin.scenes import render_scenes
    from brainit_core.data.twin.taxonomy import CATEGORIES, CATEGORY_LABELS

    ds, gt = load_dataset(data), load_ground_truth(data)
    s = render_scenes(load_library(), n, seed=gt["stimuli"]["scene_seed"], size=ds.info.image_size)
    assert np.array_equal(s.images, ds.images(np.arange(n))), "the library changed since the twin was built"
    ood = ds.images(ds.image_set("ood")[:n])
    colours = plt.cm.tab10(np.arange(len(CATEGORIES)))[:, :3]
    fig, axes = plt.subplots(3, n, figsize=(1.9 * n, 6.4))
    for k in range(n):
        axes[0, k].imshow(s.images[k])
        axes[0, k].set_title("\n".join(CATEGORY_LABELS[c] for c, on in zip(CATEGORIES, s.labels[k]) if on), fontsize=7)
        overlay = np.ones(s.images.shape[1:])
        for c in range(len(CATEGORIES)):
            overlay[s.category_masks[k, c]] = colours[c]
        axes[1, k].imshow(overlay)
        axes[2, k].imshow(ood[k])
    for ax in axes.ravel():
        ax.axis("off")
    names = gt["stimuli"]["ood"]["photographs"]
    axes[2, 0].set_title("OOD: " + ", ".join(x.split(":")[-1].split("/")[-1] for x in names[:n]), fontsize=7, loc="left")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[c]) for c in range(len(CATEGORIES))]
    fig.legend(handles, [CATEGORY_LABELS[c] for c in CATEGORIES], loc="lower center", ncol=len(CATEGORIES), fontsize=8)
    fig.suptitle("Twin v2 test images with their labels (top), category masks (middle), first OOD images (bottom)")
    fig.savefig(out / "twin_v2_stimuli.png", dpi=80, bbox_inches="tight")
    plt.close(fig)


def selectivity_figure(bench: dict, out: Path):
    """d' per patch on test composites (measured) and each patch's response to each photograph."""
    from brainit_core.data.twin.geometry import PATCHES

    report, names, table = bench["report"], bench["photos"], np.array(bench["photo_table"])
    fig = plt.figure(figsize=(13, 7.5))
    ax = fig.add_axes([0.05, 0.12, 0.33, 0.8])
    x = np.arange(len(PATCHES))
    for off, key, label in ((-0.18, "category_selectivity_dprime", ">= 2% vs the rest"),
                            (0.18, "category_selectivity_localizer", "localizer: >= 5% vs absent")):
        vals = np.array([[r[key].get(p, np.nan) for p in PATCHES] for r in report.values()], float)
        ax.bar(x + off, np.nanmean(vals, 0), 0.34, label=label)
        for row in vals:
            ax.plot(x + off, row, "k.", ms=4)
    ax.axhline(1, color="grey", ls="--", lw=1)
    ax.set_xticks(x, PATCHES)
    ax.set_ylabel("d' (mean over subjects; dots: subjects)")
    ax.set_title("Patch selectivity on the test composites (measured betas)", fontsize=9)
    ax.legend(fontsize=8)
    ax2 = fig.add_axes([0.55, 0.05, 0.3, 0.9])
    im = ax2.imshow(table, cmap="RdBu_r", vmin=-2, vmax=2, aspect="auto")
    ax2.set_xticks(range(len(PATCHES)), PATCHES)
    ax2.set_yticks(range(len(names)), [n.split(":")[-1].split("/")[-1][:28] if "images" not in n else
                                       n.split("/")[-4] for n in names], fontsize=7)
    cats = bench.get("photo_categories", [None] * len(names))
    for i, c in enumerate(cats):
        if c in PATCHES:
            ax2.add_patch(plt.Rectangle((PATCHES.index(c) - 0.5, i - 0.5), 1, 1, fill=False, lw=2, ec="k"))
    ax2.set_title("Noiseless response to real photographs (boxed: the patch's category)", fontsize=9)
    fig.colorbar(im, ax=ax2, fraction=0.05)
    fig.savefig(out / "twin_v2_selectivity.png", dpi=80, bbox_inches="tight")
    plt.close(fig)


def insilico_figure(data, out: Path, subject="twin01"):
    """Three real photographs, the ventral network's map of their category, and the twin's response on the cortex."""
    from nilearn import plotting
    from nilearn.datasets import load_fsaverage, load_fsaverage_data

    from brainit_core.data.twin import load_ground_truth, respond
    from brainit_core.data.twin.encoding import default_ventral
    from brainit_core.data.twin.geometry import PATCHES
    from brainit_core.data.twin.photos import package_photos, skimage_photos
    from brainit_core.data.twin.taxonomy import CATEGORIES
    from brainit_core.data.twin.ventral import ventral_maps

    by_name = {p.name: p for p in skimage_photos() + package_photos()}
    chosen = [by_name["skimage:astronaut"], by_name["skimage:coffee"], by_name["sklearn:china.jpg"]]
    gt = load_ground_truth(data, subject)["subject"]
    resp = respond(data, subject, [p.image for p in chosen], repeats=1, noise=False)[:, 0]
    maps = ventral_maps(default_ventral(), [p.image for p in chosen])
    mesh = load_fsaverage("fsaverage5")
    sulc = load_fsaverage_data(mesh="fsaverage5", data_type="sulcal")
    fig = plt.figure(figsize=(15, 3.3 * len(chosen)))
    for row, (photo, r, m) in enumerate(zip(chosen, resp, maps)):
        ax = fig.add_subplot(len(chosen), 5, 5 * row + 1)
        ax.imshow(photo.image)
        ax.set_title(photo.name, fontsize=8)
        ax.axis("off")
        ax = fig.add_subplot(len(chosen), 5, 5 * row + 2)
        ax.imshow(m[CATEGORIES.index(photo.category)], cmap="magma", vmin=0, vmax=1)
        ax.set_title(f"ventral network: {photo.category} map", fontsize=8)
        ax.axis("off")
        for col, (hemi, part) in enumerate(((0, "left"), (1, "right"))):
            ax = fig.add_subplot(len(chosen), 5, 5 * row + 3 + col, projection="3d")
            sel = gt["hemispheres"] == hemi
            values = np.zeros(10242)
            values[gt["vertices"][sel]] = r[sel]
            plotting.plot_surf_stat_map(
                (mesh["inflated"].parts[part].coordinates, mesh["inflated"].parts[part].faces), values,
                hemi=part, view="ventral", bg_map=sulc.data.parts[part], cmap="RdBu_r", colorbar=False, axes=ax,
                figure=fig, vmax=2.5, symmetric_cbar=True, threshold=1e-3, title=f"{subject} {part}, ventral view")
        ax = fig.add_subplot(len(chosen), 5, 5 * row + 5)
        vals = [r[gt["area_names"] == p].mean() for p in PATCHES]
        ax.bar(PATCHES, vals, color=["C3" if p == photo.category else "C0" for p in PATCHES])
        ax.axhline(0, color="k", lw=0.5)
        ax.set_title("patch responses (z)", fontsize=8)
    fig.savefig(out / "twin_v2_insilico.png", dpi=75, bbox_inches="tight")
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True)
    ap.add_argument("--bench", required=True, help="JSON written by scripts/bench_twin_selectivity.py --json")
    ap.add_argument("--out", default="docs/img")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stimuli_figure(args.data, out)
    selectivity_figure(json.loads(Path(args.bench).read_text()), out)
    insilico_figure(args.data, out)
    print(f"wrote {out}/twin_v2_stimuli.png, twin_v2_selectivity.png, twin_v2_insilico.png")


if __name__ == "__main__":
    main()
