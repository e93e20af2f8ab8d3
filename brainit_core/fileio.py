"""Small file helpers every module shares: atomic JSON and NumPy writes, JSON reads with clear errors.

A write goes to a temporary file beside the target and is renamed over it, so a process killed at
any moment leaves either the old file or the new one, never a torn one. In a job of several
processes (:mod:`brainit_core.distributed`) only rank 0 writes; the others return the path unchanged.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from brainit_core.distributed import is_main
from brainit_core.errors import BrainITError, DataFormatError


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
    if not is_main():
        return path
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
    if not is_main():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npy")
    np.save(tmp, arr)
    os.replace(tmp, path)
    return path


def save_npz(path, compressed: bool = False, **arrays) -> Path:
    """``np.savez`` (or ``savez_compressed``) atomically. Returns the path."""
    import numpy as np

    path = Path(path)
    if not is_main():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    (np.savez_compressed if compressed else np.savez)(tmp, **arrays)
    os.replace(tmp, path)
    return path


def folder_listing(path, limit: int = 5) -> str:
    """A short listing of a folder's entries for messages (``"a.txt, b/, … (7 entries)"``)."""
    entries = sorted(Path(path).iterdir())
    names = [p.name + ("/" if p.is_dir() else "") for p in entries[:limit]]
    more = f", … ({len(entries)} entries)" if len(entries) > limit else ""
    return ", ".join(names) + more


def check_output_dir(path, what: str, marker: str | None = None) -> bool:
    """Check that ``path`` may receive an output: missing, an empty folder, or a folder with ``marker``.

    Commands never delete or replace what they did not create: an output goes to a new or empty
    folder, or to a folder that already holds the same kind of output, recognised by its marker file
    (the caller then decides whether that output may be replaced).

    Parameters
    ----------
    path : str or PathLike
    what : str
        The output, for the message (e.g. ``"a twin dataset"``).
    marker : str, optional
        The file that marks a folder as holding this kind of output (e.g. ``"dataset.json"``).

    Returns
    -------
    bool
        True when ``path/marker`` exists (the caller checks it further), False when the folder is
        missing or empty.

    Raises
    ------
    BrainITError
        When ``path`` is a file, or a folder with other contents and no ``marker``.
    """

    path = Path(path).expanduser()
    if not path.exists():
        return False
    if not path.is_dir():
        raise BrainITError(f"{path} is a file; {what} needs a new or empty folder there")
    if not any(path.iterdir()):
        return False
    if marker is not None and (path / marker).is_file():
        return True
    raise BrainITError(f"{path} already holds {folder_listing(path)}" + (f" and no {marker}" if marker else "")
                       + f": it is not {what} and nothing in it is replaced; choose a new or empty folder")


def safe_folder_name(name: str) -> str:
    """Return ``name`` if it is one safe path component (a folder name typed in the app).

    Raises
    ------
    BrainITError
        When it is empty, contains ``/`` or ``\\`` or control characters, is ``.`` or ``..``, or starts
        with ``.`` (the message says which).
    """

    if not name or not name.strip():
        raise BrainITError("the folder name is empty: type a name such as twin-ci-seed0")
    if name != name.strip():
        raise BrainITError(f"folder name {name!r} starts or ends with spaces")
    if "/" in name or "\\" in name:
        raise BrainITError(f"folder name {name!r} contains a slash: give one plain folder name, not a path")
    if name.startswith("."):
        raise BrainITError(f"folder name {name!r} starts with '.' ('..' would leave the data directory, "
                           "and hidden folders are not listed): give a plain folder name")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise BrainITError(f"folder name {name!r} contains control characters")
    return name
