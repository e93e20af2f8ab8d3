"""Commands ``train``, ``transfer`` and ``evaluate-features`` of ``python -m brainit_core``."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from brainit_core.cli_types import device, existing_dir, feature_space, out_dir, out_file, positive_int
from brainit_core.distributed import is_main
from brainit_core.utils import cpu_threads


def _minutes(value: str):
    if value == "all":
        return "all"
    try:
        v = int(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a number of minutes or 'all', got {value!r}") from exc
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of minutes or 'all', got {value!r}")
    return v


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train a Brain-IT run: features, encoder, V2C, synthetic fMRI, BIT (both heads)",
        description="Train every stage of Brain-IT on a canonical dataset. Each stage is written atomically "
                    "into --out and skipped when done, so an interrupted run continues with --resume.")
    p.add_argument("--data", type=existing_dir, required=True, help="canonical dataset directory (twin or prepared NSD)")
    p.add_argument("--preset", choices=("ci", "demo", "full"), default="demo", help="model and feature sizes")
    p.add_argument("--out", type=out_dir, required=True, help="run directory to write (its parent folder must exist)")
    p.add_argument("--device", type=device, default="auto",
                   help="'auto' (CUDA when available), 'cpu', 'cuda', 'cuda:1', ...")
    p.add_argument("--space", type=feature_space, default="lite0",
                   help="feature space BIT predicts: lite0 (default, offline) or bigg-vgg16bn")
    p.add_argument("--resume", action="store_true", help="continue a run directory that already has content")
    p.add_argument("--semantic-epochs", type=positive_int, default=None,
                   help="with --resume: train the semantic head further, up to this many epochs in total")
    p.add_argument("--lowlevel-epochs", type=positive_int, default=None,
                   help="with --resume: train the low-level head further, up to this many epochs in total")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="CPU threads for torch, >= 1 (default: torch's choice; use 1 on a machine shared with other jobs)")
    p.add_argument("--encoder-backbone", choices=("lite1", "lite2", "dinov2-vitl14-reg", "lite0"), default=None,
                   help="network the image-to-fMRI encoder reads (default: the preset's, lite1 offline, "
                        "dinov2-vitl14-reg for full; lite0 is the decoder's own space, as runs before it)")
    p.add_argument("--encoder-trials", choices=("averaged", "single", "both"), default=None,
                   help="encoder training samples: repeat-averaged betas, single trials, or both (default: the preset's)")
    p.add_argument("--v2c-covariance", choices=("full", "diag"), default=None,
                   help="covariance of the V2C Gaussian mixture (default: the preset's)")
    p.set_defaults(func=_train)

    p = subparsers.add_parser(
        "transfer", help="add a new subject to a trained run from 15 min to all of its data",
        description="Freeze a trained run and learn only the new subject's voxel embeddings (encoder, then "
                    "BIT initialised from the nearest reference voxels), mixing 1 real : 3 synthetic samples.")
    p.add_argument("--data", type=existing_dir, required=True, help="dataset holding the new subject")
    p.add_argument("--subject", required=True, help="the new subject's name (e.g. the twin's held-out one)")
    p.add_argument("--minutes", type=_minutes, default=60,
                   help="15 (187 trials), 60 (750 trials, one session) or 'all' (default: 60)")
    p.add_argument("--from", dest="from_run", type=existing_dir, required=True, help="trained reference run directory")
    p.add_argument("--out", type=out_dir, required=True, help="new run directory (its parent folder must exist)")
    p.add_argument("--device", type=device, default="auto", help="'auto', 'cpu', 'cuda' or 'cuda:N'")
    p.add_argument("--epochs", type=positive_int, default=None, help="override the preset's transfer epochs (>= 1)")
    p.add_argument("--resume", action="store_true", help="continue an existing --out")
    p.add_argument("--threads", type=positive_int, default=None, help="CPU threads for torch (>= 1)")
    p.add_argument("--selection", choices=("holdout", "last"), default=None,
                   help="epoch choice within the budget: best on a held-out 20%% of its images, or the last epoch "
                        "of a fixed schedule (default: the run's config)")
    p.set_defaults(func=_transfer)

    p = subparsers.add_parser(
        "evaluate-features", help="feature-level scores of a run on test images (Brain-IT vs ridge)",
        description="Per head: token correlation and 2-way identification of predicted features on the test "
                    "images, for Brain-IT and for a ridge regression on the same betas; encoder accuracy.")
    p.add_argument("--run", type=existing_dir, required=True, help="run directory")
    p.add_argument("--data", type=existing_dir, required=True, help="dataset directory")
    p.add_argument("--subjects", nargs="*", default=None, help="subjects (default: the run's, or the transferred one)")
    p.add_argument("--no-ridge", action="store_true", help="skip the ridge baseline")
    p.add_argument("--no-encoder", action="store_true", help="skip the encoder evaluation")
    p.add_argument("--device", type=device, default="auto", help="'auto', 'cpu', 'cuda' or 'cuda:N'")
    p.add_argument("--out", type=out_file, default=None, help="JSON file to write (default: RUN/eval_features.json)")
    p.set_defaults(func=_evaluate)


def _train(args) -> int:
    from brainit_core.models.training import train_run

    from brainit_core.models.bit import BITConfig
    from brainit_core.models.encoder import EncoderConfig

    cpu_threads(args.threads)
    more = {h: n for h, n in (("semantic", args.semantic_epochs), ("lowlevel", args.lowlevel_epochs)) if n}
    enc_config, bit_config = EncoderConfig.preset(args.preset), BITConfig.preset(args.preset)
    enc_config.backbone = args.encoder_backbone or enc_config.backbone
    enc_config.trials = args.encoder_trials or enc_config.trials
    bit_config.v2c_covariance = args.v2c_covariance or bit_config.v2c_covariance
    out = train_run(args.data, preset=args.preset, out=Path(args.out).expanduser(), device=args.device,
                    space_name=args.space, resume=args.resume, head_epochs=more, bit_config=bit_config,
                    encoder_config=enc_config)
    if is_main():
        print(f"run written to {out}")
    return 0


def _transfer(args) -> int:
    from brainit_core.models.bit import BITConfig
    from brainit_core.models.transfer import transfer_subject
    from brainit_core.runs import RunDirectory

    cpu_threads(args.threads)
    config = None
    if args.epochs is not None or args.selection is not None:
        config = BITConfig.from_dict(RunDirectory(args.from_run).bit_config)
        config.transfer_epochs = args.epochs or config.transfer_epochs
        config.transfer_selection = args.selection or config.transfer_selection
    out = transfer_subject(args.data, args.subject, args.minutes, args.from_run, args.out, device=args.device,
                           bit_config=config, resume=args.resume)
    if is_main():
        print(f"transferred run written to {out}")
    return 0


def _evaluate(args) -> int:
    from brainit_core.models.evaluate import evaluate_run, format_table
    from brainit_core.fileio import write_json
    from brainit_core.runs import RunDirectory

    res = evaluate_run(Path(args.run).expanduser(), Path(args.data).expanduser(), subjects=args.subjects,
                       ridge=not args.no_ridge, encoder=not args.no_encoder, device=args.device)
    out = Path(args.out) if args.out else RunDirectory(args.run).scores_path
    write_json(out, res)
    print(format_table(res))
    if isinstance(res.get("encoder"), dict):
        print("encoder:", json.dumps(res["encoder"], default=str)[:2000])
    print(f"scores written to {out}")
    return 0
