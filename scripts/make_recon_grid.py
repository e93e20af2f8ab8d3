"""Reconstruction grid for docs/reconstruction.md: ground truth | low-level | semantic | fused, per subject.

Run (shipped demo models on the bundled test slice):
    .venv/bin/python scripts/make_recon_grid.py --run assets/demo/run --generators assets/demo/generators \
        --data assets/demo/dataset --n 6 --out docs/img/recon_grid.png
Prints per-branch PixCorr / SSIM of the images in the grid and the seconds per image.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

ROWS = ("ground truth", "low-level", "semantic", "fused")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True)
    ap.add_argument("--generators", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--subjects", nargs="*", default=None, help="default: every subject of the run")
    ap.add_argument("--n", type=int, default=6, help="test images (columns)")
    ap.add_argument("--offset", type=int, default=0, help="first test image (index into the shared test ids)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default="docs/img/recon_grid.png")
    args = ap.parse_args()

    import torch

    from brainit_core.data import load_dataset
    from brainit_core.metrics.pixel import pixcorr, ssim
    from brainit_core.models.run import BrainITRun
    from brainit_core.reconstruction import BrainITPipeline, Generators

    if args.threads:
        torch.set_num_threads(args.threads)
    run = BrainITRun.load(args.run)
    gens = Generators.load(args.generators, device=run.device, space=run.space)
    pipe = BrainITPipeline(run, gens)
    ds = load_dataset(args.data)
    subjects = [s for s in (args.subjects or run.subjects) if s in ds.subjects]
    shared = None
    for s in subjects:
        ids = ds.subject(s).test_image_ids
        shared = np.sort(ids) if shared is None else np.intersect1d(shared, ids)
    pick = shared[args.offset:args.offset + args.n]
    truth = ds.images(pick)
    rows, labels = [], []
    for s in subjects:
        sub = ds.subject(s)
        betas, ids = sub.average_trials(pick)
        out = pipe(betas, s, mode="fast", seed=[args.seed + int(i) for i in ids], semantic_only=True)
        per = out.timing["per_image"]
        for name, imgs in zip(ROWS, (truth, out.low_level, out.semantic, out.fused)):
            rows.append(imgs)
            labels.append(f"{s}\n{name}")
            if name != "ground truth":
                print(f"{s} {name:10s} PixCorr {pixcorr(truth, imgs):.3f} SSIM {ssim(truth, imgs):.3f}")
        print(f"{s}: {per:.2f} s per image (features + inverter + fusion + semantic-only)")
    n = len(pick)
    fig, axes = plt.subplots(len(rows), n, figsize=(1.3 * n + 1.2, 1.3 * len(rows)), squeeze=False)
    for r, (imgs, label) in enumerate(zip(rows, labels)):
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(imgs[c])
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
    fig.subplots_adjust(left=0.14, right=0.99, top=0.99, bottom=0.01, wspace=0.03, hspace=0.05)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
