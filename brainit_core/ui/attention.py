"""Cached attention maps and twin ground truth for the Brain tokens and Learn pages, and their panels.

Each cached function is defined once here (Streamlit keys its caches by module and function), so
both pages share one cache entry per (run, subject, image). The panels choose the Brain tokens
page's ground-truth maps and show its contralaterality numbers; the numbers come from
:mod:`brainit_core.analysis`, the maps are drawn by :mod:`brainit_core.ui.cortex`.
"""
from __future__ import annotations

import numpy as np
import streamlit as st

from brainit_core.ui import loaders

GT_KEYS = ("area_names", "x", "y", "sigma", "tuning_category")


@st.cache_data(show_spinner="Computing the attention maps…", max_entries=128)
def attention_maps(run_path: str, device: str, run_sha: str, dataset_path: str, subject: str, image_id: int):
    """:class:`~brainit_core.analysis.maps.AttentionMaps` of one test image (``run_sha`` keys retraining)."""
    from brainit_core.analysis.maps import compute_attention

    run = loaders.run(run_path, device)
    betas, _ = loaders.dataset(dataset_path).subject(subject).average_trials([int(image_id)])
    return compute_attention(run, betas[0], subject, image_id=int(image_id))


@st.cache_data(show_spinner="Reading the twin's ground truth…", max_entries=16)
def ground_truth(dataset_path: str, subject: str) -> dict | None:
    """The twin's per-vertex truth in the dataset's vertex order, or ``None`` (not a twin).

    Keys: ``area_names`` (V,) str, ``x``, ``y``, ``sigma`` (V,) pRF in degrees,
    ``tuning_category`` (V, n_categories), ``categories``.
    """
    from brainit_core.data.twin import load_ground_truth
    from brainit_core.errors import DataFormatError

    try:
        gt = load_ground_truth(dataset_path, subject)
    except (DataFormatError, OSError, KeyError):
        return None
    z = gt["subject"]
    sd = loaders.dataset(dataset_path).subject(subject)
    pos = {(int(h), int(v)): k for k, (h, v) in enumerate(zip(z["hemispheres"], z["vertices"]))}
    rows = np.array([pos.get((int(h), int(v)), -1) for h, v in zip(sd.hemispheres, sd.vertices)])
    if (rows < 0).any():
        return None
    out = {k: np.asarray(z[k])[rows] for k in GT_KEYS if k in z}
    out["categories"] = list(gt.get("categories", []))
    return out


@st.cache_data(show_spinner="Predicting the features…", max_entries=64)
def predicted_features(run_path: str, device: str, run_sha: str, dataset_path: str, subject: str, image_id: int) -> dict:
    """Predicted and true low-level feature maps of one test image.

    Returns ``{"names": [str], "predicted": [(C_l, h_l, w_l)], "true": [(C_l, h_l, w_l)]}``
    (numpy, feature units).
    """
    import torch

    run = loaders.run(run_path, device)
    ds = loaders.dataset(dataset_path)
    betas, _ = ds.subject(subject).average_trials([int(image_id)])
    pred = run.predict(betas, subject)
    img = torch.as_tensor(ds.images([int(image_id)])).permute(0, 3, 1, 2).float().div(255).to(run.device)
    with torch.no_grad():
        true = run.space.lowlevel_maps(img)
    return {"names": [s.name for s in run.space.lowlevel_specs],
            "predicted": [p[0].detach().float().cpu().numpy() for p in pred.lowlevel],
            "true": [t[0].detach().float().cpu().numpy() for t in true]}


GT_MAPS = ("areas", "pRF x (deg)", "eccentricity (deg)", "preferred category")


def ground_truth_map(gt: dict, key: str, default_map: str = "areas", location=None) -> tuple:
    """A choice of the twin's ground-truth maps; returns what to draw: ``(values (V,), options)``.

    Parameters
    ----------
    gt : dict
        From :func:`ground_truth`.
    key : str
        Widget key.
    default_map : str
    location : (float, float), optional
        Normalised image location (x, y); adds the pRF drive by it as a choice.

    Returns
    -------
    values : ndarray, (V,)
    options : dict
        Keyword arguments of :func:`brainit_core.ui.cortex.show` (categorical, title, unit, ...).
    """
    from brainit_core.analysis.attention import prf_response
    from brainit_core.analysis.maps import area_codes

    options = list(GT_MAPS) if location is None else ["pRF drive at the location", *GT_MAPS]
    pick = st.selectbox("Ground-truth map", options, index=options.index(default_map), key=key)
    if pick == "areas":
        codes, areas = area_codes(gt["area_names"])
        return codes, {"categorical": True, "category_names": areas, "n_categories": len(areas),
                       "title": "truth: visual areas and category patches", "value_name": "area"}
    if pick == "pRF x (deg)":
        return gt["x"], {"symmetric": True, "title": "truth: pRF x (+ right field)", "value_name": "pRF x",
                         "unit": "deg"}
    if pick == "eccentricity (deg)":
        return np.hypot(gt["x"], gt["y"]), {"cmap": "viridis", "title": "truth: pRF eccentricity",
                                            "value_name": "eccentricity", "unit": "deg"}
    if pick == "preferred category":
        cats = gt["categories"]
        return np.argmax(gt["tuning_category"], axis=1), {
            "categorical": True, "category_names": cats, "n_categories": len(cats), "title": "truth: preferred category",
            "value_name": "category"}
    drive = prf_response(gt["x"], gt["y"], gt["sigma"], *location)
    return drive, {"cmap": "magma", "vmin": 0, "vmax": 1, "title": "truth: pRF drive by the location",
                   "value_name": "pRF drive", "unit": "0-1"}


def _number(v, fmt: str) -> str:
    return fmt.format(v) if v is not None and np.isfinite(v) else "n/a"


def contralaterality_panel(maps, head: str, hemispheres) -> dict:
    """Metrics and per-token table of :meth:`AttentionMaps.contralaterality` (the benchmark's index).

    Parameters
    ----------
    maps : AttentionMaps
    head : str
    hemispheres : array-like, (V,)
        0 left, 1 right.

    Returns
    -------
    dict
        The numbers shown (:func:`~brainit_core.analysis.attention.contralaterality`'s result).
    """
    import pandas as pd

    con = maps.contralaterality(head, hemispheres)
    sizes = np.bincount(maps.clusters, minlength=maps.n_tokens)
    k = st.columns(4)
    k[0].metric("Contralaterality index", _number(con["index"], "{:.3f}"),
                help="Share of the lateralised brain tokens (with voxels, more weight in one hemisphere, attention "
                     "centroid off the vertical meridian) whose cross-attention centroid lies in the opposite "
                     "half of the image, as in the visual cortex; 0.5 by chance. The benchmark's claim 4 is the "
                     "same function on the low-level head's attention averaged over all test images; here it is "
                     "this image's attention through the chosen head.")
    k[1].metric("Signed centroid offset", _number(con["signed_mean"], "{:+.3f}"),
                help="Mean over the same tokens of the attention-centroid x (image from -1 left to +1 right), "
                     "positive toward the side opposite the token's hemisphere; about 0 by chance "
                     "(the benchmark's signed_mean).")
    k[2].metric("Lateralised tokens on the contralateral side", _number(con["index_lateralised"], "{:.0%}"),
                help="The index over the tokens with at least 75% of their voxel weight in one hemisphere "
                     "(the benchmark's index_lateralised).")
    k[3].metric("Tokens with voxels", f"{int((sizes > 0).sum())} / {maps.n_tokens}")
    with st.expander("Per-token values"):
        names = {"n_voxels": "voxels", "balance": "left - right share", "centroid_x": "centroid x",
                 "centroid_y": "centroid y"}
        three = {c: st.column_config.NumberColumn(format="%.3f") for c in (*list(names.values())[1:], "spread")}
        st.dataframe(pd.DataFrame(con["per_token"]).rename(columns=names), column_config=three, hide_index=True,
                     width="stretch")
    return con
