"""The benchmark's on-disk result cache and its keys.

``OUT/cache/<slot>/<method>.npz`` holds a method's images (and, for ``brainit_fused``, the
attention summaries), ``OUT/cache/<slot>/<method>.json`` its key, seconds per image and scores.
``slot`` is the subject, or :data:`SHARED` for what does not depend on the subject (the oracle).
An entry is used only when its key matches: the key holds the checkpoints' checksums, the image
ids and the settings (:func:`method_key`).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from brainit_core.fileio import save_npz, try_read_json, write_json

SHARED = "_shared"  # cache folder of what does not depend on the subject (the oracle)
# how the benchmark writes JSON (results.json, cache metas, baseline keys): insertion order kept
# (the tables' column and method order), one-space indent, as results.json has always been written
JSON_LAYOUT = {"indent": 1, "sort_keys": False}


# keys


def result_key(*parts) -> str:
    """A 24-hex-digit key of JSON-able ``parts`` (dict order does not matter)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def method_key(base: dict, space, slot: str, method: str, ids, run_dependent: bool = True) -> str:
    """Cache key of one method's images.

    Parameters
    ----------
    base : dict
        The settings every key holds: ``run`` (the BIT run's checksum), ``generators``,
        ``recon``, ``seed``, ``version``.
    space : FeatureSpace
        The run's feature space (``describe()``, ``cache_key()``).
    slot, method : str
        The cache folder and the method's name.
    ids : sequence of int
        The image ids.
    run_dependent : bool, default=True
        False for methods that do not use the BIT run (the baselines, the oracle): their key
        holds the feature space instead of the run's checksum, so a new or further-trained run
        reuses their images and scores.
    """
    if not run_dependent:
        base = {**{k: v for k, v in base.items() if k != "run"}, "space": space.describe(),
                "space_key": space.cache_key()}
    return result_key(base, slot, method, [int(i) for i in ids])


class ResultCache:
    """``OUT/cache/<slot>/<method>.npz`` (images, attention) + ``.json`` (key, timing, scores).

    Parameters
    ----------
    out : Path
        The benchmark's output folder.
    """

    def __init__(self, out):
        self.root = Path(out) / "cache"

    def paths(self, slot: str, method: str) -> tuple[Path, Path]:
        """The ``.npz`` and ``.json`` files of one entry."""
        d = self.root / slot
        return d / f"{method}.npz", d / f"{method}.json"

    def get(self, slot: str, method: str, key: str) -> tuple[dict, dict] | None:
        """``(arrays, meta)`` of the entry when its key is ``key``; None otherwise (a miss)."""
        npz, js = self.paths(slot, method)
        meta = try_read_json(js)
        if meta is None or meta.get("key") != key or not npz.exists():
            return None
        with np.load(npz, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        return arrays, meta

    def put(self, slot: str, method: str, key: str, arrays: dict, meta: dict) -> dict:
        """Store an entry (arrays first, then its meta with ``key``); returns the meta written."""
        npz, js = self.paths(slot, method)
        save_npz(npz, compressed=True, **arrays)
        meta = {**meta, "key": key}
        write_json(js, meta, **JSON_LAYOUT)
        return meta

    def update_meta(self, slot: str, method: str, meta: dict) -> None:
        """Rewrite an entry's meta (e.g. with its scores added)."""
        write_json(self.paths(slot, method)[1], meta, **JSON_LAYOUT)
