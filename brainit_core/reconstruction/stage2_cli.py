"""Commands ``train-sdxl-projection`` (stage 1 of the full-size SDXL set) and ``stage2`` (joint fine-tuning)."""
from __future__ import annotations

from pathlib import Path

from brainit_core.cli_types import (
    add_device_args, existing_dir, feature_space, non_negative_float, non_negative_int, out_dir, positive_float,
    positive_int, setup_device,
)
from brainit_core.distributed import is_main

PRESETS = ("ci", "demo", "full")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train-sdxl-projection", help="make a full-size SDXL generator set: train its image-token projection",
        description="Start (or continue) an SDXL generator set in OUT that uses the local diffusers-format SDXL "
                    "directory SDXL_DIR (unet/, vae/, scheduler/; e.g. MindEye2's unCLIP fine-tune; nothing is "
                    "downloaded) and train the projection of the feature space's semantic tokens into its "
                    "conditioning, with the SDXL UNet and VAE frozen (diffusion loss on the dataset's training + "
                    "unlabeled images and their true tokens). Resumable: run the same command again. Use OUT as "
                    "--generators of reconstruct, benchmark, stage2 or the app.")
    p.add_argument("--sdxl", type=existing_dir, required=True, help="local diffusers-format SDXL directory")
    p.add_argument("--data", type=existing_dir, required=True, help="canonical dataset directory")
    p.add_argument("--out", type=out_dir, required=True, help="the SDXL generator set to write or resume")
    p.add_argument("--preset", choices=PRESETS, default="full", help="training length and the feature space's preset")
    p.add_argument("--space", type=feature_space, default="bigg-vgg16bn",
                   help="feature space whose semantic tokens condition SDXL (the paper's bigg-vgg16bn)")
    p.add_argument("--size", type=positive_int, default=768, help="image side in pixels (MindEye2: 768)")
    p.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float32",
                   help="UNet precision (float16/bfloat16 on a GPU)")
    p.add_argument("--inverter-from", type=existing_dir, default=None,
                   help="generators directory of the same feature space whose inverter the set's low-level branch "
                        "uses (fast mode); without it the set reconstructs in dip mode")
    p.add_argument("--steps", type=positive_int, default=None, help="override the preset's step count (>= 1)")
    p.add_argument("--max-images", type=positive_int, default=None, help="use at most this many training images")
    p.add_argument("--max-minutes", type=non_negative_float, default=None,
                   help="time budget of this call (>= 0); the state is saved and a later call continues")
    p.add_argument("--no-shared-cache", action="store_true",
                   help="keep semantic tokens in OUT/train instead of the dataset's feature cache")
    p.add_argument("--seed", type=non_negative_int, default=0)
    add_device_args(p)
    p.set_defaults(func=_projection)

    p = subparsers.add_parser(
        "stage2", help="stage 2: fine-tune BIT's semantic head together with the generator (diffusion loss)",
        description="The paper's joint training: starting from a finished run and its generators (offline or "
                    "SDXL), fine-tune BIT's semantic head and the generator's UNet together with the diffusion "
                    "loss on (betas, seen image) pairs of the run's training subjects. Writes OUT/run (a complete "
                    "run) and OUT/generators beside it, and the diffusion loss before and after on validation "
                    "pairs (OUT/train/eval.json, run.json's stage2). Resumable: run the same command again. Data-parallel "
                    "under torchrun (docs/models.md).")
    p.add_argument("--run", "--from", dest="run", type=existing_dir, required=True,
                   help="finished run directory (stage 1); under torchrun write --from (its own parser takes --run "
                        "for its --run-path)")
    p.add_argument("--generators", type=existing_dir, default=None,
                   help="generators directory (default: the ones matching the run's feature space, printed)")
    p.add_argument("--data", type=existing_dir, default=None, help="dataset directory (default: the run's)")
    p.add_argument("--out", type=out_dir, required=True, help="new or empty folder, or this stage 2 to continue")
    p.add_argument("--preset", choices=PRESETS, default="demo",
                   help="ci (seconds), demo (3,000 steps, about 30 min on an idle CPU core; resumable), full (the "
                        "official settings, GPU)")
    p.add_argument("--steps", type=positive_int, default=None, help="override the preset's step count (>= 1)")
    p.add_argument("--batch-size", type=positive_int, default=None, help="override the preset's batch size")
    p.add_argument("--lr-bit", type=positive_float, default=None, help="learning rate of BIT's semantic head")
    p.add_argument("--lr-generator", type=positive_float, default=None, help="learning rate of the generator")
    p.add_argument("--aux-weight", type=non_negative_float, default=None,
                   help="weight of the stage-1 token MSE kept beside the diffusion loss (0: official)")
    p.add_argument("--max-minutes", type=non_negative_float, default=None,
                   help="time budget of this call (>= 0); the state is saved and a later call continues")
    p.add_argument("--seed", type=non_negative_int, default=0)
    add_device_args(p)
    p.set_defaults(func=_stage2)


def _projection(args) -> int:
    from brainit_core.reconstruction.sdxl import SDXLAdapterConfig
    from brainit_core.reconstruction.sdxl_set import train_projection

    device = setup_device(args)
    out = train_projection(args.data, args.sdxl, args.out, preset=args.preset, space_name=args.space,
                           adapter=SDXLAdapterConfig(size=args.size, dtype=args.dtype), device=device, seed=args.seed,
                           max_images=args.max_images, steps=args.steps,
                           max_seconds=None if args.max_minutes is None else args.max_minutes * 60,
                           inverter_from=args.inverter_from, shared_cache=not args.no_shared_cache)
    done = (Path(out) / "image_token_projection.safetensors").is_file()
    print(f"SDXL set {out}: projection {'trained' if done else 'paused (run again to continue)'}; "
          f"loss curve in {Path(out) / 'train'}")
    return 0


def _stage2(args) -> int:
    from brainit_core.fileio import read_json
    from brainit_core.reconstruction.stage2 import Stage2Config, train_stage2
    from brainit_core.runs import generators_for_run

    device = setup_device(args)
    generators, how = generators_for_run(args.run, args.generators)
    if not args.generators and is_main():
        print(f"generators: {generators} ({how})")
    config = Stage2Config.preset(args.preset)
    for field, value in (("steps", args.steps), ("batch_size", args.batch_size), ("lr_bit", args.lr_bit),
                         ("lr_generator", args.lr_generator), ("aux_weight", args.aux_weight)):
        if value is not None:
            setattr(config, field, value)
    out = Path(train_stage2(args.run, generators, args.out, preset=args.preset, data=args.data, device=device,
                            seed=args.seed, config=config,
                            max_seconds=None if args.max_minutes is None else args.max_minutes * 60))
    ev = read_json(out / "train" / "eval.json", {})
    if not is_main():  # (several processes: rank 0 reports)
        return 0
    if "after" in ev:
        b, a = ev["before"]["val"]["diffusion"], ev["after"]["val"]["diffusion"]
        print(f"stage 2 done: validation diffusion loss {b:.4f} -> {a:.4f}; run {out / 'run'}, "
              f"generators {out / 'generators'}")
    else:
        print(f"stage 2 paused; run the same command again to continue ({out / 'train' / 'stage2_loss.csv'})")
    return 0
