"""Attention analysis of the brain tokens: centroids, hemispheres, pRFs, contralaterality.

The one owner of these numbers: the benchmark (claim 4, ``contralaterality`` over the test set)
and the Brain tokens page (the same index on one image's attention) both call it. numpy only.

A brain token is one V2C cluster. Its **image position** is the centroid of the cross-attention
it receives: every query (one per location of every grid of a head) attends over the C brain
tokens (softmax over tokens), so column k of the (n_queries, C) map says which image locations
read token k. Its **hemisphere** is the tokenizer-attention-weighted hemisphere of its voxels. The
left hemisphere represents the right visual field, so a token of left-hemisphere voxels is
*contralateral* when its centroid lies right of the vertical meridian.

Image coordinates: x in [-1, 1] from the left edge to the right edge, y in [-1, 1] from the bottom
to the top (upper visual field positive), each query at the centre of its cell. pRF positions are
in degrees (x right, y up, 0 = fixation); the image spans :data:`IMAGE_DEG` degrees.
"""
from __future__ import annotations

import numpy as np

from brainit_core.stimulus import IMAGE_DEG

__all__ = ["IMAGE_DEG", "attention_centroid", "contralaterality", "hemisphere_balance", "prf_agreement",
           "prf_response", "query_positions", "receptive_field_centroids", "token_centroids"]


def query_positions(grids) -> np.ndarray:
    """Image position of every query, grids concatenated, each grid row-major.

    Parameters
    ----------
    grids : sequence of (h, w)
        The grids of one head in the order BIT concatenates their queries.

    Returns
    -------
    ndarray, float64, (sum h*w, 2)
        Columns x (left -1, right +1) and y (bottom -1, top +1).
    """
    out = []
    for h, w in grids:
        xs = (np.arange(w) + 0.5) / w * 2 - 1
        ys = 1 - (np.arange(h) + 0.5) / h * 2
        gx, gy = np.meshgrid(xs, ys)  # (h, w): rows top to bottom, row-major like maps_to_tokens
        out.append(np.stack([gx.ravel(), gy.ravel()], 1))
    return np.concatenate(out)


def token_centroids(cross_attention, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Image-space centroid and spread of the attention each brain token receives.

    Parameters
    ----------
    cross_attention : array-like, (B, n_queries, C) or (n_queries, C)
        Cross-attention of one head (averaged over images when B is given).
    positions : ndarray, (n_queries, 2)
        From :func:`query_positions`.

    Returns
    -------
    centroid : ndarray, (C, 2)
        Attention-weighted mean (x, y) of the queries reading each token; (0, 0) for a token no
        query reads.
    spread : ndarray, (C,)
        Attention-weighted RMS distance of those queries from the centroid.
    """
    a = np.asarray(cross_attention, dtype=np.float64)
    if a.ndim == 3:
        a = a.mean(0)  # (n_queries, C)
    if a.shape[0] != len(positions):
        raise ValueError(f"cross-attention has {a.shape[0]} queries but {len(positions)} positions were given")
    w = a / np.clip(a.sum(0, keepdims=True), 1e-30, None)  # (n_queries, C), columns sum to 1
    centroid = w.T @ positions  # (C, 2)
    d2 = ((positions[:, None, :] - centroid[None]) ** 2).sum(-1)  # (n_queries, C)
    return centroid, np.sqrt((w * d2).sum(0))


def attention_centroid(grid) -> tuple[float, float]:
    """Centre of mass of one (h, w) attention map, in [-1, 1]: x to the right, y upward.

    :func:`token_centroids` of a single map (negative values count as 0). A uniform map gives
    (0, 0); a map on the right half gives x > 0; an all-zero map gives (0, 0).
    """
    g = np.clip(np.asarray(grid, dtype=np.float64), 0, None)
    centroid, _ = token_centroids(g.reshape(-1, 1), query_positions([g.shape]))
    return float(centroid[0, 0]), float(centroid[0, 1])


def _voxel_weights(weights, n_voxels: int) -> np.ndarray:
    """(V,) float64 voxel weights: ones when None, the mean over images of a (B, V) array."""
    w = np.ones(n_voxels) if weights is None else np.asarray(weights, dtype=np.float64)
    return w.mean(0) if w.ndim == 2 else w


def hemisphere_balance(clusters, hemispheres, n_tokens: int, weights=None) -> np.ndarray:
    """Left-minus-right share of each token's voxel weight.

    Parameters
    ----------
    clusters : array-like of int, (V,)
        Cluster (token) of each voxel.
    hemispheres : array-like, (V,)
        0 left, 1 right.
    n_tokens : int
    weights : array-like, (B, V) or (V,), optional
        Voxel weights, e.g. tokenizer attention (averaged over images); every voxel counts once
        when None.

    Returns
    -------
    ndarray, float64, (C,)
        In [-1, 1]: +1 all weight on left-hemisphere voxels, -1 all on the right; NaN for an
        empty token.
    """
    c = np.asarray(clusters, dtype=np.int64)
    sign = np.where(np.asarray(hemispheres) == 0, 1.0, -1.0)
    w = _voxel_weights(weights, len(c))
    total = np.bincount(c, w, minlength=n_tokens)
    signed = np.bincount(c, w * sign, minlength=n_tokens)
    return np.where(total > 0, signed / np.where(total > 0, total, 1), np.nan)


def receptive_field_centroids(clusters, weights, x, y, n_tokens: int) -> np.ndarray:
    """Per token: weighted mean of its voxels' (ground-truth) pRF centres.

    Parameters
    ----------
    clusters : array-like of int, (V,)
    weights : array-like, (B, V) or (V,), or None
        Voxel weights (tokenizer attention, averaged over images); uniform when None.
    x, y : array-like, (V,)
        pRF centre of each voxel (any unit: the result has the same).
    n_tokens : int

    Returns
    -------
    ndarray, float64, (C, 2)
        NaN rows for empty tokens.
    """
    c = np.asarray(clusters, dtype=np.int64)
    w = _voxel_weights(weights, len(c))
    den = np.bincount(c, weights=w, minlength=n_tokens)
    out = np.stack([np.bincount(c, weights=w * np.asarray(v, np.float64), minlength=n_tokens) for v in (x, y)], 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den[:, None] > 0, out / den[:, None], np.nan)


def prf_response(x_deg, y_deg, sigma_deg, x: float, y: float, image_deg: float = IMAGE_DEG) -> np.ndarray:
    """Gaussian pRF drive of each vertex by a point at normalised image location (x, y).

    Parameters
    ----------
    x_deg, y_deg, sigma_deg : array-like, (V,)
        pRF centre (x right, y up, degrees from fixation) and size.
    x, y : float
        Location in [0, 1] (x left to right, y top to bottom).
    image_deg : float
        Width of the image in degrees.

    Returns
    -------
    ndarray, float64, (V,)
        In (0, 1]; 1 where the location is at the pRF centre.
    """
    px = (x - 0.5) * image_deg
    py = (0.5 - y) * image_deg
    d2 = (np.asarray(x_deg) - px) ** 2 + (np.asarray(y_deg) - py) ** 2
    return np.exp(-d2 / (2 * np.asarray(sigma_deg, dtype=np.float64) ** 2))


def contralaterality(cross_attention, grids, clusters, hemispheres, tokenizer_attention=None,
                     target: float = 0.8, min_offset: float = 1e-3, lateral_balance: float = 0.5) -> dict:
    """Contralaterality index of the brain tokens.

    Parameters
    ----------
    cross_attention : array-like, (B, n_queries, C) or (n_queries, C)
        Cross-attention of one head (query locations x brain tokens); the benchmark uses the
        low-level head averaged over the test images, the Brain tokens page one image's.
    grids : sequence of (h, w)
        The head's grids, in query order.
    clusters : array-like of int, (V,)
        Token of each voxel.
    hemispheres : array-like, (V,)
        0 left, 1 right (the dataset's convention).
    tokenizer_attention : array-like, (B, V) or (V,), optional
        Weights of the voxels inside their token (the same head's).
    target : float
        The index the report compares against (reported, never asserted).
    min_offset : float
        A centroid closer than this to the vertical meridian (image units) counts as not
        lateralised (uniform attention gives centroids of ~1e-6, whose sign is noise).
    lateral_balance : float
        ``index_lateralised`` counts only tokens with |balance| >= this (mostly one hemisphere's
        voxels, so the expected hemifield is clear; 0.5 = at least 75 % of the weight on one side).

    Returns
    -------
    dict
        ``index``: fraction of lateralised tokens (non-empty, hemisphere balance != 0, centroid
        off the meridian) whose centroid lies in the contralateral hemifield; ``signed_mean``: mean
        over those tokens of sign(balance) * centroid_x (positive = contralateral); ``weighted``: the
        same fraction with each token weighted by |balance|; ``index_lateralised`` / ``n_lateralised``:
        the index over the tokens with |balance| >= ``lateral_balance``; ``n_tokens``;
        ``max_abs_centroid_x``; ``n_scored``; ``per_token``: list of dicts (token, n_voxels, balance,
        centroid_x, centroid_y, spread, contralateral); ``target``, ``pass``, ``ratio``.
    """
    centroid, spread = token_centroids(cross_attention, query_positions(grids))
    n_tokens = len(centroid)
    clusters = np.asarray(clusters, dtype=np.int64)
    balance = hemisphere_balance(clusters, hemispheres, n_tokens, tokenizer_attention)
    n_vox = np.bincount(clusters, minlength=n_tokens)
    per_token, scored = [], []
    for k in range(n_tokens):
        b, cx = balance[k], centroid[k, 0]
        lateral = bool(np.isfinite(b) and b != 0 and abs(cx) >= min_offset)
        contra = bool(lateral and np.sign(b) == np.sign(cx))  # left hemisphere (b > 0) -> right field (x > 0)
        per_token.append({"token": k, "n_voxels": int(n_vox[k]), "balance": None if not np.isfinite(b) else float(b),
                          "centroid_x": float(cx), "centroid_y": float(centroid[k, 1]), "spread": float(spread[k]),
                          "contralateral": contra if lateral else None})
        if lateral:
            scored.append((contra, np.sign(b) * cx, abs(b)))
    if scored:
        contra, signed, weight = map(np.asarray, zip(*scored))
        index = float(contra.mean())
        signed_mean = float(signed.mean())
        weighted = float((contra * weight).sum() / weight.sum())
        lateral = weight >= lateral_balance
        index_lateral = float(contra[lateral].mean()) if lateral.any() else float("nan")
    else:
        index = signed_mean = weighted = index_lateral = float("nan")
        lateral = np.zeros(0, bool)
    return {"index": index, "signed_mean": signed_mean, "weighted": weighted, "index_lateralised": index_lateral,
            "n_lateralised": int(lateral.sum()), "n_tokens": n_tokens,
            "max_abs_centroid_x": float(np.abs(centroid[:, 0]).max()) if n_tokens else float("nan"),
            "n_scored": len(scored), "per_token": per_token, "target": target,
            "pass": bool(np.isfinite(index) and index >= target),
            "ratio": float(index / target) if np.isfinite(index) else float("nan")}


def _corr(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or a[ok].std() == 0 or b[ok].std() == 0:
        return float("nan")
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def prf_agreement(cross_attention, grids, clusters, tokenizer_attention, prf_x, prf_y, areas=None,
                  image_deg: float = IMAGE_DEG) -> dict:
    """Agreement of the tokens' attention positions with the twin's ground-truth pRFs.

    Parameters
    ----------
    cross_attention, grids, clusters, tokenizer_attention
        As in :func:`contralaterality`.
    prf_x, prf_y : array-like, (V,)
        pRF centres in degrees (x right positive, y up positive), in the dataset's vertex order.
    areas : array-like of str, (V,), optional
        Area name per vertex; adds per-area summaries (category patches included).
    image_deg : float
        Stimulus width in degrees (maps pRF degrees to [-1, 1]).

    Returns
    -------
    dict
        ``voxel_r_x`` / ``voxel_r_y``: correlation over vertices between a vertex's pRF x (y) and
        the attention centroid of the token it feeds; ``token_r_x`` / ``token_r_y``: correlation
        over tokens between the tokenizer-weighted mean pRF position of a token's vertices and its
        centroid; ``n_vertices``, ``n_tokens``; ``per_area``: for each area, vertex count, mean pRF
        eccentricity (image units), the mean |centroid x| and spread of the tokens its vertices feed.
    """
    centroid, spread = token_centroids(cross_attention, query_positions(grids))
    n_tokens = len(centroid)
    clusters = np.asarray(clusters, dtype=np.int64)
    px, py = np.asarray(prf_x, np.float64) / (image_deg / 2), np.asarray(prf_y, np.float64) / (image_deg / 2)
    rf = receptive_field_centroids(clusters, tokenizer_attention, px, py, n_tokens)  # (C, 2), image units
    out = {"voxel_r_x": _corr(px, centroid[clusters, 0]), "voxel_r_y": _corr(py, centroid[clusters, 1]),
           "token_r_x": _corr(rf[:, 0], centroid[:, 0]), "token_r_y": _corr(rf[:, 1], centroid[:, 1]),
           "n_vertices": int(len(clusters)), "n_tokens": n_tokens}
    if areas is not None:
        areas = np.asarray(areas).astype(str)
        per_area = {}
        for name in sorted(set(areas.tolist())):
            sel = areas == name
            if not name or not sel.any():
                continue
            per_area[name] = {"n_vertices": int(sel.sum()),
                              "prf_eccentricity": float(np.hypot(px[sel], py[sel]).mean()),
                              "token_abs_centroid_x": float(np.abs(centroid[clusters[sel], 0]).mean()),
                              "token_spread": float(spread[clusters[sel]].mean())}
        out["per_area"] = per_area
    return out
