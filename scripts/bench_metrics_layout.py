"""Scoring speed of the offline evaluation networks in channels-last vs the default (NCHW) layout.

Run from a checkout with the README's venv:  .venv/bin/python scripts/bench_metrics_layout.py --threads 2
Prints seconds per image for each network and layout, the ratio, and the largest feature difference.
"""
import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    from brainit_core.metrics.networks import build_extractor

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--networks", nargs="+", default=["lite2", "lite1"])
    ap.add_argument("--n", type=int, default=96, help="images (random, 256 px)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    x = torch.rand(args.n, 3, 256, 256, generator=torch.Generator().manual_seed(0))

    def timed(ex):
        ex(x[:4])  # warm-up
        t0, out = time.perf_counter(), []
        for i in range(0, args.n, args.batch_size):
            out.append(ex(x[i:i + args.batch_size]))
        return (time.perf_counter() - t0) / args.n, {k: torch.cat([o[k] for o in out]) for k in out[0]}

    print(f"{args.n} images, batch {args.batch_size}, {torch.get_num_threads()} threads")
    for name in args.networks:
        ex = build_extractor(name, device="cpu")
        t_cl, f_cl = timed(ex)
        ex.channels_last = False
        ex.model = ex.model.to(memory_format=torch.contiguous_format)
        t_nchw, f_nchw = timed(ex)
        diff = max(float((f_cl[k].float() - f_nchw[k].float()).abs().max()) for k in f_cl)
        print(f"{name}: NCHW {t_nchw:.4f} s/image, channels-last {t_cl:.4f} s/image, "
              f"speed-up {t_nchw / t_cl:.2f}x, largest feature difference {diff:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
