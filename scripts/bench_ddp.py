"""Samples per second of BIT head training on 1 and 2 processes (torchrun, gloo on CPU).

Each configuration is a fresh ``torchrun --standalone`` job that trains each BIT head for a few
epochs on random data of the ``demo`` preset's sizes (the lite0 demo feature space, 2 subjects) and
reports the training samples per second of the epochs after the first (the first warms up; an
epoch's time includes a validation on 16 samples, a few per cent of it).
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
    n, n_val, voxels = args.images, 8, {"s1": args.voxels, "s2": args.voxels}
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
            distributed.barrier()
            curves = train_head(model, head, data, cfg, Path(tmp) / head, dev, epochs=args.epochs)
            seconds = [c["seconds"] for c in curves[1:]]  # training + a 16-sample validation, per epoch
            out[head] = 2 * n / float(np.median(seconds[1:] if len(seconds) > 1 else seconds))
    if distributed.is_main():
        print("RESULT " + json.dumps({"world": distributed.world_size(), "threads": torch.get_num_threads(), **out}))
    distributed.shutdown()


def plan(args) -> None:
    """Paper plan for the full preset on ``args.plan`` GPUs: memory per GPU (``memory.estimate_memory``
    with the per-GPU batch, the InfoNCE's rows of this GPU against the gathered global batch), FLOPs per sample counted by
    ``torch.utils.flop_counter`` on a CPU forward + backward, and time per epoch at an assumed
    sustained throughput, all-reduce bandwidth and feature read rate (arguments)."""
    import numpy as np
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from brainit_core.features.base import TokenSpec
    from brainit_core.features.fullsize import vgg_token_specs
    from brainit_core.models.bit import BITConfig, BrainITModel
    from brainit_core.models.head_training import head_loss
    from brainit_core.models.memory import count_parameters, estimate_memory

    gpus, cfg = args.plan, BITConfig.preset("full")
    sem, low = TokenSpec("bigg", (16, 16), 1664), vgg_token_specs(112)
    subjects = {f"sub{i + 1:02d}": args.voxels_full for i in range(4)}
    torch.manual_seed(0)
    model = BrainITModel(cfg, sem, low, subjects)
    for name, v in subjects.items():
        model.set_labels(name, torch.randint(0, cfg.n_clusters, (v,)))
    samples = 4 * args.train_images * (1 + cfg.synthetic_per_real)
    print(f"plan: full preset on {gpus} GPUs; {samples:,.0f} samples per epoch per head (4 subjects x "
          f"{args.train_images:,} images x (1 real + {cfg.synthetic_per_real:g} synthetic)); assumed "
          f"{args.tflops:g} TFLOPS sustained per GPU, {args.busbw:g} GB/s all-reduce bus bandwidth, "
          f"{args.read_gbs:g} GB/s feature reads")
    for head in ("semantic", "lowlevel"):
        net = model.heads[head]
        batch = cfg.semantic_batch if head == "semantic" else cfg.lowlevel_batch
        local = -(-batch // gpus)
        counts = cfg.samples_per_layer(low)
        nq = sem.n_tokens if head == "semantic" else sum(counts)
        n_out = sem.dim if head == "semantic" else max(t.dim for t in low)
        contrastive = 0 if head == "semantic" else batch * max(counts)  # gathered: the whole batch's rows
        rows = 0 if head == "semantic" else local * max(counts)  # each GPU computes its own rows of the logits
        est = estimate_memory(cfg, count_parameters(net), nq, local, cfg.voxels_per_sample, n_out, True, contrastive,
                              rows)
        one = estimate_memory(cfg, count_parameters(net), nq, batch, cfg.voxels_per_sample, n_out, True, contrastive)
        b = 2
        idx = torch.rand(b, args.voxels_full).argsort(1)[:, :cfg.voxels_per_sample]
        groups = [("sub01", torch.randn(b, cfg.voxels_per_sample), idx)]
        if head == "semantic":
            targets = [torch.randn(b, sem.n_tokens, sem.dim)]
        else:
            targets = [torch.randn(b, t.n_tokens, t.dim) for t in low]
        with FlopCounterMode(display=False) as counter:
            loss, _ = head_loss(model, head, groups, targets, cfg, torch.Generator().manual_seed(0))
            loss.backward()
        flops = counter.get_total_flops() / b
        compute = samples * flops / (gpus * args.tflops * 1e12)
        steps = samples / batch
        grads = 4 * count_parameters(net)
        allreduce = steps * 2 * (gpus - 1) / gpus * grads / (args.busbw * 1e9)
        per_sample = (sem.n_tokens * sem.dim if head == "semantic" else sum(t.n_tokens * t.dim for t in low)) * 2
        reads = samples * per_sample / (args.read_gbs * 1e9)
        print(f"  {head}: {count_parameters(net) / 1e6:.0f} M parameters; batch {batch} = {gpus} x {local}; "
              f"memory per GPU {est['total'] / 2**30:.1f} GiB (params+grads+AdamW {est['params'] / 2**30:.1f}, "
              f"activations {est['activations'] / 2**30:.1f}, of which InfoNCE {24 * contrastive * rows / 2**30:.1f}); "
              f"one GPU: {one['total'] / 2**30:.1f} GiB")
        print(f"    {flops / 1e9:.1f} GFLOP per sample (forward + backward, counted); per epoch: compute "
              f"{compute:.0f} s, gradient all-reduce {allreduce:.0f} s ({steps:,.0f} steps x "
              f"{grads / 2**30:.2f} GiB), feature reads {reads:.0f} s ({samples * per_sample / 1e12:.2f} TB)")
    unet_plan(args, gpus, sem)
    feats = 4 * args.train_images + args.unlabeled
    per_image = (sem.n_tokens * sem.dim + sum(t.n_tokens * t.dim for t in low)) * 2
    print(f"  feature cache: {feats:,} images x {per_image / 2**20:.1f} MiB (fp16) = {feats * per_image / 2**40:.2f} TiB")
    del np


def unet_plan(args, gpus: int, sem) -> None:
    """The generators' semantic UNet (full preset) in the same terms; activations are the bytes autograd
    saves for the backward pass of a batch of 2 (counted with saved-tensor hooks), halved for bf16."""
    import torch
    from diffusers import DDPMScheduler
    from torch.utils.flop_counter import FlopCounterMode

    from brainit_core.reconstruction.diffusion import ConditionalUNet, DiffusionConfig, diffusion_loss

    cfg = DiffusionConfig.preset("full")
    cfg.n_tokens, cfg.token_dim = sem.n_tokens, sem.dim
    model = ConditionalUNet(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    b, saved = 2, [0]

    def pack(t):
        saved[0] += t.numel() * t.element_size()
        return t

    lat = torch.randn(b, cfg.latent_channels, cfg.latent_size, cfg.latent_size)
    tok = torch.randn(b, cfg.n_tokens, cfg.token_dim)
    with FlopCounterMode(display=False) as counter, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = diffusion_loss(model, DDPMScheduler(**cfg.scheduler_config()), lat, tok, cfg,
                              torch.Generator().manual_seed(0))
        loss.backward()
    flops, act = counter.get_total_flops() / b, saved[0] / b / 2
    local = -(-cfg.batch_size // gpus)
    mem = 1.2 * (16 * n_params + local * act)
    steps_s = cfg.steps * cfg.batch_size * flops / (gpus * args.tflops * 1e12)
    allreduce = cfg.steps * 2 * (gpus - 1) / gpus * 4 * n_params / (args.busbw * 1e9)
    print(f"  generators' UNet (full, {cfg.latent_size}^2 latents, {cfg.n_tokens} x {cfg.token_dim} tokens): "
          f"{n_params / 1e6:.0f} M parameters; batch {cfg.batch_size} = {gpus} x {local}; memory per GPU "
          f"{mem / 2**30:.1f} GiB (activations {act / 2**20:.0f} MiB per sample in bf16); {flops / 1e9:.1f} GFLOP per "
          f"sample; {cfg.steps:,} steps: compute {steps_s / 60:.1f} min, all-reduce {allreduce / 60:.1f} min")


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
    p.add_argument("--plan", type=int, default=None, metavar="GPUS",
                   help="print the paper plan of the full preset on GPUS GPUs instead of measuring")
    p.add_argument("--tflops", type=float, default=300.0, help="plan: sustained bf16 TFLOPS per GPU")
    p.add_argument("--busbw", type=float, default=300.0, help="plan: all-reduce bus bandwidth, GB/s")
    p.add_argument("--read-gbs", type=float, default=5.0, help="plan: feature read rate of the node, GB/s")
    p.add_argument("--train-images", type=int, default=9000, help="plan: training images per subject")
    p.add_argument("--unlabeled", type=int, default=120000, help="plan: unlabeled images")
    p.add_argument("--voxels-full", type=int, default=40000, help="plan: voxels per subject")
    args = p.parse_args()
    if args.worker:
        return worker(args)
    if args.plan:
        return plan(args)
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
