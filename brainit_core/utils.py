"""Small shared helpers: the one device decision, seeding, data locations."""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np


def resolve_device(device: str = "auto"):
    """Return the ``torch.device`` to use.

    Parameters
    ----------
    device : str, default="auto"
        ``"auto"`` picks CUDA when available, otherwise CPU; any other value is passed to
        ``torch.device`` unchanged (``"cpu"``, ``"cuda:1"``, ...).
    """
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


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
