"""The Streamlit app's shared core: sources (no streamlit), cached loaders, sidebar context.

Only this package (and ``app.py`` / ``pages/``) imports streamlit; ``sources`` does not, so it can
be used and tested without a server.
"""
