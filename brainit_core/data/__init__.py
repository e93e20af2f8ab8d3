"""Data layer: the canonical dataset format, NSD preparation and the digital twin."""
from brainit_core.data.dataset import Dataset, DatasetWriter, SubjectData, load_dataset, standardize_session
from brainit_core.data.info import DatasetInfo

__all__ = ["Dataset", "DatasetInfo", "DatasetWriter", "SubjectData", "load_dataset", "standardize_session"]
