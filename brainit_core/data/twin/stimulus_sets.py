"""The twin's images: library scenes (or the procedural fallback), OOD photographs and drawings, their channels.

Training, test and unlabeled images are COCO-like scenes composed from the stimulus library
(:func:`.scenes.render_scenes`; image ``i`` of twin seed ``s`` is scene ``i`` of scene seed
:data:`SCENE_SEED` + ``s``, so the twin never shows a composite the ventral network was trained on,
whose training seeds are small, nor its held-out ones). The out-of-distribution set holds first
the real photographs of :mod:`.photos` (scikit-image's and the library's close-ups), then drawings
in twin v1's procedural style (cartoon scenes, gratings, noise, chromatic patterns, words). The
``procedural`` fallback (fast tests without the library) draws every image in twin v1's style.

Images are rendered, and the encoding channels of the images subjects see computed, in chunks that
run in worker processes (:func:`worker_pool`); each worker holds the library and the photographs.
"""
from __future__ import annotations

import contextlib
import multiprocessing as mp
import os

import numpy as np
import torch

from brainit_core.data.twin.encoding import V1_CATEGORIES, category_columns, image_channels
from brainit_core.data.twin.stimuli import make_ood, make_scene
from brainit_core.data.twin.taxonomy import CATEGORIES

SCENE_SEED = 2_000_000
"""Scene seed of the twin of seed 0 (ventral training uses small seeds, its held-out check 1,000,003)."""
KINDS = ("library", "procedural")

_STATE: dict = {}  # the process's library, sprite cache and OOD photographs (set by init_worker)


def init_worker(library, photos, threads: int | None = 1) -> None:
    """Hold the library and the OOD photographs (uint8 (n, S, S, 3)) in this process for :func:`render_chunk`."""
    from brainit_core.data.twin.sprites import SpriteCache

    if threads:
        torch.set_num_threads(threads)
    # every sprite is kept once loaded: a demo build uses each item ~17 times, and decoding the library's
    # large PNGs again (17 ms each) would cost more than drawing the scenes (~0.5 GB per process)
    _STATE.update(library=library, photos=photos,
                  cache=SpriteCache(library, max_items=len(library.items) + 1) if library is not None else None)


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
    """Render a chunk of images and compute the channels of those shown to subjects (runs in a worker).

    ``job``: (ids, seed, size, kind, ood_start, shown) with ``shown`` a bool per id.
    Returns (images, masks, channels of the shown ids (float16), objects).
    """
    ids, seed, size, kind, ood_start, shown = job
    images, masks, objects = render_images(ids, seed, size, kind, ood_start)
    shown = np.asarray(shown, bool)
    channels = {k: v.astype(np.float16) for k, v in image_channels(images[shown]).items()} if shown.any() else {}
    return images, masks, channels, objects


@contextlib.contextmanager
def worker_pool(n_jobs: int, library, photos, photo_names):
    """Worker processes for the images (``$BRAINIT_WORKERS``, default: the CPU count; 1 = none).

    Yields a pool, or None for small builds (a few chunks), which run in this process (its state
    is set the same way, so the images and channels are identical: tested).
    """
    _STATE["photo_names"] = list(photo_names)
    n = min(int(os.environ.get("BRAINIT_WORKERS", os.cpu_count() or 1)), n_jobs)
    if n <= 1 or n_jobs < 8:
        init_worker(library, photos, threads=None)
        yield None
        return
    # spawn, not fork: the caller may be a threaded server (the app) or have started torch's thread pool
    with mp.get_context("spawn").Pool(n, initializer=_init_spawned, initargs=(library, photos, list(photo_names))) as pool:
        yield pool


def _init_spawned(library, photos, photo_names) -> None:
    _STATE["photo_names"] = photo_names
    init_worker(library, photos, threads=1)


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


def render_twin_images(writer, config, n_shown: int, ood_start: int, n_total: int, library=None) -> dict:
    """Render every image of a twin (ids ``0 .. n_total - 1``) into ``writer``, in worker processes.

    Parameters
    ----------
    writer : DatasetWriter
    config : TwinConfig
        Its ``seed``, ``image_size``, ``stimuli`` (:data:`KINDS`) and ``n_test``.
    n_shown : int
        Ids below it are shown to subjects: their encoding channels are computed.
    ood_start : int
        The first OOD id.
    library : LibraryIndex, optional
        Default :func:`~brainit_core.data.twin.library.load_library` (``stimuli="library"`` only).

    Returns
    -------
    dict
        ``channels`` (float16 arrays over ids ``0 .. n_shown - 1``), ``coverage`` (n_total, 9) category
        area fractions, ``test_masks`` (n_test, 9, ~32, ~32), ``objects`` (id -> description) and
        ``record`` (what the dataset's provenance says about its stimuli).

    Raises
    ------
    MissingLibraryError
        ``stimuli="library"`` and the library is not installed or lacks a category (names the install command).
    """
    from brainit_core.data.twin.photos import real_photos, resized
    from brainit_core.progress import track

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
    size = config.image_size
    chunk = 256
    ids_all = np.arange(n_total)
    jobs = [(ids_all[i:i + chunk], config.seed, size, config.stimuli, ood_start, ids_all[i:i + chunk] < n_shown)
            for i in range(0, n_total, chunk)]
    channels, objects, test_masks = {}, {}, []
    coverage = np.zeros((n_total, len(CATEGORIES)), np.float32)
    with worker_pool(len(jobs), library, resized(photos, size), [p.name for p in photos]) as pool:
        results = pool.imap(render_chunk, jobs) if pool is not None else map(render_chunk, jobs)
        for (ids, *_), (imgs, masks, ch, objs) in track(zip(jobs, results), desc="twin: stimuli", total=len(jobs)):
            writer.add_images(ids, imgs)
            for k, v in ch.items():
                channels.setdefault(k, []).append(v)
            coverage[ids] = masks.reshape(len(ids), len(CATEGORIES), -1).mean(-1)
            objects.update(objs)
            step = max(1, size // 32)
            test_masks += [m[:, ::step, ::step] for i, m in zip(ids, masks) if i < config.n_test]
    record = {"kind": config.stimuli, "ood": {"photographs": [p.name for p in photos],
                                              "procedural": int(n_total - ood_start - len(photos))}}
    if library is not None:
        record.update(scene_seed=SCENE_SEED + config.seed, library_version=library.version,
                      library_items=library.counts["items"], library_per_category=library.counts["per_category"],
                      library_unreadable=library.counts["unreadable"],
                      library_unreadable_files=[s["path"] for s in library.skipped[:20]],
                      packages={k: v["version"] for k, v in library.packages.items()})
    else:
        record["note"] = "procedural fallback (twin v1's drawings; for fast tests without the stimulus library)"
    return {"channels": {k: np.concatenate(v) for k, v in channels.items()}, "coverage": coverage,
            "test_masks": np.stack(test_masks) if test_masks else np.zeros((0, len(CATEGORIES), 0, 0), bool),
            "objects": objects, "record": record}
