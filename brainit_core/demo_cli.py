"""``train-demo`` (rebuild every shipped demo model from scratch) and ``bundle`` (pack ``assets/demo``)."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from brainit_core.cli_types import device, existing_dir, non_negative_int, out_dir, positive_int
from brainit_core.fileio import read_json, write_json
from brainit_core.utils import assets_dir, default_data_dir


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train-demo", help="rebuild the shipped demo from scratch: twin, run, generators, benchmark, bundle",
        description="Builds the demo twin (seed 0), trains the Brain-IT run (stage 1), the generators on the "
                    "stimulus library's scenes and stage 2 (the run's semantic head and the generators' UNet "
                    "together) with the demo presets, optionally runs the benchmark, and packs assets/demo with "
                    "the held-out subject's first hour for the Transfer lab. Every stage is resumable: run the "
                    "same command again after an interruption. Stage timings go to WORK/train-demo.json.")
    p.add_argument("--work", type=out_dir, default=str(default_data_dir()), help="where the twin, run and generators go "
                   "(default: $BRAINIT_DATA or ~/.brainit)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="twin seed (default 0)")
    p.add_argument("--out", type=out_dir, default=str(assets_dir() / "demo"), help="bundle directory (default: assets/demo)")
    p.add_argument("--n-test", type=positive_int, default=80,
                   help="test images per subject kept in the bundle (default 80: the twin v2 bundle stays within 120 MB)")
    p.add_argument("--data", type=existing_dir, default=None,
                   help="an existing demo twin to train on (default: WORK/twin-demo-seedSEED, built when missing)")
    p.add_argument("--generators", type=existing_dir, default=None,
                   help="finished generators to use instead of training them in WORK/generators (e.g. ones "
                        "fine-tuned with train-generators --init-from)")
    p.add_argument("--scenes", type=positive_int, default=8000,
                   help="library scenes the generators are trained on (default 8,000)")
    p.add_argument("--no-stage2", action="store_true", help="ship the stage-1 run and generators")
    p.add_argument("--heldout-minutes", type=non_negative_int, default=60,
                   help="minutes of the held-out subject's training trials shipped for the Transfer lab (0: none)")
    p.add_argument("--unlabeled", type=non_negative_int, default=100,
                   help="unlabeled images shipped with them (the transfer's synthetic fMRI is drawn from their "
                        "encoder responses; default 100, which keeps the twin v2 bundle within 120 MB)")
    p.add_argument("--benchmark", action="store_true", help="also run the benchmark and ship its results")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads, >= 1 (use 1 on a busy machine)")
    p.add_argument("--device", type=device, default="auto", help="'auto', 'cpu', 'cuda' or 'cuda:N'")
    p.set_defaults(func=_train_demo)

    b = subparsers.add_parser("bundle", help="pack a run, its generators and a test slice of the data into a bundle",
                              description="Writes OUT/{dataset,run,generators[,benchmark]} and OUT/MANIFEST.json "
                                          "(sha256 of every file). Checkpoints are stored as float16 unless --full.")
    b.add_argument("--data", type=existing_dir, required=True)
    b.add_argument("--run", type=existing_dir, required=True)
    b.add_argument("--generators", type=existing_dir, required=True)
    b.add_argument("--benchmark", type=existing_dir, default=None, help="a benchmark output directory to include")
    b.add_argument("--out", type=out_dir, default=str(assets_dir() / "demo"))
    b.add_argument("--n-test", type=positive_int, default=100, help="test images per subject (>= 1)")
    b.add_argument("--full", action="store_true", help="keep float32 weights")
    b.add_argument("--heldout-minutes", type=non_negative_int, default=0,
                   help="ship the held-out subjects' first minutes of training trials for the Transfer lab (0: none)")
    b.add_argument("--unlabeled", type=non_negative_int, default=0, help="unlabeled images shipped with them")
    b.add_argument("--grid-subjects", type=non_negative_int, default=1,
                   help="ship the Reconstructions page's default grid of the run's first N subjects (default 1; 0: none)")
    b.set_defaults(func=_bundle)

    g = subparsers.add_parser("bundle-grids", help="(re)compute a bundle's shipped Reconstructions grids",
                              description="Writes BUNDLE/grids/ (the app's default grid, read on the first visit "
                                          "instead of running the pipeline) and refreshes BUNDLE/MANIFEST.json.")
    g.add_argument("path", type=existing_dir, nargs="?", default=str(assets_dir() / "demo"))
    g.add_argument("--subjects", nargs="+", default=None, help="default: the run's first subject")
    g.add_argument("--n", type=positive_int, default=None, help="images per grid (>= 1; default: the page's, 8)")
    g.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (>= 1)")
    g.add_argument("--device", type=device, default="cpu", help="'auto', 'cpu', 'cuda' or 'cuda:N'")
    g.set_defaults(func=_bundle_grids)

    v = subparsers.add_parser("verify-bundle", help="check a bundle's files against its MANIFEST.json")
    v.add_argument("path", type=existing_dir, nargs="?", default=str(assets_dir() / "demo"))
    v.set_defaults(func=_verify)


def _bundle(args) -> int:
    from brainit_core.bundle import make_bundle

    m = make_bundle(args.data, args.run, args.generators, args.out, n_test=args.n_test, half=not args.full,
                    benchmark=args.benchmark, grid_subjects=args.grid_subjects,
                    heldout_minutes=args.heldout_minutes, n_unlabeled=args.unlabeled)
    total = sum(f["bytes"] for f in m["files"].values())
    print(f"bundle written to {args.out}: {len(m['files'])} files, {total / 1e6:.1f} MB")
    return 0


def _bundle_grids(args) -> int:
    from brainit_core.bundle import add_grids
    from brainit_core.utils import cpu_threads

    cpu_threads(args.threads)
    m = add_grids(args.path, subjects=args.subjects, n=args.n, device=args.device)
    grids = [k for k in m["files"] if k.startswith("grids/")]
    print(f"{len(grids)} grid(s) for {', '.join(m['grids']['subjects'])} written to {args.path}/grids; MANIFEST.json updated")
    return 0


def _verify(args) -> int:
    from brainit_core.bundle import verify_bundle

    problems = verify_bundle(args.path)
    for p in problems:
        print(p)
    print("bundle intact" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


def _train_demo(args: argparse.Namespace) -> int:
    import torch

    from brainit_core.bundle import make_bundle
    from brainit_core.data.info import DatasetInfo
    from brainit_core.data.twin import build_twin
    from brainit_core.models.training import train_run
    from brainit_core.reconstruction.stage2 import train_stage2
    from brainit_core.reconstruction.training import train_generators
    from brainit_core.utils import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(args.work).expanduser()
    data = Path(args.data) if args.data else work / f"twin-demo-seed{args.seed}"
    run, bench, s2 = (work / kind / f"demo-seed{args.seed}" for kind in ("runs", "benchmarks", "stage2"))
    gens = Path(args.generators) if args.generators else work / "generators" / f"demo-seed{args.seed}"
    log_path = work / "train-demo.json"
    timings = read_json(log_path, {})
    device = resolve_device(args.device)

    def stage(name, fn):
        t0 = time.time()
        print(f"== train-demo: {name}", flush=True)
        fn()
        timings[name] = timings.get(name, 0.0) + time.time() - t0
        timings["threads"] = torch.get_num_threads()
        write_json(log_path, timings, sort_keys=False)

    if not DatasetInfo.is_dataset(data):
        stage("twin", lambda: build_twin(data, preset="demo", seed=args.seed))
    stage("run", lambda: train_run(data, preset="demo", out=run, device=str(device), resume=True))
    if not args.generators:
        stage("generators", lambda: train_generators(None, gens, preset="demo", device=device, scenes=args.scenes))
    if not (gens / "unet.safetensors").exists():
        print("generators are not finished; run train-demo again to continue")
        return 1
    ship_run, ship_gens = run, gens
    if not args.no_stage2:
        stage("stage2", lambda: train_stage2(run, gens, s2, preset="demo", data=data, device=device))
        if not (s2 / "run" / "bit.safetensors").exists() or not (s2 / "generators" / "unet.safetensors").exists():
            print("stage 2 is not finished; run train-demo again to continue")
            return 1
        ship_run, ship_gens = s2 / "run", s2 / "generators"
    if args.benchmark:
        from brainit_core.benchmark import run_benchmark

        stage("benchmark", lambda: run_benchmark(data=data, run=run, generators=gens, out=bench,
                                                 stage2=None if args.no_stage2 else s2))
    stage("bundle", lambda: make_bundle(data, ship_run, ship_gens, args.out, n_test=args.n_test,
                                        benchmark=bench if args.benchmark else None,
                                        heldout_minutes=args.heldout_minutes, n_unlabeled=args.unlabeled))
    total = sum(v for k, v in timings.items() if k != "threads")
    print(f"train-demo finished: {total / 60:.1f} min in all ({', '.join(f'{k} {v / 60:.1f}' for k, v in timings.items() if k != 'threads')}); "
          f"bundle in {args.out}")
    return 0
