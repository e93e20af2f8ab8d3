"""What a twin vertex responds to: the encoding model (Kay et al. 2008, 2013).

Early areas (V1-V3): quadrature Gabor energy on luminance (4 orientations x 3 spatial
frequencies, computed as the magnitude of one-sided frequency-domain filters) plus colour-opponent
channels, pooled by a Gaussian pRF, weighted by the vertex's broad orientation / spatial-frequency
tuning (preferred frequency falls with eccentricity) and passed through a compressive power 0.5
(the CSS model). Mid areas pool orientation-summed energy and colour over larger pRFs.

Higher visual cortex sees through the twin's ventral network (:mod:`.ventral`, its inferotemporal
cortex, trained on the stimulus library; not the decoder's feature network): category patches
(face, body, place, word, food) respond to their category's probability map pooled by their large
pRF as a soft maximum (:data:`PEAK_POWER`), with a weak low-level drive; the object-selective higher areas (IPS, LOTC, VOT) pool coarse
energy and a broad mixture of category maps, and read the network's late embedding through a fixed
non-negative random projection per vertex. So they respond to what is in any image, a user's photo
included; the stimulus generator's masks drive nothing (they are kept for validation).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from brainit_core.data.twin.geometry import HIGH, MID, PATCHES
from brainit_core.data.twin.taxonomy import CATEGORIES
from brainit_core.stimulus import IMAGE_DEG

GRID = 32  # pooling grid (pixels of the IMAGE_DEG-wide image)
LUM = 64  # luminance resolution for the Gabor pyramid
ORIENTATIONS = np.arange(4) * np.pi / 4
SF_CPD = np.array([0.75, 1.5, 3.0])  # cycles per degree
N_GABOR = len(ORIENTATIONS) * len(SF_CPD)
N_COLOUR = 4  # R-G and B-Y, each rectified in both polarities
POWER = 0.5
V1_CATEGORIES = ("face", "body", "word", "building", "vehicle", "animal", "plant", "round")
"""Twin v1's category channels (procedural stimuli), read from the ventral network's categories by :data:`V1_ALIASES`."""
V1_ALIASES = {"building": "place", "round": "object"}
EMBEDDING_SPARSITY = 0.2  # Dirichlet concentration of a higher-area vertex's embedding weights (few features each)
EMBEDDING_GAIN = 0.15  # a higher-area vertex's embedding weights sum to this x U(0.5, 1.5) in units of the mean feature
PEAK_POWER = 4.0
"""A category patch pools its category's map with an L^p norm over its pRF, (sum w p^k)^(1/k): a soft
maximum, so it responds to its category anywhere in its large receptive field rather than to the share
of the field it covers (docs/data.md, "Twin v2: patch pooling")."""


def _filters() -> torch.Tensor:
    """One-sided log-Gabor-like filters in the rfft2 domain: (N_GABOR, LUM, LUM // 2 + 1)."""
    fy = np.fft.fftfreq(LUM)[:, None] * LUM / IMAGE_DEG  # cycles/deg
    fx = np.fft.rfftfreq(LUM)[None, :] * LUM / IMAGE_DEG
    out = []
    for sf in SF_CPD:
        for th in ORIENTATIONS:
            u, v = sf * np.cos(th), sf * np.sin(th)
            if u < 0 or (u == 0 and v < 0):  # keep the half of the +-pair that rfft2 stores
                u, v = -u, -v
            bw = sf * 0.45
            # one-sided in frequency: the complex output's magnitude is the quadrature-pair energy
            out.append(np.exp(-((fx - u) ** 2 + (fy - v) ** 2) / (2 * bw ** 2)))
    return torch.tensor(np.stack(out), dtype=torch.complex64)


_FILTERS = None


@lru_cache(maxsize=1)
def default_ventral():
    """The shipped ventral network (``assets/twin/ventral.*``), loaded once per process."""
    from brainit_core.data.twin.ventral import load_ventral

    return load_ventral()


@torch.no_grad()
def image_channels(images: np.ndarray, net=None) -> dict[str, np.ndarray]:
    """Stimulus channels on the pooling grid.

    Parameters
    ----------
    images : uint8 (n, H, W, 3)
    net : VentralNet, optional
        The twin's ventral network; default :func:`default_ventral`.

    Returns
    -------
    dict with "gabor" (n, N_GABOR, GRID*GRID), "colour" (n, N_COLOUR, GRID*GRID), "category"
    (n, 9, GRID*GRID: the ventral network's category probabilities, :data:`CATEGORIES` order) and
    "embedding" (n, D: its late features), all float32.
    """
    from brainit_core.data.twin.ventral import ventral_response

    global _FILTERS
    if _FILTERS is None:
        _FILTERS = _filters()
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
    lum = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]
    lum = F.interpolate(lum, size=(LUM, LUM), mode="bilinear", antialias=True, align_corners=False)[:, 0]
    lum = lum - lum.mean(dim=(1, 2), keepdim=True)
    spec = torch.fft.rfft2(lum)[:, None] * _FILTERS[None]  # (n, N_GABOR, LUM, LUM/2+1)
    full = torch.zeros(spec.shape[0], spec.shape[1], LUM, LUM, dtype=torch.complex64)
    full[..., : LUM // 2 + 1] = spec  # one-sided spectrum -> analytic (complex) filter output
    energy = torch.fft.ifft2(full).abs() * 4  # (n, N_GABOR, LUM, LUM) quadrature energy
    energy = F.avg_pool2d(energy, LUM // GRID).flatten(2)  # (n, N_GABOR, GRID^2)
    small = F.interpolate(x, size=(GRID, GRID), mode="bilinear", antialias=True, align_corners=False)
    rg = small[:, 0] - small[:, 1]
    by = small[:, 2] - 0.5 * (small[:, 0] + small[:, 1])
    colour = torch.stack([rg.clamp(min=0), (-rg).clamp(min=0), by.clamp(min=0), (-by).clamp(min=0)], 1).flatten(2)
    maps, _, embedding = ventral_response(net or default_ventral(), images)
    cat = F.interpolate(torch.from_numpy(maps), size=(GRID, GRID), mode="bilinear", align_corners=False)
    return {"gabor": energy.numpy(), "colour": colour.numpy(), "category": cat.clamp(0, 1).flatten(2).numpy(),
            "embedding": embedding}


def category_columns(names) -> list[int]:
    """Indices into :data:`CATEGORIES` of a twin's category channel names (twin v1's through :data:`V1_ALIASES`)."""
    return [CATEGORIES.index(V1_ALIASES.get(n, n)) for n in names]


def prf_weights(x: np.ndarray, y: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Gaussian pRF weights over the pooling grid, (V, GRID*GRID), each row summing to 1."""
    c = (np.arange(GRID) + 0.5) / GRID * IMAGE_DEG - IMAGE_DEG / 2
    gx, gy = np.meshgrid(c, -c)  # image rows run top (upper field) to bottom
    d2 = (gx.ravel()[None] - x[:, None]) ** 2 + (gy.ravel()[None] - y[:, None]) ** 2
    w = np.exp(-d2 / (2 * sigma[:, None] ** 2))
    return (w / np.maximum(w.sum(1, keepdims=True), 1e-12)).astype(np.float32)


def make_tuning(area: np.ndarray, x: np.ndarray, y: np.ndarray, rng: np.random.Generator,
                embedding_scale: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-vertex channel weights: orientation / SF tuning, colour weights, category gains, which vertices
    pool their category maps as a soft maximum (``category_peak``, bool: the patches) and, with
    ``embedding_scale`` (the mean of each embedding feature over the shown images), the higher areas'
    embedding weights: a sparse non-negative random projection of the features that are ever active
    (mean over 1% of the features' mean), each vertex's weights summing to ``EMBEDDING_GAIN`` x
    U(0.5, 1.5) in units of each feature's mean."""
    n = len(area)
    ecc = np.hypot(x, y)
    pref_ori = rng.uniform(0, np.pi, n)
    pref_sf = np.clip(3.0 / (1 + 0.6 * ecc), 0.6, 3.5) * np.exp(rng.normal(0, 0.2, n))  # falls with eccentricity
    ori = np.exp(1.0 * np.cos(2 * (ORIENTATIONS[None] - pref_ori[:, None])))  # broad von Mises (kappa = 1)
    sf = np.exp(-(np.log2(SF_CPD[None] / pref_sf[:, None])) ** 2 / (2 * 0.8 ** 2))
    gabor = (sf[:, :, None] * ori[:, None, :]).reshape(n, N_GABOR)
    gabor /= gabor.sum(1, keepdims=True)
    colour = rng.dirichlet(np.ones(N_COLOUR) * 0.5, n) * rng.uniform(0.2, 1.0, (n, 1))
    mid = np.isin(area, MID + HIGH)
    gabor[mid] = gabor[mid].reshape(-1, len(SF_CPD), len(ORIENTATIONS)).mean(2).repeat(len(ORIENTATIONS), 1) / len(ORIENTATIONS)
    category = np.zeros((n, len(CATEGORIES)), np.float32)
    high = np.isin(area, HIGH)  # object-selective: a broad mixture of categories, weaker than a patch
    category[high] = rng.dirichlet(np.ones(len(CATEGORIES)), high.sum()) * rng.uniform(0.5, 1.5, (high.sum(), 1))
    gabor[high] *= 0.5
    colour[high] *= 0.5
    for p in PATCHES:
        sel = area == p
        category[sel, CATEGORIES.index(p)] = rng.uniform(2.0, 3.0, sel.sum())
    patch = np.isin(area, PATCHES)
    gabor[patch] *= 0.2  # weak low-level drive
    colour[patch] *= 0.2
    out = {"gabor": gabor.astype(np.float32), "colour": colour.astype(np.float32), "category": category,
           "category_peak": patch}  # the patches pool their category maps as a soft maximum (PEAK_POWER)
    if embedding_scale is not None:
        scale = np.asarray(embedding_scale, np.float64)
        alive = scale > 0.01 * max(scale.mean(), 1e-12)
        w = np.zeros((high.sum(), len(scale)))
        if alive.any():
            w[:, alive] = rng.dirichlet(np.full(alive.sum(), EMBEDDING_SPARSITY), high.sum()) / scale[alive]
        emb = np.zeros((n, len(scale)), np.float32)
        emb[high] = w * EMBEDDING_GAIN * rng.uniform(0.5, 1.5, (high.sum(), 1))
        out["embedding"] = emb
    return out


def noiseless_response(channels: dict, weights: np.ndarray, tuning: dict) -> np.ndarray:
    """Raw responses (n_images, V): pRF pooling, channel tuning, compressive nonlinearity.

    ``tuning["category"]`` has one column per channel of ``channels["category"]`` (a twin v1's 8 in
    :data:`V1_CATEGORIES` order: select them with :func:`category_columns` first). The vertices marked
    in ``tuning["category_peak"]`` (optional, bool (V,): the patches) pool the category maps as
    ``(sum_p w p^k)^(1/k)``, k = :data:`PEAK_POWER`, the others with the pRF mean (as every vertex of a
    twin built before it).

    Vertices whose Gabor tuning is the same for every orientation (mid and higher areas) pool the
    orientation-summed energy (3 channels instead of 12: the same response, a third of the work).
    Pooling is float32 on one BLAS thread, so the result has the same bits whatever the caller's
    thread setting (a twin built in worker processes equals one built serially).
    """
    from threadpoolctl import threadpool_limits

    n, v = len(channels["gabor"]), len(weights)
    w = np.ascontiguousarray(weights, dtype=np.float32).T  # (P, V)
    g = tuning["gabor"].reshape(v, len(SF_CPD), len(ORIENTATIONS))
    summed = np.all(g == g[:, :, :1], axis=(1, 2))
    gabor = channels["gabor"].reshape(n, len(SF_CPD), len(ORIENTATIONS), -1)
    out = np.zeros((n, v), np.float64)

    def pool(ch, cols, tun):  # ch (n, C, P), the vertices ``cols``, their tuning (len(cols), C)
        flat = np.ascontiguousarray(ch, dtype=np.float32).reshape(-1, ch.shape[-1])
        pooled = (flat @ w[:, cols]).reshape(n, ch.shape[1], len(cols))
        out[:, cols] += np.einsum("ncv,vc->nv", pooled, tun, dtype=np.float64)

    with threadpool_limits(1):
        if (~summed).any():
            pool(channels["gabor"], np.flatnonzero(~summed), tuning["gabor"][~summed])
        if summed.any():
            pool(gabor.sum(2), np.flatnonzero(summed), g[summed][:, :, 0])
        peak = np.zeros(v, bool) if tuning.get("category_peak") is None else np.asarray(tuning["category_peak"], bool)
        mean_cat = np.where(peak[:, None], 0, tuning["category"])
        pool(np.concatenate([channels["colour"], channels["category"]], 1), np.arange(v),
             np.concatenate([tuning["colour"], mean_cat], 1))
        if peak.any():
            cols = np.flatnonzero(peak)
            cat = np.power(np.ascontiguousarray(channels["category"], dtype=np.float32), np.float32(PEAK_POWER))
            pooled = (cat.reshape(-1, cat.shape[-1]) @ w[:, cols]).reshape(n, cat.shape[1], len(cols))
            pooled = np.power(np.clip(pooled, 0, None), np.float32(1 / PEAK_POWER))
            out[:, cols] += np.einsum("ncv,vc->nv", pooled, tuning["category"][cols], dtype=np.float64)
        if "embedding" in tuning:  # not spatial: the late features drive the higher areas wherever the object is
            out += (np.asarray(channels["embedding"], np.float32) @ tuning["embedding"].T.astype(np.float32))
    return np.power(np.clip(out, 0, None), POWER).astype(np.float32)
