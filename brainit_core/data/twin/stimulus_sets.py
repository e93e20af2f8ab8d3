"""The twin's images: library scenes (or the procedural fallback), OOD photographs and drawings, their channels.

Training, test and unlabeled images are COCO-like scenes composed from the stimulus library
(:func:`.scenes.render_scenes`; image ``i`` of twin seed ``s`` is scene ``i`` of scene seed
:data:`SCENE_SEED` + ``s``, so the twin never shows a composite the ventral network was trained on,
whose training seeds are small, nor its held-out ones). The out-of-distribution set holds first
the real photographs of :mod:`.photos` (scikit-image's and the library's close-ups), then drawings
in twin v1's procedural style (cartoon scenes, gratings, noise, chromatic patterns, words). The
``procedural`` fallback (fast tests without the library) draws every image in twin v1's style.

Images are rendered, their encoding channels computed and pooled into each subject's noiseless
response, in chunks that run in worker processes (:func:`worker_pool`); each worker holds the
library, the photographs and the subjects' encoding models, so the channels (50 kB an image) never
travel back: only the images, masks and responses do.
"""
from __future__ import annotations

import contextlib
import multiprocessing as mp
import os

import numpy as np
import torch

from brainit_core.data.twin.encoding import V1_CATEGORIES, category_columns, image_channels, noiseless_response
from brainit_core.data.twin.stimuli import make_ood, make_scene
from brainit_core.data.twin.taxonomy import CATEGORIES

SCENE_SEED = 2_000_000
"""Scene seed of the twin of seed 0 (ventral training uses small seeds, its held-out check 1,000,003)."""
KINDS = ("library", "procedural")

_STATE: dict = {}  # this process's library, sprite cache, OOD photographs and subject models (init_worker)
REFERENCE_IMAGES = 256  # the first shown images, whose mean ventral embedding scales the higher areas' weights


def init_worker(library, photos, photo_names=(), models=(), threads: int | None = 1) -> None:
    """Hold the library, the OOD photographs (uint8 (n, S, S, 3)) and their names, and the subjects'
    encoding models (``weights``, ``tuning``) in this process for :func:`render_chunk`."""
    from brainit_core.data.twin.sprites import SpriteCache

    if threads:
        torch.set_num_threads(threads)
    # every sprite is kept once loaded: a demo build uses each item ~17 times, and decoding the library's
    # large PNGs again (17 ms each) would cost more than drawing the scenes (~0.5 GB per process)
    same = library is not None and _STATE.get("library") is library and _STATE.get("cache") is not None
    _STATE.update(library=library, photos=photos, photo_names=list(photo_names), models=list(models),
                  cache=_STATE["cache"] if same else
                  SpriteCache(library, max_items=len(library.items) + 1) if library is not None else None)


def _from_v1(masks: np.ndarray) -> np.ndarray:
    """Twin v1's masks (n, 8, H, W) in :data:`V1_CATEGORIES` order -> bool (n, 9, H, W) in :data:`CATEGORIES` order."""
    out = np.zeros((masks.shape[0], len(CATEGORIES)) + masks.shape[2:], bool)
    out[:, category_columns(V1_CATEGORIES)] = masks > 0
    return out


def _procedural(image_id: int, seed: int, size: int, ood: bool):
    rng = np.random.default_rng([seed, int(image_id)])
    if ood and rng.random() < 0.5:
        img, masks, objs = make_ood(rng, size)
    else:
        img, masks, objs = make_scene(rng, size)
    return img, _from_v1(masks[None])[0], {"style": "procedural", "objects": objs}


def render_images(ids, seed: int, size: int, kind: str, ood_start: int):
    """Images ``ids`` of a twin (see the module's docstring).

    Returns
    -------
    images : uint8 (n, size, size, 3)
    masks : bool (n, 9, size, size), each category's visible pixels (zero for photographs)
    objects : dict id -> dict with ``style`` (``library``: ``objects``, each with category, item, text,
        box, flipped, visible, and ``background``; ``photo``: ``photo``, its name; ``procedural``:
        ``objects``, each with its category)
    """
    from brainit_core.data.twin.scenes import render_scenes

    ids = np.asarray(ids, np.int64)
    images = np.zeros((len(ids), size, size, 3), np.uint8)
    masks = np.zeros((len(ids), len(CATEGORIES), size, size), bool)
    objects = {}
    regular = np.flatnonzero(ids < ood_start)
    if kind == "library" and len(regular):
        runs = np.split(regular, np.flatnonzero(np.diff(ids[regular]) != 1) + 1)
        for run in runs:  # scene i of the scene seed, whatever chunk it is rendered in
            s = render_scenes(_STATE["library"], len(run), seed=SCENE_SEED + seed, size=size, start=int(ids[run[0]]),
                              cache=_STATE["cache"])
            images[run], masks[run] = s.images, s.category_masks
            for k, i in enumerate(run):
                objects[int(ids[i])] = {"style": "library", "objects": s.objects[k], "background": s.backgrounds[k]}
    photos = _STATE.get("photos")
    n_photos = 0 if photos is None else len(photos)
    for i, image_id in enumerate(ids):
        if kind == "library" and image_id < ood_start:
            continue
        if kind == "library" and image_id - ood_start < n_photos:
            images[i] = photos[image_id - ood_start]
            objects[int(image_id)] = {"style": "photo", "photo": _STATE["photo_names"][image_id - ood_start]}
            continue
        images[i], masks[i], objects[int(image_id)] = _procedural(image_id, seed, size, image_id >= ood_start)
    return images, masks, objects


def render_chunk(job):
    """Render a chunk of images and the noiseless responses of the subjects who see them (runs in a worker).

    ``job``: (ids, seed, size, kind, ood_start, seen) with ``seen`` a list of (subject index, bool per id).
    Returns (images, masks, objects, {subject index: raw responses float32 (n_seen, V)}).
    """
    ids, seed, size, kind, ood_start, seen = job
    images, masks, objects = render_images(ids, seed, size, kind, ood_start)
    shown = np.zeros(len(ids), bool)
    for _, mask in seen:
        shown |= mask
    responses = {}
    if shown.any():
        channels = image_channels(images[shown])
        for s, mask in seen:
            rows = mask[shown]
            model = _STATE["models"][s]
            responses[s] = noiseless_response({k: v[rows] for k, v in channels.items()}, model["weights"],
                                              model["tuning"])
    return images, masks, objects, responses


@contextlib.contextmanager
def worker_pool(n_jobs: int, library, photos, photo_names, models=()):
    """Worker processes (``$BRAINIT_WORKERS``, default: the CPU count; 1 = none), each set up by
    :func:`init_worker`. Yields a pool, or None for small builds (a few chunks), which run in this
    process, set up the same way (the images and responses are identical: tested)."""
    n = min(int(os.environ.get("BRAINIT_WORKERS", os.cpu_count() or 1)), n_jobs)
    if n <= 1 or n_jobs < 8:
        init_worker(library, photos, photo_names, models, threads=None)
        yield None
        return
    # spawn, not fork: the caller may be a threaded server (the app) or have started torch's thread pool
    with mp.get_context("spawn").Pool(n, initializer=init_worker,
                                      initargs=(library, photos, list(photo_names), list(models), 1)) as pool:
        yield pool


def prepare(config, n_total: int, ood_start: int, library=None) -> dict:
    """What every chunk needs before the subjects are designed: the library (checked), the OOD
    photographs, and the mean ventral embedding of the first :data:`REFERENCE_IMAGES` images subjects see
    (rendered here; it scales the higher areas' embedding weights).

    Raises
    ------
    MissingLibraryError
        ``stimuli="library"`` and the library is not installed or lacks a category (names the install command).
    """
    from brainit_core.data.twin.photos import real_photos, resized

    if config.stimuli not in KINDS:
        raise ValueError(f"twin stimuli must be one of {KINDS}, got {config.stimuli!r}")
    photos = []
    if config.stimuli == "library":
        if library is None:
            from brainit_core.data.twin.library import load_library

            library = load_library()
        check_library(library)
        photos = real_photos(library)[:max(0, n_total - ood_start)]
    else:
        library = None
    out = {"library": library, "photos": resized(photos, config.image_size), "photo_names": [p.name for p in photos]}
    init_worker(library, out["photos"], out["photo_names"], threads=None)
    ref = render_images(np.arange(min(REFERENCE_IMAGES, ood_start)), config.seed, config.image_size, config.stimuli,
                        ood_start)[0]
    out["embedding_scale"] = image_channels(ref)["embedding"].astype(np.float64).mean(0)
    return out


def check_library(library) -> None:
    """Refuse a library that lacks a category (a partly installed or damaged library would silently
    change the balance of the twin's scenes)."""
    from brainit_core.data.twin.library import INSTALL_COMMAND, MissingLibraryError

    by_cat = library.by_category()
    empty = [c for c in CATEGORIES if not by_cat[c] and not (c == "word" and library.font)]
    if empty or not library.scene_backgrounds():
        what = f"no pictures of {', '.join(empty)}" if empty else "no scene backgrounds"
        raise MissingLibraryError(f"stimulus library {library.version} under {library.root} has {what} "
                                  f"({library.counts.get('unreadable', 0)} unreadable files were skipped); "
                                  f"reinstall it: sudo {INSTALL_COMMAND}")


def render_twin_images(writer, config, prepared: dict, models, seen, n_total: int, ood_start: int) -> dict:
    """Render every image of a twin (ids ``0 .. n_total - 1``) into ``writer`` and the subjects' responses.

    Parameters
    ----------
    writer : DatasetWriter
    config : TwinConfig
        Its ``seed``, ``image_size``, ``stimuli`` (:data:`KINDS`) and ``n_test``.
    prepared : dict
        From :func:`prepare`.
    models : list of dict
        Per subject, ``weights`` (V, GRID*GRID) and ``tuning`` (:func:`.encoding.make_tuning`).
    seen : list of ndarray
        Per subject, the increasing ids it sees.
    n_total, ood_start : int
        Image count; the first OOD id.

    Returns
    -------
    dict
        ``raw`` (per subject, float32 (len(seen), V): noiseless responses before scaling),
        ``coverage`` (n_total, 9) category area fractions, ``test_masks`` (n_test, 9, ~32, ~32), ``objects``
        (id -> description) and ``record`` (what the dataset's provenance says about its stimuli).
    """
    from brainit_core.progress import track

    library, size, chunk = prepared["library"], config.image_size, 256
    raw = [np.zeros((len(ids), len(m["weights"])), np.float32) for ids, m in zip(seen, models)]
    jobs = []
    for start in range(0, n_total, chunk):
        ids = np.arange(start, min(start + chunk, n_total))
        masks = [(s, np.isin(ids, ids_s)) for s, ids_s in enumerate(seen)]
        jobs.append((ids, config.seed, size, config.stimuli, ood_start, [(s, m) for s, m in masks if m.any()]))
    objects, test_masks = {}, []
    coverage = np.zeros((n_total, len(CATEGORIES)), np.float32)
    with worker_pool(len(jobs), library, prepared["photos"], prepared["photo_names"], models) as pool:
        results = pool.imap(render_chunk, jobs) if pool is not None else map(render_chunk, jobs)
        for (ids, *_), (imgs, masks, objs, resp) in track(zip(jobs, results), desc="twin: stimuli", total=len(jobs)):
            writer.add_images(ids, imgs)
            for s, r in resp.items():
                raw[s][np.searchsorted(seen[s], ids[np.isin(ids, seen[s])])] = r
            coverage[ids] = masks.reshape(len(ids), len(CATEGORIES), -1).mean(-1)
            objects.update(objs)
            step = max(1, size // 32)
            test_masks += [m[:, ::step, ::step] for i, m in zip(ids, masks) if i < config.n_test]
    names = prepared["photo_names"]
    record = {"kind": config.stimuli, "ood": {"photographs": names, "procedural": int(n_total - ood_start - len(names))}}
    if library is not None:
        record.update(scene_seed=SCENE_SEED + config.seed, library_version=library.version,
                      library_items=library.counts["items"], library_per_category=library.counts["per_category"],
                      library_unreadable=library.counts["unreadable"],
                      library_unreadable_files=[s["path"] for s in library.skipped[:20]],
                      packages={k: v["version"] for k, v in library.packages.items()})
    else:
        record["note"] = "procedural fallback (twin v1's drawings; for fast tests without the stimulus library)"
    return {"raw": raw, "coverage": coverage, "objects": objects, "record": record,
            "test_masks": np.stack(test_masks) if test_masks else np.zeros((0, len(CATEGORIES), 0, 0), bool)}
