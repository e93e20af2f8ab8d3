"""Small shared helpers: the one device decision, seeding, data locations."""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np


def check_device(device) -> str:
    """Validate a device name and return it as text.

    Accepts ``"auto"``, ``"cpu"``, ``"cuda"`` and ``"cuda:N"`` (CUDA only when this machine has
    that GPU), ``"mps"`` where available, and ``torch.device`` objects.

    Raises
    ------
    BrainITError
        Naming the value and what is accepted.
    """
    import re

    from brainit_core.errors import BrainITError

    text = str(device).strip()
    if text in ("auto", "cpu"):
        return text
    match = re.fullmatch(r"cuda(?::(\d+))?", text)
    if text == "mps":
        import torch

        if not torch.backends.mps.is_available():
            raise BrainITError("device 'mps' requested, but this machine has no MPS backend; use 'cpu' or 'auto'")
        return text
    if not match:
        raise BrainITError(f"unknown device {text!r}; expected 'auto', 'cpu', 'cuda' or 'cuda:N'")
    import torch

    if not torch.cuda.is_available():
        raise BrainITError(f"device {text!r} requested, but CUDA is not available on this machine; "
                           "use 'cpu' or 'auto'")
    index = int(match.group(1) or 0)
    if index >= torch.cuda.device_count():
        raise BrainITError(f"device {text!r} requested, but this machine has {torch.cuda.device_count()} "
                           f"CUDA device(s) (cuda:0..cuda:{torch.cuda.device_count() - 1})")
    return text


def resolve_device(device: str = "auto"):
    """Return the ``torch.device`` to use.

    Parameters
    ----------
    device : str or torch.device, default="auto"
        ``"auto"`` picks CUDA when available, otherwise CPU; ``"cpu"``, ``"cuda"``, ``"cuda:1"``
        are checked by :func:`check_device` (an unknown name or a missing GPU is a ``BrainITError``).
    """
    import torch

    if isinstance(device, torch.device):
        return device
    text = check_device(device)
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(text)


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy and torch; return a fresh NumPy generator for explicit use."""
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def default_data_dir() -> Path:
    """Where datasets and runs live: ``$BRAINIT_DATA``, else ``~/.brainit``."""
    env = os.environ.get("BRAINIT_DATA")
    return Path(env).expanduser() if env else Path.home() / ".brainit"


def project_root() -> Path:
    """The repository root (the folder holding ``assets/``)."""
    return Path(__file__).resolve().parent.parent


def assets_dir() -> Path:
    return project_root() / "assets"


def cpu_threads(n: int | None) -> None:
    """Set torch's intra-op threads (``None`` or 0 keeps the current setting).

    On a CPU shared with other jobs, one thread is often faster than two: idle threads spin
    waiting for a busy core (measured 50x slower sampling with 2 threads under load).
    """
    if n:
        import torch

        torch.set_num_threads(int(n))
