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

from brainit_core.checkpoint import json_default

SHARED = "_shared"  # cache folder of what does not depend on the subject (the oracle)


# JSON files (the benchmark's only JSON reader and writer; brainit_core.fileio replaces them when it lands)


def write_json(path, obj, indent: int = 1) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (a temporary file, then a rename), making
    parent folders; NumPy scalars and arrays, paths and tuples are converted."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=indent, default=json_default))
    tmp.replace(path)


def try_read_json(path):
    """The JSON in ``path``, or None when it is missing or malformed (a cache miss)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


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
        npz.parent.mkdir(parents=True, exist_ok=True)
        tmp = npz.with_name(npz.stem + ".tmp.npz")
        np.savez_compressed(tmp, **arrays)
        tmp.replace(npz)
        meta = {**meta, "key": key}
        write_json(js, meta)
        return meta

    def update_meta(self, slot: str, method: str, meta: dict) -> None:
        """Rewrite an entry's meta (e.g. with its scores added)."""
        write_json(self.paths(slot, method)[1], meta)
