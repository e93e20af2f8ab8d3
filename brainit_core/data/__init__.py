"""Data layer: the canonical dataset format, NSD preparation and the digital twin."""
from brainit_core.data.dataset import Dataset, SubjectData, load_dataset
from brainit_core.data.writer import DatasetWriter, standardize_session
from brainit_core.data.info import DatasetInfo

__all__ = ["Dataset", "DatasetInfo", "DatasetWriter", "SubjectData", "load_dataset", "standardize_session"]
