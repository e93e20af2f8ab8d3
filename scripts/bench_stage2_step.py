"""Seconds per step of stage 2 (BIT's semantic head + the generator, diffusion loss) for a run and its generators.

A step's cost depends on the model sizes, the batch and the sampled voxels, not on which pairs it reads, so
this times the real step (``stage2.joint_loss``, backward, gradient clipping, AdamW) on random betas of the
run's subjects and random images through the generators' frozen encoder; no training data is needed (the
shipped bundle has only test images). Prints seconds per step and the estimated time of the preset's steps.

    python scripts/bench_stage2_step.py --run assets/demo/run --generators assets/demo/generators --preset demo \\
        --threads 2 [--steps 30]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout


def main() -> None:
    from brainit_core.features.cache import FeatureSet
    from brainit_core.models.bit_data import BITData, SamplePool
    from brainit_core.models.run import BrainITRun
    from brainit_core.reconstruction import Generators
    from brainit_core.reconstruction.stage2 import Stage2Config, joint_loss, joint_optimizer
    from brainit_core.reconstruction.stage2_generators import stage2_generator
    from brainit_core.runs import RunDirectory
    from brainit_core.utils import cpu_threads, resolve_device

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True)
    p.add_argument("--generators", required=True)
    p.add_argument("--preset", default="demo", choices=("ci", "demo", "full"))
    p.add_argument("--steps", type=int, default=30, help="timed steps (after 3 warm-up steps)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    cpu_threads(args.threads)
    device = resolve_device(args.device)
    config = Stage2Config.preset(args.preset)
    run = BrainITRun.load(args.run, device=device)
    gens = Generators.load(args.generators, device=device, space=run.space)
    generator = stage2_generator(gens)
    bit = run.model
    n, rng = 64, np.random.default_rng(0)
    spec = run.space.semantic_spec
    features = FeatureSet(np.arange(n), rng.standard_normal((n, spec.n_tokens, spec.dim)).astype(np.float16), [])
    pools = {s: SamplePool(rng.standard_normal((n, run.n_vertices(s))).astype(np.float32), np.arange(n))
             for s in run.subjects}
    data = BITData(features, pools, {}, {})
    latents = torch.cat([generator.encode(rng.integers(0, 256, (16, 128, 128, 3), dtype=np.uint8)).cpu()
                         for _ in range(n // 16)])
    samples = [("real", s, i) for s in run.subjects for i in range(n)]
    n_voxels = config.voxels_per_sample or RunDirectory(args.run).bit_config.get("voxels_per_sample")
    joint, optimizer, sched, _ = joint_optimizer(bit, generator, config)
    joint.train()

    def step(k: int) -> None:
        picks = np.random.default_rng(k).choice(len(samples), config.batch_size)
        loss, _ = joint_loss(bit, generator, data, latents, [samples[i] for i in picks], n_voxels,
                             config.aux_weight, torch.Generator().manual_seed(k), device)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(joint.parameters(), 1.0)
        optimizer.step()
        sched.step()

    for k in range(3):
        step(k)
    t0 = time.perf_counter()
    for k in range(args.steps):
        step(3 + k)
    s = (time.perf_counter() - t0) / args.steps
    total = config.steps if config.steps else None
    print(f"stage 2 ({args.preset}: batch {config.batch_size}, {n_voxels} voxels, {generator.kind} generators, "
          f"{torch.get_num_threads()} threads, {device}): {s:.3f} s per step"
          + (f"; {total} steps = {total * s / 60:.1f} min" if total else ""))


if __name__ == "__main__":
    main()
