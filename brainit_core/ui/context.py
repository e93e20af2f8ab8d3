"""The shared sidebar (dataset, run, generators, subject, device badge) and the app context.

``app.py`` calls :func:`sidebar` once per rerun, before the selected page runs; pages read the
result with :func:`current`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from brainit_core import app_sources as src
from brainit_core.data.info import DatasetInfo
from brainit_core.errors import BrainITError
from brainit_core.runs import RunDirectory

KEY = "brainit_ctx"


@dataclass(frozen=True)
class AppContext:
    """What the user has selected in the sidebar.

    Attributes
    ----------
    dataset, run, generators : str or None
        Absolute paths (``None`` when missing; then :attr:`problems` says why).
    subject : str or None
        Selected subject (decodable by the run and present in the dataset).
    subjects : tuple of str
        All subjects the run can decode that the dataset holds.
    device : str
        ``"cuda"`` or ``"cpu"``.
    is_twin : bool
        The dataset is a digital twin (ground truth available for validation views).
    problems : tuple of str
    fsaverage_dir : str or None
        The FreeSurfer fsaverage folder (or ``SUBJECTS_DIR``) typed in the sidebar: full-resolution
        surfaces for fsaverage data (``BRAINIT_FSAVERAGE_DIR`` and what ``nsd prepare`` recorded
        are used when it is empty).
    """

    dataset: str | None
    run: str | None
    generators: str | None
    subject: str | None
    subjects: tuple
    device: str
    is_twin: bool
    problems: tuple
    fsaverage_dir: str | None = None

    @property
    def ready(self) -> bool:
        return not self.problems and self.subject is not None


def device_name() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _options(kind: str, default, found: dict) -> list[str]:
    opts = [str(default)] if default else []
    opts += [str(p) for p in found.get(kind, []) if str(p) not in opts]
    return opts


def sidebar() -> AppContext:
    """Render the shared sidebar and store the :class:`AppContext` in the session."""
    default = src.default_sources()
    found = src.discover()
    with st.sidebar:
        st.markdown("### Data and models")
        extra = [p for p in st.session_state.get("extra_datasets", []) if p not in _options("dataset", default.dataset, found)]
        ds = st.selectbox("Dataset", _options("dataset", default.dataset, found) + extra, key="sb_dataset",
                          format_func=_short, help="A canonical dataset: the twin, or prepared NSD data")
        rn = st.selectbox("Brain-IT run", _options("run", default.run, found), key="sb_run", format_func=_short)
        gn = st.selectbox("Generators", src.generator_choices(rn, _options("generators", default.generators, found)),
                          key="sb_generators", format_func=src.generators_label,
                          help="Generators made for the run's feature space: the offline demo set, a full-size "
                               "SDXL set (train-sdxl-projection) or a stage-2 fine-tune")
        checked = src.check(ds, rn, gn, default.origin)
        info = DatasetInfo.read(ds) if ds else None
        run_subjects = _decoded(rn)
        subjects = tuple(s for s in run_subjects if info is not None and s in info.subjects)
        subject = st.selectbox("Subject", subjects, key="sb_subject") if subjects else None
        device = device_name()
        badge = "GPU" if device == "cuda" else "CPU"
        st.caption(f"Device: **{badge}** · features: {_space_label(rn)} · source: "
                   f"{info.source if info is not None else '?'} ({checked.origin})")
        fsaverage_dir = None
        if info is not None and info.mesh != "fsaverage5":
            fsaverage_dir = st.text_input(
                "fsaverage folder (FreeSurfer)", key="sb_fsaverage_dir", placeholder="recorded or $SUBJECTS_DIR",
                help="Draw fsaverage maps at full resolution from FreeSurfer's files: NSD's "
                     "nsddata/freesurfer/fsaverage, or a SUBJECTS_DIR. Empty: $BRAINIT_FSAVERAGE_DIR, the folder "
                     "`nsd prepare` recorded, then $SUBJECTS_DIR/fsaverage; else a resampled fsaverage5 view.").strip() or None
        for p in checked.problems:
            st.warning(p)
        if not checked.problems and not subjects:
            st.warning(f"the run decodes {run_subjects or 'no subjects'}, none of them is in this dataset")
    ctx = AppContext(str(checked.dataset) if checked.dataset else None, str(checked.run) if checked.run else None,
                     str(checked.generators) if checked.generators else None, subject, subjects, device,
                     info is not None and info.is_twin, checked.problems, fsaverage_dir)
    st.session_state[KEY] = ctx
    return ctx


def current() -> AppContext:
    """The context set by :func:`sidebar` on this rerun (rendering it if a page runs alone)."""
    ctx = st.session_state.get(KEY)
    return ctx if ctx is not None else sidebar()


def require_ready(ctx: AppContext) -> bool:
    """Show why the page cannot run (and return False) when data or models are missing."""
    if ctx.problems:
        st.error("This page needs a dataset, a trained run and generators:\n\n- " + "\n- ".join(ctx.problems))
        return False
    if ctx.subject is None:
        st.error("No subject of the selected run is in the selected dataset.")
        return False
    return True


def _short(path: str) -> str:
    p = Path(path)
    return f"{p.parent.name}/{p.name}" if p.parent.name else p.name


def _decoded(run) -> list[str]:
    """The subjects the run decodes ([] when there is no readable finished run)."""
    try:
        return RunDirectory(run).subjects if run else []
    except (BrainITError, OSError):
        return []


def _space_label(run) -> str:
    try:
        return RunDirectory(run).space_label if run else "?"
    except (BrainITError, OSError):
        return "?"


def select_dataset(path: str) -> None:
    """Callback: select ``path`` in the sidebar's dataset box (runs before the next rerun draws it), adding
    it to the choices when discovery does not find it."""
    extra = st.session_state.setdefault("extra_datasets", [])
    if path not in extra:
        extra.append(path)
    st.session_state["sb_dataset"] = path
