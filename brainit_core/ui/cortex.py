"""The cortex views of the pages: display controls, one map drawn as the dataset allows, its export.

Every page that draws a per-vertex map goes through :func:`cortex_display` (which mesh or volume,
from the dataset's record and the sidebar's fsaverage folder: :class:`~brainit_core.viz.cortex.
CortexDisplay`), :func:`controls` (view, camera, ROI borders, threshold) and :func:`show`, so the
twin's fsaverage5, NSD's fsaverage (full resolution or resampled) and NSD's func1pt8mm volumes look
and behave alike.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st

from brainit_core.errors import BrainITError
from brainit_core.viz.colors import is_signed
from brainit_core.viz.cortex import CortexDisplay
from brainit_core.viz.surface import VIEWS

NO_BORDERS = "no borders"
TWIN_AREAS = "areas (twin truth)"
VOLUME_ONLY = {"categorical", "n_categories", "cmap", "vmin", "vmax", "symmetric", "threshold", "title", "value_name",
               "unit"}
HTML_ONLY = {"categorical", "cmap", "symmetric", "threshold", "vmax", "title"}


@dataclass(frozen=True)
class ViewOptions:
    """What :func:`controls` returned: the view ``mode``, the camera, the outlined atlas, the threshold."""

    mode: str
    view: str = "posterior"
    atlas: str | None = None
    threshold: float = 0.0


def cortex_display(ctx, sd, area_names=None) -> CortexDisplay:
    """The display of ``sd``'s maps (``area_names`` (V,): the twin's true areas, outlined as an atlas)."""
    from brainit_core.analysis.maps import area_codes
    from brainit_core.ui import loaders

    extra = None
    if area_names is not None:
        codes, areas = area_codes(area_names)
        extra = {TWIN_AREAS: (np.asarray(codes) + 1, [""] + list(areas))}
    info = loaders.dataset(ctx.dataset).info
    return CortexDisplay(info, sd.name, sd.vertices, sd.hemispheres, fsaverage_dir=ctx.fsaverage_dir, extra_atlases=extra)


def controls(display: CortexDisplay, key: str, *, camera: bool = True, borders: bool = True,
             threshold: bool = True, default_mode: str | None = None, default_atlas: str | None = None) -> ViewOptions:
    """The view choices in one row; shows what the view is (resampled, projected, from which files)."""
    modes = display.modes
    if not modes:
        st.warning("No view of this dataset's maps: " + "; ".join(display.problems))
        return ViewOptions("none")
    c = st.columns([2, 2, 2, 1.4])
    mode = c[0].selectbox("View", modes, index=modes.index(default_mode) if default_mode in modes else 0,
                          key=f"{key}_mode", help="Inflated, pial or flat cortex, or the subject's volume")
    view = "posterior"
    if camera:
        view = c[1].selectbox("Camera", list(VIEWS), index=list(VIEWS).index("posterior"), key=f"{key}_view",
                              disabled=display.is_volume(mode) or mode == "flat",
                              help="The same view of both hemispheres (each has its own camera).")
    atlas = None
    if borders:
        names = [NO_BORDERS, *display.atlases]
        pick = c[2].selectbox("ROI borders", names, index=names.index(default_atlas) if default_atlas in names else 0,
                              key=f"{key}_atlas", help="Outline the ROIs of an atlas and name them in the hover text")
        atlas = None if pick == NO_BORDERS else pick
    cut = 0.0
    if threshold:
        cut = float(c[3].number_input("Hide |value| below", 0.0, value=0.0, step=0.1, key=f"{key}_thr",
                                      help="Vertices with a smaller absolute value are drawn grey"))
    st.caption(display.note(mode))
    for p in display.problems:
        st.caption(f"⚠ {p}")
    return ViewOptions(mode, view, atlas, cut)


def show(display: CortexDisplay, values, opts: ViewOptions, key: str, *, categorical: bool = False,
         hover: dict | None = None, height: int = 430, **kw) -> None:
    """Draw ``values`` (V,) as ``opts`` says: a plotly surface, orthogonal slices or the interactive viewer.

    Signed continuous maps get a symmetric diverging colour map unless ``symmetric`` or ``cmap``
    is given; ``kw`` are the options of ``surface_map_figure`` (title, value_name, unit, ...).
    """
    if opts.mode == "none":
        return
    if not categorical and "symmetric" not in kw and "cmap" not in kw:
        kw["symmetric"] = is_signed(values)
    kw = {**kw, "categorical": categorical, "threshold": opts.threshold or None}
    try:
        if opts.mode == "slices":
            import matplotlib.pyplot as plt

            fig = display.volume_figure(values, atlas=opts.atlas, **{k: v for k, v in kw.items() if k in VOLUME_ONLY})
            st.pyplot(fig, clear_figure=True)
            plt.close(fig)
        elif opts.mode == "interactive":
            html = display.volume_html(values, **{k: v for k, v in kw.items() if k in HTML_ONLY})
            st.iframe(html, height=max(height, 420))  # nilearn's own page (no user input in it)
        else:
            fig = display.surface_figure(values, opts.mode, view=opts.view, atlas=opts.atlas, hover=hover,
                                         height=height if opts.mode != "inflated + flat" else height * 3 // 4, **kw)
            st.plotly_chart(fig, key=key, config={"displaylogo": False}, width="stretch")
    except (BrainITError, OSError, ValueError) as exc:
        st.error(f"Cannot draw this view: {exc}")


def export_panel(display: CortexDisplay, choices: dict, stem: str, key: str = "bt_export") -> None:
    """Pick one of ``choices`` ({label: (V,) values}) and download it on its own mesh or grid."""
    formats = display.export_formats
    if not formats:
        st.info("No export of this dataset's maps: " + "; ".join(display.problems))
        return
    e = st.columns([3, 1, 2])
    which = e[0].selectbox("Map", list(choices), key=f"{key}_map")
    fmt = e[1].radio("Format", formats, key=f"{key}_fmt", format_func=lambda f: f.upper())
    name = stem + "".join(ch if ch.isalnum() else "_" for ch in which).strip("_")
    values = np.asarray(choices[which], dtype=np.float64)
    e[2].download_button(f"Download {display.export_label(fmt)}", lambda: display.export_zip(name, values, fmt),
                         file_name=f"{name}_{fmt}.zip", mime="application/zip", key=key)
    e[2].caption("Vertices (voxels) outside the subject's set are NaN; GIfTI files name their mesh, and carry it "
                 "when its files are on this machine; NIfTI carries the subject's affine.")


def dataset_section(ctx) -> None:
    """The Data page's cortex view: one subject's responses to a test image or an ROI atlas, and where
    each view reads its files from."""
    import pandas as pd

    from brainit_core.ui import loaders
    from brainit_core.ui.attention import ground_truth

    ds = loaders.dataset(ctx.dataset)
    subjects = ds.subjects
    c = st.columns([1.2, 2.8])
    subject = c[0].selectbox("Subject", subjects, index=subjects.index(ctx.subject) if ctx.subject in subjects else 0,
                             key="dc_subject")
    sd = ds.subject(subject)
    gt = ground_truth(ctx.dataset, subject) if ds.info.is_twin else None
    display = cortex_display(ctx, sd, gt["area_names"] if gt is not None else None)
    maps = ["responses to a test image", *(f"atlas: {a}" for a in display.atlases)]
    what = c[1].radio("Map", maps, index=min(1, len(maps) - 1), key="dc_map", horizontal=True)
    opts = controls(display, "dc", default_mode=None if display.space == "func1pt8mm" else "inflated + flat",
                    default_atlas=what.removeprefix("atlas: "))
    if what.startswith("atlas: "):
        codes, names = display.atlas_at_vertices(what.removeprefix("atlas: "))
        show(display, codes, opts, "dc_map_fig", categorical=True, category_names=names, n_categories=len(names),
             value_name="ROI", title=f"{subject}: {what.removeprefix('atlas: ')} on its {len(sd.vertices):,} {display.units}")
    else:
        ids = [int(i) for i in sd.test_image_ids]
        image_id = st.selectbox("Test image", ids, key="dc_image", format_func=lambda i: f"image {i}")
        betas, _ = sd.average_trials([image_id])  # reads this image's trials only
        show(display, betas[0], opts, "dc_map_fig", symmetric=True, value_name="beta", unit="s.d.",
             title=f"{subject}: responses to image {image_id} (z-scored, repeats averaged)")
    with st.expander("Where these views read their files from"):
        st.dataframe(pd.DataFrame(display.sources()), hide_index=True, width="stretch")
        st.caption("What to download from NSD for each view: docs/data.md, 'What each view reads'.")
