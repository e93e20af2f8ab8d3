"""Brain-IT Explorer core library: data, models, reconstruction, metrics and visualisation.

Nothing in this package imports streamlit except :mod:`brainit_core.ui`.
"""

__version__ = "0.1.0"
