"""Commands ``train-generators``, ``reconstruct`` and ``benchmark-generators``."""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path

from brainit_core.fileio import write_json


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train-generators", help="train the image generators: autoencoder, feature inverter, semantic UNet",
        description="Train the reconstruction generators on a dataset's training + unlabeled images (never its "
                    "test images) with their true features. Each stage is skipped when its checkpoint exists "
                    "and resumes from GEN_DIR/train/ when interrupted: run the same command again.")
    p.add_argument("--data", required=True, help="canonical dataset directory")
    p.add_argument("--preset", choices=("ci", "demo", "full"), default="demo", help="model sizes and step counts")
    p.add_argument("--out", required=True, help="generators directory (GEN_DIR) to write or resume")
    p.add_argument("--stages", nargs="+", choices=("autoencoder", "inverter", "unet"),
                   default=["autoencoder", "inverter", "unet"], help="stages to train (in this order)")
    p.add_argument("--space", default="lite0", help="feature space (default lite0)")
    p.add_argument("--max-images", type=int, default=None, help="use at most this many training images")
    p.add_argument("--steps", nargs="+", default=[], metavar="STAGE=N",
                   help="override step counts, e.g. autoencoder=600 unet=5000")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="time budget per stage in this call; the state is saved and a later call continues")
    p.add_argument("--no-shared-cache", action="store_true",
                   help="keep semantic tokens in GEN_DIR/train instead of the dataset's feature cache")
    p.add_argument("--seed", type=int, default=0)
    _device_args(p)
    p.set_defaults(func=_train)

    p = subparsers.add_parser(
        "reconstruct", help="reconstruct a split's images from betas with a run and generators",
        description="Predict features with BIT, invert the low-level pyramid (fast: amortised inverter; dip: Deep "
                    "Image Prior) and fuse with semantic diffusion. Writes OUT/<fused|low_level|semantic>/<id>.png "
                    "and OUT/manifest.json; images already in OUT (same checkpoints and settings) are skipped.")
    p.add_argument("--run", required=True, help="trained run directory")
    p.add_argument("--generators", default=None,
                   help="generators directory (default: the ones that match the run's feature space: beside the run, "
                        "then ~/.brainit/generators, then the shipped demo's; the choice is printed)")
    p.add_argument("--data", required=True, help="dataset directory")
    p.add_argument("--subject", required=True, help="subject name")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--mode", choices=("fast", "dip"), default=None, help="low-level inversion (default from GEN_DIR)")
    p.add_argument("--branches", nargs="+", choices=("low_level", "semantic"), default=["low_level", "semantic"])
    p.add_argument("--limit", type=int, default=None, help="only the first N images of the split")
    p.add_argument("--seed", type=int, default=0, help="base seed; image i uses seed + its image id")
    p.add_argument("--steps", type=int, default=None, help="diffusion schedule length (fusion: official 38)")
    p.add_argument("--fusion-strength", type=float, default=None, help="fraction of the schedule re-run (24/38)")
    p.add_argument("--guidance-scale", type=float, default=None)
    p.add_argument("--sampler", choices=("dpm", "ddim"), default=None)
    p.add_argument("--refine-steps", type=int, default=None, help="fast mode: DIP steps from the inverter's image")
    p.add_argument("--dip-steps", type=int, default=None, help="dip mode: optimisation steps")
    p.add_argument("--semantic-only", action="store_true", help="also write semantic-only generations")
    p.add_argument("--max-repeats", type=int, default=None, help="average only the first K repeats of each image")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--overwrite", action="store_true", help="replace results made with other checkpoints/settings")
    _device_args(p)
    p.set_defaults(func=_reconstruct)

    p = subparsers.add_parser(
        "benchmark-generators", help="inverter vs Deep Image Prior (SSIM, PixCorr, s/image) and fused timing",
        description="Score the amortised inverter, inverter + DIP refinement and plain DIP on test images with "
                    "true, simulated-prediction or BIT-predicted features; time fused fast-mode reconstruction.")
    p.add_argument("--generators", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--n", type=int, default=8, help="number of test images")
    p.add_argument("--dip-steps", type=int, default=200)
    p.add_argument("--refine-steps", type=int, default=20)
    p.add_argument("--sources", nargs="+", choices=("true", "simulated", "bit"), default=["true", "simulated"])
    p.add_argument("--run", default=None, help="run directory (for --sources bit)")
    p.add_argument("--subject", default=None)
    p.add_argument("--out", default=None, help="JSON file (default GEN_DIR/benchmark.json; a PNG grid beside it)")
    _device_args(p)
    p.set_defaults(func=_benchmark)


def _device_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="'auto' (CUDA when available), 'cpu', 'cuda:1', ...")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (on a busy shared CPU, 1 is often fastest)")


def _setup(args):
    from brainit_core.utils import cpu_threads
    from brainit_core.utils import resolve_device

    cpu_threads(args.threads)
    return resolve_device(args.device)


def _train(args) -> int:
    from brainit_core.reconstruction.training import train_generators

    device = _setup(args)
    overrides: dict = {}
    for item in args.steps:
        stage, _, n = item.partition("=")
        if stage not in ("autoencoder", "inverter", "unet") or not n.isdigit():
            raise SystemExit(f"--steps expects STAGE=N with STAGE in autoencoder/inverter/unet, got {item!r}")
        overrides.setdefault(stage, {})["steps"] = int(n)
    out = train_generators(args.data, args.out, preset=args.preset, device=device, space_name=args.space,
                           stages=tuple(args.stages), seed=args.seed, max_images=args.max_images,
                           overrides=overrides,
                           max_seconds=None if args.max_minutes is None else args.max_minutes * 60,
                           shared_cache=not args.no_shared_cache)
    done = [s for s in ("autoencoder", "inverter", "unet") if (Path(out) / f"{s}.safetensors").exists()]
    print(f"generators in {out}: finished {done}; loss curves in {Path(out) / 'train'}")
    return 0


def _reconstruct(args) -> int:
    import numpy as np
    from PIL import Image

    from brainit_core.data import load_dataset
    from brainit_core.models.run import BrainITRun
    from brainit_core.progress import track
    from brainit_core.reconstruction.generators import Generators
    from brainit_core.reconstruction.pipeline import BrainITPipeline

    from brainit_core.runs import generators_for_run

    device = _setup(args)
    run = BrainITRun.load(args.run, device=device)
    gen_dir, how = generators_for_run(args.run, args.generators)
    if not args.generators:
        print(f"generators: {gen_dir} ({how})")
    gens = Generators.load(gen_dir, device=device, space=run.space)
    pipe = BrainITPipeline(run, gens, device)
    dataset = load_dataset(args.data)
    subject = dataset.subject(args.subject)
    ids = np.unique(subject.split_image_ids(args.split))
    if args.limit is not None:
        ids = ids[:args.limit]
    settings = {
        "branches": sorted(args.branches), "mode": args.mode or gens.reconstruction.mode, "seed": args.seed,
        "steps": args.steps, "fusion_strength": args.fusion_strength, "guidance_scale": args.guidance_scale,
        "sampler": args.sampler, "refine_steps": args.refine_steps, "dip_steps": args.dip_steps,
        "semantic_only": args.semantic_only, "max_repeats": args.max_repeats,
        "defaults": json.loads(json.dumps(gens.settings.get("reconstruction", {}))),
    }
    key = hashlib.sha256(json.dumps({"run": run.checkpoint_sha256, "generators": gens.sha256,
                                     "subject": args.subject, "settings": settings}, sort_keys=True).encode()).hexdigest()
    out = Path(args.out).expanduser()
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else None
    if manifest is not None and manifest.get("key") != key:
        if not args.overwrite:
            from brainit_core.errors import BrainITError

            raise BrainITError(f"{manifest_path} holds reconstructions made with other checkpoints or settings "
                               f"(key {manifest.get('key', '?')[:12]}, now {key[:12]}); use another --out or --overwrite")
        manifest = None
    if manifest is None:
        manifest = {"key": key, "run": str(Path(args.run).resolve()), "run_sha256": run.checkpoint_sha256,
                    "generators": str(gen_dir.resolve()), "generators_sha256": gens.sha256,
                    "generators_hashes": gens.hashes, "data": str(Path(args.data).resolve()),
                    "subject": args.subject, "split": args.split, "settings": settings, "images": {}}
    done = set(manifest["images"])
    todo = [int(i) for i in ids if str(int(i)) not in done]
    print(f"{len(ids) - len(todo)} of {len(ids)} images already in {out}; reconstructing {len(todo)}")
    for start in track(range(0, len(todo), args.batch_size), desc="reconstruct"):
        batch = np.asarray(todo[start:start + args.batch_size], dtype=np.int64)
        betas, kept = subject.average_trials(batch, max_repeats=args.max_repeats)
        res = pipe(betas, args.subject, branches=tuple(args.branches), mode=args.mode,
                   fusion_strength=args.fusion_strength, guidance_scale=args.guidance_scale, steps=args.steps,
                   seed=[args.seed + int(i) for i in kept], refine_steps=args.refine_steps,
                   dip_steps=args.dip_steps, sampler=args.sampler, semantic_only=args.semantic_only,
                   return_attention=False)
        for kind in ("fused", "low_level", "semantic"):
            imgs = getattr(res, kind)
            if imgs is None:
                continue
            (out / kind).mkdir(parents=True, exist_ok=True)
            for i, img in zip(kept, imgs):
                Image.fromarray(img).save(out / kind / f"{int(i)}.png")
        for j, i in enumerate(kept):
            manifest["images"][str(int(i))] = {
                "files": {k: f"{k}/{int(i)}.png" for k in ("fused", "low_level", "semantic") if getattr(res, k) is not None},
                "seed": args.seed + int(i), "seconds": res.timing["per_image"]}
        manifest["last_timing"] = res.timing
        manifest["meta"] = {k: v for k, v in res.meta.items() if k != "seeds"}
        write_json(manifest_path, manifest, sort_keys=False, default=str)
    manifest["completed"] = len(manifest["images"]) >= len(ids)
    write_json(manifest_path, manifest, sort_keys=False, default=str)
    print(f"{len(manifest['images'])} reconstructions in {out} (manifest: {manifest_path})")
    return 0


def _benchmark(args) -> int:
    from brainit_core.data import load_dataset
    from brainit_core.reconstruction.benchmark import benchmark, format_table, save_grid
    from brainit_core.reconstruction.generators import Generators

    device = _setup(args)
    run = None
    if "bit" in args.sources:
        from brainit_core.models.run import BrainITRun

        if not args.run:
            raise SystemExit("--sources bit needs --run")
        run = BrainITRun.load(args.run, device=device)
    gens = Generators.load(args.generators, device=device, space=run.space if run is not None else None)
    t0 = time.time()
    images: dict = {}
    res = benchmark(gens, load_dataset(args.data), n_images=args.n, dip_steps=args.dip_steps,
                    refine_steps=args.refine_steps, sources=tuple(args.sources), run=run, subject=args.subject,
                    device=device, images_out=images)
    res["setup"]["wall_seconds"] = time.time() - t0
    res["setup"]["load_average"] = os.getloadavg()
    out = Path(args.out) if args.out else Path(args.generators) / "benchmark.json"
    write_json(out, res, sort_keys=False, default=str)
    save_grid(images, out.with_suffix(".png"))
    print(format_table(res))
    print(f"written to {out}")
    return 0
