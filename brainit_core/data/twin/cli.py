"""``python -m brainit_core twin ...``: build, respond, validate, train-ventral."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from brainit_core.cli_types import (checkpoint_stem, existing_dir, existing_path, non_negative_int, out_dir, out_file, positive_float,
                                    positive_int)
from brainit_core.data.twin.taxonomy import CATEGORIES
from brainit_core.fileio import save_npy


def register(sub) -> None:
    twin = sub.add_parser("twin", help="the digital twin: a simulated NSD-style experiment")
    ts = twin.add_subparsers(dest="twin_command", metavar="<twin command>")
    b = ts.add_parser("build", help="build a twin dataset (canonical format + ground_truth/)",
                      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    b.add_argument("--out", type=out_dir, required=True, help="dataset directory to write (its parent folder must exist)")
    b.add_argument("--preset", choices=["ci", "demo", "full"], default="demo")
    b.add_argument("--seed", type=non_negative_int, default=0, help="random seed (>= 0)")
    b.add_argument("--subjects", type=positive_int, default=None,
                   help="training subjects, >= 1 (one held-out subject is added; default: the preset's)")
    b.add_argument("--stimuli", choices=["library", "procedural"], default="library",
                   help="library: COCO-like scenes composed from the stimulus library (installed with apt-get, "
                        "docs/data.md); procedural: twin v1's drawings, a fallback for fast tests")
    b.add_argument("--overwrite", action="store_true",
                   help="replace a finished twin already in --out (never another kind of dataset or other files)")
    b.set_defaults(func=_build)
    r = ts.add_parser("respond", help="simulated betas of a twin subject for any images (in-silico experiment)",
                      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    r.add_argument("--data", type=existing_dir, required=True, help="a twin dataset directory")
    r.add_argument("--subject", required=True, help="one of the twin's subjects")
    r.add_argument("--images", type=existing_path, required=True, nargs="+", help="image files or directories")
    r.add_argument("--repeats", type=positive_int, default=3, help="trials per image (>= 1)")
    r.add_argument("--seed", type=non_negative_int, default=0, help="noise seed (>= 0)")
    r.add_argument("--noiseless", action="store_true")
    r.add_argument("--out", type=out_file, required=True,
                   help=".npy file (the suffix is added when missing; its folder must exist): "
                        "float32 (n_images, repeats, n_vertices)")
    r.set_defaults(func=_respond)
    v = ts.add_parser("validate", help="print the twin's validation figures")
    v.add_argument("--data", type=existing_dir, required=True, help="a twin dataset directory")
    v.add_argument("--json", type=out_file, default=None, help="also write the figures to this JSON file")
    v.set_defaults(func=_validate)
    t = ts.add_parser("train-ventral", help="train the twin's ventral network on library composites (resumable)",
                      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    t.add_argument("--out", type=out_dir, required=True,
                   help="a new or empty folder, or one this command wrote before (training continues from it)")
    t.add_argument("--preset", choices=["ci", "demo"], default="demo")
    t.add_argument("--seed", type=non_negative_int, default=0, help="initialisation and training-scene seed (>= 0)")
    t.add_argument("--minutes", type=positive_float, default=None,
                   help="stop after this many minutes (the state is saved; run again to continue)")
    t.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads")
    t.add_argument("--steps", type=positive_int, default=None, help="training steps (default: the preset's)")
    t.add_argument("--lr", type=positive_float, default=None, help="peak learning rate (default: the preset's)")
    t.add_argument("--init", type=checkpoint_stem, default=None,
                   help="start from these weights: DIR/state of another training or a ventral checkpoint "
                        "(X for X.safetensors + X.json); a fine-tune with a fresh optimiser")
    t.add_argument("--focus", nargs="+", default=None, metavar="CATEGORY", choices=list(CATEGORIES),
                   help="weight these categories' losses --focus-weight times (a targeted fine-tune)")
    t.add_argument("--focus-weight", type=positive_float, default=4.0, help="loss weight of the --focus categories")
    t.set_defaults(func=_train_ventral)
    twin.set_defaults(func=lambda args: twin.print_help() or 1)


def _build(args) -> int:
    from brainit_core.data.twin import TwinConfig, build_twin

    overrides = {"n_subjects": args.subjects} if args.subjects else {}
    overrides["stimuli"] = args.stimuli
    t = time.time()
    ds = build_twin(args.out, TwinConfig.preset(args.preset, seed=args.seed, **overrides),
                    overwrite=args.overwrite)
    print(f"built {ds.path} in {time.time() - t:.1f} s: subjects {ds.subjects} (held out {ds.heldout_subjects})")
    return 0


def _respond(args) -> int:
    from brainit_core.data.twin.respond import read_images, respond

    imgs = read_images(args.images)
    t = time.time()
    out = respond(args.data, args.subject, imgs, args.repeats, args.seed, not args.noiseless)
    path = args.out if args.out.suffix == ".npy" else Path(f"{args.out}.npy")  # what np.save writes
    save_npy(path, out)
    print(f"wrote {path}: {out.shape} in {time.time() - t:.2f} s ({(time.time() - t) / len(imgs):.2f} s/image)")
    return 0


def _validate(args) -> int:
    from brainit_core.data.twin.validation import format_report, report_json, validate_twin

    report = validate_twin(args.data)
    print(format_report(report))
    if args.json:
        with open(args.json, "w") as f:
            f.write(report_json(report))
    return 0


def _train_ventral(args) -> int:
    from brainit_core.data.twin.ventral import VentralConfig, format_quality
    from brainit_core.data.twin.ventral_training import train_ventral
    from brainit_core.utils import cpu_threads

    cpu_threads(args.threads)
    seconds = None if args.minutes is None else 60.0 * args.minutes
    overrides = {k: v for k, v in (("steps", args.steps), ("lr", args.lr)) if v is not None}
    if args.focus:
        overrides.update(focus=tuple(args.focus), focus_weight=args.focus_weight)
    result = train_ventral(args.out, VentralConfig.preset(args.preset, **overrides), seed=args.seed,
                           max_seconds=seconds, log=lambda line: print(line, flush=True), init=args.init)
    if not result["done"]:
        return 0
    print(format_quality(result["quality"]))
    print(f"wrote {args.out / 'ventral.safetensors'}, {args.out / 'ventral.json'} and {args.out / 'quality.json'} "
          f"({result['elapsed_s'] / 60:.1f} min of training)")
    return 0
