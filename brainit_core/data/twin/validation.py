"""The twin's checks: is the simulated cortex what it was designed to be?

Two kinds of figures, kept apart. *Measured* ones come from the data alone (betas, their repeats
and the images), as they would for NSD: noise ceiling and split-half reliability per area,
contralateral drive (do a hemisphere's vertices follow the contrast of the opposite half of the
image, beyond what the scene's category labels explain?), the correlation of trial residuals between vertices (noise shared within a trial) and
each category patch's d'. *Ground-truth* ones read the twin's design (validation views only): the
fraction of ipsilateral pRF centres per area, the eccentricity gradient, the designed ceilings.
"""
from __future__ import annotations

import json

import numpy as np
from scipy.stats import spearmanr

from brainit_core.data.dataset import load_dataset
from brainit_core.data.twin.experiment import load_ground_truth
from brainit_core.data.twin.geometry import AREAS, EARLY, ipsilateral, surface
from brainit_core.data.twin.selectivity import composite_selectivity, default_photos, photo_selectivity, photo_table

RELIABLE_NC = 0.1  # vertices under this measured noise ceiling are left out of the contralateral drive


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


def repeat_blocks(subject_data) -> tuple[np.ndarray, np.ndarray]:
    """Trials of the images shown at least twice, as (n_images, k, V) float32 (k = the smallest
    repeat count among them), and those image ids."""
    ids = np.unique(subject_data.image_ids)
    groups = subject_data.trials_of(ids)
    ok = [i for i, g in enumerate(groups) if len(g) >= 2]
    if not ok:
        raise ValueError(f"{subject_data.name}: no image was shown twice; reliability needs repeats")
    k = min(len(groups[i]) for i in ok)
    idx = np.stack([np.sort(groups[i])[:k] for i in ok])
    return subject_data.betas[idx], ids[ok]


def _zscore(a: np.ndarray, axis: int = 0) -> np.ndarray:
    return (a - a.mean(axis, keepdims=True)) / np.maximum(a.std(axis, keepdims=True), 1e-9)


def split_half_reliability(blocks: np.ndarray) -> np.ndarray:
    """Per vertex, the mean correlation (across images) between two single repeats, over all pairs
    of repeats: the single-trial split-half reliability. ``blocks``: (n_images, k, V)."""
    z = [_zscore(blocks[:, j].astype(np.float64)) for j in range(blocks.shape[1])]
    pairs = [(a, b) for a in range(len(z)) for b in range(a + 1, len(z))]
    return np.mean([(z[a] * z[b]).mean(0) for a, b in pairs], axis=0)


def residual_correlation(blocks: np.ndarray, n_vertices: int = 400, seed: int = 0) -> float:
    """Mean correlation between vertices of the trial residuals (each trial minus the mean of its
    image's repeats, which removes the stimulus-driven part), over a random subset of vertices.
    Positive when noise is shared across vertices within a trial."""
    rng = np.random.default_rng(seed)
    v = np.sort(rng.choice(blocks.shape[2], min(n_vertices, blocks.shape[2]), replace=False))
    sub = blocks[:, :, v].astype(np.float64)
    res = (sub - sub.mean(1, keepdims=True)).reshape(-1, len(v))
    c = np.corrcoef(res, rowvar=False)
    return float(c[~np.eye(len(v), dtype=bool)].mean())


def lateral_contrast(images: np.ndarray) -> np.ndarray:
    """Per image, the luminance-gradient energy of the right half minus that of the left half
    (a stimulus statistic computed from the pixels alone)."""
    lum = images.astype(np.float32).mean(-1)
    g = np.zeros_like(lum)
    g[:, :, 1:] += np.abs(np.diff(lum, axis=2))
    g[:, 1:, :] += np.abs(np.diff(lum, axis=1))
    half = lum.shape[2] // 2
    return g[:, :, half:].mean((1, 2)) - g[:, :, :half].mean((1, 2))


def contralateral_drive(mean_betas: np.ndarray, lateral: np.ndarray, hemispheres: np.ndarray) -> np.ndarray:
    """Per vertex, the correlation (across images) of its response with the contrast of the
    opposite half of the image minus that of its own half: > 0 when the contralateral field drives it.
    ``lateral``: :func:`lateral_contrast` of the images (right minus left), optionally with the
    images' category content regressed out."""
    r = (_zscore(mean_betas.astype(np.float64)) * _zscore(lateral.astype(np.float64))[:, None]).mean(0)
    return np.where(np.asarray(hemispheres) == 0, r, -r)  # lh sees the right field


def _r(x, nd=3):
    return None if x is None or not np.isfinite(x) else round(float(x), nd)


def validate_subject(ds, dataset_dir, name: str, coverage: np.ndarray, categories, photos=()) -> dict:
    """One subject's figures (see :func:`validate_twin`); ``categories``: the columns of ``coverage``."""
    gt = load_ground_truth(dataset_dir, name)["subject"]
    area, x, y, hemi = gt["area_names"], gt["x"], gt["y"], gt["hemispheres"]
    sd = ds.subject(name)
    nc = measured_noise_ceiling(sd)
    blocks, ids = repeat_blocks(sd)
    split = split_half_reliability(blocks)
    means = blocks.mean(1)
    lateral = np.concatenate([lateral_contrast(ds.images(ids[i:i + 500])) for i in range(0, len(ids), 500)])
    # the scenes' category content (their labels, as COCO's) is partialled out: category patches
    # follow content, whose placement may correlate with where the contrast is
    labels = np.c_[np.ones(len(ids)), coverage[ids]]
    lateral = lateral - labels @ np.linalg.lstsq(labels, lateral, rcond=None)[0]
    drive = contralateral_drive(means, lateral, hemi)
    reliable = nc >= RELIABLE_NC
    ipsi = ipsilateral(x, hemi)
    early = np.isin(area, EARLY)
    y_mm = np.array([surface()["y"][h][v] for h, v in zip(hemi, gt["vertices"])])
    rho = spearmanr(np.hypot(x, y)[early], y_mm[early]).statistic
    per_area, ipsi_area = {}, {}
    for a in [a for a in AREAS if (area == a).any()] + sorted(set(np.unique(area)) - set(AREAS)):
        v = area == a
        vr = v & reliable
        per_area[a] = {"n": int(v.sum()), "designed": _r(np.median(gt["designed_nc"][v])),
                       "measured": _r(np.median(nc[v])), "split_half": _r(np.median(split[v])),
                       "contralateral_drive": _r(np.mean(drive[vr] > 0)) if vr.any() else None}
        ipsi_area[a] = _r(np.mean(ipsi[v]))
    test = np.isin(ids, sd.split_image_ids("test"))
    sel = composite_selectivity(means[test], area, coverage[ids[test]], categories)
    return {"n_vertices": int(sd.n_vertices),
            "noise_ceiling_median": {"designed": _r(np.median(gt["designed_nc"])), "measured": _r(np.median(nc))},
            "noise_ceiling_under_10pct": _r(np.mean(nc < 0.1)),
            "split_half_median": _r(np.median(split)),
            "contralateral_drive": _r(np.mean(drive[reliable] > 0)) if reliable.any() else None,
            "residual_correlation": _r(residual_correlation(blocks), 4),
            "noise_ceiling_per_area": per_area, "category_selectivity_dprime": sel["dprime"],
            "category_selectivity_localizer": sel["localizer"],
            "photo_selectivity": photo_selectivity(dataset_dir, name, area, photos),
            "ground_truth": {"contralateral_fraction": _r(1 - np.mean(ipsi), 4), "ipsilateral_fraction": _r(np.mean(ipsi), 4),
                             "ipsilateral_per_area": ipsi_area, "eccentricity_gradient_rho": _r(rho)}}


def validate_twin(dataset_dir, photos=None) -> dict:
    """The twin's validation figures (docs/data.md, "The digital twin" and "Twin v2 brain").

    Returns
    -------
    dict, per subject: ``n_vertices``; measured from the data alone: ``noise_ceiling_median``
    (``designed`` beside ``measured``), ``noise_ceiling_under_10pct``, ``split_half_median``
    (single-trial repeat correlation), ``contralateral_drive`` (share of reliable vertices, NC >= 0.1,
    that follow the opposite half of the image), ``residual_correlation`` (between vertices,
    stimulus removed), ``noise_ceiling_per_area`` ({area: n, designed, measured, split_half,
    contralateral_drive}), ``category_selectivity_dprime`` and ``category_selectivity_localizer``
    (d' of each patch on the test composites, :mod:`.selectivity`), ``photo_selectivity`` (each patch's
    response to real photographs of its category and to others: ``photos``, default
    :func:`~brainit_core.data.twin.selectivity.default_photos`); and ``ground_truth`` (validation views only): ``contralateral_fraction``,
    ``ipsilateral_fraction``, ``ipsilateral_per_area`` of pRF centres, ``eccentricity_gradient_rho``
    (V1-V3 eccentricity vs posterior-to-anterior position).
    """
    ds = load_dataset(dataset_dir)
    cov = np.load(f"{dataset_dir}/ground_truth/stimuli.npz")["category_coverage"]
    categories = load_ground_truth(dataset_dir)["categories"]
    photos = default_photos() if photos is None else photos
    return {name: validate_subject(ds, dataset_dir, name, cov, categories, photos) for name in ds.subjects}


def area_table(report: dict) -> list[dict]:
    """Per area, the mean over subjects of the per-area figures and the ground-truth ipsilateral share."""
    rows = []
    areas = [a for a in AREAS if any(a in r["noise_ceiling_per_area"] for r in report.values())]
    for a in areas:
        per = [r["noise_ceiling_per_area"][a] for r in report.values() if a in r["noise_ceiling_per_area"]]
        ips = [r["ground_truth"]["ipsilateral_per_area"].get(a) for r in report.values()]

        def mean(vals):
            vals = [v for v in vals if v is not None]
            return round(float(np.mean(vals)), 3) if vals else None
        rows.append({"area": a, "vertices": round(float(np.mean([p["n"] for p in per]))),
                     "NC designed": mean(p["designed"] for p in per), "NC measured": mean(p["measured"] for p in per),
                     "split-half r": mean(p["split_half"] for p in per),
                     "contralateral drive": mean(p["contralateral_drive"] for p in per),
                     "ipsilateral pRFs (truth)": mean(ips)})
    return rows


def format_report(report: dict) -> str:
    lines = ["subject  vertices  NC designed/measured  NC<10%  split-half r  contralateral drive  residual r  "
             "ipsi pRFs (truth)  ecc rho (truth)  patch d'"]
    for s, r in report.items():
        nc, g = r["noise_ceiling_median"], r["ground_truth"]
        loc = r.get("category_selectivity_localizer", {})
        d = ", ".join(f"{k} {v:+.2f}" + (f" ({loc[k]:+.2f})" if k in loc else "")
                      for k, v in r["category_selectivity_dprime"].items())
        lines.append(f"{s}  {r['n_vertices']:8d}  {nc['designed']:.2f} / {nc['measured']:.2f}           "
                     f"{r['noise_ceiling_under_10pct']:.2f}  {r['split_half_median']:12.3f}  "
                     f"{_fmt(r['contralateral_drive']):>19}  {r['residual_correlation']:10.3f}  "
                     f"{g['ipsilateral_fraction']:17.3f}  {_fmt(g['eccentricity_gradient_rho']):>15}  {d}")
    lines.append("patch d': category >= 2% of the image vs the rest (localizer: >= 5% vs absent), test composites")
    lines += ["", "per area (mean over subjects)",
              "area    vertices  NC designed  NC measured  split-half r  contra drive  ipsi pRFs (truth)"]
    for row in area_table(report):
        lines.append(f"{row['area']:<6}  {row['vertices']:8d}  {_fmt(row['NC designed']):>11}  "
                     f"{_fmt(row['NC measured']):>11}  {_fmt(row['split-half r']):>12}  "
                     f"{_fmt(row['contralateral drive']):>12}  {_fmt(row['ipsilateral pRFs (truth)']):>17}")
    photos = [row for row in photo_table(report) if row["photos of it"] or row["response to the others"] is not None]
    if any(r["response to the others"] is not None for r in photos):
        lines += ["", "real photographs (noiseless in-silico response, mean over subjects)",
                  "patch   photos of it  response to them  to the others  selective in"]
        for row in photos:
            lines.append(f"{row['patch']:<6}  {row['photos of it']:12d}  {_fmt(row['response to them']):>16}  "
                         f"{_fmt(row['response to the others']):>13}  {row['selective in']:>12}")
    return "\n".join(lines)


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def report_rows(report: dict) -> list[dict]:
    """:func:`validate_twin`'s report as one table row per subject (the Data page's table)."""
    rows = []
    for s, r in report.items():
        nc, g = r["noise_ceiling_median"], r["ground_truth"]
        rows.append({"subject": s, "vertices": r["n_vertices"], "NC designed": nc["designed"],
                     "NC measured": nc["measured"], "NC < 10%": r["noise_ceiling_under_10pct"],
                     "split-half r": r["split_half_median"], "contralateral drive": r["contralateral_drive"],
                     "residual r": r["residual_correlation"],
                     **{f"d' {k}": v for k, v in r["category_selectivity_dprime"].items()},
                     "ipsilateral pRFs (truth)": g["ipsilateral_fraction"],
                     "ecc-gradient rho (truth)": g["eccentricity_gradient_rho"]})
    return rows


def report_json(report: dict) -> str:
    return json.dumps(report, indent=1)
