"""Cached attention maps and twin ground truth for the Brain tokens and Learn pages.

Each function is defined once here (Streamlit keys its caches by module and function), so both
pages share one cache entry per (run, subject, image).
"""
from __future__ import annotations

import numpy as np
import streamlit as st

from brainit_core.ui import loaders

GT_KEYS = ("area_names", "x", "y", "sigma", "tuning_category")


@st.cache_data(show_spinner="Computing the attention maps…", max_entries=128)
def attention_maps(run_path: str, device: str, run_sha: str, dataset_path: str, subject: str, image_id: int):
    """:class:`~brainit_core.viz.attention.AttentionMaps` of one test image (``run_sha`` keys retraining)."""
    from brainit_core.viz.attention import compute_attention

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
