"""The benchmark's two baselines, fitted on a subject's training split or loaded when fitted before.

Each is saved under ``OUT/baselines/<subject>/<name>`` with ``<name>.key`` beside it: the key
(feature space, subject, dataset path and, for the MLP, its preset) and the fit time. A saved
decoder is loaded only when its key matches.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from brainit_core.benchmark.cache import JSON_LAYOUT, result_key
from brainit_core.fileio import try_read_json, write_json
from brainit_core.progress import report

PRESETS = ("ci", "demo", "full")


def train_split(ds, space, subject: str, lowlevel: bool = True):
    """Repeat-averaged training betas, their image ids and the images' true features (without the
    low-level maps when ``lowlevel`` is False: the global-embedding MLP learns semantic vectors only).

    Returns
    -------
    betas : numpy.ndarray
    ids : numpy.ndarray
    features : FeatureSet
    """
    from brainit_core.features import extract_features

    betas, ids = ds.subject(subject).averaged("train")
    return betas, ids, extract_features(ds, ids, space, read_lowlevel=lowlevel)


def ridge_key(ds, space, subject: str) -> str:
    """Key of a subject's ridge decoder."""
    return result_key("ridge", space.describe(), subject, str(ds.path))


def global_embedding_preset(run_preset) -> str:
    """The MLP's preset: the run's when it is a known preset, else ``"demo"``."""
    return run_preset if run_preset in PRESETS else "demo"


def global_embedding_key(ds, space, subject: str, preset: str) -> str:
    """Key of a subject's global-embedding MLP."""
    return result_key("global", space.describe(), subject, str(ds.path), preset)


def _saved(path: Path, key: str) -> bool:
    from brainit_core.checkpoint import checkpoint_exists

    return checkpoint_exists(path) and (try_read_json(path.with_suffix(".key")) or {}).get("key") == key


def fit_or_load_ridge(out, ds, space, subject: str):
    """The subject's :class:`~brainit_core.baselines.RidgeFeatureDecoder` (betas -> semantic tokens
    and every low-level map), from ``out/baselines/<subject>/ridge`` or fitted and saved there."""
    from brainit_core.baselines import RidgeFeatureDecoder

    path = Path(out) / "baselines" / subject / "ridge"
    key = ridge_key(ds, space, subject)
    if _saved(path, key):
        return RidgeFeatureDecoder.load(path)
    report(0.0, f"{subject}: fitting ridge")
    betas, _, fs = train_split(ds, space, subject)
    targets = {"semantic": fs.semantic.astype(np.float32)}
    targets.update({f"low{l}": m.astype(np.float32) for l, m in enumerate(fs.lowlevel)})
    t = time.perf_counter()
    dec = RidgeFeatureDecoder().fit(betas, targets)
    dec.save(path)
    write_json(path.with_suffix(".key"), {"key": key, "fit_seconds": time.perf_counter() - t}, **JSON_LAYOUT)
    return dec


def fit_or_load_global_embedding(out, ds, space, subject: str, run_preset, device):
    """The subject's :class:`~brainit_core.baselines.GlobalEmbeddingDecoder` (betas -> one global
    semantic vector and a blurry image), from ``out/baselines/<subject>/global_embedding`` or
    fitted and saved there, with :func:`global_embedding_preset` of the run's preset."""
    from brainit_core.baselines import GlobalEmbeddingConfig, GlobalEmbeddingDecoder

    path = Path(out) / "baselines" / subject / "global_embedding"
    preset = global_embedding_preset(run_preset)
    key = global_embedding_key(ds, space, subject, preset)
    if _saved(path, key):
        return GlobalEmbeddingDecoder.load(path, device=str(device))
    report(0.0, f"{subject}: fitting the global-embedding MLP")
    betas, ids, fs = train_split(ds, space, subject, lowlevel=False)
    t = time.perf_counter()
    dec = GlobalEmbeddingDecoder(GlobalEmbeddingConfig.preset(preset), device=str(device))
    dec.fit(betas, fs.semantic.astype(np.float32), ds.images(ids))
    dec.save(path)
    write_json(path.with_suffix(".key"), {"key": key, "fit_seconds": time.perf_counter() - t}, **JSON_LAYOUT)
    return dec
