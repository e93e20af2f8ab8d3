"""Category selectivity of the twin's patches: on held-out composites and on real photographs.

On composites (the dataset's test images, which neither the ventral network nor any subject's
training saw), from the measured betas: each patch's d' between images of its category and the
others, in two contrasts: ``dprime`` (the category covers >= 2% of the image vs the rest, twin
v1's figure) and ``localizer`` (it covers >= 5% vs images without it, as a functional localizer
contrasts images of a category with images of other things).

On real photographs (:mod:`.photos`: scikit-image's and the library's close-ups, never shown to
the ventral network), by the in-silico experiment: :func:`~brainit_core.data.twin.respond`
(noiseless) gives each patch's mean response, in the dataset's units, to every photograph; a
patch is selective when its mean response to photos of its category is above its mean response
to the other photos.
"""
from __future__ import annotations

import numpy as np

from brainit_core.data.twin.encoding import V1_ALIASES
from brainit_core.data.twin.geometry import PATCHES

PRESENT, LOCALIZER = 0.02, 0.05  # image area a category covers to count as present / as an image of it


def patch_category(categories, patch: str) -> int | None:
    """Index of a patch's category among a twin's category names (twin v1: ``place`` is ``building``);
    None when the twin has no such category (twin v1 has no food)."""
    names = list(categories)
    for name in [patch] + [k for k, v in V1_ALIASES.items() if v == patch]:
        if name in names:
            return names.index(name)
    return None


def dprime(resp: np.ndarray, has: np.ndarray) -> float | None:
    """(mean with - mean without) / pooled sd, rounded; None with fewer than two images on a side."""
    has = np.asarray(has, bool)
    if has.sum() < 2 or (~has).sum() < 2:
        return None
    return round(float((resp[has].mean() - resp[~has].mean())
                       / np.sqrt(0.5 * (resp[has].var() + resp[~has].var()) + 1e-12)), 2)


def composite_selectivity(means: np.ndarray, area: np.ndarray, coverage: np.ndarray, categories) -> dict:
    """Per patch, ``dprime`` and ``localizer`` d' of its mean response over its vertices.

    Parameters
    ----------
    means : (n_images, V) responses (the mean over repeats)
    area : (V,) area names
    coverage : (n_images, n_categories) share of each image each category covers
    categories : the names of ``coverage``'s columns
    """
    out = {"dprime": {}, "localizer": {}}
    for p in PATCHES:
        v, c = area == p, patch_category(categories, p)
        if not v.any() or c is None:
            continue
        r, cov = means[:, v].mean(1), coverage[:, c]
        d = dprime(r, cov > PRESENT)
        if d is not None:
            out["dprime"][p] = d
        keep = (cov >= LOCALIZER) | (cov == 0)
        d = dprime(r[keep], cov[keep] > 0)
        if d is not None:
            out["localizer"][p] = d
    return out


def default_photos():
    """The real photographs of the check: scikit-image's, and the library's close-ups when it is installed."""
    from brainit_core.data.twin.library import MissingLibraryError, load_library
    from brainit_core.data.twin.photos import real_photos

    try:
        library = load_library()
    except MissingLibraryError:
        library = None
    return real_photos(library)


def photo_selectivity(dataset_dir, subject: str, area: np.ndarray, photos) -> dict:
    """Per patch of ``subject``: ``own`` and ``others`` (mean response to photos of its category and to
    the rest), ``n_own``, ``selective`` (own > others; None without a photo of its category) and
    ``top`` (the photo it responds to most)."""
    from brainit_core.data.twin.respond import respond

    if not photos:
        return {}
    resp = respond(dataset_dir, subject, [p.image for p in photos], repeats=1, noise=False)[:, 0]
    cats = np.array([p.category or "" for p in photos])
    out = {}
    for p in PATCHES:
        v = area == p
        if not v.any():
            continue
        r = resp[:, v].mean(1)
        own = cats == p
        out[p] = {"own": round(float(r[own].mean()), 3) if own.any() else None,
                  "others": round(float(r[~own].mean()), 3), "n_own": int(own.sum()),
                  "selective": bool(r[own].mean() > r[~own].mean()) if own.any() else None,
                  "top": photos[int(np.argmax(r))].name}
    return out


def photo_table(report: dict) -> list[dict]:
    """One row per patch, means over subjects: d' on the test composites (both contrasts), the response
    to photographs of its category and to the others, and in how many subjects it prefers its own."""
    rows = []
    for p in PATCHES:
        per = [r["photo_selectivity"][p] for r in report.values() if p in r.get("photo_selectivity", {})]
        d = [r["category_selectivity_dprime"][p] for r in report.values() if p in r["category_selectivity_dprime"]]
        loc = [r.get("category_selectivity_localizer", {}).get(p) for r in report.values()]
        loc = [x for x in loc if x is not None]
        if not per and not d:
            continue
        own = [x["own"] for x in per if x["own"] is not None]
        rows.append({"patch": p, "d' test composites": round(float(np.mean(d)), 2) if d else None,
                     "d' localizer": round(float(np.mean(loc)), 2) if loc else None,
                     "photos of it": per[0]["n_own"] if per else 0,
                     "response to them": round(float(np.mean(own)), 3) if own else None,
                     "response to the others": round(float(np.mean([x["others"] for x in per])), 3) if per else None,
                     "selective in": f"{sum(bool(x['selective']) for x in per)} / {len(per)}" if own else "-"})
    return rows
