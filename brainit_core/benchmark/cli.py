"""``python -m brainit_core benchmark``."""
from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "benchmark", help="image-level benchmark: Brain-IT branches, ridge and oracles, same generators",
        description="Scores Brain-IT fused / low-level only / semantic only, ridge and oracles on the shared test "
                    "images of each subject; writes OUT/results.json, OUT/results.md and OUT/scores.png. "
                    "Reconstructions are cached in OUT/cache, so a rerun only scores.")
    p.add_argument("--data", required=True)
    p.add_argument("--run", required=True)
    p.add_argument("--generators", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--subjects", nargs="*", default=None)
    p.add_argument("--limit", type=int, default=50, help="test images per subject (0 = all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--networks", default="offline", help="'offline' (default), 'auto' or 'protocol'")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_benchmark)


def _benchmark(args) -> int:
    import torch

    from brainit_core.benchmark.run import run_benchmark

    if args.threads:
        torch.set_num_threads(args.threads)
    res = run_benchmark(args.data, args.run, args.generators, args.out, subjects=args.subjects,
                        limit=args.limit or None, seed=args.seed, networks=args.networks, device=args.device)
    print((__import__("pathlib").Path(args.out).expanduser() / "results.md").read_text())
    print(f"benchmark: {res['setup']['wall_seconds']:.0f} s")
    return 0
