"""``python -m brainit_core benchmark``: the commands over :mod:`brainit_core.benchmark.run` and :mod:`brainit_core.benchmark.report`."""
from __future__ import annotations

import argparse

from brainit_core.benchmark.bench import DIP_IMAGES
from brainit_core.benchmark.categories import N_TRAIN
from brainit_core.cli_types import device, existing_dir, metric_network, non_negative_int, out_dir, positive_int

COMMAND = "benchmark"


def _networks(text: str) -> str:
    """'auto', 'offline', 'protocol' or comma-separated metric network names."""
    for name in text.split(","):
        metric_network(name.strip())
    return text


def _dip_images(text: str) -> int:
    """0 (no DIP rows) or an integer >= 2 (two-way identification needs two images)."""
    n = non_negative_int(text)
    if n == 1:
        raise argparse.ArgumentTypeError("must be 0 (no DIP rows) or >= 2 (two-way identification needs 2 images), got 1")
    return n


def _transfer_run(text: str) -> str:
    """AMOUNT=DIR with AMOUNT in 15/60/all and DIR an existing directory."""
    from brainit_core.benchmark.run import parse_transfer_runs
    from brainit_core.errors import BrainITError

    try:
        (path,) = parse_transfer_runs([text]).values()
    except BrainITError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--transfer-runs ")) from None
    existing_dir(path)
    return text


def register(subparsers) -> None:
    p = subparsers.add_parser(
        COMMAND, help="benchmark: Brain-IT, its branches, ridge + global-embedding baselines, oracles, transfer",
        description="Reconstruct each subject's test images with Brain-IT (fused, low-level only, semantic only), "
                    "ridge and global-embedding baselines (fitted here on the subject's training data), the oracle "
                    "(true features) and, on a twin, the noiseless responses, all through the same generators; "
                    "score every metric, time every method, draw the transfer curve and compute the claims "
                    "(incl. brain-token contralaterality). Writes OUT/results.json, OUT/results.md and PNG plots. "
                    "Everything is cached in OUT, so a rerun or a resumed run only does what is missing.")
    p.add_argument("--data", type=existing_dir, required=True, help="dataset directory")
    p.add_argument("--run", type=existing_dir, required=True, help="trained run directory")
    p.add_argument("--generators", type=existing_dir, default=None,
                   help="generators directory (default: the ones matching the run's feature space, printed)")
    p.add_argument("--out", type=out_dir, required=True,
                   help="output directory (results and cache; its parent folder must exist)")
    p.add_argument("--subjects", nargs="+", default=None,
                   help="subjects (default: the run's subjects that are not held out)")
    p.add_argument("--limit", type=positive_int, default=None, help="only the first N (>= 1) test images of each subject")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--transfer-runs", type=_transfer_run, nargs="+", default=None, metavar="AMOUNT=DIR",
                   help="runs transferred to the held-out subject: 15=DIR 60=DIR all=DIR")
    g.add_argument("--transfer", action="store_true",
                   help="train the missing transfer runs (15 min, 60 min, all) under OUT/transfer/")
    p.add_argument("--stage2", type=existing_dir, default=None,
                   help="a `stage2` output folder (OUT/run + OUT/generators): adds its fused and semantic-only rows "
                        "beside Brain-IT's (before vs after stage 2)")
    p.add_argument("--dip-images", type=_dip_images, default=None,
                   help="test images per subject of the DIP rows (the paper's Deep Image Prior, demo preset, and the "
                        "inverter on the same images); 0 leaves them out (default: %d)" % DIP_IMAGES)
    p.add_argument("--category-train", type=positive_int, default=None,
                   help="training images the category classifier learns from (a twin's labels; default: %d)"
                        % N_TRAIN)
    p.add_argument("--no-categories", action="store_true", help="leave out the category-accuracy column")
    p.add_argument("--heldout", default=None, help="transfer subject (default: the dataset's held-out subject)")
    p.add_argument("--networks", type=_networks, default="auto",
                   help="metric networks: 'auto' (every column; missing weights say 'unavailable'), 'offline' "
                        "(PixCorr, SSIM, Lite1/Lite2), 'protocol', or comma-separated names")
    p.add_argument("--weights", type=existing_dir, default=None, help="folder with the protocol networks' weight files")
    p.add_argument("--mode", choices=("fast", "dip"), default=None, help="low-level inversion (default from GEN)")
    p.add_argument("--steps", type=positive_int, default=None, help="diffusion schedule length (default from GEN)")
    p.add_argument("--batch-size", type=positive_int, default=8, help="images per batch (>= 1)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="image i uses seed + its image id in every method")
    p.add_argument("--device", type=device, default="auto", help="'auto' (CUDA when available), 'cpu', 'cuda:1', ...")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads, >= 1 (1 on a busy shared CPU)")
    p.set_defaults(func=_benchmark)

    r = subparsers.add_parser(
        "benchmark-report", help="recompute a finished benchmark's claims and results.md from its results.json",
        description="Re-judges the claims and rewrites OUT/results.json and OUT/results.md from the scores already in "
                    "OUT/results.json (use after the claims' code changed); nothing is reconstructed or scored. When "
                    "OUT is a bundle's benchmark/ (assets/demo/benchmark), the bundle's MANIFEST.json is updated.")
    r.add_argument("out", type=existing_dir, help="benchmark output directory")
    r.set_defaults(func=_report)


def _benchmark(args) -> int:
    from pathlib import Path

    from brainit_core.benchmark.run import parse_transfer_runs, run_benchmark
    from brainit_core.utils import cpu_threads

    from brainit_core.runs import generators_for_run

    cpu_threads(args.threads)
    generators, how = generators_for_run(args.run, args.generators)
    if not args.generators:
        print(f"generators: {generators} ({how})")
    networks = args.networks.split(",") if "," in args.networks else args.networks
    res = run_benchmark(args.data, args.run, generators, args.out, subjects=args.subjects, limit=args.limit,
                        transfer_runs=parse_transfer_runs(args.transfer_runs), transfer=args.transfer,
                        heldout=args.heldout, networks=networks, weights=args.weights, device=args.device,
                        seed=args.seed, batch_size=args.batch_size, mode=args.mode, steps=args.steps,
                        stage2=args.stage2, categories=not args.no_categories,
                        **{k: v for k, v in {"dip_images": args.dip_images,
                                             "category_train": args.category_train}.items() if v is not None})
    print((Path(args.out).expanduser() / "results.md").read_text())
    print(f"benchmark: {res['wall_seconds']:.0f} s; results in {Path(args.out).expanduser() / 'results.json'}")
    return 0


def _report(args) -> int:
    from pathlib import Path

    from brainit_core.benchmark.report import refresh_report

    out = Path(args.out).expanduser()
    refresh_report(out)
    print((out / "results.md").read_text())
    if (out.parent / "MANIFEST.json").is_file():  # a bundle's shipped benchmark: keep verify-bundle passing
        from brainit_core.bundle import refresh_manifest

        refresh_manifest(out.parent)
        print(f"{out.parent / 'MANIFEST.json'} updated")
    return 0
