"""``python -m brainit_core nsd ...``: prepare NSD into the canonical format, or check a root."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from brainit_core.cli_types import existing_dir, int_in, non_negative_int, out_dir, positive_int

NSD_SUBJECT = int_in(1, 8)


def register(sub) -> None:
    nsd = sub.add_parser("nsd", help="Natural Scenes Dataset: prepare or check files")
    nsd_sub = nsd.add_subparsers(dest="nsd_command", metavar="<nsd command>")

    p = nsd_sub.add_parser("prepare", help="write NSD subjects to a canonical dataset directory",
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--nsd-root", type=existing_dir, required=True,
                   help="NSD root holding nsddata/, nsddata_betas/, nsddata_stimuli/")
    p.add_argument("--subjects", type=NSD_SUBJECT, nargs="+", default=[1, 2, 5, 7], help="NSD subjects, 1..8")
    p.add_argument("--out", type=out_dir, required=True, help="output dataset directory (its parent folder must exist)")
    p.add_argument("--space", choices=["fsaverage", "func1pt8mm"], default="fsaverage")
    p.add_argument("--mask", default="nsdgeneral", help="nsdgeneral | algonauts | a file ({hemi} -> lh/rh)")
    p.add_argument("--sessions", type=positive_int, default=None, help="first N (>= 1) sessions (default: all completed)")
    p.add_argument("--image-size", type=positive_int, default=256, help="stored image size in pixels")
    p.add_argument("--val-images", type=non_negative_int, default=None,
                   help="training images held out for validation (>= 0)")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--overwrite", action="store_true",
                   help="replace a finished NSD dataset already in --out (never another kind or other files)")
    p.set_defaults(func=_prepare)

    c = nsd_sub.add_parser("check", help="list which NSD files are present or missing, without writing")
    c.add_argument("--nsd-root", required=True, help="NSD root (a missing one is reported, not refused)")
    c.add_argument("--subjects", type=NSD_SUBJECT, nargs="+", default=[1, 2, 5, 7], help="NSD subjects, 1..8")
    c.add_argument("--space", choices=["fsaverage", "func1pt8mm"], default="fsaverage")
    c.set_defaults(func=_check)
    nsd.set_defaults(func=lambda args: nsd.print_help() or 1)


def _prepare(args) -> int:
    from brainit_core.data.nsd import prepare_nsd

    ds, report = prepare_nsd(args.nsd_root, args.subjects, args.out, space=args.space, mask=args.mask,
                             sessions=args.sessions, image_size=args.image_size, val_images=args.val_images,
                             seed=args.seed, overwrite=args.overwrite)
    for line in report.lines():
        print(line)
    print(f"wrote {ds.path}")
    return 0


@dataclass(frozen=True)
class NSDCheck:
    """What ``nsd check`` found under an NSD root.

    Attributes
    ----------
    items : tuple of (str, bool, str)
        ``(label, present, detail)``: ``("stimuli", True, "<path>")``, ``("subj01 fsaverage", False,
        "0/40 sessions under <dir>")``, ...
    """

    items: tuple

    @property
    def ok(self) -> bool:
        """Every file needed is there."""
        return all(present for _, present, _ in self.items)

    def lines(self) -> list[str]:
        """``"ok      stimuli: <path>"`` / ``"MISSING subj01 fsaverage: 0/40 sessions under <dir>"``."""
        return [f"{'ok     ' if present else 'MISSING'} {label}: {detail}" for label, present, detail in self.items]


def check_nsd(nsd_root, subjects=(1, 2, 5, 7), space: str = "fsaverage") -> NSDCheck:
    """Which of the files ``nsd prepare`` needs are present under ``nsd_root`` (nothing is read or written)."""
    from brainit_core.data.nsd import SESSIONS_COMPLETED, NSDLayout

    root = Path(str(nsd_root)).expanduser()
    if not root.is_dir():
        return NSDCheck((("NSD root", False, f"{root} is not a directory"),))
    layout = NSDLayout(root)
    items = [(label, path.exists(), str(path))
             for label, path in (("experiment design", layout.expdesign), ("stimuli", layout.stimuli))]
    for s in subjects:
        if s not in SESSIONS_COMPLETED:
            items.append((f"subject {s}", False, "not an NSD subject (1..8)"))
            continue
        have = layout.available_sessions(s, space)
        items.append((f"subj{s:02d} {space}", bool(have), f"{len(have)}/{SESSIONS_COMPLETED[s]} sessions under "
                      f"{layout.betas_dir(s, space)}"))
    return NSDCheck(tuple(items))


def _check(args) -> int:
    result = check_nsd(args.nsd_root, args.subjects, args.space)
    for line in result.lines():
        print(line)
    return 0 if result.ok else 2
