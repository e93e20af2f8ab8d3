"""Why the twin's face and food patches are weak: pooling, network and noise, measured apart.

On fresh composites (a scene seed neither the twin nor the ventral network used), for a twin's
subjects (their pRFs, tuning and noise model from the ground truth), prints per patch:

- the ventral network's image-level AUC of the patch's category (map maximum, >= 2% of the image);
- the patch's d' (mean over its vertices; >= 2% vs rest / localizer >= 5% vs absent) with the pRF
  mean of the category map and with the soft maximum (``encoding.PEAK_POWER``), noiseless, with
  the subject's noise (3-trial means; shared + independent), and with independent noise only;
- for face and food, the map's maximum on images without the category (by which other category
  is present) and on images with it, by thirds of its coverage (what the network misses).

Run: .venv/bin/python scripts/twin_patch_pooling.py --data ~/.brainit/twin-demo-seed0 [--net DIR/ventral]
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

import numpy as np  # noqa: E402


def channels(net_path, n, seed):
    from brainit_core.data.twin.encoding import image_channels
    from brainit_core.data.twin.library import load_library
    from brainit_core.data.twin.scenes import render_scenes
    from brainit_core.data.twin.ventral import load_ventral

    net = load_ventral(net_path)
    s = render_scenes(load_library(), n, seed=seed, size=128)
    parts = [image_channels(s.images[i:i + 50], net) for i in range(0, n, 50)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}, s.category_masks.mean((2, 3))


def subject_dprimes(data, subject, ch, cov):
    from brainit_core.data.twin.encoding import noiseless_response, prf_weights
    from brainit_core.data.twin.experiment import load_ground_truth, noise_smoother, trial_noise
    from brainit_core.data.twin.geometry import PATCHES
    from brainit_core.data.twin.selectivity import LOCALIZER, PRESENT, dprime
    from brainit_core.data.twin.taxonomy import CATEGORIES

    z = load_ground_truth(data, subject)["subject"]
    idx = np.flatnonzero(np.isin(z["area_names"], PATCHES))
    area = z["area_names"][idx]
    w = prf_weights(z["x"][idx], z["y"][idx], z["sigma"][idx])
    mixer = noise_smoother(z["hemispheres"], z["vertices"], 0.4)
    sub = {k: z[k] for k in ("noise_sd", "noise_global", "noise_area", "noise_independent")}
    sub["area_code"] = z["area"]
    independent = dict(sub, noise_global=0 * sub["noise_global"], noise_area=0 * sub["noise_area"],
                       noise_independent=np.ones_like(sub["noise_sd"]))
    n = len(cov)
    noises = [0] + [trial_noise(s, mixer, n * 3, np.random.default_rng(0)).reshape(n, 3, -1).mean(1)[:, idx]
                    for s in (sub, independent)]
    out = {}
    for pooling, peak in (("mean", False), ("soft max", True)):
        tuning = {"gabor": z["tuning_gabor"][idx], "colour": z["tuning_colour"][idx],
                  "category": z["tuning_category"][idx], "category_peak": np.full(len(idx), peak)}
        r = noiseless_response(ch, w, tuning)
        r = (r - r.mean(0)) / (r.std(0) + 1e-6)
        for p in PATCHES:
            v, c = area == p, cov[:, CATEGORIES.index(p)]
            keep = (c >= LOCALIZER) | (c == 0)
            row = []
            for noise in noises:
                m = (r + noise)[:, v].mean(1)
                row += [dprime(m, c > PRESENT), dprime(m[keep], c[keep] > 0)]
            out[pooling, p] = row
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="a twin v2 dataset (its subjects' ground truth)")
    ap.add_argument("--net", default=None, help="a ventral checkpoint X (X.safetensors + X.json); default the shipped one")
    ap.add_argument("--n", type=int, default=600, help="fresh composites")
    ap.add_argument("--seed", type=int, default=3_000_000, help="their scene seed")
    ap.add_argument("--subjects", nargs="+", default=["twin01", "twin02", "twin03"])
    args = ap.parse_args()
    from brainit_core.data.twin.geometry import PATCHES
    from brainit_core.data.twin.taxonomy import CATEGORIES
    from brainit_core.data.twin.ventral import auc

    ch, cov = channels(args.net, args.n, args.seed)
    cat = ch["category"]
    print(f"{args.n} composites of seed {args.seed}; network {args.net or 'assets/twin/ventral'}")
    print("AUC (map max, >= 2%): " + ", ".join(
        f"{p} {auc(cat[:, CATEGORIES.index(p)].max(1), cov[:, CATEGORIES.index(p)] > 0.02):.3f}" for p in PATCHES))
    per = [subject_dprimes(args.data, s, ch, cov) for s in args.subjects]
    print(f"\nd' (>= 2% vs rest / localizer), mean of {', '.join(args.subjects)}")
    print(f"{'pooling':9s} {'patch':6s} {'noiseless':>12s} {'noise':>12s} {'independent only':>17s}")
    for key in per[0]:
        m = np.mean([d[key] for d in per], 0)
        print(f"{key[0]:9s} {key[1]:6s} {m[0]:6.2f}/{m[1]:.2f} {m[2]:6.2f}/{m[3]:.2f} {m[4]:11.2f}/{m[5]:.2f}")
    for p in ("face", "food"):
        c = CATEGORIES.index(p)
        top, present = cat[:, c].max(1), cov[:, c] > 0.02
        absent = cov[:, c] == 0
        others = {q: round(float(top[absent & (cov[:, j] > 0.02)].mean()), 3) for j, q in enumerate(CATEGORIES) if q != p}
        edges = np.quantile(cov[present, c], [0, 1 / 3, 2 / 3, 1])
        thirds = [round(float(top[present & (cov[:, c] >= lo) & (cov[:, c] <= hi)].mean()), 3)
                  for lo, hi in zip(edges[:-1], edges[1:])]
        print(f"\n{p}: map max {top[present].mean():.3f} with it, {top[~present].mean():.3f} without; "
              f"without it, by the category present: {others}")
        print(f"  with it, by thirds of its coverage {edges.round(3).tolist()}: {thirds}")


if __name__ == "__main__":
    main()
