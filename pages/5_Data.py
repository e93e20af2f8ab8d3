"""Data: the current dataset, building a twin, opening NSD or a prepared dataset, uploading betas,
and the in-silico experiment (show any photo to a twin subject, reconstruct it from its response).
"""
import io
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from brainit_core.errors import BrainITError
from brainit_core.ui import loaders, recon
from brainit_core.ui.context import current, require_ready
from brainit_core.utils import default_data_dir

ctx = current()
st.title("Data")
st.caption("Every page reads one canonical format: the digital twin (a simulated NSD-style experiment whose "
           "encoding model is known) or prepared NSD data.")


def use_dataset(path: str) -> None:
    """Callback: select ``path`` in the sidebar (runs before the next rerun draws the sidebar)."""
    extra = st.session_state.setdefault("extra_datasets", [])
    if path not in extra:
        extra.append(path)
    st.session_state["sb_dataset"] = path


def show_images(items) -> None:
    cols = st.columns(len(items))
    for c, (caption, im) in zip(cols, items):
        c.image(im, caption=caption, width="stretch")


def reconstruct_betas(betas: np.ndarray, label: str):
    """Run the pipeline (fast mode) on (B, V) betas of the selected subject, under the lock."""
    pipe = loaders.pipeline(ctx.run, ctx.generators, ctx.device)
    with loaders.heavy_job(label), loaders.progress(label):
        return pipe(betas, ctx.subject, mode="fast", seed=0, return_attention=False)


# 1. the dataset selected in the sidebar
st.subheader("Selected dataset")
if ctx.dataset is None:
    st.info("No dataset yet: build a twin below (the `ci` preset takes seconds), or open prepared data.")
else:
    try:
        ds = loaders.dataset(ctx.dataset)
        st.markdown(f"`{ctx.dataset}` · source **{ds.source}** · mesh {ds.mesh} · {len(ds.image_ids)} images "
                    f"· image sets: {', '.join(ds.image_sets) or 'none'}")
        st.dataframe(pd.DataFrame(recon.dataset_summary(ds)), hide_index=True, width="stretch")
    except (BrainITError, OSError) as exc:
        st.error(f"Cannot open {ctx.dataset}: {exc}")
        ds = None
    if ds is not None and ctx.is_twin:
        key = ("twin_report", ctx.dataset)
        if st.button("Validate the twin", key="dt_validate",
                     help="Retinotopy, noise ceilings and category selectivity measured from the simulated data"):
            from brainit_core.data.twin import validate_twin

            try:
                with st.spinner("Measuring the twin's validation figures…"):
                    st.session_state[key] = validate_twin(ctx.dataset)
            except (BrainITError, OSError, KeyError) as exc:
                st.error(f"Validation failed: {exc}")
        report = st.session_state.get(key)
        if report:
            from brainit_core.data.twin.validation import format_report

            st.dataframe(pd.DataFrame(recon.twin_report_rows(report)), hide_index=True, width="stretch")
            st.caption("contralateral: share of pRFs in the opposite visual field (expected ~1); ecc-gradient rho: "
                       "eccentricity vs posterior-to-anterior position in V1-V3; NC: median noise ceiling "
                       "(designed vs measured); d': category-patch selectivity on test images.")
            with st.expander("As text (`twin validate`)"):
                st.code(format_report(report), language=None)

build, open_, upload, silico = st.tabs(["Build a twin", "Open data", "Upload betas", "In-silico experiment"])

# 2. build a twin
with build:
    c = st.columns(3)
    preset = c[0].selectbox("Preset", ["ci", "demo"], key="dt_preset",
                            help="ci: 3 subjects, 64 px, seconds; demo: 5 subjects, 128 px, several minutes")
    seed = int(c[1].number_input("Seed", 0, 10_000, 0, key="dt_seed"))
    name = c[2].text_input("Folder name", f"twin-{preset}-seed{seed}", key="dt_name")
    out = default_data_dir() / name.strip()
    st.caption(f"Written to `{out}` (the data directory: `$BRAINIT_DATA`, else `~/.brainit`).")
    if not name.strip() or Path(name).name != name.strip():
        st.error("Give a plain folder name (no slashes).")
    elif (out / "dataset.json").exists():
        st.info(f"`{out}` already holds a dataset.")
        st.button("Use it", key="dt_use_existing", on_click=use_dataset, args=(str(out),))
    elif st.button("Build the twin", type="primary", key="dt_build"):
        from brainit_core.data.twin import TwinConfig, build_twin

        try:
            with loaders.heavy_job("building a twin"), loaders.progress(f"Building the {preset} twin"):
                built = build_twin(out, TwinConfig.preset(preset, seed=seed))
            st.success(f"Built {out}: subjects {', '.join(built.subjects)}.")
            st.button("Use it", key="dt_use_built", on_click=use_dataset, args=(str(out),))
        except (BrainITError, OSError, TimeoutError) as exc:
            st.error(f"Building the twin failed: {exc}")

# 3. an NSD root or a prepared dataset
with open_:
    kind = st.radio("What do you have?", ["A prepared dataset folder", "An NSD download (root folder)"],
                    key="dt_kind", horizontal=True)
    if kind.startswith("A prepared"):
        path = st.text_input("Dataset folder (holds dataset.json)", key="dt_path", placeholder="~/.brainit/nsd")
        if path.strip():
            from brainit_core.data import load_dataset

            p = str(Path(path.strip()).expanduser())
            try:
                other = load_dataset(p)
                st.success(f"{p}: {other.source} dataset, subjects {', '.join(other.subjects)}.")
                st.dataframe(pd.DataFrame(recon.dataset_summary(other)), hide_index=True, width="stretch")
                st.button("Use this dataset", key="dt_use_path", on_click=use_dataset, args=(p,))
            except (BrainITError, OSError, ValueError, KeyError) as exc:
                st.error(f"Cannot open {p}: {exc}")
    else:
        root = st.text_input("NSD root (holds nsddata/, nsddata_betas/, nsddata_stimuli/)", key="dt_nsd_root")
        c = st.columns(2)
        subjects = c[0].multiselect("Subjects", list(range(1, 9)), [1, 2, 5, 7], key="dt_nsd_subjects")
        space = c[1].selectbox("Space", ["fsaverage", "func1pt8mm"], key="dt_nsd_space")
        if root.strip() and st.button("Check the files", key="dt_nsd_check"):
            ok, lines = recon.nsd_check(root.strip(), subjects or [1], space)
            (st.success if ok else st.error)("All files needed are there." if ok else "Some files are missing:")
            st.code("\n".join(lines), language=None)
            if ok:
                st.markdown("Prepare it (memory is bounded by one session; takes a while):")
                st.code(f"python -m brainit_core nsd prepare --nsd-root {root.strip()} --subjects "
                        f"{' '.join(map(str, subjects))} --space {space} --out ~/.brainit/nsd", language="bash")

# 4. one trial's betas from a file
with upload:
    if require_ready(ctx):
        run = loaders.run(ctx.run, ctx.device)
        V = run.n_vertices(ctx.subject)
        st.markdown(f"One trial of **{ctx.subject}**: {V} values in the dataset's vertex order, z-scored per "
                    f"session. `.npy`, `.h5`/`.hdf5` (first 1-D/2-D dataset, or the one named below) or `.mgh`; "
                    f"at most {recon.MAX_UPLOAD_MB} MB.")
        try:
            b, ids = loaders.dataset(ctx.dataset).subject(ctx.subject).averaged("test")
            buf = io.BytesIO()
            np.save(buf, b[0])
            st.download_button(f"Example: test image {ids[0]} of {ctx.subject} (.npy)", buf.getvalue(),
                               file_name=f"{ctx.subject}_image{ids[0]}.npy", key="dt_example")
        except (BrainITError, OSError) as exc:
            st.warning(f"No example file: {exc}")
        file = st.file_uploader("Betas file", type=["npy", "h5", "hdf5", "mgh", "mgz"], key="dt_betas")
        h5_key = st.text_input("HDF5 dataset name (optional)", key="dt_h5_key")
        if file is not None:
            try:
                betas = recon.read_betas(file.name, file.getvalue(), V, key=h5_key.strip() or None)
            except BrainITError as exc:
                st.error(str(exc))
                betas = None
            if betas is not None:
                st.success(f"{file.name}: {V} values, mean {betas.mean():+.3f}, std {betas.std():.3f}, "
                           f"range [{betas.min():.2f}, {betas.max():.2f}]")
                if abs(betas.std() - 1) > 0.8:
                    st.warning("These betas do not look z-scored (std far from 1): reconstructions will be poor.")
                if st.button("Reconstruct", type="primary", key="dt_betas_go"):
                    try:
                        out = reconstruct_betas(betas[None], "Reconstructing the uploaded trial")
                        show_images([("low-level", out.low_level[0]), ("fused", out.fused[0])])
                        st.caption(f"{out.timing['total']:.2f} s")
                    except (BrainITError, TimeoutError) as exc:
                        st.error(str(exc))

# 5. in-silico experiment
with silico:
    if not ctx.is_twin:
        st.info("The in-silico experiment needs a digital twin: only there is the brain's encoding model known, "
                "so any image can be 'shown' to a subject and its fMRI response simulated. Select or build a "
                "twin dataset to use it.")
    elif require_ready(ctx):
        from brainit_core.data.twin import respond

        ds = loaders.dataset(ctx.dataset)
        st.markdown(f"Show an image to **{ctx.subject}**, simulate its fMRI response (mean of 3 noisy trials, "
                    "like the test set) and reconstruct the image from it.")
        source = st.radio("Image", ["A dataset image", "Upload a photo"], key="is_source", horizontal=True)
        photo = None
        if source == "Upload a photo":
            up = st.file_uploader("Photo", type=["png", "jpg", "jpeg"], key="is_photo")
            if up is not None:
                from PIL import Image

                try:
                    photo = np.asarray(Image.open(up).convert("RGB"))
                except Exception as exc:  # a broken upload is the file's fault: say so
                    st.error(f"{up.name}: cannot read as an image ({exc})")
        else:
            sets = [s for s in ("ood",) if s in ds.image_sets]
            options = [("ood", int(i)) for s in sets for i in ds.image_set(s)]
            options += [("test", int(i)) for i in ds.subject(ctx.subject).test_image_ids]
            choice = st.selectbox("Dataset image", options, key="is_choice",
                                  format_func=lambda o: f"{'out-of-distribution' if o[0] == 'ood' else 'test'} image {o[1]}")
            photo = ds.images([choice[1]])[0]
        c = st.columns(2)
        seed = int(c[0].number_input("Noise seed", 0, 10_000, 0, key="is_seed"))
        if photo is not None and c[1].button("Show it and reconstruct", type="primary", key="is_go"):
            try:
                with st.spinner("Simulating the response…"):
                    betas = respond(ctx.dataset, ctx.subject, [photo], repeats=3, seed=seed).mean(axis=1)
                out = reconstruct_betas(betas, "Reconstructing from the simulated response")
                shown = recon.fit_image(photo, out.fused.shape[1])
                m = recon.image_metrics(np.stack([shown, shown]), np.concatenate([out.low_level, out.fused]))
                show_images([("photo", shown),
                             (f"low-level: PixCorr {m['PixCorr'][0]:.3f} · SSIM {m['SSIM'][0]:.3f}", out.low_level[0]),
                             (f"fused: PixCorr {m['PixCorr'][1]:.3f} · SSIM {m['SSIM'][1]:.3f}", out.fused[0])])
                st.caption("The twin has no object masks for an uploaded photo, so its category patches get only "
                           "their weak low-level drive (docs/data.md, known limits).")
            except (BrainITError, TimeoutError) as exc:
                st.error(str(exc))
