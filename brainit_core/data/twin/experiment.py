"""Building the twin experiment: subjects, stimuli, responses, noise, sessions, ground truth."""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from brainit_core.data.writer import DatasetWriter, standardize_session
from brainit_core.data.twin import geometry
from brainit_core.data.twin.encoding import make_tuning, noiseless_response, prf_weights
from brainit_core.data.twin.stimulus_sets import KINDS
from brainit_core.data.twin.taxonomy import CATEGORIES
from brainit_core.errors import BrainITError
from brainit_core.progress import track
from brainit_core.fileio import write_json

TRIALS_PER_SESSION = 750
TWIN_VERSION = 2  # ground truth of twin v1 (the shipped demo) has no "version" and 8 procedural categories
AREA_CODES = ("",) + geometry.AREAS


@dataclass
class TwinConfig:
    """Size of a twin experiment (sizes and their reasons: docs/data.md, "The digital twin").

    Parameters
    ----------
    n_subjects : int
        Training subjects (twin01..); one more, held out for transfer, is added after them.
    n_train, n_test : int
        Subject-specific training images per subject; shared test images.
    n_unlabeled, n_ood : int
        Images no subject saw (augmentation pool); out-of-distribution images (shown to no one
        here; respond() simulates them).
    repeats : int
        Presentations of each image.
    image_size : int
    vertex_fraction : float
        Share of the visual region each subject keeps (subjects differ in vertex subsets).
    smooth_noise : float
        Share of the independent noise that is spatially smooth across neighbouring vertices.
    shared_noise : float
        Mean share of each vertex's noise variance that is shared across vertices within a trial
        (a global and a per-area fluctuation per trial; the vertex's share varies 0.5-1.5x).
    stimuli : str
        ``library`` (scenes composed from the stimulus library, which must be installed) or
        ``procedural`` (twin v1's drawings: a fallback for fast tests without the library).
    """

    n_subjects: int = 4
    n_train: int = 3000
    n_test: int = 200
    n_unlabeled: int = 3000
    n_ood: int = 100
    repeats: int = 3
    image_size: int = 128
    vertex_fraction: float = 0.95
    smooth_noise: float = 0.4
    shared_noise: float = 0.25
    seed: int = 0
    stimuli: str = "library"

    @classmethod
    def preset(cls, name: str, **overrides) -> "TwinConfig":
        base = {"ci": cls(n_subjects=2, n_train=120, n_test=30, n_unlabeled=60, n_ood=10, image_size=64,
                          vertex_fraction=0.06),
                "demo": cls(),
                "full": cls(n_subjects=8, n_train=9000, n_test=1000, n_unlabeled=20000, n_ood=284,
                            image_size=256, vertex_fraction=1.0)}
        if name not in base:
            raise ValueError(f"unknown twin preset {name!r} (ci, demo, full)")
        return replace(base[name], **overrides)


def subject_names(config: TwinConfig) -> list[str]:
    return [f"twin{i + 1:02d}" for i in range(config.n_subjects + 1)]


def image_plan(config: TwinConfig) -> dict[str, np.ndarray]:
    """Image ids: shared test first, then each subject's training block, unlabeled, OOD."""
    n_sub = config.n_subjects + 1
    start = config.n_test
    plan = {"test": np.arange(config.n_test)}
    for k, name in enumerate(subject_names(config)):
        plan[name] = np.arange(start + k * config.n_train, start + (k + 1) * config.n_train)
    start += n_sub * config.n_train
    plan["unlabeled"] = np.arange(start, start + config.n_unlabeled)
    plan["ood"] = np.arange(start + config.n_unlabeled, start + config.n_unlabeled + config.n_ood)
    return plan


def subject_layout(cortex: geometry.Cortex, index: int, config: TwinConfig):
    """A subject's warped map and own vertex subset (no images needed: cheap).

    Returns
    -------
    rng : the subject's generator, advanced past the layout (design continues from it)
    keep : region indices of the subject's vertices
    area, x, y, sigma : over ``keep``; warp (see :func:`geometry.draw_warp`); prf_scale
    """
    rng = np.random.default_rng([config.seed, 1000 + index])
    warp, prf_scale = geometry.draw_warp(rng), rng.uniform(0.85, 1.15)
    area, x, y, sigma = geometry.assign_areas(cortex, warp, rng)
    keep = np.flatnonzero((area != "") & (rng.random(len(area)) < config.vertex_fraction))
    return rng, keep, area[keep], x[keep], y[keep], sigma[keep] * prf_scale, warp, prf_scale


def vertex_counts(config: TwinConfig) -> dict[str, int]:
    """Vertices of each subject of ``config`` (computed from the layout alone, without building)."""
    cortex = geometry.load_visual_cortex()
    return {name: len(subject_layout(cortex, k, config)[1]) for k, name in enumerate(subject_names(config))}


def design_subject(cortex: geometry.Cortex, index: int, config: TwinConfig,
                   embedding_scale: np.ndarray | None = None) -> dict:
    """A subject's own vertex subset, warped map, pRF scale, tuning and noise (the ground truth).

    ``embedding_scale``: the mean ventral embedding of the shown images (the higher areas' embedding
    weights are in units of it; without it they have none)."""
    rng, keep, area, x, y, sigma, warp, prf_scale = subject_layout(cortex, index, config)
    tuning = make_tuning(area, x, y, rng, embedding_scale)
    # designed noise ceilings (fraction of variance of the 3-trial mean): reliable early cortex,
    # less reliable higher areas, a tail of vertices with little signal, and little signal where
    # the pRF lies mostly outside the image (peripheral V1/V2)
    median = np.select([np.isin(area, geometry.EARLY), np.isin(area, geometry.MID), np.isin(area, geometry.HIGH)],
                       [0.70, 0.55, 0.45], 0.45)
    nc = np.clip(rng.beta(4, 4, len(area)) * 2 * median, 0.02, 0.9)
    tail = rng.random(len(area)) < 0.15
    nc[tail] = rng.uniform(0.005, 0.09, tail.sum())
    nc *= 0.4 + 0.6 * geometry.image_coverage(x, y, sigma)
    nc *= rng.uniform(0.9, 1.1)  # subjects differ in overall data quality
    nc = np.clip(nc, 0.005, 0.95)
    noise_sd = np.sqrt(config.repeats * (1 / nc - 1))  # with unit signal variance
    # noise shared across vertices within a trial: a global and a per-area fluctuation
    shared = np.clip(config.shared_noise * rng.uniform(0.5, 1.5, len(area)), 0, 0.9)
    global_part = rng.uniform(0.3, 0.7, len(area))
    return {"index": keep, "vertices": cortex.vertices[keep], "hemispheres": cortex.hemispheres[keep],
            "area": area, "area_code": np.array([AREA_CODES.index(a) for a in area], np.int8),
            "x": x, "y": y, "sigma": sigma, "tuning": tuning, "designed_nc": nc, "noise_sd": noise_sd,
            "noise_global": np.sqrt(shared * global_part), "noise_area": np.sqrt(shared * (1 - global_part)),
            "noise_independent": np.sqrt(1 - shared), "warp": warp, "prf_scale": prf_scale}


def noise_smoother(hemispheres: np.ndarray, vertices: np.ndarray, smooth: float):
    """Sparse noise mixer (V, V): independent plus neighbour-smoothed noise, unit variance per vertex.

    Rows are ``sqrt(1 - smooth) * I + sqrt(smooth) * A^2`` (A = row-normalised neighbour
    averaging over the subject's vertices), then scaled to unit norm so that the mixed noise keeps
    each vertex's designed variance.
    """
    import scipy.sparse as sp

    mesh = geometry.surface()
    n = len(vertices)
    rows, cols = [], []
    for h in (0, 1):
        on = np.flatnonzero(np.asarray(hemispheres) == h)
        pos = -np.ones(len(mesh["y"][h]), np.int64)
        pos[np.asarray(vertices)[on]] = on
        for i in on:
            nb = pos[mesh["neighbours"][h][vertices[i]]]
            nb = np.r_[i, nb[nb >= 0]]
            rows += [i] * len(nb)
            cols += nb.tolist()
    a = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    a = sp.diags(1 / np.asarray(a.sum(1)).ravel()) @ a
    a2 = a @ a
    a2 = sp.diags(1 / np.sqrt(np.asarray(a2.multiply(a2).sum(1)).ravel())) @ a2
    m = np.sqrt(1 - smooth) * sp.identity(n, format="csr") + np.sqrt(smooth) * a2
    return (sp.diags(1 / np.sqrt(np.asarray(m.multiply(m).sum(1)).ravel())) @ m).tocsr()


def subject_signal(subject: dict, channels: dict) -> np.ndarray:
    """Unit-variance signal (n, V) from stimulus channels, with the subject's stored scaling."""
    raw = noiseless_response(channels, subject["weights"], subject["tuning"])
    return (raw - subject["signal_mean"]) / subject["signal_std"]


def trial_noise(subject: dict, mixer, n: int, rng: np.random.Generator) -> np.ndarray:
    """Single-trial noise (n, V) with the subject's per-vertex sd.

    Independent noise, spatially mixed (see :func:`noise_smoother`), plus noise shared within a
    trial: one global and one per-area fluctuation, each vertex with its own loadings
    (``noise_global``, ``noise_area``, ``noise_independent``: their squares sum to 1, so each
    vertex keeps its designed variance). A twin without them (version 1) has independent noise only.
    """
    v = len(subject["noise_sd"])
    e = rng.standard_normal((n, v)).astype(np.float32)
    out = np.asarray(mixer @ e.T).T.astype(np.float32)
    if "noise_global" in subject:
        g = rng.standard_normal((n, 1)).astype(np.float32)
        a = rng.standard_normal((n, len(AREA_CODES))).astype(np.float32)[:, subject["area_code"]]
        out = (out * subject["noise_independent"].astype(np.float32) + g * subject["noise_global"].astype(np.float32)
               + a * subject["noise_area"].astype(np.float32))
    return out * subject["noise_sd"].astype(np.float32)



def build_twin(out, config: TwinConfig | None = None, preset: str | None = None, seed: int | None = None,
               overwrite: bool = False, library=None):
    """Build a twin dataset in the canonical format (+ ground_truth/ beside it).

    Its images come from the stimulus library (``library``, default the installed one: a missing
    library is a :class:`~brainit_core.data.twin.library.MissingLibraryError` naming the install
    command, before anything is written) or, with ``config.stimuli == "procedural"``, from twin v1's
    drawings (a fallback for fast tests). The provenance records the library version and its
    skipped files, the OOD photographs and the ventral network's sha256.

    ``out`` must be new or empty, or hold an unfinished twin; a finished twin is replaced only with
    ``overwrite`` (its ``features/`` cache goes with it), any other folder is refused
    (see :class:`~brainit_core.data.DatasetWriter`). Returns the opened :class:`~brainit_core.data.Dataset`.
    """
    from brainit_core.data.twin.stimulus_sets import prepare, render_twin_images
    from brainit_core.data.twin.ventral import ventral_record

    config = config or TwinConfig.preset(preset or "demo")
    if seed is not None:
        config = replace(config, seed=seed)
    if config.stimuli not in KINDS:
        raise BrainITError(f"twin stimuli must be one of {KINDS}, got {config.stimuli!r}")
    t0 = time.time()
    out = Path(out)
    cortex = geometry.load_visual_cortex()
    plan = image_plan(config)
    names = subject_names(config)
    ventral = ventral_record()
    n_total = len(plan["test"]) + len(names) * config.n_train + config.n_unlabeled + config.n_ood
    ood_start = int(plan["ood"][0]) if len(plan["ood"]) else n_total
    # the library (a missing one is a clear error before the output is touched) and the embedding scale
    prepared = prepare(config, n_total, ood_start, library)
    writer = DatasetWriter(out, source="twin", mesh="fsaverage5", image_size=config.image_size,
                           overwrite=overwrite, twin_config=asdict(config))
    gt_dir = out / "ground_truth"
    gt_dir.mkdir(parents=True, exist_ok=True)

    # 1. subjects' designs, then every image rendered once with the noiseless responses of those who see it
    subs = [design_subject(cortex, s_idx, config, prepared["embedding_scale"]) for s_idx in range(len(names))]
    for sub in subs:
        sub["weights"] = prf_weights(sub["x"], sub["y"], sub["sigma"])
    seen_of = [np.r_[plan["test"], plan[name]] for name in names]  # increasing (image_plan)
    stim = render_twin_images(writer, config, prepared, [{"weights": s["weights"], "tuning": s["tuning"]} for s in subs],
                              seen_of, n_total, ood_start)
    writer.add_image_set("unlabeled", plan["unlabeled"])
    writer.add_image_set("ood", plan["ood"])

    # 2. per subject: scaling, noise, sessions
    for s_idx, name in enumerate(names):
        sub, seen, raw = subs[s_idx], seen_of[s_idx], stim["raw"][s_idx]
        ref = np.r_[np.arange(len(plan["test"]), len(plan["test"]) + min(500, len(plan[name]))),
                    np.arange(len(plan["test"]))]  # rows of the first 500 training and the test images
        sub["signal_mean"], sub["signal_std"] = raw[ref].mean(0), np.maximum(raw[ref].std(0), 1e-6)
        signal_of = (raw - sub["signal_mean"]) / sub["signal_std"]
        del raw
        stim["raw"][s_idx] = None
        smoother = noise_smoother(sub["hemispheres"], sub["vertices"], config.smooth_noise)
        rng = np.random.default_rng([config.seed, 2000 + s_idx])
        shown = np.repeat(np.r_[plan["test"], plan[name]], config.repeats)
        rng.shuffle(shown)
        writer.begin_subject(name, sub["vertices"], sub["hemispheres"])
        n_sess = int(np.ceil(len(shown) / TRIALS_PER_SESSION))
        for k in track(range(n_sess), desc=f"twin: {name} sessions"):
            ids = shown[k * TRIALS_PER_SESSION:(k + 1) * TRIALS_PER_SESSION]
            signal = signal_of[np.searchsorted(seen, ids)]  # seen is increasing (image_plan)
            noise = trial_noise(sub, smoother, len(ids), rng)
            drift = np.linspace(-1, 1, len(ids))[:, None] * rng.normal(0, 0.5, len(sub["vertices"]))[None]
            offset = rng.normal(0, 2.0, len(sub["vertices"]))[None]
            z, _, _ = standardize_session(signal + noise + drift + offset)
            writer.append_session(name, z, ids, k + 1)
        val_n = max(2, len(plan[name]) // 10)
        writer.finalize_subject(name, plan[name][val_n:], plan[name][:val_n], plan["test"])
        noiseless = signal_of[:len(plan["test"])] / np.sqrt(1 + sub["noise_sd"] ** 2)
        np.savez_compressed(
            gt_dir / f"{name}.npz", vertices=sub["vertices"], hemispheres=sub["hemispheres"],
            area=sub["area_code"], x=sub["x"], y=sub["y"],
            sigma=sub["sigma"], designed_nc=sub["designed_nc"], noise_sd=sub["noise_sd"],
            noise_global=sub["noise_global"], noise_area=sub["noise_area"],
            noise_independent=sub["noise_independent"],
            tuning_gabor=sub["tuning"]["gabor"], tuning_colour=sub["tuning"]["colour"],
            tuning_category=sub["tuning"]["category"], tuning_category_peak=sub["tuning"]["category_peak"],
            tuning_embedding=sub["tuning"]["embedding"],
            signal_mean=sub["signal_mean"], signal_std=sub["signal_std"],
            region_index=sub["index"], noiseless_test=noiseless.astype(np.float32),
            warp=sub["warp"], prf_scale=np.array(sub["prf_scale"]))
        subs[s_idx] = None  # free its pRF weights
    np.savez_compressed(gt_dir / "stimuli.npz", category_coverage=stim["coverage"], test_masks=stim["test_masks"])
    write_json(gt_dir / "objects.json", stim["objects"], indent=None, sort_keys=False)
    write_json(gt_dir / "twin.json", {"version": TWIN_VERSION, "config": asdict(config), "areas": list(AREA_CODES),
                                      "categories": list(CATEGORIES), "subjects": names, "stimuli": stim["record"],
                                      "ventral": ventral}, indent=1, sort_keys=False)
    return writer.finalize(heldout_subjects=names[-1:], provenance={
        "generator": "brainit_core.data.twin", "twin_version": TWIN_VERSION, "preset_config": asdict(config),
        "stimuli": stim["record"], "ventral_network": ventral, "build_seconds": round(time.time() - t0, 1)})


def load_ground_truth(dataset_dir, subject: str | None = None) -> dict:
    """The twin's ground truth (validation, oracle bounds and tests only; never for decoding).

    Returns the twin description, and with ``subject`` that subject's arrays (area names per
    vertex, pRF x/y/sigma in degrees, designed noise ceilings, tuning, noiseless test responses).
    """
    from brainit_core.errors import DataFormatError, UnknownSubjectError

    gt = Path(dataset_dir) / "ground_truth"
    if not (gt / "twin.json").exists():
        raise DataFormatError(f"{gt / 'twin.json'} not found: {dataset_dir} is not a twin dataset")
    out = json.loads((gt / "twin.json").read_text())
    if subject is not None:
        if not (gt / f"{subject}.npz").is_file():
            have = [s for s in out.get("subjects", []) if (gt / f"{s}.npz").is_file()]
            raise UnknownSubjectError(f"{dataset_dir}: no twin subject {subject!r}; subjects: {have}")
        z = dict(np.load(gt / f"{subject}.npz", allow_pickle=False))
        z["area_names"] = np.array(out["areas"])[z["area"]]
        out["subject"] = z
    return out
