"""Streamlit views the pages share or that are a page section of their own: a reconstruction's images
with their metrics, the twin's validation, the NSD check, the in-silico experiment.

They only render: the work is done by core functions (:mod:`brainit_core.reconstruction.grids`,
:mod:`brainit_core.data.twin`, :func:`brainit_core.data.nsd_cli.check_nsd`).
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from brainit_core.errors import BrainITError
from brainit_core.ui import loaders

ITEM_KINDS = {"ood": "out-of-distribution", "test": "test"}


def show_result(result, columns=None, labels: dict | None = None, b: int = 0) -> None:
    """Image ``b`` of each column of a :class:`~brainit_core.reconstruction.grids.GridResult` side by side,
    captioned ``"<column>: PixCorr … · SSIM …"`` when it has metrics, else by ``labels`` or its name."""
    columns = list(columns or result.images)
    for c, name in zip(st.columns(len(columns)), columns):
        cap = (f"{name}: {result.metric_caption(name, b)}" if name in result.metrics
               else (labels or {}).get(name, name))
        c.image(result.images[name][b], caption=cap, width="stretch")


def reconstruct_selected(ctx, betas, label: str, truth=None):
    """Reconstruct (B, V) betas of the sidebar's subject (fast mode) under the heavy-job lock.

    Returns
    -------
    GridResult
    """
    from brainit_core.reconstruction.grids import reconstruct_betas

    pipe = loaders.pipeline(ctx.run, ctx.generators, ctx.device)
    with loaders.heavy_job(label), loaders.progress(label):
        return reconstruct_betas(pipe, betas, ctx.subject, truth=truth)


def twin_validation(dataset: str) -> None:
    """The "Validate the twin" button and, once measured, its report (kept in the session per dataset)."""
    from brainit_core.data.twin import validate_twin
    from brainit_core.data.twin.selectivity import photo_table
    from brainit_core.data.twin.validation import area_table, format_report, report_rows

    key = ("twin_report", dataset)
    if st.button("Validate the twin", key="dt_validate",
                 help="Retinotopy, noise ceilings and category selectivity measured from the simulated data"):
        try:
            with st.spinner("Measuring the twin's validation figures…"):
                st.session_state[key] = validate_twin(dataset)
        except (BrainITError, OSError, KeyError) as exc:
            st.error(f"Validation failed: {exc}")
    report = st.session_state.get(key)
    if report:
        st.dataframe(pd.DataFrame(report_rows(report)), hide_index=True, width="stretch")
        st.caption("Measured from the data alone: NC, median noise ceiling (designed vs measured); split-half r, "
                   "correlation between single repeats; contralateral drive, share of reliable vertices that follow "
                   "the contrast of the opposite half of the image; residual r, correlation between vertices of the "
                   "trial residuals (noise shared within a trial); d', category-patch selectivity on test images. "
                   "Ground truth (validation only): share of ipsilateral pRF centres; ecc-gradient rho, "
                   "eccentricity vs posterior-to-anterior position in V1-V3.")
        st.dataframe(pd.DataFrame(area_table(report)), hide_index=True, width="stretch")
        st.caption("Category selectivity, mean over subjects: d' on the test composites (category >= 2% of the "
                   "image vs the rest; localizer: >= 5% vs absent) and the noiseless in-silico response to real "
                   "photographs of the patch's category and to the other photographs.")
        st.dataframe(pd.DataFrame(photo_table(report)), hide_index=True, width="stretch")
        with st.expander("As text (`twin validate`)"):
            st.code(format_report(report), language=None)


def nsd_check(root: str, subjects, space: str) -> None:
    """What ``nsd check`` finds under ``root``, and the ``nsd prepare`` command when everything is there."""
    from brainit_core.data.nsd_cli import check_nsd

    found = check_nsd(root, subjects or [1], space)
    (st.success if found.ok else st.error)("All files needed are there." if found.ok else "Some files are missing:")
    st.code("\n".join(found.lines()), language=None)
    if found.ok:
        st.markdown("Prepare it (memory is bounded by one session; takes a while):")
        st.code(f"python -m brainit_core nsd prepare --nsd-root {root} --subjects "
                f"{' '.join(map(str, subjects))} --space {space} --out ~/.brainit/nsd", language="bash")


def in_silico(ctx) -> None:
    """Show a dataset image or an uploaded photo to a twin subject, simulate its response (mean of 3 noisy
    trials) and reconstruct the image from it."""
    from brainit_core.data import uploads
    from brainit_core.data.twin import respond

    ds = loaders.dataset(ctx.dataset)
    st.markdown(f"Show an image to **{ctx.subject}**, simulate its fMRI response (mean of 3 noisy trials, "
                "like the test set) and reconstruct the image from it.")
    source = st.radio("Image", ["A dataset image", "Upload a photo"], key="is_source", horizontal=True)
    photo = None
    if source == "Upload a photo":
        up = st.file_uploader("Photo", type=["png", "jpg", "jpeg"], key="is_photo")
        if up is not None:
            try:
                photo = uploads.read_photo(up.name, up.getvalue(), square=True)  # twin and metrics see it alike
            except BrainITError as exc:
                st.error(str(exc))
    else:
        options = [("ood", int(i)) for i in (ds.image_set("ood") if "ood" in ds.image_sets else [])]
        options += [("test", int(i)) for i in ds.subject(ctx.subject).test_image_ids]
        choice = st.selectbox("Dataset image", options, key="is_choice",
                              format_func=lambda o: f"{ITEM_KINDS[o[0]]} image {o[1]}")
        photo = ds.images([choice[1]])[0]
    c = st.columns(2)
    seed = int(c[0].number_input("Noise seed", 0, 10_000, 0, key="is_seed"))
    if photo is not None and c[1].button("Show it and reconstruct", type="primary", key="is_go"):
        try:
            with st.spinner("Simulating the response…"):
                betas = respond(ctx.dataset, ctx.subject, [photo], repeats=3, seed=seed).mean(axis=1)
            result = reconstruct_selected(ctx, betas, "Reconstructing from the simulated response", truth=[photo])
            show_result(result, ["ground truth", "low-level", "fused"], labels={"ground truth": "photo"})
            st.caption("The twin's category patches and object-selective areas see the photo through its ventral "
                       "network, a small convnet trained on library composites (docs/data.md, \"Twin v2\").")
        except (BrainITError, TimeoutError) as exc:
            st.error(str(exc))
