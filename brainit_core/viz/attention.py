"""Brain-token attention as maps: per-token cortex and image maps, location queries, contralaterality.

Everything here works on numpy arrays taken from one :class:`~brainit_core.models.bit.BITPrediction`
(one image): the tokenizer attention (V,) of each head, the V2C label of each voxel (V,) and the
cross-attention (n_queries, C) of each head, whose query tokens form the grids of the run's token
specs (semantic: one grid; low-level: one grid per pyramid level, in order).

Image coordinates are normalised: ``x`` in [0, 1] from left to right, ``y`` in [0, 1] from top to
bottom (rows), as the query grids are laid out.

Examples
--------
>>> maps = compute_attention(run, betas[k], "twin01", image_id=ids[k])
>>> grid = maps.token_grid("lowlevel", level=0, token=3)          # (h, w)
>>> w = maps.location_weights("semantic", 0, x=0.25, y=0.5)        # (C,)
>>> cortex = vertex_map(w, maps.tokenizer["semantic"], maps.clusters)   # (V,)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

HEADS = ("semantic", "lowlevel")


@dataclass
class AttentionMaps:
    """Attention of one image through both BIT heads (numpy, CPU).

    Attributes
    ----------
    clusters : ndarray, int64, (V,)
        V2C cluster (= brain token) of each voxel.
    tokenizer : dict of str -> ndarray (V,)
        Per head: each voxel's weight inside its cluster (sums to 1 over a non-empty cluster).
    cross : dict of str -> ndarray (n_queries, C)
        Per head: attention of each query token over the C brain tokens (mean over heads and
        cross blocks; each row sums to 1).
    levels : dict of str -> list of (name, (h, w), start)
        Per head: the query grids in order, with the index of their first query.
    image_id : int or None
    """

    clusters: np.ndarray
    tokenizer: dict
    cross: dict
    levels: dict
    image_id: int | None = None
    meta: dict = field(default_factory=dict)

    @property
    def n_tokens(self) -> int:
        return int(next(iter(self.cross.values())).shape[1])

    def level_grid(self, head: str, level: int) -> tuple[int, int]:
        return tuple(self.levels[head][level][1])

    def _rows(self, head: str, level: int) -> np.ndarray:
        _, (h, w), start = self.levels[head][level]
        return self.cross[head][start:start + h * w]  # (h w, C)

    def token_grid(self, head: str, level: int, token: int) -> np.ndarray:
        """(h, w) attention of every query location of ``level`` on brain token ``token``."""
        h, w = self.level_grid(head, level)
        return self._rows(head, level)[:, token].reshape(h, w)

    def token_grids(self, head: str, level: int) -> np.ndarray:
        """(C, h, w): :meth:`token_grid` for every token."""
        h, w = self.level_grid(head, level)
        return self._rows(head, level).T.reshape(-1, h, w)

    def location_weights(self, head: str, level: int, x: float, y: float) -> np.ndarray:
        """(C,) attention over brain tokens of the query at image location (x, y) in [0, 1]."""
        r, c = grid_cell(self.level_grid(head, level), x, y)
        return self._rows(head, level)[r * self.level_grid(head, level)[1] + c]

    def token_vertices(self, head: str, token: int) -> np.ndarray:
        """(V,) tokenizer attention of the voxels of ``token``; NaN on all other voxels."""
        return np.where(self.clusters == token, self.tokenizer[head], np.nan)


def query_levels(run) -> dict:
    """Per head, the query grids of a run: ``{head: [(name, (h, w), start), ...]}``."""
    out = {}
    for head, specs in (("semantic", [run.space.semantic_spec]), ("lowlevel", list(run.space.lowlevel_specs))):
        start, levels = 0, []
        for s in specs:
            levels.append((s.name, tuple(int(g) for g in s.grid), start))
            start += s.n_tokens
        out[head] = levels
    return out


def compute_attention(run, betas, subject: str, image_id: int | None = None) -> AttentionMaps:
    """Run BIT on one image's betas and collect its attention maps.

    Parameters
    ----------
    run : BrainITRun
    betas : array-like, float32, (V,) or (1, V)
        The subject's (repeat-averaged) betas for one image, dataset vertex order.
    subject : str
    image_id : int, optional
        Stored with the maps.
    """
    x = np.asarray(betas, dtype=np.float32).reshape(1, -1)
    pred = run.predict(x, subject, return_attention=True)

    def np_(t):
        return t.detach().float().cpu().numpy()

    levels = query_levels(run)
    cross = {h: np_(pred.cross_attention[h])[0] for h in HEADS}
    for h in HEADS:
        n = sum(g[0] * g[1] for _, g, _ in levels[h])
        if cross[h].shape[0] != n:
            raise ValueError(f"{h} cross-attention has {cross[h].shape[0]} queries, the token specs {n}")
    tok = {"semantic": np_(pred.tokenizer_attention)[0], "lowlevel": np_(pred.meta["lowlevel_tokenizer_attention"])[0]}
    return AttentionMaps(np_(pred.cluster_of_voxel).astype(np.int64), tok, cross, levels,
                         None if image_id is None else int(image_id))


def grid_cell(grid, x: float, y: float) -> tuple[int, int]:
    """Row and column of the cell of an (h, w) grid that contains normalised location (x, y)."""
    h, w = int(grid[0]), int(grid[1])
    return min(int(np.clip(y, 0, 1) * h), h - 1), min(int(np.clip(x, 0, 1) * w), w - 1)


def vertex_map(token_weights, tokenizer, clusters) -> np.ndarray:
    """Per-voxel contribution of weighted tokens: ``w[cluster(v)] * alpha(v)``.

    Parameters
    ----------
    token_weights : array-like, (C,)
        Weight of each brain token (e.g. a query's cross-attention).
    tokenizer : array-like, (V,)
        Tokenizer attention of each voxel inside its cluster.
    clusters : array-like of int, (V,)

    Returns
    -------
    ndarray, float64, (V,)
    """
    w = np.asarray(token_weights, dtype=np.float64)
    return w[np.asarray(clusters, dtype=np.int64)] * np.asarray(tokenizer, dtype=np.float64)


def attention_centroid(grid) -> tuple[float, float]:
    """Centre of mass of an (h, w) attention map, in [-1, 1]: x to the right, y upward.

    A uniform map gives (0, 0); a map on the right half gives x > 0.
    """
    g = np.clip(np.asarray(grid, dtype=np.float64), 0, None)
    h, w = g.shape
    total = g.sum()
    if total <= 0:
        return 0.0, 0.0
    xs = (np.arange(w) + 0.5) / w * 2 - 1
    ys = 1 - (np.arange(h) + 0.5) / h * 2
    return float((g.sum(0) * xs).sum() / total), float((g.sum(1) * ys).sum() / total)


def hemisphere_balance(clusters, hemispheres, n_tokens: int, weights=None) -> np.ndarray:
    """Per token: (left share - right share) of its voxels, in [-1, 1]; NaN for empty tokens.

    Parameters
    ----------
    clusters : array-like of int, (V,)
    hemispheres : array-like of int, (V,)
        0 = left, 1 = right.
    n_tokens : int
    weights : array-like, (V,), optional
        Voxel weights (e.g. tokenizer attention); default: every voxel counts once.
    """
    c = np.asarray(clusters, dtype=np.int64)
    sign = np.where(np.asarray(hemispheres) == 0, 1.0, -1.0)
    w = np.ones(len(c)) if weights is None else np.asarray(weights, dtype=np.float64)
    num = np.bincount(c, weights=w * sign, minlength=n_tokens)
    den = np.bincount(c, weights=w, minlength=n_tokens)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


@dataclass
class Contralaterality:
    """Contralaterality of brain tokens (the left hemisphere sees the right visual field).

    Attributes
    ----------
    index : float
        Mean over non-empty tokens of ``centroid_x * balance``, in [-1, 1]: > 0 when tokens made of
        left-hemisphere voxels attend to the right of the image and vice versa; about 0 by chance.
    fraction : float
        Among lateralised tokens (``|balance| >= 0.5``), the share whose centroid lies on the
        contralateral side (NaN when there is none).
    centroid_x, balance, score : ndarray, (C,)
        Per token: attention centroid x in [-1, 1], hemisphere balance (left - right share),
        their product (NaN for empty tokens).
    """

    index: float
    fraction: float
    centroid_x: np.ndarray
    balance: np.ndarray
    score: np.ndarray


def contralaterality(token_grids, clusters, hemispheres, weights=None) -> Contralaterality:
    """Per-token attention-centroid x in the image against the hemisphere of the token's voxels.

    Parameters
    ----------
    token_grids : array-like, (C, h, w) or list of them
        Each token's attention over the image grid; a list (e.g. the pyramid levels of the
        low-level head) averages the centroids over its entries.
    clusters : array-like of int, (V,)
    hemispheres : array-like of int, (V,)
    weights : array-like, (V,), optional
        Voxel weights for the hemisphere balance (e.g. tokenizer attention).
    """
    grids = token_grids if isinstance(token_grids, (list, tuple)) else [token_grids]
    cx = np.mean([[attention_centroid(g)[0] for g in np.asarray(level)] for level in grids], axis=0)
    bal = hemisphere_balance(clusters, hemispheres, len(cx), weights)
    score = cx * bal
    ok = np.isfinite(score)
    lat = ok & (np.abs(np.nan_to_num(bal)) >= 0.5)
    return Contralaterality(float(score[ok].mean()) if ok.any() else float("nan"),
                            float((score[lat] > 0).mean()) if lat.any() else float("nan"), cx, bal, score)


def maps_contralaterality(maps: AttentionMaps, head: str, hemispheres) -> Contralaterality:
    """:func:`contralaterality` of one head of :class:`AttentionMaps` (all its query levels)."""
    grids = [maps.token_grids(head, level) for level in range(len(maps.levels[head]))]
    return contralaterality(grids, maps.clusters, hemispheres, maps.tokenizer[head])


def receptive_field_centroids(clusters, weights, x, y, n_tokens: int) -> np.ndarray:
    """Per token: weighted mean of its voxels' (ground-truth) pRF centres, (C, 2); NaN if empty."""
    c = np.asarray(clusters, dtype=np.int64)
    w = np.asarray(weights, dtype=np.float64)
    den = np.bincount(c, weights=w, minlength=n_tokens)
    out = np.stack([np.bincount(c, weights=w * np.asarray(v, np.float64), minlength=n_tokens) for v in (x, y)], 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den[:, None] > 0, out / den[:, None], np.nan)


def prf_response(x_deg, y_deg, sigma_deg, x: float, y: float, image_deg: float = 8.4) -> np.ndarray:
    """Gaussian pRF drive of each vertex by a point at normalised image location (x, y).

    Parameters
    ----------
    x_deg, y_deg, sigma_deg : array-like, (V,)
        pRF centre (x right, y up, degrees from fixation) and size.
    x, y : float
        Location in [0, 1] (x left to right, y top to bottom).
    image_deg : float
        Width of the image in degrees (8.4 in NSD and the twin).
    """
    px = (x - 0.5) * image_deg
    py = (0.5 - y) * image_deg
    d2 = (np.asarray(x_deg) - px) ** 2 + (np.asarray(y_deg) - py) ** 2
    return np.exp(-d2 / (2 * np.asarray(sigma_deg, dtype=np.float64) ** 2))
