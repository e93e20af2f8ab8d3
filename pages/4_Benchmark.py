"""Benchmark: the measured figures of the selected run and generators, read from the files the commands wrote."""
from pathlib import Path

import pandas as pd
import plotly.express as px
import streamlit as st

from brainit_core.fileio import read_json
from brainit_core.runs import RunDirectory
from brainit_core.ui import loaders
from brainit_core.ui.context import current

ctx = current()
st.title("Benchmark")
st.caption("Figures measured by the project's commands on the selected run and generators, read from the "
           "files those commands wrote. Nothing on this page is typed in by hand.")

tab_img, tab_feat, tab_gen = st.tabs(["Images (Brain-IT, baselines, oracles, transfer)", "Feature prediction (Brain-IT vs ridge)",
                                      "Generators (inverter vs DIP, fused timing)"])

with tab_img:
    from brainit_core.app_sources import bundle_dir
    from brainit_core.utils import default_data_dir

    found = [p.parent for p in [bundle_dir() / "benchmark" / "results.json",
                                *sorted((default_data_dir() / "benchmarks").glob("*/results.json"))] if p.is_file()]
    st.markdown("Every method reconstructs the same test images through the same generators and is scored with "
                "the protocol's PixCorr / SSIM and the offline identification columns. Written by "
                "`python -m brainit_core benchmark --data DATA --run RUN --generators GEN --out DIR`.")
    if not found:
        st.info("No benchmark results found (looked in assets/demo/benchmark and ~/.brainit/benchmarks/).")
    else:
        from brainit_core.benchmark import load_results

        where = st.selectbox("results", found, format_func=str)
        res = load_results(where)
        setup = res["setup"]
        st.caption(f"{setup['n_images']} test images x {len(setup['subjects'])} subjects; run "
                   f"{str(setup['run_sha256'])[:12]}; last call {setup.get('wall_seconds', 0):.0f} s (a rerun reads its cache; "
                   "docs/benchmark.md has the time of a full run)")
        for note in setup.get("not_covered", []):
            st.info(note)
        labels = res.get("method_labels", {})
        table = pd.DataFrame(res["mean"]).T.rename(index=labels)
        secs = res.get("seconds_per_image", {})
        table["s / image"] = [secs.get(m, {}).get("mean") for m in res["mean"]]
        st.dataframe(table, width="stretch")
        plots = [Path(p) for p in res.get("plots", [])] or [Path(where) / "scores.png"]
        cols = st.columns(2)
        for i, png in enumerate(p for p in plots if p.is_file()):
            cols[i % 2].image(str(png), caption=png.stem)
        text = res.get("markdown") or ""
        if "## Claims" in text:  # the claims and notes, as the command wrote them (plots are shown above)
            claims = text[text.index("## Claims"):]
            st.markdown("\n".join(line for line in claims.splitlines() if not line.startswith("![")))

with tab_feat:
    run = RunDirectory(ctx.run) if ctx.run else None
    st.markdown("Per subject, on the test images (repeat-averaged betas): token correlation and two-way "
                "identification of the predicted features, for Brain-IT and for a ridge regression from the "
                "same betas to the same features. Written by "
                f"`python -m brainit_core evaluate-features --run {ctx.run} --data {ctx.dataset}`.")
    res = run.read_scores() if run else None
    if res is None:
        st.info("No eval_features.json in this run yet.")
        if ctx.run and ctx.dataset and st.button("Score the run now", help="a few minutes on a CPU"):
            from brainit_core.models.evaluate import evaluate_run

            with loaders.heavy_job("scoring the run"), loaders.progress("scoring"):
                res = evaluate_run(ctx.run, ctx.dataset, device=ctx.device)
            run.save_scores(res)
            st.rerun()
    else:
        rows = []
        for subject, s in res["subjects"].items():
            for method in ("brainit", "ridge"):
                for head in ("semantic", "lowlevel"):
                    if method in s and head in s[method]:
                        rows.append({"subject": subject, "method": "Brain-IT" if method == "brainit" else "ridge",
                                     "head": head, **s[method][head]})
        table = pd.DataFrame(rows)
        if not table.empty:
            metric = st.radio("score", ["two_way", "token_r"], horizontal=True,
                              format_func=lambda m: {"two_way": "2-way identification", "token_r": "token r"}[m])
            fig = px.bar(table, x="subject", y=metric, color="method", facet_col="head", barmode="group", height=380)
            st.plotly_chart(fig, width="stretch")
            st.dataframe(table, width="stretch", hide_index=True)
        enc = res.get("encoder")
        if isinstance(enc, dict):
            st.markdown("**Image-to-fMRI encoder**, held-out voxel-wise correlation")
            st.json(enc, expanded=False)

with tab_gen:
    path = Path(ctx.generators) / "benchmark.json" if ctx.generators else None
    st.markdown("SSIM / PixCorr to the ground truth and seconds per image of the amortised inverter, the "
                "inverter + DIP refinement and plain Deep Image Prior, from true or BIT-predicted features. "
                f"Written by `python -m brainit_core benchmark-generators --generators {ctx.generators} "
                f"--data {ctx.dataset} --n 8 --dip-steps 200 --sources true bit --run {ctx.run}`.")
    if path is None or not path.is_file():
        st.info("No benchmark.json in these generators yet: run the command above.")
    else:
        res = read_json(path)
        rows = [{"features": src, "method": m, **{k: v for k, v in r.items() if isinstance(v, (int, float))}}
                for src, methods in res.items() if src not in ("setup", "fused") and isinstance(methods, dict)
                for m, r in methods.items() if isinstance(r, dict)]
        if rows:
            st.dataframe(pd.DataFrame(rows), width="stretch", hide_index=True)
        if "fused" in res:
            st.markdown("**Fused reconstruction** (inverter + fusion diffusion)")
            st.json(res["fused"], expanded=True)
        grid = path.with_suffix(".png")
        if grid.is_file():
            st.image(str(grid), caption="ground truth and each method's images")
