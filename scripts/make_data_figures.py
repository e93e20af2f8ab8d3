"""Figures for docs/data.md: twin stimuli with their object masks; retinotopic maps on the surface.

Run: .venv/bin/python scripts/make_data_figures.py --data ~/.brainit/twin-demo-seed0 --out docs/img
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def stimuli_figure(data, out: Path, n=6):
    """Twin v1's procedural stimuli (twin v2's: scripts/make_twin_v2_figures.py)."""
    from brainit_core.data.twin.stimuli import CATEGORIES, make_scene
    from brainit_core.data.twin import load_ground_truth

    cfg = load_ground_truth(data)["config"]
    fig, axes = plt.subplots(2, n, figsize=(2.2 * n, 4.6))
    colours = plt.cm.tab10(np.arange(len(CATEGORIES)))[:, :3]
    for k in range(n):
        img, masks, objects = make_scene(np.random.default_rng([cfg["seed"], k]), cfg["image_size"])
        axes[0, k].imshow(img)
        axes[0, k].set_title(", ".join(sorted({o["category"] for o in objects})), fontsize=7)
        overlay = np.ones((*img.shape[:2], 3))
        for c in range(len(CATEGORIES)):
            overlay[masks[c] > 0] = colours[c]
        axes[1, k].imshow(overlay)
    for ax in axes.ravel():
        ax.axis("off")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[c]) for c in range(len(CATEGORIES))]
    fig.legend(handles, CATEGORIES, loc="lower center", ncol=len(CATEGORIES), fontsize=8)
    fig.suptitle("Twin test images (top) and their per-category object masks (bottom)")
    fig.savefig(out / "twin_stimuli.png", dpi=90, bbox_inches="tight")
    plt.close(fig)


def retinotopy_figure(data, out: Path, subject="twin01"):
    from nilearn import plotting
    from nilearn.datasets import load_fsaverage, load_fsaverage_data

    from brainit_core.data.twin import load_ground_truth

    gt = load_ground_truth(data, subject)["subject"]
    mesh = load_fsaverage("fsaverage5")
    sulc = load_fsaverage_data(mesh="fsaverage5", data_type="sulcal")
    polar = np.degrees(np.arctan2(gt["y"], np.abs(gt["x"])))
    ecc = np.hypot(gt["x"], gt["y"])
    fig, axes = plt.subplots(2, 2, figsize=(9, 7), subplot_kw={"projection": "3d"})
    for row, (values, label, cmap) in enumerate(((polar, "polar angle (deg, + upper field)", "RdBu_r"),
                                                 (ecc, "eccentricity (deg)", "viridis"))):
        for col, (hemi, part) in enumerate(((0, "left"), (1, "right"))):
            sel = gt["hemispheres"] == hemi
            m = np.zeros(10242)  # 0 = outside the subject's vertices (hidden by the threshold)
            m[gt["vertices"][sel]] = values[sel]
            plotting.plot_surf_stat_map(
                (mesh["inflated"].parts[part].coordinates, mesh["inflated"].parts[part].faces), m,
                hemi=part, view="posterior", bg_map=sulc.data.parts[part], cmap=cmap, colorbar=col == 1,
                axes=axes[row, col], figure=fig, title=f"{part} hemisphere: {label}" if col == 0 else part,
                symmetric_cbar=row == 0, vmax=90 if row == 0 else 6.5, threshold=1e-3)
    fig.savefig(out / "twin_retinotopy.png", dpi=80, bbox_inches="tight")
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", default="docs/img")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stimuli_figure(args.data, out)
    retinotopy_figure(args.data, out)
    print(f"wrote {out / 'twin_stimuli.png'} and {out / 'twin_retinotopy.png'}")


if __name__ == "__main__":
    main()
