"""Cached loaders, the heavy-job lock and progress bars: the only place the app loads models.

Every page calls these instead of loading anything itself, so a model is read from disk once per
server process and shared by all sessions (``st.cache_resource``), and two browser tabs cannot run
two heavy jobs on the same objects at once (:func:`heavy_job`).
"""
from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

import streamlit as st

from brainit_core.progress import progress_handler


def app_threads() -> int:
    """Torch CPU threads for the app's work: ``$BRAINIT_APP_THREADS``, default 1.

    Inside the Streamlit server one thread is much faster than two on a 2-core machine: torch's idle
    worker threads spin while the server thread handles the progress messages (measured on the demo
    bundle, one fast-mode reconstruction: 23.9 s with 2 threads, 2.6 s with 2 passive threads,
    2.3 s with 1; docs/app.md).
    """
    try:
        return max(1, int(os.environ.get("BRAINIT_APP_THREADS", "1")))
    except ValueError:
        return 1


def use_app_threads() -> None:
    """Apply :func:`app_threads` (process-wide; called before any model work)."""
    from brainit_core.utils import cpu_threads

    cpu_threads(app_threads())


WARM_MODULES = ("torch", "brainit_core.models.run", "brainit_core.reconstruction", "brainit_core.analysis.maps")


def _warm() -> None:
    import importlib

    for name in WARM_MODULES:
        importlib.import_module(name)
    from brainit_core.viz.surface import load_surface

    load_surface("inflated")  # imports nilearn.datasets (and scikit-learn): about 2 s the first time


@st.cache_resource(show_spinner=False)
def warm_up() -> threading.Thread:
    """Once per server process, import the heavy libraries and read the cortical mesh in a background
    thread while the user is on the first page, so the first model page does not pay for them."""
    thread = threading.Thread(target=_warm, name="brainit-warm-up", daemon=True)
    thread.start()
    return thread


@st.cache_resource(show_spinner="Opening the dataset…")
def dataset(path: str):
    """The canonical dataset at ``path`` (lazy: betas and images are read on demand)."""
    from brainit_core.data import load_dataset

    return load_dataset(path)


@st.cache_resource(show_spinner="Loading the Brain-IT run…")
def run(path: str, device: str = "auto"):
    """A trained :class:`~brainit_core.models.run.BrainITRun`."""
    from brainit_core.models.run import BrainITRun

    use_app_threads()
    return BrainITRun.load(path, device=device)


@st.cache_resource(show_spinner="Loading the image generators…")
def generators(path: str, run_path: str, device: str = "auto"):
    """The :class:`~brainit_core.reconstruction.Generators` (sharing the run's feature space)."""
    from brainit_core.reconstruction import Generators

    brun = run(run_path, device)
    return Generators.load(path, device=brun.device, space=brun.space)


@st.cache_resource(show_spinner="Assembling the pipeline…")
def pipeline(run_path: str, generators_path: str, device: str = "auto"):
    """A :class:`~brainit_core.reconstruction.BrainITPipeline` over the cached run and generators."""
    from brainit_core.reconstruction import BrainITPipeline

    return BrainITPipeline(run(run_path, device), generators(generators_path, run_path, device))


@st.cache_resource
def _lock() -> threading.Lock:
    return threading.Lock()


@contextlib.contextmanager
def heavy_job(label: str, wait_s: float = 600.0):
    """Hold the process-wide lock for a heavy job (reconstruction, training, building a twin).

    Another tab's job makes this one wait with a message instead of running concurrently on the
    same models. Raises ``TimeoutError`` after ``wait_s`` seconds.
    """
    use_app_threads()
    lock = _lock()
    if not lock.acquire(blocking=False):
        note = st.info(f"Waiting for another job to finish before: {label}")
        t0 = time.time()
        while not lock.acquire(timeout=0.5):
            if time.time() - t0 > wait_s:
                note.empty()
                raise TimeoutError(f"another job held the models for more than {wait_s:.0f} s")
        note.empty()
    try:
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def progress(label: str):
    """Show a ``st.progress`` bar driven by every ``brainit_core.progress.track`` inside the block."""
    bar = st.progress(0.0, text=label)

    def handler(fraction: float, message: str) -> None:
        bar.progress(min(max(float(fraction), 0.0), 1.0), text=f"{label}: {message}" if message else label)

    try:
        with progress_handler(handler):
            yield bar
    finally:
        bar.empty()


def path_str(p) -> str:
    """Canonical string for cache keys (``~`` expanded, absolute)."""
    return str(Path(p).expanduser().resolve())


def run_and_subject(ctx):
    """Dataset, run, the selected subject's data and its test image ids, or stop the page with an error."""
    from brainit_core.errors import BrainITError

    ds = dataset(ctx.dataset)
    try:
        brun = run(ctx.run, ctx.device)
    except BrainITError as exc:
        st.error(f"Cannot load the run: {exc}")
        st.stop()
    sd = ds.subject(ctx.subject)
    test_ids = [int(i) for i in sd.test_image_ids]
    if not test_ids:
        st.error(f"{ctx.subject} has no test images in {ctx.dataset}.")
        st.stop()
    return ds, brun, sd, test_ids
