"""Attention maps of one image: per-token image maps, location queries, per-vertex maps.

Everything here works on numpy arrays taken from one :class:`~brainit_core.models.bit.BITPrediction`
(one image): the tokenizer attention (V,) of each head, the V2C label of each voxel (V,) and the
cross-attention (n_queries, C) of each head, whose query tokens form the grids of the run's token
specs (semantic: one grid; low-level: one grid per pyramid level, in order).

Image locations are normalised: ``x`` in [0, 1] from left to right, ``y`` in [0, 1] from top to
bottom (rows), as the query grids are laid out. The numbers (centroids, contralaterality) come
from :mod:`brainit_core.analysis.attention`.

Examples
--------
>>> maps = compute_attention(run, betas[k], "twin01", image_id=ids[k])
>>> grid = maps.token_grid("lowlevel", level=0, token=3)          # (h, w)
>>> w = maps.location_weights("semantic", 0, x=0.25, y=0.5)        # (C,)
>>> cortex = vertex_map(w, maps.tokenizer["semantic"], maps.clusters)   # (V,)
>>> maps.contralaterality("lowlevel", hemispheres)["index"]      # the benchmark's index, this image
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from brainit_core.analysis import attention as att

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

    def grids(self, head: str) -> list[tuple[int, int]]:
        """The (h, w) of every query grid of ``head``, in query order."""
        return [tuple(g) for _, g, _ in self.levels[head]]

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

    def contralaterality(self, head: str, hemispheres, **kw) -> dict:
        """:func:`~brainit_core.analysis.attention.contralaterality` of this image through ``head``.

        All the head's query grids, its tokenizer attention; ``hemispheres`` (V,) 0 left, 1 right;
        ``kw`` as in that function. On the low-level head this is the benchmark's index computed on
        this one image's attention (the benchmark averages the attention over the test images).
        """
        return att.contralaterality(self.cross[head], self.grids(head), self.clusters, hemispheres,
                                    self.tokenizer[head], **kw)


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
    tok = {h: np_(pred.tokenizer_attention[h])[0] for h in HEADS}
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


def area_codes(area_names) -> tuple[np.ndarray, list[str]]:
    """Areas of the vertices as category codes for a categorical surface map.

    Parameters
    ----------
    area_names : array-like of str, (V,)
        ``""`` outside every area.

    Returns
    -------
    codes : ndarray, float64, (V,)
        Index into ``names``; NaN outside every area.
    names : list of str
        The sorted area names.
    """
    names = sorted(set(np.asarray(area_names).astype(str).tolist()) - {""})
    lookup = {a: i for i, a in enumerate(names)}
    return np.array([lookup.get(str(a), np.nan) for a in area_names], dtype=np.float64), names


def token_area_shares(area_names, clusters, token: int, top: int = 4) -> list[tuple[str, float]]:
    """The ``top`` most frequent areas among the voxels of ``token`` and their shares.

    Parameters
    ----------
    area_names : array-like of str, (V,)
        ``""`` (counted as ``"other"``) outside every area.
    clusters : array-like of int, (V,)
    token : int
    top : int

    Returns
    -------
    list of (area, share)
        Most frequent first (ties by first occurrence); shares of all the token's voxels.
    """
    names = np.asarray(area_names).astype(str)[np.asarray(clusters) == token]
    names = np.where(names == "", "other", names)
    if not len(names):
        return []
    uniq, first, counts = np.unique(names, return_index=True, return_counts=True)
    order = sorted(range(len(uniq)), key=lambda i: (-counts[i], first[i]))[:top]
    return [(str(uniq[i]), float(counts[i] / len(names))) for i in order]
