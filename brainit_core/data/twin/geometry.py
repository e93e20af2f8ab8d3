"""Cortical geometry of the twin: visual areas and population receptive fields on fsaverage5.

The visual region is a disc of the registered sphere around each hemisphere's occipital pole (the
most posterior pial vertex). In the disc's tangent plane, the radial distance r (degrees of arc on
the sphere) maps to eccentricity through cortical magnification M(E) ~ 1 / (E + E0), i.e.
r = k ln(1 + E / E0); the angular position phi (0 = medial, positive = dorsal) lays out the areas
as wedges: V1 around the calcarine (phi = 0), V2 and V3 flanking it with mirrored quadrants, hV4
ventral, V3A/B dorsal, LO lateral, and category patches further anterior (larger r).
The left hemisphere represents the right visual field; the upper field lies on the ventral side.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from brainit_core.stimulus import IMAGE_DEG

AREAS = ("V1", "V2", "V3", "hV4", "V3AB", "LO", "face", "body", "place", "word")
PATCHES = ("face", "body", "place", "word")
EARLY = ("V1", "V2", "V3")
MID = ("hV4", "V3AB", "LO")
E0 = 0.75  # cortical-magnification constant (deg)
R_EARLY = 38.0  # arc degrees from the pole covered by the retinotopic areas
R_MAX = 56.0  # arc degrees: outer edge of the visual region (patches live between)

# area -> (phi_lo, phi_hi) wedge in degrees (phi: 0 medial/calcarine, + dorsal, - ventral)
_WEDGES = {"V1": (-35, 35), "V2d": (35, 60), "V2v": (-60, -35), "V3d": (60, 85), "V3v": (-85, -60),
           "V3AB": (85, 125), "hV4": (-125, -85), "LO": (125, 235)}
# pRF size = slope * E + intercept (deg): grows with eccentricity and up the hierarchy
_PRF = {"V1": (0.10, 0.25), "V2": (0.15, 0.35), "V3": (0.22, 0.45), "hV4": (0.35, 0.8), "V3AB": (0.35, 0.8),
        "LO": (0.45, 1.0), "face": (0.5, 2.5), "body": (0.5, 2.5), "place": (0.5, 3.0), "word": (0.5, 2.0)}
# patch -> (centre phi, centre r, radius) in degrees, and hemispheres it exists in
_PATCHES = {"face": ((-150.0, 46.0, 8.0), ("lh", "rh")), "body": ((170.0, 46.0, 8.0), ("lh", "rh")),
            "place": ((-75.0, 47.0, 8.0), ("lh", "rh")), "word": ((-120.0, 48.0, 7.0), ("lh",))}


@dataclass
class Cortex:
    """The visual region of both hemispheres (fsaverage5 numbering).

    Attributes (all (n,) arrays over the region's vertices, lh first then rh, increasing number)
    vertices, hemispheres, r (arc deg from the pole), phi (deg), posterior_anterior (pial y, mm),
    neighbours : list of arrays (mesh neighbours inside the region, as region indices)
    """

    vertices: np.ndarray
    hemispheres: np.ndarray
    r: np.ndarray
    phi: np.ndarray
    posterior_anterior: np.ndarray
    neighbours: list


@lru_cache(maxsize=1)
def load_visual_cortex() -> Cortex:
    """The twin's visual region on nilearn's bundled fsaverage5 (loads offline)."""
    from nilearn.datasets import load_fsaverage

    mesh = load_fsaverage("fsaverage5")
    out = {k: [] for k in ("v", "h", "r", "phi", "y")}
    edges_all = []
    offset = 0
    for h, part in enumerate(("left", "right")):
        sphere = mesh["sphere"].parts[part].coordinates.astype(np.float64)
        pial = mesh["pial"].parts[part].coordinates.astype(np.float64)
        faces = mesh["sphere"].parts[part].faces
        pole = sphere[np.argmin(pial[:, 1])]
        pole = pole / np.linalg.norm(pole)
        unit = sphere / np.linalg.norm(sphere, axis=1, keepdims=True)
        r = np.degrees(np.arccos(np.clip(unit @ pole, -1, 1)))
        medial = np.array([1.0, 0.0, 0.0]) if h == 0 else np.array([-1.0, 0.0, 0.0])
        e1 = medial - (medial @ pole) * pole
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(pole, e1)
        if e2[2] < 0:  # e2 points superior (dorsal)
            e2 = -e2
        phi = np.degrees(np.arctan2(unit @ e2, unit @ e1))
        keep = np.flatnonzero(r < R_MAX)
        out["v"].append(keep)
        out["h"].append(np.full(len(keep), h, np.uint8))
        out["r"].append(r[keep])
        out["phi"].append(phi[keep])
        out["y"].append(pial[keep, 1])
        index = -np.ones(len(sphere), np.int64)
        index[keep] = np.arange(len(keep)) + offset
        for a, b in ((0, 1), (1, 2), (2, 0)):
            e = index[faces[:, [a, b]]]
            e = e[(e >= 0).all(1)]
            edges_all.append(e)
        offset += len(keep)
    edges = np.unique(np.sort(np.concatenate(edges_all), axis=1), axis=0)
    n = offset
    neighbours = [[] for _ in range(n)]
    for a, b in edges:
        neighbours[a].append(b)
        neighbours[b].append(a)
    return Cortex(np.concatenate(out["v"]), np.concatenate(out["h"]), np.concatenate(out["r"]),
                  np.concatenate(out["phi"]), np.concatenate(out["y"]),
                  [np.asarray(x, np.int64) for x in neighbours])


def assign_areas(cortex: Cortex, phi_shift: float = 0.0, r_scale: float = 1.0):
    """Area label, visual position (x, y in deg) and pRF size of every region vertex.

    ``phi_shift`` and ``r_scale`` rotate and stretch the maps (subjects differ as people do).

    Returns
    -------
    area : ndarray of str (n,)  ("" outside every area)
    x, y, sigma : ndarray (n,) float
    """
    phi = (cortex.phi - phi_shift + 180) % 360 - 180
    r = cortex.r * r_scale
    n = len(r)
    area = np.full(n, "", dtype=object)
    polar = np.zeros(n)  # visual polar angle, deg: +90 upper vertical meridian, -90 lower
    k = R_EARLY / np.log1p(IMAGE_DEG * 0.75 / E0)  # r = R_EARLY reaches ~6.3 deg eccentricity
    ecc = E0 * np.expm1(r / k)
    retino = r < R_EARLY
    phi_w = np.where(phi < -55, phi + 360, phi)  # LO wedge wraps around 180
    for name, (lo, hi) in _WEDGES.items():
        sel = retino & (phi_w >= lo) & (phi_w < hi) if name == "LO" else retino & (phi >= lo) & (phi < hi)
        frac = ((phi_w if name == "LO" else phi)[sel] - lo) / (hi - lo)  # 0..1 across the wedge
        base = name.rstrip("dv") if name[-1] in "dv" and name != "hV4" else name
        area[sel] = base
        if name == "V1":  # ventral edge = upper vertical meridian, calcarine = horizontal
            polar[sel] = 90 - 180 * frac
        elif name in ("hV4", "V3AB", "LO"):  # hV4 upper field (ventral), V3AB lower (dorsal), LO hemifield
            polar[sel] = {"hV4": 90 * (1 - frac) - 10, "V3AB": -90 * frac + 10, "LO": 90 - 180 * frac}[name]
    # V2v: border with V1 at phi=-35 (frac=1) is the upper vertical meridian; V3v border (frac=0) horizontal
    sel = area == "V2"
    v = sel & (phi < 0)
    polar[v] = 90 * ((phi[v] - (-60)) / 25)
    d = sel & (phi >= 0)
    polar[d] = -90 * ((60 - phi[d]) / 25)
    sel = area == "V3"
    v = sel & (phi < 0)
    polar[v] = 90 * ((-60 - phi[v]) / 25)  # V2/V3 border horizontal, far edge vertical
    d = sel & (phi >= 0)
    polar[d] = -90 * ((phi[d] - 60) / 25)
    hemi_sign = np.where(cortex.hemispheres == 0, 1.0, -1.0)  # lh -> right visual field
    x = hemi_sign * ecc * np.cos(np.radians(polar))
    y = ecc * np.sin(np.radians(polar))
    # category patches: anterior, large pRFs near the fovea
    for name, ((pc, rc, rad), hemis) in _PATCHES.items():
        dphi = ((phi - pc + 180) % 360 - 180) * np.sin(np.radians(np.clip(r, 1, None)))
        dist = np.hypot(dphi, r - rc)
        hemi_ok = np.isin(cortex.hemispheres, [0 if h == "lh" else 1 for h in hemis])
        sel = (dist < rad) & hemi_ok & (r >= R_EARLY)
        area[sel] = name
        ecc[sel] = np.clip(dist[sel] / rad * 2.0, 0, None)
        ang = np.radians(phi[sel])
        x[sel] = hemi_sign[sel] * (0.5 + ecc[sel] * np.abs(np.cos(ang)))
        y[sel] = ecc[sel] * np.sin(ang)
    sigma = np.zeros(n)
    for name, (slope, icpt) in _PRF.items():
        sel = area == name
        sigma[sel] = slope * np.hypot(x[sel], y[sel]) + icpt
    return area.astype(str), x, y, sigma
