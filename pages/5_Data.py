"""Data: the current dataset, building a twin, opening NSD or a prepared dataset, uploading betas,
and the in-silico experiment (show any photo to a twin subject, reconstruct it from its response).
"""
from pathlib import Path

import pandas as pd
import streamlit as st

from brainit_core.data import uploads
from brainit_core.data.info import DatasetInfo
from brainit_core.data.summary import dataset_line, dataset_summary
from brainit_core.errors import BrainITError
from brainit_core.fileio import safe_folder_name
from brainit_core.ui import cortex, loaders, views
from brainit_core.ui.context import current, require_ready, select_dataset
from brainit_core.utils import default_data_dir

ctx = current()
st.title("Data")
st.caption("Every page reads one canonical format: the digital twin (a simulated NSD-style experiment whose "
           "encoding model is known) or prepared NSD data.")


# 1. the dataset selected in the sidebar
st.subheader("Selected dataset")
if ctx.dataset is None:
    st.info("No dataset yet: build a twin below (the `ci` preset takes seconds), or open prepared data.")
else:
    try:
        ds = loaders.dataset(ctx.dataset)
        st.markdown(f"`{ctx.dataset}` · {dataset_line(ds)}")
        st.dataframe(pd.DataFrame(dataset_summary(ds)), hide_index=True, width="stretch")
    except (BrainITError, OSError) as exc:
        st.error(f"Cannot open {ctx.dataset}: {exc}")
        ds = None
    if ds is not None and ctx.is_twin:
        views.twin_validation(ctx.dataset)
    if ds is not None:
        st.subheader("On the cortex")
        cortex.dataset_section(ctx)

build, open_, upload, silico = st.tabs(["Build a twin", "Open data", "Upload betas", "In-silico experiment"])

# 2. build a twin
with build:
    c = st.columns(3)
    preset = c[0].selectbox("Preset", ["ci", "demo"], key="dt_preset",
                            help="ci: 3 subjects, 64 px, seconds; demo: 5 subjects, 128 px, several minutes")
    seed = int(c[1].number_input("Seed", 0, 10_000, 0, key="dt_seed"))
    name = c[2].text_input("Folder name", f"twin-{preset}-seed{seed}", key="dt_name")
    try:
        out, bad_name = default_data_dir() / safe_folder_name(name.strip()), None
        st.caption(f"Written to `{out}` (the data directory: `$BRAINIT_DATA`, else `~/.brainit`).")
    except BrainITError as exc:
        out, bad_name = None, str(exc)
    if bad_name:
        st.error(f"Not a usable folder name: {bad_name}.")
    elif DatasetInfo.is_dataset(out):
        st.info(f"`{out}` already holds a dataset.")
        st.button("Use it", key="dt_use_existing", on_click=select_dataset, args=(str(out),))
    elif st.button("Build the twin", type="primary", key="dt_build"):
        from brainit_core.data.twin import TwinConfig, build_twin

        try:
            with loaders.heavy_job("building a twin"), loaders.progress(f"Building the {preset} twin"):
                built = build_twin(out, TwinConfig.preset(preset, seed=seed))
            st.success(f"Built {out}: subjects {', '.join(built.subjects)}.")
            st.button("Use it", key="dt_use_built", on_click=select_dataset, args=(str(out),))
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
                st.dataframe(pd.DataFrame(dataset_summary(other)), hide_index=True, width="stretch")
                st.button("Use this dataset", key="dt_use_path", on_click=select_dataset, args=(p,))
            except (BrainITError, OSError, ValueError, KeyError) as exc:
                st.error(f"Cannot open {p}: {exc}")
    else:
        root = st.text_input("NSD root (holds nsddata/, nsddata_betas/, nsddata_stimuli/)", key="dt_nsd_root")
        c = st.columns(2)
        subjects = c[0].multiselect("Subjects", list(range(1, 9)), [1, 2, 5, 7], key="dt_nsd_subjects")
        space = c[1].selectbox("Space", ["fsaverage", "func1pt8mm"], key="dt_nsd_space")
        if root.strip() and st.button("Check the files", key="dt_nsd_check"):
            views.nsd_check(root.strip(), subjects, space)

# 4. one trial's betas from a file
with upload:
    if require_ready(ctx):
        run = loaders.run(ctx.run, ctx.device)
        V = run.n_vertices(ctx.subject)
        st.markdown(f"One trial of **{ctx.subject}**: {V} values in the dataset's vertex order, z-scored per "
                    f"session. `.npy`, `.h5`/`.hdf5` (first 1-D/2-D dataset, or the one named below) or `.mgh`; "
                    f"at most {uploads.MAX_UPLOAD_MB} MB.")
        try:
            image_id, name, data = uploads.example_betas(loaders.dataset(ctx.dataset), ctx.subject)
            st.download_button(f"Example: test image {image_id} of {ctx.subject} (.npy)", data, file_name=name,
                               key="dt_example")
        except (BrainITError, OSError) as exc:
            st.warning(f"No example file: {exc}")
        file = st.file_uploader("Betas file", type=["npy", "h5", "hdf5", "mgh", "mgz"], key="dt_betas")
        h5_key = st.text_input("HDF5 dataset name (optional)", key="dt_h5_key")
        if file is not None:
            try:
                betas = uploads.read_betas(file.name, file.getvalue(), V, key=h5_key.strip() or None)
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
                        result = views.reconstruct_selected(ctx, betas[None], "Reconstructing the uploaded trial")
                        views.show_result(result, ["low-level", "fused"])
                        st.caption(f"{result.seconds:.2f} s")
                    except (BrainITError, TimeoutError) as exc:
                        st.error(str(exc))

# 5. in-silico experiment
with silico:
    if not ctx.is_twin:
        st.info("The in-silico experiment needs a digital twin: only there is the brain's encoding model known, "
                "so any image can be 'shown' to a subject and its fMRI response simulated. Select or build a "
                "twin dataset to use it.")
    elif require_ready(ctx):
        views.in_silico(ctx)
