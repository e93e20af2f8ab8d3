"""Home: what Brain-IT Explorer shows, the method in one figure, the pages, and what is loaded.

Nothing heavy runs here: the status reads only small JSON files, so the first launch is usable
at once; models load on the pages that need them.
"""
from pathlib import Path

import streamlit as st

from brainit_core.reconstruction import grids
from brainit_core.ui.context import current

ROOT = Path(__file__).resolve().parent.parent
ctx = current()

st.title("Brain-IT Explorer")
st.markdown(
    "Reconstruct the images a person saw from their fMRI responses with **Brain-IT** (Beliy et al., 2025): "
    "a *Brain Interaction Transformer* groups cortical voxels into functional clusters shared by all "
    "subjects, turns each cluster into a brain token, and predicts two kinds of image features from "
    "them. A low-level branch inverts the predicted feature pyramid into a coarse image (layout, colour); "
    "a semantic branch steers a diffusion model with the predicted semantic tokens; the two are fused by "
    "starting the diffusion from the noised low-level image.")

METHOD = """
digraph {
  rankdir=LR; bgcolor="transparent"; node [shape=box, style="rounded,filled", fillcolor="#f0f2f6",
  fontname="sans-serif", fontsize=11]; edge [fontname="sans-serif", fontsize=9, color="#555555"];
  betas [label="fMRI betas\\n(one value per vertex)", fillcolor="#ffe9d6"];
  v2c [label="Voxel-to-Cluster\\n(functional clusters,\\nshared by subjects)"];
  tok [label="Brain tokenizer\\n(one token per cluster)"];
  cross [label="Cross-transformer\\n(image-feature queries)"];
  sem [label="semantic tokens"]; low [label="low-level\\nfeature pyramid"];
  inv [label="inverter (fast)\\nor Deep Image Prior"];
  lowimg [label="low-level image", fillcolor="#dbeafe"];
  diff [label="diffusion, started from\\nthe noised low-level image"];
  fused [label="reconstruction", fillcolor="#dcfce7"];
  betas -> v2c -> tok -> cross; cross -> sem; cross -> low; low -> inv -> lowimg -> diff;
  sem -> diff [label="cross-attention"]; diff -> fused;
}
"""
st.graphviz_chart(METHOD, width="stretch")
st.caption("The Brain-IT pipeline as this app runs it (figure drawn from code).")

st.subheader("Pages")
PAGES = [
    ("pages/1_Reconstructions.py", "Reconstructions", ":material/image:",
     "test images: ground truth, low-level, semantic and fused; settings; subjects side by side; downloads"),
    ("pages/2_Brain_tokens.py", "Brain tokens", ":material/neurology:",
     "functional clusters on the cortex and what each brain token attends to"),
    ("pages/3_Transfer_lab.py", "Transfer lab", ":material/person_add:",
     "a new subject from little data: only its voxel embeddings are trained"),
    ("pages/4_Benchmark.py", "Benchmark", ":material/leaderboard:", "the evaluation protocol's metrics against baselines"),
    ("pages/5_Data.py", "Data", ":material/database:",
     "build a digital twin, open NSD data, upload betas, show any photo to a twin subject"),
    ("pages/6_Learn.py", "Learn", ":material/school:", "the method step by step"),
]
for path, title, icon, what in PAGES:
    if (ROOT / path).is_file():
        c = st.columns([1, 3])
        c[0].page_link(path, label=title, icon=icon)
        c[1].caption(what)

st.subheader("Status")
ok, missing = ":material/check_circle:", ":material/error:"
rows = [("Dataset", ctx.dataset, "twin (simulated)" if ctx.is_twin else "recorded"),
        ("Brain-IT run", ctx.run, ", ".join(ctx.subjects) if ctx.subjects else "no decodable subject in this dataset"),
        ("Generators", ctx.generators, "")]
for label, path, note in rows:
    st.markdown(f"{ok if path else missing} **{label}**: `{path or 'missing'}`" + (f" · {note}" if path and note else ""))
st.markdown(f"Device: **{'GPU' if ctx.device == 'cuda' else 'CPU'}** · cached reconstruction sets: "
            f"{grids.cached_grids()} (under `{grids.cache_root()}`)")
if ctx.problems:
    st.warning("Some pages need data and trained models:\n\n- " + "\n- ".join(ctx.problems)
               + "\n\nThe Data page builds a twin in seconds (preset `ci`); `python -m brainit_core train-demo` "
                 "trains the demo models.")
