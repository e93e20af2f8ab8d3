"""``type=`` functions for the commands' arguments: a bad value is refused while the command line is parsed.

Each function takes the argument's text and returns the parsed value, or raises
``argparse.ArgumentTypeError``; argparse then prints one line naming the argument
(``error: argument --threads: expected a positive integer, got '-3'``) and exits with status 2.
Heavier checks (CUDA present, a feature space or network name) import their module only when the
argument is given.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Callable

from brainit_core.errors import BrainITError


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def positive_int(text: str) -> int:
    """An integer >= 1 (counts, sizes, steps, threads)."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0 (seeds, optional extra steps)."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def int_in(lo: int, hi: int) -> Callable[[str], int]:
    """An integer in ``lo..hi`` (both included)."""
    def parse(text: str) -> int:
        value = _int(text)
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"expected an integer in {lo}..{hi}, got {text!r}")
        return value

    parse.__name__ = f"int_in_{lo}_{hi}"
    return parse


def finite_float(text: str) -> float:
    """A finite number (``nan`` and ``inf`` refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0."""
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (durations, budgets)."""
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def fraction_in(lo: float = 0.0, hi: float = 1.0) -> Callable[[str], float]:
    """A finite number in ``[lo, hi]``."""
    def parse(text: str) -> float:
        value = finite_float(text)
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"expected a number in [{lo:g}, {hi:g}], got {text!r}")
        return value

    parse.__name__ = "fraction"
    return parse


def device(text: str) -> str:
    """``auto``, ``cpu`` or ``cuda[:N]`` (CUDA only when this machine has that GPU)."""
    from brainit_core.utils import check_device

    try:
        return check_device(text)
    except BrainITError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def existing_dir(text: str) -> Path:
    """A directory that exists."""
    path = Path(text).expanduser()
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is not a directory" if path.exists() else f"{path} does not exist")
    return path


def existing_path(text: str) -> Path:
    """A file or directory that exists."""
    path = Path(text).expanduser()
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{path} does not exist")
    return path


def out_dir(text: str) -> Path:
    """An output directory: an existing directory, or a new one whose parent folder exists (never a file)."""
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a file, expected a directory to write into")
    if not path.exists() and not path.absolute().parent.is_dir():
        raise argparse.ArgumentTypeError(f"the folder {path.absolute().parent} does not exist; create it first")
    return path


def out_file(text: str) -> Path:
    """An output file: not a directory, and its folder exists."""
    path = Path(text).expanduser()
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a directory, expected a file name")
    if not path.absolute().parent.is_dir():
        raise argparse.ArgumentTypeError(f"the folder {path.absolute().parent} does not exist; create it first")
    return path


def feature_space(text: str) -> str:
    """A registered feature space name (``lite0``, ``bigg-vgg16bn``)."""
    from brainit_core.features import FEATURE_SPACES

    if text not in FEATURE_SPACES:
        raise argparse.ArgumentTypeError(f"unknown feature space {text!r}; choose from {', '.join(FEATURE_SPACES)}")
    return text


def metric_network(text: str) -> str:
    """``auto``, ``protocol``, ``offline`` or a metric network name (``alexnet``, ``clip``, ``lite2``, ...)."""
    from brainit_core.metrics.networks import NETWORKS

    known = ("auto", "protocol", "offline", *NETWORKS)
    if text not in known:
        raise argparse.ArgumentTypeError(f"unknown network {text!r}; choose from {', '.join(known)}")
    return text


def stage_steps(stages: tuple[str, ...]) -> Callable[[str], tuple[str, int]]:
    """``STAGE=N`` with STAGE one of ``stages`` and N a positive integer."""
    def parse(text: str) -> tuple[str, int]:
        stage, sep, n = text.partition("=")
        if not sep or stage not in stages:
            raise argparse.ArgumentTypeError(f"expected STAGE=N with STAGE in {'/'.join(stages)}, got {text!r}")
        try:
            return stage, positive_int(n)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(f"expected STAGE=N with N a positive integer, got {text!r}") from None

    parse.__name__ = "STAGE=N"
    return parse


def add_device_args(p) -> None:
    """``--device`` and ``--threads`` on a command's parser (read back with :func:`setup_device`)."""
    p.add_argument("--device", type=device, default="auto", help="'auto' (CUDA when available), 'cpu', 'cuda:1', ...")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="torch CPU threads, >= 1 (on a busy shared CPU, 1 is often fastest)")


def setup_device(args):
    """Apply ``--threads`` and resolve ``--device`` (see :func:`add_device_args`)."""
    from brainit_core.utils import cpu_threads, resolve_device

    cpu_threads(args.threads)
    return resolve_device(args.device)
