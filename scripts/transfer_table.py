"""Print the transfer table of docs/models.md from the transfer runs' eval_features.json files.

    python scripts/transfer_table.py ~/.brainit/runs/demo-twin05-15min ~/.brainit/runs/demo-twin05-60min \
        ~/.brainit/runs/demo-twin05-all

Each run must have been scored first (`python -m brainit_core evaluate-features --run RUN --data DATA`).
Rows: Brain-IT per amount of data, ridge on the same trials, and ridge on all of the subject's data.
"""
from __future__ import annotations

import sys
from pathlib import Path

from brainit_core.runs import RunDirectory


def rows(run_dir: Path) -> tuple[list[list[str]], list[str]]:
    """Brain-IT (and same-trials ridge) rows of one transfer run, and the full-data ridge row."""
    run = RunDirectory(run_dir)
    tr = run.transfer
    res = run.read_scores()
    if tr is None or res is None:
        raise SystemExit(f"{run_dir}: not a scored transfer run (transfer it, then `evaluate-features`)")
    subject = tr["subject"]
    s = res["subjects"][subject]
    enc = (res.get("encoder") or {}).get(subject, {})
    stages = run.stages
    seconds = stages["bit"]["total_seconds"]  # the sum of every stage, written by the transfer
    label = f"{tr['minutes']} min" if tr["minutes"] != "all" else "all"
    out = []
    for key, name in (("brainit", f"Brain-IT, {label} ({tr['n_trials']} trials)"),
                      ("ridge_same_data", f"ridge, same {tr['n_trials']} trials")):
        if key not in s:  # "all": ridge on the same trials is the full-data ridge below
            continue
        row = [name]
        for head in ("semantic", "lowlevel"):
            row += [f"{s[key][head]['token_r']:.3f}", f"{100 * s[key][head]['two_way']:.1f}%"]
        row.append(f"{enc.get('median_r_over_ceiling', float('nan')):.2f}" if key == "brainit" else "")
        row.append(f"{seconds / 60:.1f}" if key == "brainit" else "")
        out.append(row)
    full = ["ridge, all of the subject's data"]
    for head in ("semantic", "lowlevel"):
        full += [f"{s['ridge'][head]['token_r']:.3f}", f"{100 * s['ridge'][head]['two_way']:.1f}%"]
    return out, full + ["", ""]


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    header = ["model", "semantic token r", "semantic 2-way", "low-level token r", "low-level 2-way",
              "encoder r / ceiling", "transfer minutes"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    full = None
    for d in argv:
        own, full = rows(Path(d).expanduser())  # the full-data ridge row is the same for every run
        for r in own:
            print("| " + " | ".join(r) + " |")
    print("| " + " | ".join(full) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
