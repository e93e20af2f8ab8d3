"""Fusion strength sweep: how much layout (SSIM, PixCorr) and meaning (Lite identification) the fused
images keep as the share of the diffusion schedule that is re-run grows.

Run (shipped demo models on the bundled test slice, or any run / generators / dataset):
    .venv/bin/python scripts/sweep_fusion.py --run assets/demo/run --generators assets/demo/generators \
        --data assets/demo/dataset --subject twin01 --n 50 --strengths 0.3 0.45 0.63 0.8
Prints one Markdown row per strength (BIT features are predicted once; each strength re-fuses them
with the same seeds), plus the low-level-only and semantic-only rows for reference.
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True)
    ap.add_argument("--generators", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--subject", default=None, help="default: the run's first subject")
    ap.add_argument("--n", type=int, default=50, help="first N test images")
    ap.add_argument("--strengths", type=float, nargs="+", default=[0.3, 0.45, 0.63, 0.8])
    ap.add_argument("--networks", default="lite2", help="identification columns (see brainit_core.metrics)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()

    import torch

    from brainit_core.data import load_dataset
    from brainit_core.metrics.evaluator import evaluate_reconstructions
    from brainit_core.models.run import BrainITRun
    from brainit_core.reconstruction import BrainITPipeline, Generators

    if args.threads:
        torch.set_num_threads(args.threads)
    ds = load_dataset(args.data)
    run = BrainITRun.load(args.run, device="cpu")
    pipe = BrainITPipeline(run, Generators.load(args.generators, device=run.device, space=run.space))
    subject = args.subject or run.subjects[0]
    betas, ids = ds.subject(subject).averaged("test")
    betas, ids = betas[:args.n], ids[:args.n]
    truth = ds.images(ids)
    seeds = [args.seed + int(i) for i in ids]
    with torch.no_grad():
        pred = run.predict(betas, subject)

    def row(name, images, seconds=None):
        res = evaluate_reconstructions(truth, images, networks=args.networks, device="cpu")
        cols = {k: v for k, v in res.items() if isinstance(v, float)}
        if row.header is None:
            row.header = list(cols)
            print("| " + " | ".join(["images", *row.header, "s / image"]) + " |")
            print("|" + "---|" * (len(row.header) + 2))
        sec = "" if seconds is None else f"{seconds:.2f}"
        print("| " + " | ".join([name, *[f"{cols[c]:.3f}" for c in row.header], sec]) + " |", flush=True)

    row.header = None
    base = pipe.from_features(pred.semantic, pred.lowlevel, seed=seeds, semantic_only=True)
    row("low-level only", base.low_level)
    row("semantic only", base.semantic)
    for s in args.strengths:
        t0 = time.perf_counter()
        out = pipe.from_features(pred.semantic, pred.lowlevel, seed=seeds, fusion_strength=s)
        row(f"fused, strength {s:g}", out.fused, (time.perf_counter() - t0) / len(ids))
    print(f"\n{subject}, {len(ids)} test images; demo default strength: "
          f"{pipe.generators.reconstruction.fusion_strength:g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
