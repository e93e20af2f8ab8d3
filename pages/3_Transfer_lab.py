"""Transfer lab: add a new subject to a trained run from 15 minutes, 1 hour or all of its data."""
import numpy as np
import streamlit as st

from brainit_core.app_sources import bundle_dir
from brainit_core.data.info import DatasetInfo
from brainit_core.errors import BrainITError
from brainit_core.models.bit import BITConfig
from brainit_core.models import transfer as tr
from brainit_core.runs import RunDirectory
from brainit_core.ui import loaders
from brainit_core.ui.context import current
from brainit_core.viz.curves import transfer_curve_figure

ctx = current()
st.title("Transfer lab")
st.caption("Brain-IT adapts to a new subject by learning only that subject's voxel embeddings: every "
           "other weight stays frozen, each new voxel starts from its nearest reference voxel's cluster "
           "and embedding, and training mixes each real sample with synthetic ones (the encoder's responses "
           "to unlabeled images; the official code uses three per real sample).")

if not ctx.dataset or not ctx.run:
    st.error("Choose a dataset and a trained run in the sidebar first.")
    st.stop()
run = RunDirectory(ctx.run)
try:
    candidates = tr.heldout_candidates(DatasetInfo(ctx.dataset), run.subjects)
except BrainITError as exc:
    st.error(str(exc))
    st.stop()
if not candidates:
    st.info("Every subject of this dataset is already decoded by the run, so there is nobody to transfer to. "
            "The shipped bundle carries its held-out subject's first hour; for all of its data, build the "
            "full demo twin on the **Data** page (`python -m brainit_core twin build --preset demo --seed 0`) "
            "and choose it in the sidebar: its held-out subject twin05 is the one to transfer to.")
    from brainit_core.benchmark import load_results

    try:
        shipped = load_results(bundle_dir() / "benchmark")
    except BrainITError:
        shipped = None
    curve = tr.benchmark_curve(shipped, run=ctx.run)  # only when the benchmark measured this run
    if curve:
        rows, baselines = curve
        t = shipped["transfer"]
        st.subheader(f"Measured: transfer of this run to {t['subject']}")
        st.caption(f"From the shipped benchmark (`assets/demo/benchmark`): {t['subject']} was transferred with 15 min, "
                   f"1 hour and all of its data, and its {t['n_images']} test images reconstructed and scored; the "
                   "dashed lines are the baselines fitted on all of its data. docs/models.md has the commands.")
        metric = st.selectbox("Score", [k for k in rows[0] if k != "amount"], key="tl_shipped_metric")
        lines = {f"{name.replace('_', ' ')}, all data": s[metric] for name, s in baselines.items() if metric in s}
        st.plotly_chart(transfer_curve_figure(rows, metric, lines, xaxis_title=f"{t['subject']}'s data"),
                        width="stretch")
        st.dataframe(rows, width="stretch")
    st.stop()

ds = loaders.dataset(ctx.dataset)
c1, c2 = st.columns([1, 2])
subject = c1.selectbox("New subject", candidates)
amount = c2.radio("Amount of the subject's data", tr.AMOUNTS, horizontal=True,
                  format_func=lambda m: "all" if m == "all" else ("1 hour" if m == 60 else f"{m} min"))
sd = ds.subject(subject)
n_train = int(np.isin(sd.image_ids, sd.train_image_ids).sum())
if n_train == 0:
    st.error(f"{subject} has no training trials in {ctx.dataset}: transfer needs the subject's training data.")
    st.stop()
n_trials = tr.trials_for(amount, n_train)
config = BITConfig.from_dict(run.bit_config)
epochs, synthetic = config.transfer_epochs, config.transfer_synthetic_per_real
out = RunDirectory(tr.transfer_dir(ctx.run, subject, amount))
st.write(f"{n_trials:,} single trials of {subject} ({n_train:,} available), {synthetic:g} synthetic per real, "
         f"{epochs} epochs; "
         f"output: `{out.path}`")

if out.is_complete:
    st.success("This transfer has been run; its results are below.")
else:
    st.info(f"Estimated time on this machine: about {tr.estimate_minutes(n_trials, epochs, synthetic_per_real=synthetic):.0f} min "
            "(it resumes where it stopped if interrupted).")
    if st.button("Run the transfer", type="primary"):
        with loaders.heavy_job(f"transfer {subject}"), loaders.progress(f"transfer to {subject}"):
            tr.transfer_subject(ctx.dataset, subject, amount, ctx.run, out.path, device=ctx.device)
        st.rerun()

if out.is_complete:
    if out.read_scores() is None and st.button("Score it on the test images (Brain-IT vs ridge on full data)"):
        from brainit_core.models.evaluate import evaluate_run

        with loaders.heavy_job("scoring"), loaders.progress("scoring"):
            out.save_scores(evaluate_run(out.path, ctx.dataset, subjects=[subject], encoder=False, device=ctx.device))
        st.rerun()
    if ctx.generators:
        st.subheader(f"{subject}: reconstructions after transfer")
        betas, ids = sd.averaged("test")
        n = st.slider("test images", 2, 8, 4)
        if st.button("Reconstruct"):
            pipe = loaders.pipeline(loaders.path_str(out.path), ctx.generators, "auto")
            with loaders.heavy_job("reconstruct"), loaders.progress("reconstructing"):
                result = pipe(betas[:n], subject, mode="fast", seed=[int(i) for i in ids[:n]])
            for row, label in ((ds.images(ids[:n]), "ground truth"), (result.low_level, "low-level"),
                               (result.fused, "fused")):
                st.caption(label)
                st.image([im for im in row], width=128)

rows = tr.curve_rows(ctx.run, subject)
st.subheader("Learning curve")
if not rows:
    st.info("Score at least one finished transfer to draw the curve (Brain-IT after 15 min / 1 h / all, "
            "with ridge trained on the subject's full data as the reference line).")
else:
    metrics = sorted({k.removeprefix("brainit.") for r in rows for k in r if k.startswith("brainit.")})
    metric = st.selectbox("Score", metrics, index=0)
    ridge = [r.get(f"ridge.{metric}") for r in rows if r.get(f"ridge.{metric}") is not None]
    curve = [{"amount": r["amount"], metric: r.get(f"brainit.{metric}")} for r in rows]
    fig = transfer_curve_figure(curve, metric, {"ridge, full data": ridge[-1]} if ridge else None, label_at=None)
    st.plotly_chart(fig, width="stretch")
    st.dataframe(rows, width="stretch")
