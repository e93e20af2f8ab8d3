"""Command ``generator-branches``: what the low-level branch, the semantic branch and fusion each give."""
from __future__ import annotations

from pathlib import Path

from brainit_core.cli_types import (
    add_device_args, existing_dir, fraction_in, non_negative_int, out_file, positive_int, setup_device,
)
from brainit_core.errors import BrainITError
from brainit_core.fileio import write_json
from brainit_core.stimulus import HELDOUT_SCENE_SEED


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "generator-branches", help="what each branch contributes: low-level, semantic only, fused at several strengths",
        description="Reconstruct images the generators never saw from their true (oracle) or prediction-like "
                    "features with the low-level branch alone, the semantic branch alone and fusion at a sweep of "
                    "strengths; score each with the evaluation table and report the share of the low-level "
                    "branch's SSIM advantage that fusion keeps. Writes JSON, a markdown table and a PNG grid.")
    p.add_argument("--generators", type=existing_dir, required=True, help="generators directory (GEN_DIR)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", type=existing_dir, help="dataset: its shared test images")
    src.add_argument("--scenes", type=positive_int, help="N library scenes of --scene-seed")
    src.add_argument("--photos", action="store_true", help="the photographs scikit-image ships")
    p.add_argument("--scene-seed", type=non_negative_int, default=HELDOUT_SCENE_SEED,
                   help=f"seed of the scenes (default {HELDOUT_SCENE_SEED}, which generators do not train on)")
    p.add_argument("--n", type=positive_int, default=48, help="at most this many images (>= 1)")
    p.add_argument("--sources", nargs="+", choices=("true", "simulated", "bit"), default=None,
                   help="feature sources (default: true and simulated; with --run also bit)")
    p.add_argument("--run", type=existing_dir, default=None,
                   help="a trained run (with --data): adds the source 'bit', BIT's features from the "
                        "subject's repeat-averaged test betas")
    p.add_argument("--subject", default=None, help="with --run: whose betas (default: the run's first subject)")
    p.add_argument("--strengths", type=fraction_in(0.0, 1.0), nargs="+", default=None,
                   help="fusion strengths in [0, 1] (default a sweep around the official 24/38)")
    p.add_argument("--steps", type=positive_int, default=None, help="fusion schedule length (default from GEN_DIR)")
    p.add_argument("--networks", default="offline", help="evaluation networks: offline (default), auto, protocol")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--out", type=out_file, required=True, help="JSON file (a .md table and a .png grid beside it)")
    add_device_args(p)
    p.set_defaults(func=_branches)


def _branches(args) -> int:
    import numpy as np

    from brainit_core.reconstruction.benchmark import save_grid
    from brainit_core.reconstruction.branches import DEFAULT_STRENGTHS, branch_study, format_study, photographs
    from brainit_core.reconstruction.generators import Generators
    from brainit_core.reconstruction.images import image_size_of

    device = setup_device(args)
    sources = list(args.sources or (["true", "simulated"] + (["bit"] if args.run else [])))
    if ("bit" in sources or args.run) and not (args.run and args.data):
        raise BrainITError("the source 'bit' (and --run) needs --run RUN and --data DATASET: BIT predicts "
                           "the features of the dataset's test images from the subject's betas")
    predicted = None
    gens = Generators.load(args.generators, device=device)
    size = image_size_of(gens.space)
    if args.photos:
        names, images = photographs(size)
        source = {"photos": names}
    elif args.scenes:
        from brainit_core.reconstruction.training import scene_images

        _, images, source = scene_images(args.scenes, args.scene_seed, size)
    else:
        from brainit_core.data import load_dataset

        ds = load_dataset(args.data)
        if args.run:
            from brainit_core.models.run import BrainITRun
            from brainit_core.reconstruction.branches import predicted_features
            from brainit_core.reconstruction.pipeline import BrainITPipeline

            run = BrainITRun.load(args.run, device=device)
            BrainITPipeline(run, gens)  # refuses generators made for another feature space than the run's
            subject = args.subject or run.subjects[0]
            if subject not in run.subjects:
                raise BrainITError(f"subject {subject!r} is not in the run {args.run} (it has {', '.join(run.subjects)})")
            ids, sem, low = predicted_features(run, ds, subject, device=device, n=args.n)
            predicted = (sem, low)
            source = {"run": str(args.run), "subject": subject}
        else:
            ids, source = np.unique(ds.subject(ds.training_subjects[0]).test_image_ids)[:args.n], {}
        images = ds.images(ids)
        source.update(dataset=str(args.data), image_ids=ids.tolist())
    images = images[:args.n]
    if len(images) < 2:
        raise BrainITError(f"generator-branches needs at least 2 images, got {len(images)}")
    grid: dict = {}
    res = branch_study(gens, images, sources=tuple(sources), strengths=args.strengths or DEFAULT_STRENGTHS,
                       seed=args.seed, networks=args.networks, device=device, steps=args.steps, images_out=grid,
                       predicted=predicted)
    res["setup"]["images"] = source
    out = Path(args.out)
    write_json(out, res, sort_keys=False, default=str)
    table = format_study(res)
    out.with_suffix(".md").write_text(table + "\n")
    save_grid(grid, out.with_suffix(".png"), max_images=12)
    print(table)
    print(f"written to {out} (+ .md, .png)")
    return 0
