"""Category selectivity of a twin's patches against the issue's targets (docs/data.md, "Twin v2").

Prints, per subject and patch: d' on the dataset's test composites from the measured betas (the
category covers >= 2% of the image vs the rest, and the localizer contrast >= 5% vs absent; target
d' >= 1), the noiseless in-silico response to real photographs of the patch's category and to the
other photographs (target: above), the response of every patch to every photograph (mean over
subjects), and the ventral network's held-out quality.

Run: .venv/bin/python scripts/bench_twin_selectivity.py --data ~/.brainit/twin-demo-seed0 [--json FILE]
"""
import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

import numpy as np  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True, help="a twin dataset")
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args()
    from brainit_core.data.twin import load_ground_truth, respond
    from brainit_core.data.twin.geometry import PATCHES
    from brainit_core.data.twin.selectivity import default_photos
    from brainit_core.data.twin.validation import format_report, validate_twin
    from brainit_core.fileio import read_json
    from brainit_core.utils import assets_dir

    t = time.time()
    photos = default_photos()
    report = validate_twin(args.data, photos)
    print(f"validated {args.data} in {time.time() - t:.0f} s; {len(photos)} photographs")
    print(format_report(report))
    q = read_json(assets_dir() / "twin" / "quality.json")
    print(f"ventral network: held-out mean AUC {q['mean_auc']:.3f} ("
          + ", ".join(f"{k} {v['auc']:.2f}" for k, v in q["categories"].items()) + ")")
    print("\nd' on the test composites, measured (>= 2% vs rest / localizer >= 5% vs absent); target >= 1")
    print("subject  " + "  ".join(f"{p:>13s}" for p in PATCHES))
    for s, r in report.items():
        cells = []
        for p in PATCHES:
            d, loc = r["category_selectivity_dprime"].get(p), r["category_selectivity_localizer"].get(p)
            cells.append("-" if d is None else f"{d:+.2f} / {'-' if loc is None else f'{loc:+.2f}'}"
                         + ("*" if loc is not None and loc >= 1 else " "))
        print(f"{s}  " + "  ".join(f"{c:>13s}" for c in cells))
    print("(* localizer d' >= 1)")
    print("\nreal photographs, noiseless in-silico response (own category / others; target own > others)")
    print("subject  " + "  ".join(f"{p:>15s}" for p in PATCHES))
    for s, r in report.items():
        cells = []
        for p in PATCHES:
            x = r["photo_selectivity"].get(p)
            cells.append("-" if x is None or x["own"] is None else
                         f"{x['own']:+.2f} / {x['others']:+.2f}" + ("*" if x["selective"] else " "))
        print(f"{s}  " + "  ".join(f"{c:>15s}" for c in cells))
    print("(* own > others)")
    print("\nresponse of each patch to each photograph (noiseless, mean over subjects and the patch's vertices)")
    table = np.zeros((len(photos), len(PATCHES)))
    subjects = list(report)
    for s in subjects:
        area = load_ground_truth(args.data, s)["subject"]["area_names"]
        resp = respond(args.data, s, [p.image for p in photos], repeats=1, noise=False)[:, 0]
        for j, p in enumerate(PATCHES):
            table[:, j] += resp[:, area == p].mean(1) / len(subjects) if (area == p).any() else np.nan
    print(f"{'photo':34s} {'category':9s} " + " ".join(f"{p:>6s}" for p in PATCHES))
    for ph, row in zip(photos, table):
        print(f"{ph.name[-34:]:34s} {str(ph.category):9s} " + " ".join(f"{v:+6.2f}" for v in row))
    if args.json:
        Path(args.json).write_text(json.dumps({"report": report, "photos": [p.name for p in photos],
                                               "photo_categories": [p.category for p in photos],
                                               "photo_table": table.round(3).tolist()}, indent=1))


if __name__ == "__main__":
    main()
