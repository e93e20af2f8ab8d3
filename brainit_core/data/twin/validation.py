"""The twin's checks: is the simulated cortex what it was designed to be?"""
from __future__ import annotations

import json

import numpy as np
from scipy.stats import spearmanr

from brainit_core.data.dataset import load_dataset
from brainit_core.data.twin.experiment import load_ground_truth
from brainit_core.data.twin.geometry import EARLY, PATCHES, load_visual_cortex
from brainit_core.data.twin.stimuli import CATEGORIES


def measured_noise_ceiling(subject_data) -> np.ndarray:
    """NSD's noise ceiling (fraction, for the 3-trial mean) from the repeats of z-scored betas.

    noise variance = mean over images of the across-repeat variance (ddof=1); signal variance =
    1 - noise variance (z-scored data); ncsnr^2 = signal / noise; NC = ncsnr^2 / (ncsnr^2 + 1/3).
    """
    b = subject_data.betas
    groups = [g for g in subject_data.trials_of(np.unique(subject_data.image_ids)) if len(g) >= 2]
    noise_var = np.mean([b[g].var(0, ddof=1) for g in groups], axis=0)
    snr2 = np.clip(1 - noise_var, 0, None) / np.maximum(noise_var, 1e-9)
    return snr2 / (snr2 + 1 / 3)


def validate_twin(dataset_dir) -> dict:
    """The twin's validation figures (docs/data.md, "The digital twin").

    Returns
    -------
    dict with, per subject: contralateral pRF fraction, eccentricity-gradient Spearman rho (early
    areas, eccentricity vs posterior-to-anterior position), designed and measured median noise
    ceilings per area, and category-patch selectivity d' (test images with vs without the
    patch's category).
    """
    ds = load_dataset(dataset_dir)
    cortex = load_visual_cortex()
    cov = np.load(f"{dataset_dir}/ground_truth/stimuli.npz")["category_coverage"]
    out = {}
    for name in ds.subjects:
        gt = load_ground_truth(dataset_dir, name)["subject"]
        area, x, y = gt["area_names"], gt["x"], gt["y"]
        sd = ds.subject(name)
        ecc = np.hypot(x, y)
        early = np.isin(area, EARLY)
        contra = np.mean((x > 0) == (gt["hemispheres"] == 0))
        rho = spearmanr(ecc[early], cortex.posterior_anterior[gt["region_index"]][early]).statistic
        nc = measured_noise_ceiling(sd)
        per_area = {a: {"designed": round(float(np.median(gt["designed_nc"][area == a])), 3),
                        "measured": round(float(np.median(nc[area == a])), 3)} for a in np.unique(area)}
        betas, ids = sd.averaged("test")
        sel = {}
        for p in PATCHES:
            cat = CATEGORIES.index(p if p != "place" else "building")
            v = area == p
            if not v.any():
                continue
            resp = betas[:, v].mean(1)
            has = cov[ids, cat] > 0.02
            if has.sum() < 2 or (~has).sum() < 2:
                continue
            sel[p] = round(float((resp[has].mean() - resp[~has].mean())
                                 / np.sqrt(0.5 * (resp[has].var() + resp[~has].var()) + 1e-12)), 2)
        out[name] = {"n_vertices": int(sd.n_vertices), "contralateral_fraction": round(float(contra), 4),
                     "eccentricity_gradient_rho": round(float(rho), 3),
                     "noise_ceiling_median": {"designed": round(float(np.median(gt["designed_nc"])), 3),
                                              "measured": round(float(np.median(nc)), 3)},
                     "noise_ceiling_under_10pct": round(float(np.mean(nc < 0.1)), 3),
                     "noise_ceiling_per_area": per_area, "category_selectivity_dprime": sel}
    return out


def format_report(report: dict) -> str:
    lines = ["subject  vertices  contralateral  ecc-gradient rho  NC designed/measured  NC<10%  patch d'"]
    for s, r in report.items():
        nc = r["noise_ceiling_median"]
        d = ", ".join(f"{k} {v:+.2f}" for k, v in r["category_selectivity_dprime"].items())
        lines.append(f"{s}  {r['n_vertices']:8d}  {r['contralateral_fraction']:13.3f}  "
                     f"{r['eccentricity_gradient_rho']:16.3f}  {nc['designed']:.2f} / {nc['measured']:.2f}"
                     f"          {r['noise_ceiling_under_10pct']:.2f}   {d}")
    return "\n".join(lines)


def report_rows(report: dict) -> list[dict]:
    """:func:`validate_twin`'s report as one table row per subject (the Data page's table)."""
    rows = []
    for s, r in report.items():
        nc = r["noise_ceiling_median"]
        rows.append({"subject": s, "vertices": r["n_vertices"], "contralateral": r["contralateral_fraction"],
                     "ecc-gradient rho": r["eccentricity_gradient_rho"], "NC designed": nc["designed"],
                     "NC measured": nc["measured"], "NC < 10%": r["noise_ceiling_under_10pct"],
                     **{f"d' {k}": v for k, v in r["category_selectivity_dprime"].items()}})
    return rows


def report_json(report: dict) -> str:
    return json.dumps(report, indent=1)
