"""Brain-IT Explorer (placeholder frame until the app issue lands)."""
import streamlit as st

st.set_page_config(page_title="Brain-IT Explorer", layout="wide")
st.title("Brain-IT Explorer")
st.write("Reconstruct seen images from fMRI with Brain-IT.")
