"""Home: what Brain-IT Explorer shows (placeholder until the app work lands)."""
import streamlit as st

from brainit_core.ui.context import current

ctx = current()
st.title("Brain-IT Explorer")
st.write("Reconstruct the images a person saw from their fMRI responses with Brain-IT.")
