"""Data layer: the canonical dataset format, NSD preparation and the digital twin."""
from brainit_core.data.dataset import Dataset, DatasetWriter, SubjectData, load_dataset, standardize_session

__all__ = ["Dataset", "DatasetWriter", "SubjectData", "load_dataset", "standardize_session"]
