"""``python -m brainit_core nsd ...``: prepare NSD into the canonical format, or check a root."""
from __future__ import annotations

import argparse


def register(sub) -> None:
    nsd = sub.add_parser("nsd", help="Natural Scenes Dataset: prepare or check files")
    nsd_sub = nsd.add_subparsers(dest="nsd_command", metavar="<nsd command>")

    p = nsd_sub.add_parser("prepare", help="write NSD subjects to a canonical dataset directory",
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--nsd-root", required=True, help="NSD root holding nsddata/, nsddata_betas/, nsddata_stimuli/")
    p.add_argument("--subjects", type=int, nargs="+", default=[1, 2, 5, 7])
    p.add_argument("--out", required=True, help="output dataset directory")
    p.add_argument("--space", choices=["fsaverage", "func1pt8mm"], default="fsaverage")
    p.add_argument("--mask", default="nsdgeneral", help="nsdgeneral | algonauts | a file ({hemi} -> lh/rh)")
    p.add_argument("--sessions", type=int, default=None, help="first N sessions (default: all completed)")
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--val-images", type=int, default=None, help="training images held out for validation")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_prepare)

    c = nsd_sub.add_parser("check", help="list which NSD files are present or missing, without writing")
    c.add_argument("--nsd-root", required=True)
    c.add_argument("--subjects", type=int, nargs="+", default=[1, 2, 5, 7])
    c.add_argument("--space", choices=["fsaverage", "func1pt8mm"], default="fsaverage")
    c.set_defaults(func=_check)
    nsd.set_defaults(func=lambda args: nsd.print_help() or 1)


def _prepare(args) -> int:
    from brainit_core.data.nsd import prepare_nsd

    ds, report = prepare_nsd(args.nsd_root, args.subjects, args.out, space=args.space, mask=args.mask,
                             sessions=args.sessions, image_size=args.image_size, val_images=args.val_images,
                             seed=args.seed)
    for line in report.lines():
        print(line)
    print(f"wrote {ds.path}")
    return 0


def _check(args) -> int:
    from pathlib import Path

    from brainit_core.data.nsd import SESSIONS_COMPLETED, NSDLayout, _available_sessions

    layout = NSDLayout(Path(args.nsd_root))
    ok = True
    for label, path in (("experiment design", layout.expdesign), ("stimuli", layout.stimuli)):
        present = path.exists()
        ok &= present
        print(f"{'ok     ' if present else 'MISSING'} {label}: {path}")
    for s in args.subjects:
        if s not in SESSIONS_COMPLETED:
            print(f"MISSING subject {s}: not an NSD subject (1..8)")
            ok = False
            continue
        have = _available_sessions(layout, s, args.space)
        print(f"{'ok     ' if have else 'MISSING'} subj{s:02d} {args.space}: {len(have)}/{SESSIONS_COMPLETED[s]} "
              f"sessions under {layout.betas_dir(s, args.space)}")
        ok &= bool(have)
    return 0 if ok else 2
