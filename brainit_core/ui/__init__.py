"""The Streamlit app's shared Streamlit-aware code: cached loaders, the sidebar context, shared views.

Only this package (and ``app.py`` / ``pages/``) imports streamlit; what the pages compute lives in the
core (``brainit_core.app_sources``, ``brainit_core.reconstruction.grids``, ``brainit_core.data.uploads``,
``brainit_core.models.transfer``, ...) and is tested without a server.
"""
