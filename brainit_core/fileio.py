"""Small file helpers every module shares: atomic JSON and NumPy writes, JSON reads with clear errors.

A write goes to a temporary file beside the target and is renamed over it, so a process killed at
any moment leaves either the old file or the new one, never a torn one.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from brainit_core.errors import DataFormatError


def json_default(obj):
    """``json.dumps(default=...)`` for NumPy scalars and arrays, paths and tuples."""
    import numpy as np

    if isinstance(obj, tuple):
        return list(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj)}")


def write_json(path, obj, indent: int = 2, sort_keys: bool = True, default=json_default) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically (parent folders are made). Returns the path.

    ``default`` converts what JSON cannot hold (:func:`json_default`; ``str`` for free-form reports).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=indent, sort_keys=sort_keys, default=default))
    os.replace(tmp, path)
    return path


def read_json(path, default=None):
    """Read a JSON file; ``default`` when it does not exist.

    Raises
    ------
    DataFormatError
        When the file exists but is not valid JSON (the message names the file).
    """
    path = Path(path)
    if not path.is_file():
        return default
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"{path} is not valid JSON ({exc}); remove it or restore it from a backup") from exc


def try_read_json(path):
    """Read a JSON file, or ``None`` when it is missing or unreadable (for caches, which rebuild it)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def save_npy(path, arr) -> Path:
    """``np.save`` atomically (parent folders are made). Returns the path."""
    import numpy as np

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npy")
    np.save(tmp, arr)
    os.replace(tmp, path)
    return path


def save_npz(path, compressed: bool = False, **arrays) -> Path:
    """``np.savez`` (or ``savez_compressed``) atomically. Returns the path."""
    import numpy as np

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    (np.savez_compressed if compressed else np.savez)(tmp, **arrays)
    os.replace(tmp, path)
    return path
