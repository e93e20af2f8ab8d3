"""Time the twin: `twin build` for a preset and `respond` per image.

Run: .venv/bin/python scripts/bench_twin.py [--preset demo] [--images 20] [--out DIR]
Prints wall-clock seconds; the build's peak memory is printed by the OS (`/usr/bin/time -v`).
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--out", default=None, help="keep the built twin here")
    ap.add_argument("--data", default=None, help="time respond() on this existing twin; skip the build")
    args = ap.parse_args()
    from brainit_core.data import load_dataset
    from brainit_core.data.twin import TwinConfig, build_twin, respond

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.data) if args.data else Path(args.out or tmp) / f"twin-{args.preset}"
        if not args.data:
            t = time.time()
            build_twin(out, TwinConfig.preset(args.preset, seed=0))
            print(f"twin build --preset {args.preset}: {time.time() - t:.1f} s")
        ds = load_dataset(out)
        imgs = ds.images(ds.image_set("ood")[: args.images])
        respond(out, ds.subjects[0], imgs[:1])  # warm the caches (mesh, ground truth)
        t = time.time()
        respond(out, ds.subjects[0], imgs, repeats=3, seed=0)
        per = (time.time() - t) / len(imgs)
        t = time.time()
        respond(out, ds.subjects[0], imgs[:1], repeats=3, seed=0)
        print(f"respond: {per:.3f} s per image in a batch of {len(imgs)}; one image alone {time.time() - t:.3f} s")


if __name__ == "__main__":
    main()
