"""Commands ``train-generators``, ``reconstruct`` and ``benchmark-generators``."""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from brainit_core.cli_types import (
    add_device_args, existing_dir, feature_space, fraction_in, non_negative_float, non_negative_int, out_dir,
    out_file, positive_int, setup_device, stage_steps,
)
from brainit_core.distributed import is_main
from brainit_core.errors import BrainITError
from brainit_core.stimulus import GENERATOR_SCENE_SEED
from brainit_core.fileio import write_json

STAGES = ("autoencoder", "inverter", "unet")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train-generators", help="train the image generators: autoencoder, feature inverter, semantic UNet",
        description="Train the reconstruction generators on a dataset's training + unlabeled images (never its "
                    "test images) with their true features. Each stage is skipped when its checkpoint exists "
                    "and resumes from GEN_DIR/train/ when interrupted: run the same command again.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", type=existing_dir, help="canonical dataset directory")
    src.add_argument("--scenes", type=positive_int, default=None,
                     help="train on N scenes composed from the twin's stimulus library instead of a dataset")
    p.add_argument("--scene-seed", type=non_negative_int, default=GENERATOR_SCENE_SEED,
                   help=f"seed of the library scenes (default {GENERATOR_SCENE_SEED}: no twin build draws its images with it)")
    p.add_argument("--preset", choices=("ci", "demo", "full"), default="demo", help="model sizes and step counts")
    p.add_argument("--out", type=out_dir, required=True,
                   help="generators directory (GEN_DIR) to write or resume (its parent folder must exist)")
    p.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES), help="stages to train (in this order)")
    p.add_argument("--space", type=feature_space, default="lite0", help="feature space: lite0 (default) or bigg-vgg16bn")
    p.add_argument("--max-images", type=positive_int, default=None, help="use at most this many training images")
    p.add_argument("--steps", type=stage_steps(STAGES), nargs="+", default=[], metavar="STAGE=N",
                   help="override step counts (N >= 1), e.g. autoencoder=600 unet=5000")
    p.add_argument("--max-minutes", type=non_negative_float, default=None,
                   help="time budget per stage in this call (>= 0); the state is saved and a later call continues")
    p.add_argument("--init-from", type=existing_dir, default=None,
                   help="start stages from these generators' finished weights (fine-tuning on new images)")
    p.add_argument("--init-stages", nargs="+", choices=STAGES, default=list(STAGES),
                   help="the stages that start from --init-from (default all; the others start from scratch)")
    p.add_argument("--no-shared-cache", action="store_true",
                   help="keep semantic tokens in GEN_DIR/train instead of the dataset's feature cache")
    p.add_argument("--seed", type=non_negative_int, default=0)
    add_device_args(p)
    p.set_defaults(func=_train)

    p = subparsers.add_parser(
        "reconstruct", help="reconstruct a split's images from betas with a run and generators",
        description="Predict features with BIT, invert the low-level pyramid (fast: amortised inverter; dip: Deep "
                    "Image Prior) and fuse with semantic diffusion. Writes OUT/<fused|low_level|semantic>/<id>.png "
                    "and OUT/manifest.json; images already in OUT (same checkpoints and settings) are skipped.")
    p.add_argument("--run", type=existing_dir, required=True, help="trained run directory")
    p.add_argument("--generators", type=existing_dir, default=None,
                   help="generators directory (default: the ones that match the run's feature space: beside the run, "
                        "then ~/.brainit/generators, then the shipped demo's; the choice is printed)")
    p.add_argument("--data", type=existing_dir, required=True, help="dataset directory")
    p.add_argument("--subject", required=True, help="subject name")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--out", type=out_dir, required=True, help="output directory (its parent folder must exist)")
    p.add_argument("--mode", choices=("fast", "dip"), default=None, help="low-level inversion (default from GEN_DIR)")
    p.add_argument("--branches", nargs="+", choices=("low_level", "semantic"), default=["low_level", "semantic"])
    p.add_argument("--limit", type=positive_int, default=None, help="only the first N (>= 1) images of the split")
    p.add_argument("--seed", type=non_negative_int, default=0, help="base seed (>= 0); image i uses seed + its image id")
    p.add_argument("--steps", type=positive_int, default=None, help="diffusion schedule length (fusion: official 38)")
    p.add_argument("--fusion-strength", type=fraction_in(0.0, 1.0), default=None,
                   help="fraction of the schedule re-run, in [0, 1] (24/38)")
    p.add_argument("--guidance-scale", type=non_negative_float, default=None,
                   help="classifier-free guidance scale, a finite number >= 0 (default from GEN_DIR)")
    p.add_argument("--sampler", choices=("dpm", "ddim"), default=None)
    p.add_argument("--refine-steps", type=non_negative_int, default=None,
                   help="fast mode: DIP steps from the inverter's image (>= 0)")
    p.add_argument("--dip-steps", type=positive_int, default=None, help="dip mode: optimisation steps (>= 1)")
    p.add_argument("--semantic-only", action="store_true", help="also write semantic-only generations")
    p.add_argument("--max-repeats", type=positive_int, default=None,
                   help="average only the first K (>= 1) repeats of each image")
    p.add_argument("--batch-size", type=positive_int, default=8, help="images per batch (>= 1)")
    p.add_argument("--overwrite", action="store_true", help="replace results made with other checkpoints/settings")
    add_device_args(p)
    p.set_defaults(func=_reconstruct)

    p = subparsers.add_parser(
        "benchmark-generators", help="inverter vs Deep Image Prior (SSIM, PixCorr, s/image) and fused timing",
        description="Score the amortised inverter, inverter + DIP refinement and plain DIP on test images with "
                    "true, simulated-prediction or BIT-predicted features; time fused fast-mode reconstruction.")
    p.add_argument("--generators", type=existing_dir, required=True)
    p.add_argument("--data", type=existing_dir, required=True)
    p.add_argument("--n", type=positive_int, default=8, help="number of test images (>= 1)")
    p.add_argument("--dip-steps", type=positive_int, default=200)
    p.add_argument("--refine-steps", type=non_negative_int, default=20)
    p.add_argument("--sources", nargs="+", choices=("true", "simulated", "bit"), default=["true", "simulated"])
    p.add_argument("--run", type=existing_dir, default=None, help="run directory (for --sources bit)")
    p.add_argument("--subject", default=None)
    p.add_argument("--out", type=out_file, default=None,
                   help="JSON file (default GEN_DIR/benchmark.json; a PNG grid beside it)")
    add_device_args(p)
    p.set_defaults(func=_benchmark)


def _train(args) -> int:
    from brainit_core.reconstruction.training import train_generators

    device = setup_device(args)
    overrides: dict = {}
    for stage, n in args.steps:
        overrides.setdefault(stage, {})["steps"] = n
    out = train_generators(args.data, args.out, preset=args.preset, device=device, space_name=args.space,
                           stages=tuple(args.stages), seed=args.seed, max_images=args.max_images,
                           overrides=overrides,
                           max_seconds=None if args.max_minutes is None else args.max_minutes * 60,
                           shared_cache=not args.no_shared_cache, scenes=args.scenes, scene_seed=args.scene_seed,
                           init_from=args.init_from, init_stages=tuple(args.init_stages))
    done = [s for s in STAGES if (Path(out) / f"{s}.safetensors").exists()]
    if is_main():
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

    device = setup_device(args)
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
    data = str(Path(args.data).resolve())
    # everything that decides which images and pixels land in OUT: a different split or dataset is another set
    key = hashlib.sha256(json.dumps({"run": run.checkpoint_sha256, "generators": gens.sha256, "data": data,
                                     "subject": args.subject, "split": args.split, "settings": settings},
                                    sort_keys=True).encode()).hexdigest()
    out = Path(args.out)
    manifest_path = out / "manifest.json"
    manifest = _read_manifest(manifest_path)
    if manifest is not None and manifest.get("key") != key:
        if not args.overwrite:
            raise BrainITError(
                f"{manifest_path} holds reconstructions of another set ({_describe(manifest)}; now --data {data} "
                f"--subject {args.subject} --split {args.split}) or made with other checkpoints or settings "
                f"(key {str(manifest.get('key', '?'))[:12]}, now {key[:12]}); use another --out or --overwrite")
        _remove_listed(out, manifest)
        manifest = None
    if manifest is None:
        manifest = {"key": key, "run": str(Path(args.run).resolve()), "run_sha256": run.checkpoint_sha256,
                    "generators": str(gen_dir.resolve()), "generators_sha256": gens.sha256,
                    "generators_hashes": gens.hashes, "data": data,
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


def _read_manifest(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BrainITError(f"{path}: cannot read the reconstruction manifest ({exc}); use another --out") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("images"), dict):
        raise BrainITError(f"{path}: not a reconstruction manifest (no 'images' table); use another --out")
    return manifest


def _describe(manifest: dict) -> str:
    return (f"--data {manifest.get('data', '?')} --subject {manifest.get('subject', '?')} "
            f"--split {manifest.get('split', '?')}")


def _remove_listed(out: Path, manifest: dict) -> None:
    """Delete the images an old manifest lists, so that --overwrite never leaves another set's files behind."""
    for entry in manifest["images"].values():
        for rel in (entry.get("files") or {}).values() if isinstance(entry, dict) else ():
            path = out / rel
            if path.is_file() and path.resolve().is_relative_to(out.resolve()):
                path.unlink()


def _benchmark(args) -> int:
    from brainit_core.data import load_dataset
    from brainit_core.reconstruction.benchmark import benchmark, format_table, save_grid
    from brainit_core.reconstruction.generators import Generators

    device = setup_device(args)
    run = None
    if "bit" in args.sources:
        from brainit_core.models.run import BrainITRun

        if not args.run:
            raise BrainITError("benchmark-generators: --sources bit needs --run")
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
