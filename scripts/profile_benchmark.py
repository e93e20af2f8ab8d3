"""Where a benchmark's time goes: run ``run_benchmark`` with a wall clock around each stage.

Run (a small subset, into an empty OUT; the dataset's feature cache decides whether the Lite0
features of the training images are computed or read):
    OMP_NUM_THREADS=1 .venv/bin/python scripts/profile_benchmark.py --data DATA --run assets/demo/run \
        --generators assets/demo/generators --out /tmp/prof --subjects twin01 --limit 20 --threads 1

Prints one Markdown row per stage: seconds attributed to it EXCLUSIVELY (time inside a nested
stage counts for the nested one), the number of calls, and the total. Stages that do not exist
in this version of the code are skipped, so the same script times an older checkout too
(``PYTHONPATH=<checkout>``).
"""
import argparse
import functools
import importlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout this script is in

# (label, "module:qualname"); qualname "Class.method" wraps a method
STAGES = (
    ("decode (generators: inverter, DIP, diffusion, fusion)", "brainit_core.reconstruction.pipeline:BrainITPipeline.from_features"),
    ("BIT prediction", "brainit_core.models.run:BrainITRun.predict"),
    ("Lite0 features (dataset cache: compute or read)", "brainit_core.features.cache:extract_features"),
    ("ridge fit", "brainit_core.baselines:RidgeFeatureDecoder.fit"),
    ("ridge predict", "brainit_core.baselines:RidgeFeatureDecoder.predict"),
    ("global-embedding fit", "brainit_core.baselines:GlobalEmbeddingDecoder.fit"),
    ("global-embedding predict", "brainit_core.baselines:GlobalEmbeddingDecoder.predict"),
    ("scoring: network features", "brainit_core.metrics.networks:image_features"),
    ("scoring: PixCorr", "brainit_core.metrics.pixel:pixcorr"),
    ("scoring: SSIM", "brainit_core.metrics.pixel:ssim"),
    ("scoring: build networks", "brainit_core.metrics.networks:build_extractor"),
    ("category classifier fit", "brainit_core.benchmark.categories:fit_classifier"),
    ("twin ground truth (npz)", "brainit_core.data.twin.experiment:load_ground_truth"),
    ("dataset images (h5)", "brainit_core.data.dataset:Dataset.images"),
    ("attention checks", "brainit_core.benchmark.bench:Bench.attention"),
    ("result cache write", "brainit_core.benchmark.cache:ResultCache.put"),
    ("plots", "brainit_core.benchmark.plots:make_plots"),
)

_stack: list = []
_own: dict = {}
_calls: dict = {}


def _wrap(label, fn):
    @functools.wraps(fn)
    def wrapper(*a, **k):
        t0 = time.perf_counter()
        _stack.append([label, 0.0])
        try:
            return fn(*a, **k)
        finally:
            _, inner = _stack.pop()
            dt = time.perf_counter() - t0
            _own[label] = _own.get(label, 0.0) + dt - inner
            _calls[label] = _calls.get(label, 0) + 1
            if _stack:
                _stack[-1][1] += dt
    return wrapper


def _install() -> list[str]:
    skipped = []
    for label, target in STAGES:
        mod_name, qual = target.split(":")
        try:
            mod = importlib.import_module(mod_name)
        except ImportError:
            skipped.append(label)
            continue
        owner, attr = mod, qual
        if "." in qual:
            cls_name, attr = qual.split(".")
            owner = getattr(mod, cls_name, None)
        fn = getattr(owner, attr, None) if owner is not None else None
        if fn is None:
            skipped.append(label)
            continue
        wrapped = _wrap(label, fn)
        setattr(owner, attr, wrapped)
        if owner is mod:  # functions imported by name elsewhere
            for m in list(sys.modules.values()):
                if getattr(m, "__name__", "").startswith("brainit_core") and getattr(m, attr, None) is fn:
                    setattr(m, attr, wrapped)
    return skipped


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--run", required=True)
    ap.add_argument("--generators", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--subjects", nargs="+", default=None)
    ap.add_argument("--limit", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--extra", default="", help="extra run_benchmark keywords as k=v,k=v (ints parsed)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    import brainit_core.benchmark.run as run_mod  # import everything the benchmark imports first

    for name in ("brainit_core.benchmark.methods", "brainit_core.benchmark.bench", "brainit_core.metrics.evaluator",
                 "brainit_core.benchmark.plots", "brainit_core.benchmark.baselines", "brainit_core.features"):
        importlib.import_module(name)
    skipped = _install()
    extra = {}
    for kv in filter(None, args.extra.split(",")):
        k, v = kv.split("=")
        extra[k] = int(v) if v.lstrip("-").isdigit() else v
    t0 = time.perf_counter()
    res = run_mod.run_benchmark(args.data, args.run, args.generators, args.out, subjects=args.subjects,
                                limit=args.limit, networks="auto", device="cpu", **extra)
    total = time.perf_counter() - t0
    print(f"\nbenchmark {args.subjects or 'all subjects'} x {args.limit} images, {args.threads} thread(s): "
          f"{total:.1f} s wall ({res.get('wall_seconds', float('nan')):.1f} s inside run_benchmark)\n")
    print("| stage | seconds (exclusive) | calls |\n|---|---|---|")
    for label, _ in STAGES:
        if label in _own:
            print(f"| {label} | {_own[label]:.1f} | {_calls[label]} |")
    print(f"| everything else | {total - sum(_own.values()):.1f} | |")
    if skipped:
        print(f"\nnot in this version: {', '.join(skipped)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
