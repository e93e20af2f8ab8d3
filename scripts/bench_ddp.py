"""Samples per second of BIT head training on 1 and 2 processes (torchrun, gloo on CPU).

Each configuration is a fresh ``torchrun --standalone`` job that trains each BIT head for a few
epochs on random data of the ``demo`` preset's sizes (the lite0 demo feature space, 2 subjects) and
reports the training samples per second of the epochs after the first (the first warms up).
The global batch is the preset's in every configuration, so 2 processes do the same work as 1.

Usage (from the repository root)::

    .venv/bin/python scripts/bench_ddp.py                 # 1 proc x 1 thread, 1 proc x 2 threads, 2 procs x 1 thread
    .venv/bin/python scripts/bench_ddp.py --configs 1x1 2x1 --epochs 3

Prints one line per configuration and head, then the ratios to 1 process x 1 thread.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def worker(args) -> None:
    import numpy as np
    import torch

    from brainit_core import distributed
    from brainit_core.features import get_feature_space
    from brainit_core.features.cache import FeatureSet
    from brainit_core.models.bit import BITConfig, BrainITModel
    from brainit_core.models.bit_data import BITData, SamplePool, channel_stats
    from brainit_core.models.head_training import train_head

    dev = distributed.setup("cpu")
    space = get_feature_space("lite0", preset="demo", device=dev)
    sem, low = space.semantic_spec, space.lowlevel_specs
    rng = np.random.default_rng(0)
    n, n_val, voxels = args.images, 32, {"s1": args.voxels, "s2": args.voxels}
    z = rng.standard_normal((n + n_val, 8)).astype(np.float32)

    def feat(*shape):
        return (z @ rng.standard_normal((8, int(np.prod(shape)))) / 3).reshape(len(z), *shape).astype(np.float16)

    fs = FeatureSet(np.arange(len(z)), feat(sem.n_tokens, sem.dim), [feat(t.dim, *t.grid) for t in low])
    real, val = {}, {}
    for s, v in voxels.items():
        betas = z @ rng.standard_normal((8, v)).astype(np.float32) + rng.standard_normal((len(z), v)).astype(np.float32)
        real[s], val[s] = SamplePool(betas[:n], np.arange(n)), SamplePool(betas[n:], np.arange(n, n + n_val))
    data = BITData(fs, real, val, {})
    cfg = BITConfig.preset("demo")
    cfg.warmup_epochs, cfg.synthetic_per_real = 0, 0.0
    torch.manual_seed(0)
    model = BrainITModel(cfg, sem, low)
    for s, v in voxels.items():
        model.add_subject(s, v, np.arange(v) % cfg.n_clusters)
        model.set_input_stats(s, real[s].betas.mean(0), real[s].betas.std(0))
    model.set_target_stats(*channel_stats(fs, np.arange(n)))
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for head in ("semantic", "lowlevel"):
            t = []
            for epoch in range(1, args.epochs + 1):
                distributed.barrier()
                t0 = time.perf_counter()
                train_head(model, head, data, cfg, Path(tmp) / f"{head}{epoch}", dev, epochs=1)
                t.append(time.perf_counter() - t0)
            out[head] = 2 * n / float(np.median(t[1:] if len(t) > 1 else t))
    if distributed.is_main():
        print("RESULT " + json.dumps({"world": distributed.world_size(), "threads": torch.get_num_threads(), **out}))
    distributed.shutdown()


def run(config: str, args) -> dict:
    procs, threads = (int(x) for x in config.split("x"))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(procs),
           __file__, "--worker", "--epochs", str(args.epochs), "--images", str(args.images), "--voxels", str(args.voxels)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    lines = [line for line in res.stdout.splitlines() if line.startswith("RESULT ")]
    if res.returncode != 0 or not lines:
        raise SystemExit(f"{config} failed:\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--configs", nargs="+", default=["1x1", "1x2", "2x1"], help="PROCSxTHREADS per process")
    p.add_argument("--epochs", type=int, default=3, help="epochs per head (the first is not counted)")
    p.add_argument("--images", type=int, default=256, help="training images per subject (2 subjects)")
    p.add_argument("--voxels", type=int, default=3000, help="voxels per subject")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)
    print(f"BIT head training, demo sizes, {2 * args.images} samples per epoch, {args.voxels} voxels per subject, "
          f"{os.cpu_count()} CPU cores; load average before: {os.getloadavg()[0]:.1f}")
    results = {c: run(c, args) for c in args.configs}
    base = results[args.configs[0]]
    for c, r in results.items():
        print(f"{c:>5} (processes x threads): semantic {r['semantic']:7.1f} samples/s "
              f"(x{r['semantic'] / base['semantic']:.2f}), low-level {r['lowlevel']:7.1f} samples/s "
              f"(x{r['lowlevel'] / base['lowlevel']:.2f})")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
