"""Channels-last vs the default layout for the networks the benchmark runs on CPU, alternated (A B A B
...) in one process so that a busy machine slows both alike.

Run:
    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_channels_last.py --generators assets/demo/generators \
        --batch 8 --repeats 3 --threads 1
Prints per part: the median seconds per batch in each layout, the speed-up, and the largest difference
of the outputs (float rounding only).
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout this script is in


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--generators", required=True)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=4, help="diffusion steps per timing")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import numpy as np
    import torch

    from brainit_core.progress import progress_handler
    from brainit_core.reconstruction import Generators
    from brainit_core.reconstruction.autoencoder import decode_latents
    from brainit_core.reconstruction.diffusion import generate_latents

    torch.set_num_threads(args.threads)
    g = Generators.load(args.generators, device="cpu")
    space = g.space
    b = args.batch
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(b, 3, 128, 128, generator=gen)
    sem = torch.randn(b, space.semantic_spec.n_tokens, space.semantic_spec.dim, generator=gen)
    with torch.no_grad():
        low = [m.clone() for m in space.lowlevel_maps(images)]
        lat = generate_latents(g.unet, g.scheduler_config, sem, list(range(b)), 2, 3.0, "dpm")
    parts = {
        "Lite0 features (semantic + low-level)": (lambda: [space.semantic_tokens(images), *space.lowlevel_maps(images)],
                                                  [space.net]),
        "inverter": (lambda: g.inverter(low), [g.inverter]),
        "diffusion UNet (%d steps, CFG)" % args.steps: (
            lambda: generate_latents(g.unet, g.scheduler_config, sem, list(range(b)), args.steps, 3.0, "dpm"), [g.unet]),
        "autoencoder decode": (lambda: decode_latents(g.autoencoder, lat), [g.autoencoder]),
    }
    quiet = progress_handler(lambda *a: None)
    quiet.__enter__()
    print(f"| part ({b} images, {args.threads} thread(s)) | default s | channels-last s | speed-up | max output diff |")
    print("|---|---|---|---|---|")
    for name, (fn, modules) in parts.items():
        times = {False: [], True: []}
        outs = {}
        for _ in range(args.repeats):
            for cl in (False, True):
                for m in modules:
                    m.to(memory_format=torch.channels_last if cl else torch.contiguous_format)
                with torch.no_grad():
                    t = time.perf_counter()
                    out = fn()
                    times[cl].append(time.perf_counter() - t)
                outs[cl] = out
        a, c = np.median(times[False]), np.median(times[True])
        def flat(o):
            return o.flatten() if torch.is_tensor(o) else torch.cat([x.flatten() for x in o])

        diff = (flat(outs[False]).float() - flat(outs[True]).float()).abs().max().item()
        print(f"| {name} | {a:.2f} | {c:.2f} | {a / c:.2f}x | {diff:.1e} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
