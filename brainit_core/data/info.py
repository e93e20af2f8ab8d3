"""A dataset's metadata (``dataset.json``), read without opening its HDF5 files.

:class:`~brainit_core.data.dataset.Dataset` parses its metadata through :class:`DatasetInfo`, and so do
the app's sidebar, the bundle and the commands that only need subjects or the source.
"""
from __future__ import annotations

from pathlib import Path

from brainit_core.errors import DataFormatError
from brainit_core.fileio import read_json

FORMAT_VERSION = 1
METADATA = "dataset.json"


class DatasetInfo:
    """The metadata of a canonical dataset directory.

    Parameters
    ----------
    path : str or PathLike
    require_complete : bool
        Refuse a dataset whose writer did not finish (an interrupted build).

    Raises
    ------
    DataFormatError
        When ``dataset.json`` is missing, malformed, of another format version or unfinished.
    """

    def __init__(self, path, require_complete: bool = True):
        self.path = Path(path).expanduser()
        meta_path = self.path / METADATA
        meta = read_json(meta_path)
        if meta is None:
            raise DataFormatError(f"{meta_path} not found: {self.path} is not a Brain-IT dataset directory "
                                  "(build one with `python -m brainit_core twin build` or `nsd prepare`)")
        if not isinstance(meta, dict):
            raise DataFormatError(f"{meta_path}: expected a JSON object, got {type(meta).__name__}")
        version = meta.get("format_version")
        if version != FORMAT_VERSION:
            raise DataFormatError(f"{meta_path}: format_version {version!r}, this code reads {FORMAT_VERSION}")
        if require_complete and not meta.get("complete"):
            raise DataFormatError(f"{meta_path}: the dataset was not finished (interrupted build?); build it again")
        if not isinstance(meta.get("subjects"), list):
            raise DataFormatError(f"{meta_path}: 'subjects' must be a list of subject names")
        self.metadata: dict = meta

    @staticmethod
    def is_dataset(path) -> bool:
        """``path`` holds a finished canonical dataset."""
        if path is None:
            return False
        try:
            DatasetInfo(path)
        except DataFormatError:
            return False
        return True

    @staticmethod
    def read(path) -> "DatasetInfo | None":
        """The metadata of ``path``, or None when it is not a finished dataset."""
        try:
            return DatasetInfo(path)
        except DataFormatError:
            return None

    @property
    def subjects(self) -> list[str]:
        """All subject names, in the dataset's order (held-out ones included)."""
        return list(self.metadata["subjects"])

    @property
    def heldout_subjects(self) -> list[str]:
        """Subjects kept out of default training (the twin's transfer subject)."""
        return list(self.metadata.get("heldout_subjects", []))

    @property
    def training_subjects(self) -> list[str]:
        return [s for s in self.subjects if s not in self.heldout_subjects]

    @property
    def source(self) -> str:
        """``"twin"``, ``"nsd"``, ... (``"unknown"`` when not recorded)."""
        return str(self.metadata.get("source", "unknown"))

    @property
    def is_twin(self) -> bool:
        return self.source == "twin"

    @property
    def mesh(self) -> str:
        return str(self.metadata.get("mesh", "unknown"))

    @property
    def display(self) -> dict:
        """What its maps are drawn on, as ``nsd prepare`` recorded it (:mod:`brainit_core.data.display`).

        Keys: ``space`` (``"fsaverage5"``, ``"fsaverage"`` or ``"func1pt8mm"``), ``n_vertices``
        (per hemisphere of fsaverage betas, None when not recorded), ``fsaverage_dir``
        (FreeSurfer fsaverage folder or None), ``atlases`` ({name: {"lh", "rh", "ctab"}}, fsaverage
        ROI atlases) and ``subjects`` ({name: {"shape", "affine", "background", "atlases",
        "transforms"}}, func1pt8mm volumes). A dataset without a record gets empty ones.
        """
        raw = self.metadata.get("display")
        raw = raw if isinstance(raw, dict) else {}
        return {"space": str(raw.get("space") or self.mesh), "n_vertices": raw.get("n_vertices"),
                "fsaverage_dir": raw.get("fsaverage_dir"),
                "atlases": dict(raw.get("atlases") or {}), "subjects": dict(raw.get("subjects") or {})}

    @property
    def image_size(self) -> int | None:
        size = self.metadata.get("image_size")
        return None if size is None else int(size)

    @property
    def build_id(self) -> str | None:
        """The id :class:`~brainit_core.data.writer.DatasetWriter` gives every build (None for datasets
        written before it did); a rebuilt dataset has a new one."""
        value = self.metadata.get("build_id")
        return None if value is None else str(value)

    @property
    def provenance(self) -> dict:
        """How the dataset was made (the writer's ``provenance``; empty when not recorded)."""
        value = self.metadata.get("provenance")
        return dict(value) if isinstance(value, dict) else {}

    def __repr__(self) -> str:
        return f"DatasetInfo({str(self.path)!r}, source={self.source!r}, subjects={self.subjects})"
