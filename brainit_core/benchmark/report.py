"""The benchmark's report: ``results.md`` from a results dict, re-judging a finished benchmark's
claims (:func:`refresh_report`) and reading it back (:func:`load_results`, the app's Benchmark page).
"""
from __future__ import annotations

import math
from pathlib import Path

from brainit_core.benchmark.cache import JSON_LAYOUT
from brainit_core.benchmark.claims import CONTRA_TARGET, SSIM_TARGET, compute_claims
from brainit_core.benchmark.methods import BASELINES, LABELS
from brainit_core.errors import BrainITError
from brainit_core.fileio import try_read_json, write_json


def _fmt(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if v is None:
        return "-"
    if isinstance(v, (int, float)):
        return f"{v:.3f}" if math.isfinite(v) else "nan"
    return str(v)


def _table(header: list, rows: list) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(x) for x in r) + " |" for r in rows]
    return "\n".join(lines)


def results_markdown(results: dict) -> str:
    """``results.md``: the tables and the claims."""
    cols = list(results["columns"])
    arrows = [f"{c} {'↑' if results['columns'][c]['higher_is_better'] else '↓'}" for c in cols]
    md = ["# Benchmark", "",
          f"Dataset `{results['dataset']}`, run `{results['run']}`, generators `{results['generators']}`; "
          f"subjects {', '.join(results['subjects'])}; test images per subject {results['n_images']}; "
          f"wall time {results.get('wall_seconds', float('nan')):.0f} s.", ""]
    if any(not results["columns"][c]["protocol"] for c in cols):
        md += ["Lite1/Lite2 columns are this project's offline substitutes (not comparable with published "
               "numbers).", ""]
    md += ["## Mean over subjects", "",
           _table(["method", *arrows, "s / image"],
                  [[results["method_labels"][m], *[results["scores"][m]["mean"].get(c) for c in cols],
                    results["seconds_per_image"][m]["mean"]] for m in results["methods"]]), ""]
    for s in results["subjects"]:
        md += [f"## {s}", "",
               _table(["method", *arrows, "s / image"],
                      [[results["method_labels"][m], *[results["scores"][m][s].get(c) for c in cols],
                        results["seconds_per_image"][m][s]] for m in results["methods"]]), ""]
    md += _categories_md(results) + _dip_md(results)
    tr = results.get("transfer") or {}
    md += ["## Transfer", ""]
    if tr.get("scores"):
        rows = [[f"Brain-IT, {a} min" if a != "all" else "Brain-IT, all data",
                 *[tr["scores"][a].get(c) for c in cols], tr["seconds_per_image"][a]] for a in tr["amounts"]]
        rows += [[f"{LABELS[m]}, all data", *[tr["baselines"][m].get(c) for c in cols], tr["seconds_per_image"][m]]
                 for m in BASELINES]
        md += [f"Held-out subject {tr['subject']} ({tr['n_images']} test images).", "",
               _table(["method", *arrows, "s / image"], rows), ""]
    else:
        md += [f"Skipped: {tr.get('skipped')}.", ""]
    c = results["claims"]
    md += ["## Claims", "", "### 1. Brain-IT beats both baselines on every metric", "",
           f"{c['beats_baselines']['n_won']} of {c['beats_baselines']['n_metrics']} metrics "
           f"({'all' if c['beats_baselines']['all'] else 'not all'}); margin = Brain-IT minus baseline "
           "(sign flipped for distances, positive = better).", "",
           _table(["metric", "beats both", "margin vs ridge", "margin vs global"],
                  [[m, v["beats_both"], v["ridge"]["margin"], v["global_embedding"]["margin"]]
                   for m, v in c["beats_baselines"]["per_metric"].items()]), "",
           "### 2. Fusion", ""]
    f = c["fusion"]
    md += [_table(["score", "fused", "single branch", "fused better", "margin"],
                  [["SSIM (vs low-level only)", f["ssim"]["fused"], f["ssim"]["brainit_low_level"],
                    f["ssim"]["fused_better"], f["ssim"]["margin"]],
                   ["PixCorr (vs low-level only)", f["pixcorr"]["fused"], f["pixcorr"]["brainit_low_level"],
                    f["pixcorr"]["fused_better"], f["pixcorr"]["margin"]]]
                  + [[f"{k} (vs semantic only)", v["fused"], v["brainit_semantic"], v["fused_better"], v["margin"]]
                     for k, v in f["semantic"].items()]), ""]
    if "share_kept" in f["ssim"]:
        md += [f"Share of the low-level branch's advantage over semantic-only that the fused images keep: "
               f"SSIM {_fmt(f['ssim']['share_kept'])}, PixCorr {_fmt(f['pixcorr']['share_kept'])} (the paper's "
               f"ablation on NSD: SSIM {_fmt(f['ssim']['paper_share_kept'])}, from .486 fused, .505 low-level "
               "only, .431 semantic only).", ""]
    t = c["transfer_60min"]
    md += ["### 3. Transfer: 60 minutes vs baselines on all data", ""]
    if "skipped" in t:
        md += [f"Skipped: {t['skipped']}.", ""]
    else:
        md += [f"{t['n_won']} of {t['n_metrics']} metrics.", "",
               _table(["metric", "beats both", "margin vs ridge", "margin vs global"],
                      [[m, v["beats_both"], v["ridge"]["margin"], v["global_embedding"]["margin"]]
                       for m, v in t["per_metric"].items()]), ""]
    k = c["contralaterality"]
    md += ["### 4. Contralaterality", "",
           f"Mean index {_fmt(k['mean_index'])} (fraction of the brain tokens with any hemisphere imbalance whose low-level "
           f"cross-attention centroid lies in the contralateral hemifield); signed mean "
           f"{_fmt(k['signed_mean'])}; weighted by hemisphere balance {_fmt(k.get('weighted'))}; over the "
           f"lateralised tokens only (>= 75 % of their voxels' weight in one hemisphere) "
           f"{_fmt(k.get('lateralised'))}; per subject "
           + ", ".join(f"{s} {_fmt(v)}" for s, v in k["per_subject"].items()) + ". NaN: no token's centroid "
           "lies >= 1e-3 off the vertical meridian (near-uniform cross-attention).", ""]
    if "prf_agreement" in k:
        md += ["Twin pRF agreement (correlation of pRF position with the attention centroid of the token a "
               "vertex feeds): " + ", ".join(f"{n} {_fmt(v)}" for n, v in k["prf_agreement"].items()) + ".", ""]
    tg = c["targets"]
    md += ["### Targets (reported, not asserted)", "",
           _table(["target", "value", "threshold", "ratio", "pass"],
                  [["fused SSIM / oracle SSIM", tg["fused_ssim_vs_oracle"]["ratio"], SSIM_TARGET,
                    tg["fused_ssim_vs_oracle"]["ratio"], tg["fused_ssim_vs_oracle"]["pass"]],
                   ["mean contralaterality", tg["contralaterality"]["index"], CONTRA_TARGET,
                    tg["contralaterality"]["ratio"], tg["contralaterality"]["pass"]]]), ""]
    if results.get("notes"):
        md += ["## Notes", ""] + [f"- {n}" for n in results["notes"]] + [""]
    for p in results.get("plots", []):
        md += [f"![{Path(p).stem}]({Path(p).name})"]
    return "\n".join(md) + "\n"


def _categories_md(results: dict) -> list[str]:
    cat = results.get("categories")
    if not cat:
        return []
    col = cat["column"]
    rows = [[results["method_labels"][m], results["scores"][m]["mean"].get(col)] for m in results["methods"]]
    rows += [["seen images (the classifier's ceiling)", cat["ground_truth"]["mean"]],
             [f"chance (always '{cat['most_common']}')", cat["chance"]["mean"]]]
    return ["## Category accuracy", "",
            f"Does a reconstruction show the same kind of thing as the seen image? {cat['definition']}. "
            f"Categories: {', '.join(cat['categories'])}. The classifier ({cat['network']}, C = {_fmt(cat['C'])}) "
            f"learnt from {cat['n_classifier_images']} training images and names {_fmt(cat['classifier_heldout_accuracy'])} "
            f"of held-out training images right. Naming a category at random would score "
            f"{_fmt(cat['chance_uniform'])}. A reconstruction well above chance shows the right kind of object; "
            "the seen images' own score is the most a reconstruction can get from this classifier.", "",
            _table(["images", f"{col} ↑ (mean over subjects)"], rows), ""]


def _dip_md(results: dict) -> list[str]:
    dip = results.get("dip")
    if not dip:
        return []
    return [f"DIP rows: the paper's low-level method (Deep Image Prior, {dip['preset']} preset) on BIT's predicted "
            f"low-level features, on the first {dip['n_images']} test images of each subject "
            f"({_fmt(dip['seconds_per_image'])} s / image); the inverter row beside it is scored on the same images.", ""]


def refresh_report(out_dir) -> dict:
    """Recompute the claims and ``results.md`` from ``out_dir/results.json`` (after a change to how
    claims are judged or reported); nothing is reconstructed or scored again. Returns the results."""
    out = Path(out_dir).expanduser()
    res = try_read_json(out / "results.json")
    if res is None:
        raise BrainITError(f"{out / 'results.json'} not found or unreadable: nothing to refresh")
    res["claims"] = compute_claims(res)
    write_json(out / "results.json", res, **JSON_LAYOUT)
    (out / "results.md").write_text(results_markdown(res))
    return res


def load_results(out_dir) -> dict:
    """Read a benchmark's ``results.json`` (for the app's Benchmark page).

    Returns
    -------
    dict
        The results, with ``plots`` as absolute paths of the PNGs present and ``markdown`` the
        text of ``results.md``.

    Raises
    ------
    BrainITError
        When ``out_dir`` holds no finished benchmark.
    """
    out = Path(out_dir).expanduser()
    res = try_read_json(out / "results.json")
    if res is None:
        raise BrainITError(f"{out / 'results.json'} not found or unreadable: run `python -m brainit_core benchmark "
                           f"... --out {out}` first")
    res["plots"] = [str(out / Path(p).name) for p in res.get("plots", []) if (out / Path(p).name).exists()]
    md = out / "results.md"
    res["markdown"] = md.read_text() if md.exists() else ""
    return res
