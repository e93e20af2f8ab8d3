"""Cortical geometry of the twin: visual areas and population receptive fields on fsaverage5.

The visual region is a disc of the registered sphere around each hemisphere's occipital pole (the
most posterior pial vertex), without the medial wall (the vertices cut out of nilearn's flat map)
and without the anterior temporal lobe (pial y >= ``Y_MAX``). In the disc's tangent plane, the
radial distance r (degrees of arc on the sphere) maps to eccentricity through cortical
magnification M(E) ~ 1 / (E + E0), i.e. r = k ln(1 + E / E0); the angular position phi (0 = medial,
positive = dorsal) lays out the areas as wedges: V1 around the calcarine (phi = 0), V2 and V3
flanking it with mirrored quadrants, hV4 ventral, V3A/B dorsal, LO lateral. Further out (r >=
``R_EARLY``) V1 and V2 continue into the periphery beyond the image, and three higher areas fill the
band: IPS (dorsal), LOTC (lateral occipito-temporal) and VOT (ventral occipito-temporal), with the
category patches (face, body, place, word, food) inside them.
The left hemisphere represents the right visual field; the upper field lies on the ventral side.

Less ideal than a textbook map (twin v2, docs/data.md "Twin v2 brain"): every subject's map is
rotated, stretched and smoothly warped, its patches move and its region's edge differs; pRF
centres scatter around the map (so centres near the vertical meridian cross to the ipsilateral
field), higher areas and patches have large, near-foveal pRFs whose centres reach a few degrees into
the ipsilateral field, and pRF size grows with eccentricity with the slopes of Kay et al. 2013.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.special import ndtr

from brainit_core.stimulus import IMAGE_DEG

AREAS = ("V1", "V2", "V3", "hV4", "V3AB", "LO", "IPS", "LOTC", "VOT", "face", "body", "place", "word", "food")
"""Area names; a dataset stores each vertex's index + 1 (new areas are appended, so codes keep their meaning)."""
PATCHES = ("face", "body", "place", "word", "food")
EARLY = ("V1", "V2", "V3")
MID = ("hV4", "V3AB", "LO")
HIGH = ("IPS", "LOTC", "VOT")
E0 = 0.75  # cortical-magnification constant (deg)
R_EARLY = 38.0  # arc degrees from the pole covered by the central (<= 6.3 deg) retinotopic maps
R_PERI = 45.0  # peripheral V1 / V2 (beyond the image, up to ~10 deg) end here
R_MAX = 68.0  # arc degrees: outer edge of the visual region (before a subject's own edge)
Y_MAX = -20.0  # mm (pial y): nothing anterior to this is in the visual region
_K = R_EARLY / np.log1p(IMAGE_DEG * 0.75 / E0)  # r = R_EARLY reaches ~6.3 deg eccentricity

# area -> (phi_lo, phi_hi) wedge in degrees (phi: 0 medial/calcarine, + dorsal, - ventral)
_WEDGES = {"V1": (-35, 35), "V2d": (35, 60), "V2v": (-60, -35), "V3d": (60, 85), "V3v": (-85, -60),
           "V3AB": (85, 125), "hV4": (-125, -85), "LO": (125, 235)}
# higher areas of the outer band: phi sectors (LOTC wraps around 180)
_SECTORS = {"IPS": (60, 130), "LOTC": (130, 200), "VOT": (-160, -60)}
# pRF size = slope * E + intercept (deg). V1-hV4 slopes: Kay et al. 2013 (0.16, 0.20, 0.32, 0.60);
# V3A/B and LO between hV4 and the higher areas; higher areas and patches larger and flatter.
PRF_SIZE = {"V1": (0.16, 0.15), "V2": (0.20, 0.20), "V3": (0.32, 0.25), "hV4": (0.60, 0.30),
            "V3AB": (0.55, 0.40), "LO": (0.70, 0.50), "IPS": (0.60, 1.60), "LOTC": (0.60, 1.60),
            "VOT": (0.60, 1.60), "face": (0.40, 2.20), "body": (0.40, 2.20), "place": (0.40, 2.60),
            "word": (0.40, 1.80), "food": (0.40, 2.20)}
# centre scatter (sd, as a share of the pRF size) and the ipsilateral reach of large pRFs
# (sd of the centre's shift toward the ipsilateral field, deg) per area group
_SCATTER = {"early": 0.20, "mid": 0.30, "high": 0.30}
_IPSI_SHIFT = {"high": 1.0, "patch": 1.0}
# patch -> (centre phi, centre r, radius) in degrees, and hemispheres it exists in
_PATCHES = {"face": ((-150.0, 48.0, 8.5), ("lh", "rh")), "body": ((170.0, 50.0, 8.5), ("lh", "rh")),
            "place": ((-75.0, 50.0, 8.5), ("lh", "rh")), "word": ((-120.0, 52.0, 7.5), ("lh",)),
            "food": ((-100.0, 58.0, 7.0), ("lh", "rh"))}  # NSD's food region (Khosla et al. 2022; Jain et al. 2023),
# ventral, between the face and place patches


@dataclass
class Cortex:
    """The visual region of both hemispheres (fsaverage5 numbering).

    Attributes (all (n,) arrays over the region's vertices, lh first then rh, increasing number)
    vertices, hemispheres, r (arc deg from the pole), phi (deg), posterior_anterior (pial y, mm)
    """

    vertices: np.ndarray
    hemispheres: np.ndarray
    r: np.ndarray
    phi: np.ndarray
    posterior_anterior: np.ndarray


@lru_cache(maxsize=1)
def surface() -> dict:
    """fsaverage5 per hemisphere (0 = lh, 1 = rh): ``neighbours`` (list of arrays over all 10,242
    vertices), ``y`` (pial y, mm, posterior to anterior)."""
    from nilearn.datasets import load_fsaverage

    mesh = load_fsaverage("fsaverage5")
    out = {"neighbours": [], "y": []}
    for part in ("left", "right"):
        faces = np.asarray(mesh["pial"].parts[part].faces)
        n = len(mesh["pial"].parts[part].coordinates)
        e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
        e = np.unique(np.concatenate([e, e[:, ::-1]]), axis=0)  # both directions, sorted by source
        out["neighbours"].append(np.split(e[:, 1], np.searchsorted(e[:, 0], np.arange(1, n))))
        out["y"].append(np.asarray(mesh["pial"].parts[part].coordinates, np.float64)[:, 1])
    return out


@lru_cache(maxsize=1)
def load_visual_cortex() -> Cortex:
    """The twin's visual region on nilearn's bundled fsaverage5 (loads offline).

    It holds every vertex a subject may keep (its own warped edge lies within ``R_MAX + 6``).
    """
    from nilearn.datasets import load_fsaverage

    mesh = load_fsaverage("fsaverage5")
    out = {k: [] for k in ("v", "h", "r", "phi", "y")}
    for h, part in enumerate(("left", "right")):
        sphere = mesh["sphere"].parts[part].coordinates.astype(np.float64)
        pial = mesh["pial"].parts[part].coordinates.astype(np.float64)
        wall = np.asarray(mesh["flat"].parts[part].coordinates)[:, 2] != 0  # cut out of the flat map
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
        keep = np.flatnonzero((r < R_MAX + 6) & ~wall & (pial[:, 1] < Y_MAX))
        out["v"].append(keep)
        out["h"].append(np.full(len(keep), h, np.uint8))
        out["r"].append(r[keep])
        out["phi"].append(phi[keep])
        out["y"].append(pial[keep, 1])
    return Cortex(np.concatenate(out["v"]), np.concatenate(out["h"]), np.concatenate(out["r"]),
                  np.concatenate(out["phi"]), np.concatenate(out["y"]))


def draw_warp(rng: np.random.Generator) -> np.ndarray:
    """A subject's map deformation (12 numbers; see :func:`assign_areas`)."""
    return np.r_[rng.normal(0, 4), rng.uniform(0.95, 1.05),  # rotation (deg), radial stretch
                 rng.normal(0, 3), rng.uniform(0, 2 * np.pi),  # phi wave along r: amplitude, phase
                 rng.normal(0, 0.04), rng.uniform(0, 2 * np.pi),  # r wave around phi
                 rng.normal(0, 3), rng.uniform(0, 2 * np.pi),  # edge of the region: amplitude, phase
                 rng.normal(0, 5), rng.normal(0, 1.5), rng.uniform(0.85, 1.15),  # patch moves, size
                 rng.uniform(0, 2 ** 31)]  # seed of the per-patch moves


def warped_coordinates(cortex: Cortex, warp: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(phi, r) of the region's vertices in a subject's warped map (identity without ``warp``)."""
    if warp is None:
        return (cortex.phi + 180) % 360 - 180, cortex.r.copy()
    rad = np.radians(cortex.phi)
    phi = cortex.phi - warp[0] - warp[2] * np.sin(np.pi * cortex.r / 40 + warp[3])
    r = cortex.r * warp[1] * (1 + warp[4] * np.sin(2 * rad + warp[5]))
    return (phi + 180) % 360 - 180, r


def assign_areas(cortex: Cortex, warp: np.ndarray | None = None, rng: np.random.Generator | None = None):
    """Area label, visual position (x, y in deg) and pRF size of every region vertex.

    ``warp`` (from :func:`draw_warp`) rotates, stretches and smoothly deforms the map, moves the
    patches and the region's edge (subjects differ as people do); ``rng`` draws the centre scatter,
    the ipsilateral reach of large pRFs and the size scatter (none without it: the ideal map).

    Returns
    -------
    area : ndarray of str (n,)  ("" outside every area and outside the subject's region)
    x, y, sigma : ndarray (n,) float
    """
    phi, r = warped_coordinates(cortex, warp)
    n = len(r)
    area = np.full(n, "", dtype=object)
    polar = np.zeros(n)  # visual polar angle, deg: +90 upper vertical meridian, -90 lower
    ecc = E0 * np.expm1(r / _K)
    phi_w = np.where(phi < -55, phi + 360, phi)  # LO wedge wraps around 180
    for name, (lo, hi) in _WEDGES.items():
        ph = phi_w if name == "LO" else phi
        ring = (r < R_PERI) if name[:2] in ("V1", "V2") else (r < R_EARLY)  # V1/V2 reach the periphery
        sel = ring & (ph >= lo) & (ph < hi)
        frac = (ph[sel] - lo) / (hi - lo)  # 0..1 across the wedge
        area[sel] = name.rstrip("dv") if name[-1] in "dv" and name != "hV4" else name
        if name == "V1":  # ventral edge = upper vertical meridian, calcarine = horizontal
            polar[sel] = 90 - 180 * frac
        elif name in ("hV4", "V3AB", "LO"):  # hV4 upper field (ventral), V3AB lower (dorsal), LO hemifield
            polar[sel] = {"hV4": 90 * (1 - frac) - 10, "V3AB": -90 * frac + 10, "LO": 90 - 180 * frac}[name]
    # V2v: border with V1 at phi=-35 is the upper vertical meridian; the V3v border horizontal (and mirrored)
    for name, lo, hi, sign in (("V2", -60, -35, 1), ("V3", -85, -60, -1)):
        v = (area == name) & (phi < 0)
        polar[v] = 90 * ((phi[v] - lo) / 25 if sign > 0 else (hi - phi[v]) / 25)
        d = (area == name) & (phi >= 0)
        polar[d] = -90 * ((-lo - phi[d]) / 25 if sign > 0 else (phi[d] + hi) / 25)
    # higher areas of the outer band: coarse hemifield maps near the fovea; VOT is foveal laterally,
    # peripheral medially (the eccentricity bias of ventral temporal cortex)
    edge = R_MAX + (0 if warp is None else warp[6] * np.sin(np.radians(cortex.phi) + warp[7]))
    band = (r >= R_EARLY) & (r < edge) & (area == "")
    u = np.clip((r - R_EARLY) / (R_MAX - R_EARLY), 0, 1)
    for name, (lo, hi) in _SECTORS.items():
        ph = np.where(phi < lo, phi + 360, phi)
        sel = band & (ph >= lo) & (ph < hi)
        frac = (ph[sel] - lo) / (hi - lo)
        area[sel] = name
        polar[sel] = 70 - 140 * frac if name != "VOT" else 70 - 140 * u[sel]
        ecc[sel] = 0.5 + (4.5 * frac if name == "VOT" else 3.0 * u[sel])
    hemi_sign = np.where(cortex.hemispheres == 0, 1.0, -1.0)  # lh -> right visual field
    x = hemi_sign * ecc * np.cos(np.radians(polar))
    y = ecc * np.sin(np.radians(polar))
    # category patches: anterior discs with large pRFs near the fovea
    moves = np.random.default_rng(int(warp[11])) if warp is not None else None
    for name, ((pc, rc, rad), hemis) in _PATCHES.items():
        if moves is not None:
            pc, rc, rad = pc + warp[8] + moves.normal(0, 5), rc + warp[9] + moves.normal(0, 1.5), rad * warp[10]
        dphi = ((phi - pc + 180) % 360 - 180) * np.sin(np.radians(np.clip(r, 1, None)))
        dist = np.hypot(dphi, r - rc)
        hemi_ok = np.isin(cortex.hemispheres, [0 if h == "lh" else 1 for h in hemis])
        sel = (dist < rad) & hemi_ok & (r >= R_EARLY) & (r < edge)
        area[sel] = name
        ecc[sel] = dist[sel] / rad * 2.5
        ang = np.arctan2(r[sel] - rc, dphi[sel])  # direction from the patch centre
        x[sel] = hemi_sign[sel] * (0.3 + ecc[sel] * np.abs(np.cos(ang)))
        y[sel] = ecc[sel] * np.sin(ang)
    area = area.astype(str)
    if rng is not None:
        x, y = _scatter(area, x, y, hemi_sign, rng)
    ecc = np.hypot(x, y)
    sigma = np.zeros(n)
    for name, (slope, icpt) in PRF_SIZE.items():
        sel = area == name
        sigma[sel] = slope * ecc[sel] + icpt
    if rng is not None:
        sigma *= np.exp(rng.normal(0, 0.1, n))
    return area, x, y, sigma


def _scatter(area, x, y, hemi_sign, rng):
    """Centre scatter (a share of the ideal pRF size) and the ipsilateral reach of large pRFs."""
    n = len(area)
    group = np.select([np.isin(area, EARLY), np.isin(area, MID), np.isin(area, HIGH), np.isin(area, PATCHES)],
                      ["early", "mid", "high", "patch"], "")
    size0 = np.zeros(n)
    for name, (slope, icpt) in PRF_SIZE.items():
        sel = area == name
        size0[sel] = slope * np.hypot(x[sel], y[sel]) + icpt
    sd = np.array([_SCATTER.get(g, 0.0) for g in group]) * size0
    dx, dy = rng.normal(0, 1, n) * sd, rng.normal(0, 1, n) * sd
    reach = np.array([_IPSI_SHIFT.get(g, 0.0) for g in group])
    dx -= hemi_sign * np.abs(rng.normal(0, 1, n)) * reach  # toward the ipsilateral field
    return x + dx, y + dy


def ipsilateral(x: np.ndarray, hemispheres: np.ndarray) -> np.ndarray:
    """Whether each pRF centre lies in the ipsilateral visual field (lh: left, x < 0)."""
    return np.where(np.asarray(hemispheres) == 0, x < 0, x > 0)


def image_coverage(x: np.ndarray, y: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Share of each Gaussian pRF's mass inside the IMAGE_DEG-wide image (0..1)."""
    h = IMAGE_DEG / 2
    s = np.maximum(sigma, 1e-6)
    return (ndtr((h - x) / s) - ndtr((-h - x) / s)) * (ndtr((h - y) / s) - ndtr((-h - y) / s))
