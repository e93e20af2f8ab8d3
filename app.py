"""Brain-IT Explorer: the Streamlit app (``streamlit run app.py``).

The frame only: page config, the shared sidebar (data, run, generators, subject, device) and the
navigation over ``pages/``. Each page reads the sidebar's choice with
``brainit_core.ui.context.current()`` and loads models through ``brainit_core.ui.loaders``.
"""
from pathlib import Path

import streamlit as st

from brainit_core.ui.context import sidebar
from brainit_core.ui.loaders import warm_up

ROOT = Path(__file__).resolve().parent
PAGES = [  # (file, title, icon)
    ("pages/0_Home.py", "Home", ":material/home:"),
    ("pages/1_Reconstructions.py", "Reconstructions", ":material/image:"),
    ("pages/2_Brain_tokens.py", "Brain tokens", ":material/neurology:"),
    ("pages/3_Transfer_lab.py", "Transfer lab", ":material/person_add:"),
    ("pages/4_Benchmark.py", "Benchmark", ":material/leaderboard:"),
    ("pages/5_Data.py", "Data", ":material/database:"),
    ("pages/6_Learn.py", "Learn", ":material/school:"),
]

st.set_page_config(page_title="Brain-IT Explorer", page_icon=":material/neurology:", layout="wide")
nav = st.navigation([st.Page(ROOT / f, title=t, icon=i, default=(k == 0))
                     for k, (f, t, i) in enumerate(PAGES) if (ROOT / f).is_file()])
sidebar()
warm_up()  # heavy imports and the cortical mesh, in the background
nav.run()
