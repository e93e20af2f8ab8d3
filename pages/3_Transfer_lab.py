"""Transfer lab: add a new subject to a trained run from 15 minutes, 1 hour or all of its data."""
import json
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from brainit_core.ui import loaders
from brainit_core.ui import transfer as tr
from brainit_core.ui.context import current

ctx = current()
st.title("Transfer lab")
st.caption("Brain-IT adapts to a new subject by learning only that subject's voxel embeddings: every "
           "other weight stays frozen, each new voxel starts from its nearest reference voxel's cluster "
           "and embedding, and training mixes one real sample with three synthetic ones (method.md §6).")

if not ctx.dataset or not ctx.run:
    st.error("Choose a dataset and a trained run in the sidebar first.")
    st.stop()
meta = json.loads((Path(ctx.dataset) / "dataset.json").read_text())
run_subjects = json.loads((Path(ctx.run) / "bit.json").read_text())["config"]["subjects"]
candidates = tr.heldout_candidates(meta, run_subjects)
if not candidates:
    st.info("Every subject of this dataset is already decoded by the run, so there is nobody to transfer to. "
            "The shipped bundle holds test images only; build the full demo twin on the **Data** page "
            "(`python -m brainit_core twin build --preset demo --seed 0`) and choose it in the sidebar: its "
            "held-out subject twin05 is the one to transfer to.")
    from brainit_core.benchmark import load_results
    from brainit_core.errors import BrainITError
    from brainit_core.ui.sources import bundle_dir

    try:
        shipped = load_results(bundle_dir() / "benchmark")
    except BrainITError:
        shipped = None
    curve = tr.benchmark_curve(shipped)
    if curve and shipped.get("run_sha256") in tr.run_identities(ctx.run):  # the benchmark measured this run
        rows, baselines = curve
        t = shipped["transfer"]
        st.subheader(f"Measured: transfer of this run to {t['subject']}")
        st.caption(f"From the shipped benchmark (`assets/demo/benchmark`): {t['subject']} was transferred with 15 min, "
                   f"1 hour and all of its data, and its {t['n_images']} test images reconstructed and scored; the "
                   "dashed lines are the baselines fitted on all of its data. docs/models.md has the commands.")
        metric = st.selectbox("Score", [k for k in rows[0] if k != "amount"], key="tl_shipped_metric")
        fig = go.Figure(go.Scatter(x=[r["amount"] for r in rows], y=[r.get(metric) for r in rows],
                                   mode="lines+markers", name="Brain-IT transfer"))
        for name, scores in baselines.items():
            if metric in scores:
                fig.add_hline(y=scores[metric], line_dash="dash", annotation_position="top left",
                              annotation_text=f"{name.replace('_', ' ')}, all data")
        fig.update_layout(height=360, xaxis_title=f"{t['subject']}'s data", yaxis_title=metric, margin=dict(t=30))
        st.plotly_chart(fig, width="stretch")
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
record = json.loads((Path(ctx.run) / "run.json").read_text())
epochs = int(record.get("bit_config", {}).get("transfer_epochs", 8))
out_dir = tr.transfer_dir(ctx.run, subject, amount)
st.write(f"{n_trials:,} single trials of {subject} ({n_train:,} available), {epochs} epochs; "
         f"output: `{out_dir}`")

if tr.is_finished(out_dir):
    st.success("This transfer has been run; its results are below.")
else:
    st.info(f"Estimated time on this machine: about {tr.estimate_minutes(n_trials, epochs):.0f} min "
            "(it resumes where it stopped if interrupted).")
    if st.button("Run the transfer", type="primary"):
        from brainit_core.models.transfer import transfer_subject

        with loaders.heavy_job(f"transfer {subject}"), loaders.progress(f"transfer to {subject}"):
            transfer_subject(ctx.dataset, subject, amount, ctx.run, out_dir, device=ctx.device)
        st.rerun()

if tr.is_finished(out_dir):
    if tr.read_scores(out_dir) is None and st.button("Score it on the test images (Brain-IT vs ridge on full data)"):
        from brainit_core.models.evaluate import evaluate_run

        with loaders.heavy_job("scoring"), loaders.progress("scoring"):
            res = evaluate_run(out_dir, ctx.dataset, subjects=[subject], encoder=False, device=ctx.device)
        tr.scores_path(out_dir).write_text(json.dumps(res, indent=2, default=float))
        st.rerun()
    if ctx.generators:
        st.subheader(f"{subject}: reconstructions after transfer")
        betas, ids = sd.averaged("test")
        n = st.slider("test images", 2, 8, 4)
        if st.button("Reconstruct"):
            pipe = loaders.pipeline(loaders.path_str(out_dir), ctx.generators, "auto")
            with loaders.heavy_job("reconstruct"), loaders.progress("reconstructing"):
                out = pipe(betas[:n], subject, mode="fast", seed=[int(i) for i in ids[:n]])
            truth = ds.images(ids[:n])
            for row, label in ((truth, "ground truth"), (out.low_level, "low-level"), (out.fused, "fused")):
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
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[r["amount"] for r in rows], y=[r.get(f"brainit.{metric}") for r in rows],
                             mode="lines+markers", name="Brain-IT transfer"))
    ridge = [r.get(f"ridge.{metric}") for r in rows if r.get(f"ridge.{metric}") is not None]
    if ridge:
        fig.add_hline(y=ridge[-1], line_dash="dash", annotation_text="ridge, full data")
    fig.update_layout(height=360, xaxis_title="subject's data", yaxis_title=metric, margin=dict(t=30))
    st.plotly_chart(fig, width="stretch")
    st.dataframe(rows, width="stretch")
