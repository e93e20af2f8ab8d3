"""Learn: a guided tour of the Brain-IT method on one test image, step by step.

stimulus -> voxel responses on the cortex -> brain tokens (V2C clusters) -> predicted features ->
low-level image -> fused image. Each step is one picture and two sentences; the reconstruction
comes from the cached pipeline (disk-cached per image by ``brainit_core.reconstruction.grids``).
"""
import numpy as np
import streamlit as st

from brainit_core.errors import BrainITError
from brainit_core.reconstruction import grids
from brainit_core.ui import cortex, loaders
from brainit_core.ui.attention import attention_maps, predicted_features
from brainit_core.ui.context import current, require_ready
from brainit_core.viz import images as vimg

STEPS = ("1 · Stimulus", "2 · Voxel responses", "3 · Brain tokens", "4 · Predicted features",
         "5 · Low-level image", "6 · Fused image")
N_CHANNELS = 4

ctx = current()
st.title("Learn: how Brain-IT reconstructs an image")
if not require_ready(ctx):
    st.stop()

ds, run, sd, test_ids = loaders.run_and_subject(ctx)

top = st.columns([1, 3])
image_id = top[0].selectbox("Test image", test_ids, key="ln_image", format_func=lambda i: f"image {i}")
step = top[1].radio("Step", STEPS, key="ln_step", horizontal=True)
k = STEPS.index(step)
image = ds.images([image_id])[0]
st.progress((k + 1) / len(STEPS))


def explain(first: str, second: str) -> None:
    st.markdown(f"{first} {second}")


def reconstruction():
    """Fast-mode reconstruction of the chosen image (disk cache first, else computed behind the lock)."""
    try:
        pipe = loaders.pipeline(ctx.run, ctx.generators, ctx.device)
        settings = grids.ReconSettings(mode="fast", seed=0, semantic_only=False)
        out = grids.reconstruct_grid(pipe, ds, ctx.subject, settings=settings, image_ids=[image_id], compute=False)
        if out is None:
            with loaders.heavy_job("the Learn page's reconstruction"), loaders.progress(f"Reconstructing image {image_id}"):
                out = grids.reconstruct_grid(pipe, ds, ctx.subject, settings=settings, image_ids=[image_id])
        return out
    except (BrainITError, TimeoutError) as exc:
        st.error(str(exc))
        return None


st.subheader(step)
if k == 0:
    c = st.columns([1, 2])
    c[0].image(vimg.resize_image(image, 256), caption=f"test image {image_id}", width="stretch")
    with c[1]:
        explain(f"{ctx.subject} looked at this image in the scanner, several times, while fMRI recorded the "
                "activity of every vertex of the visual cortex.",
                "Brain-IT never saw this image during training: the goal is to rebuild it from the brain "
                "activity alone.")
elif k in (1, 2):
    display = cortex.cortex_display(ctx, sd)
    opts = cortex.controls(display, "ln", threshold=False)
if k == 1:
    betas, _ = sd.average_trials([image_id])
    cortex.show(display, betas[0], opts, "ln_betas", symmetric=True, value_name="beta", unit="s.d.", height=450,
                title=f"{ctx.subject}: responses to image {image_id} (z-scored betas, repeats averaged)")
    explain(f"Each coloured patch is one {display.unit} of the subject's data: red "
            "responded more than usual to this image, blue less; grey is outside the recorded visual region.",
            "The left hemisphere sees the right half of the image and the lower visual field maps to the upper "
            "bank, so the image's layout is already written, distorted, on the cortex.")
elif k == 2:
    maps = attention_maps(ctx.run, ctx.device, run.checkpoint_sha256, ctx.dataset, ctx.subject, image_id)
    n = maps.n_tokens
    cortex.show(display, maps.clusters, opts, "ln_tokens", categorical=True, n_categories=n, value_name="token",
                category_names=[f"token {t}" for t in range(n)], height=450,
                title=f"V2C map: {n} functional clusters = {n} brain tokens")
    explain("Voxels with similar function (found by clustering an image-to-fMRI encoder's voxel embeddings, "
            "shared across subjects) are grouped into clusters; each cluster is summarised into one brain token "
            "by attention over its voxels.",
            "Because clusters are functional rather than anatomical, token 3 of one subject means the same as "
            "token 3 of another, which is what lets Brain-IT learn from many brains at once. The Brain tokens "
            "page explores them in depth.")
elif k == 3:
    feats = predicted_features(ctx.run, ctx.device, run.checkpoint_sha256, ctx.dataset, ctx.subject, image_id)
    names = feats["names"]
    level = st.select_slider("Feature layer", list(range(len(names))), key="ln_level",
                             format_func=lambda l: f"{names[l]} ({feats['true'][l].shape[1]}x{feats['true'][l].shape[2]})")
    true, pred = feats["true"][level], feats["predicted"][level]
    channels = list(np.argsort(true.reshape(len(true), -1).std(1))[::-1][:N_CHANNELS])
    limits = vimg.channel_limits(true, pred, channels=channels)
    for label, maps_ in (("true (from the image)", true), ("predicted (from the brain)", pred)):
        st.caption(label)
        cols = st.columns(N_CHANNELS)
        for col, ch, tile in zip(cols, channels, vimg.feature_tiles(maps_, channels, size=128, limits=limits)):
            col.image(tile, caption=f"channel {ch}", width="stretch")
    corr = np.corrcoef(true.ravel(), pred.ravel())[0, 1]
    st.caption(f"Correlation of predicted and true maps over all channels of this layer: {corr:.2f}")
    explain("The Brain Interaction Transformer lets one query token per image location read from the brain tokens "
            "by cross-attention and predicts the image features at that location: semantic tokens and a pyramid "
            "of low-level feature maps.",
            "Above, the most varied channels of the chosen layer as computed from the image itself and as "
            "predicted from the brain, on the same colour scale.")
elif k in (4, 5):
    out = reconstruction()
    if out is not None:
        col = "low-level" if k == 4 else "fused"
        if col not in out.images:
            st.warning(f"The generators produced no {col} image.")
        else:
            c = st.columns(2)
            c[0].image(vimg.resize_image(out.images["ground truth"][0], 256), caption="seen image", width="stretch")
            m = out.metrics[col]
            c[1].image(vimg.resize_image(out.images[col][0], 256), width="stretch",
                       caption=f"{col} reconstruction · PixCorr {m['PixCorr'][0]:.3f} · SSIM {m['SSIM'][0]:.3f}")
        if k == 4:
            explain("The low-level branch turns the predicted feature pyramid back into pixels (a fast inverter "
                    "network here; Deep Image Prior optimisation is the slow alternative).",
                    "It recovers layout, colour and coarse shapes, but looks blurry, because fine detail is "
                    "what fMRI measures worst.")
        else:
            explain("The fused image starts from the low-level image, adds noise partway and lets a diffusion "
                    "model conditioned on the predicted semantic tokens denoise it.",
                    "The low-level branch fixes where things are, the semantic branch what they are: the result "
                    "keeps the layout and gains plausible detail.")
