"""Command ``evaluate``: score a saved reconstruction set with the protocol's table.

Reads images from disk only, so a table can be recomputed from the saved set at any time.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from brainit_core.cli_types import device, existing_dir, metric_network, out_file, positive_int
from brainit_core.fileio import write_json


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate", help="score saved reconstructions (PixCorr, SSIM, two-way identification, distances)",
        description="Score a reconstruction set written by `reconstruct` (RECON_DIR/manifest.json names the "
                    "dataset; RECON_DIR/<kind>/<id>.png are the reconstructions), or any folder of PNGs against "
                    "a folder of ground-truth PNGs with the same file names (--truth). Protocol columns whose "
                    "weights are not on this machine say 'unavailable'; see --list-columns.")
    p.add_argument("recon", type=existing_dir, nargs="?", help="reconstruction directory (or folder of PNGs with --truth)")
    p.add_argument("--kind", default="fused", choices=("fused", "low_level", "semantic"),
                   help="which reconstructions of a `reconstruct` output to score")
    p.add_argument("--truth", type=existing_dir, default=None, help="folder of ground-truth PNGs paired by file name")
    p.add_argument("--networks", type=metric_network, nargs="+", default=["auto"],
                   help="auto | protocol | offline | network names (alexnet inception clip effnet swav lite1 lite2)")
    p.add_argument("--weights", type=existing_dir, default=None,
                   help="folder of protocol weight files (also $BRAINIT_WEIGHTS)")
    p.add_argument("--device", type=device, default="auto", help="'auto', 'cpu', 'cuda' or 'cuda:N'")
    p.add_argument("--batch-size", type=positive_int, default=32, help="images per batch (>= 1)")
    p.add_argument("--out", type=out_file, default=None, help="JSON file (default RECON_DIR/metrics_<kind>.json)")
    p.add_argument("--list-columns", action="store_true", help="print which network backs each column and exit")
    p.set_defaults(func=_evaluate)


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image

    from brainit_core.errors import DataFormatError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, ValueError) as exc:
        raise DataFormatError(f"{path}: cannot read as an image ({exc})") from exc


def _read_pngs(paths: list[Path]) -> np.ndarray:
    """Stack same-sized images; a size that differs from the first image's is a DataFormatError naming both."""
    from brainit_core.errors import DataFormatError

    images = [_read_png(p) for p in paths]
    for path, img in zip(paths, images):
        if img.shape != images[0].shape:
            raise DataFormatError(f"{path} is {img.shape[1]}x{img.shape[0]} px but {paths[0]} is "
                                  f"{images[0].shape[1]}x{images[0].shape[0]} px: the images of one set must "
                                  "share a size")
    return np.stack(images)


def _load_pairs(args) -> tuple[list[str], np.ndarray, np.ndarray]:
    from brainit_core.errors import DataFormatError

    recon_dir = Path(args.recon).expanduser()
    if args.truth:
        truth_dir = Path(args.truth).expanduser()
        names = sorted(p.name for p in recon_dir.glob("*.png"))
        missing = [n for n in names if not (truth_dir / n).exists()]
        if not names or missing:
            raise DataFormatError(f"need PNGs in {recon_dir} each with a same-named PNG in {truth_dir}; "
                                  f"{len(names)} found, missing in truth: {missing[:5]}")
        return (names, _read_pngs([truth_dir / n for n in names]), _read_pngs([recon_dir / n for n in names]))
    from brainit_core.data import load_dataset

    manifest_path = recon_dir / "manifest.json"
    if not manifest_path.exists():
        raise DataFormatError(f"{manifest_path} not found: pass a `reconstruct` output directory, or --truth")
    manifest = json.loads(manifest_path.read_text())
    entries = {int(i): e["files"][args.kind] for i, e in manifest["images"].items() if args.kind in e["files"]}
    if len(entries) < 2:
        raise DataFormatError(f"{manifest_path} lists {len(entries)} '{args.kind}' reconstructions; need at least 2")
    ids = sorted(entries)
    truth = load_dataset(manifest["data"]).images(ids)
    return [str(i) for i in ids], truth, _read_pngs([recon_dir / entries[i] for i in ids])


def _evaluate(args) -> int:
    from brainit_core.metrics.evaluator import UNAVAILABLE, describe_columns, evaluate_reconstructions

    columns = describe_columns(args.weights)
    if args.list_columns:
        for name, info in columns.items():
            state = "ok" if info["available"] else "unavailable"
            print(f"{name:22s} {info['metric']:8s} {state:12s} {info['network']} [{info['layer']}, "
                  f"{info['input_size']} px]" + (f"\n{'':22s} {info['reason']}" if info["reason"] else ""))
        return 0
    if not args.recon:
        from brainit_core.errors import BrainITError

        raise BrainITError("evaluate: give RECON_DIR (or --list-columns)")
    names, truth, recon = _load_pairs(args)
    networks = args.networks[0] if len(args.networks) == 1 and args.networks[0] in ("auto", "protocol", "offline") \
        else args.networks
    per_image = evaluate_reconstructions(truth, recon, networks=networks, device=args.device, weights=args.weights,
                                         batch_size=args.batch_size, reduce=False)
    table = {k: (v if isinstance(v, str) else float(np.mean(v))) for k, v in per_image.items()}
    result = {
        "table": table, "n_images": len(names), "images": names,
        "per_image": {k: v.tolist() for k, v in per_image.items() if not isinstance(v, str)},
        "columns": {k: columns[k] for k in table}, "protocol": "MindEye2 final_evaluations (256 px first)",
    }
    out = Path(args.out) if args.out else Path(args.recon).expanduser() / f"metrics_{args.kind}.json"
    write_json(out, result, sort_keys=False)
    for name, value in table.items():
        arrow = "lower" if columns[name]["metric"] == "distance" else "higher"
        shown = value if value == UNAVAILABLE else f"{value:.4f}"
        print(f"{name:22s} {shown:>12s}  ({arrow} is better; {columns[name]['network']})")
    print(f"{len(names)} images; written to {out}")
    return 0
