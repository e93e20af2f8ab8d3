"""Reconstructions: test images of a subject, ground truth | low-level | semantic | fused.

The grid is computed once in fast mode and cached on disk (``brainit_core.reconstruction.grids``); one image
can be re-run with other settings, and all subjects compared on the same shared test image.
"""
import pandas as pd
import streamlit as st

from brainit_core.errors import BrainITError
from brainit_core.reconstruction import grids as recon
from brainit_core.ui import loaders, views
from brainit_core.ui.context import current, require_ready
from brainit_core.viz.grids import grid_png, metrics_csv

ctx = current()
st.title("Reconstructions")
st.caption("Test images the subject saw (never used in training), decoded from the repeat-averaged fMRI "
           "betas: the low-level branch (inverted feature pyramid), the semantic branch alone (diffusion "
           "from noise, conditioned on the predicted tokens) and both fused.")
if not require_ready(ctx):
    st.stop()

ds = loaders.dataset(ctx.dataset)
try:
    pipe = loaders.pipeline(ctx.run, ctx.generators, ctx.device)
except BrainITError as exc:
    st.error(f"Cannot load the models: {exc}")
    st.stop()
defaults = pipe.generators.reconstruction
n_test = len(ds.subject(ctx.subject).test_image_ids)
if n_test == 0:
    st.error(f"{ctx.subject} has no test images in {ctx.dataset}.")
    st.stop()

# 1. the grid (fast mode, cached on disk)
top = st.columns([3, 1])
n = top[0].slider("Test images in the grid", 1, min(n_test, 32), min(recon.GRID_SIZE, n_test), key="rc_n",
                  help="The grid is computed once per model, subject and size, then read from the disk cache.")
grid_settings = recon.GRID_SETTINGS
grid = recon.reconstruct_grid(pipe, ds, ctx.subject, n, grid_settings, compute=False)
if grid is None:
    try:
        with loaders.heavy_job("the reconstruction grid"), loaders.progress(f"Reconstructing {n} test images"):
            grid = recon.reconstruct_grid(pipe, ds, ctx.subject, n, grid_settings)
    except (BrainITError, TimeoutError) as exc:
        st.error(str(exc))
        st.stop()
top[1].metric("Grid", f"{len(grid.image_ids)} images",
              "from the disk cache" if grid.cached else f"computed in {grid.seconds:.1f} s", delta_color="off",
              delta_arrow="off")


names = list(grid.images)
head = st.columns(len(names))
for c, name in zip(head, names):
    c.markdown(f"**{name}**")
for b, image_id in enumerate(grid.image_ids):
    cols = st.columns(len(names))
    for c, name in zip(cols, names):
        cap = f"image {image_id}" if name == "ground truth" else grid.metric_caption(name, b)
        c.image(grid.images[name][b], caption=cap, width="stretch")

rows = grid.rows()
table = pd.DataFrame(rows)
with st.expander("Per-image metrics (PixCorr and SSIM of each image against its ground truth)"):
    st.caption("These are per-image scores at the protocol's 425 px; the paper's table reports their "
               "means over the whole test set, so a handful of images is only indicative.")
    st.dataframe(table, hide_index=True, width="stretch")
    st.dataframe(table.groupby("reconstruction")[["PixCorr", "SSIM"]].mean().round(4), width="stretch")
dl = st.columns(2)
dl[0].download_button("Download the grid (PNG)", grid_png(grid.images), file_name=f"brainit_{ctx.subject}_grid.png",
                      mime="image/png", key="rc_dl_png")
dl[1].download_button("Download the metrics (CSV)", metrics_csv(rows), file_name=f"brainit_{ctx.subject}_metrics.csv",
                      mime="text/csv", key="rc_dl_csv")

# 2. one image with other settings
st.divider()
st.subheader("Re-run one image")
pick = st.selectbox("Test image", [int(i) for i in grid.image_ids], key="rc_image", format_func=lambda i: f"image {i}")
with st.form("rc_form"):
    c = st.columns(4)
    low_on = c[0].checkbox("Low-level branch", True, key="rc_low")
    sem_on = c[0].checkbox("Semantic branch", True, key="rc_sem")
    sem_only = c[0].checkbox("Also semantic only", False, key="rc_sem_only",
                             help="draw the semantic branch alone as well (15 more diffusion steps, about 1 s)")
    mode = c[1].radio("Low-level mode", ["fast", "dip"], key="rc_mode", horizontal=True,
                      help="fast: the amortised inverter (one pass); dip: Deep Image Prior, as in the paper (slow)")
    dip_steps = c[1].number_input("DIP steps", 1, 2000, int(defaults.dip_config().steps), key="rc_dip_steps")
    strength = c[2].slider("Fusion strength", 0.0, 1.0, float(defaults.fusion_strength), 0.01, key="rc_strength",
                           help="Fraction of the diffusion schedule re-run from the low-level image (0: the "
                                "low-level image; 1: ignore it)")
    guidance = c[2].slider("Guidance", 0.0, 10.0, float(defaults.guidance_scale), 0.5, key="rc_guidance")
    steps = c[3].number_input("Diffusion steps", 1, 100, int(defaults.fusion_steps), key="rc_steps")
    seed = c[3].number_input("Seed", 0, 2 ** 31 - 1, 0, key="rc_seed")
    go = st.form_submit_button("Reconstruct", type="primary")
if go:
    branches = tuple(b for b, on in (("low_level", low_on), ("semantic", sem_on)) if on)
    if not branches:
        st.warning("Switch on at least one branch.")
    else:
        settings = recon.ReconSettings(branches=branches, mode=mode, fusion_strength=strength, guidance_scale=guidance,
                                       steps=int(steps), seed=int(seed), dip_steps=int(dip_steps),
                                       semantic_only=sem_only)
        try:
            with loaders.heavy_job("one reconstruction"), loaders.progress(f"Reconstructing image {pick}"):
                one = recon.reconstruct_grid(pipe, ds, ctx.subject, settings=settings, image_ids=[pick], cache=False)
            st.session_state["rc_single"] = (ctx.subject, pick, one)
        except (BrainITError, TimeoutError) as exc:
            st.error(str(exc))
single = st.session_state.get("rc_single")
if single and single[:2] == (ctx.subject, pick):
    views.show_result(single[2])
    st.caption(f"{single[2].seconds:.2f} s · metrics are for this one image")

# 3. the same shared test image in every subject
st.divider()
st.subheader("Compare subjects")
st.caption(f"Image {pick} is a shared test image: every subject saw it. Fused reconstructions (fast mode, seed 0).")
compare_settings = recon.ReconSettings(mode="fast", seed=0, semantic_only=False)
found = recon.compare_subjects(pipe, ds, ctx.subjects, pick, compare_settings, compute=False)
if any(v is None for v in found.values()):
    if st.button(f"Reconstruct image {pick} for all {len(ctx.subjects)} subjects", key="rc_compare"):
        with loaders.heavy_job("subject comparison"), loaders.progress("Reconstructing for each subject"):
            found = recon.compare_subjects(pipe, ds, ctx.subjects, pick, compare_settings)
if all(v is not None for v in found.values()):
    first = next((v for v in found.values() if not isinstance(v, str)), None)
    cols = st.columns(len(found) + 1)
    if first is not None:
        cols[0].image(first.images["ground truth"][0], caption=f"ground truth {pick}", width="stretch")
    for c, (s, r) in zip(cols[1:], found.items()):
        if isinstance(r, str):
            c.warning(f"{s}: {r}")
        else:
            c.image(r.images["fused"][0], caption=f"{s}: {r.metric_caption('fused', 0)}", width="stretch")
