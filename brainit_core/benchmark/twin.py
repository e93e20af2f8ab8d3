"""The twin's ground truth as the benchmark reads it: noiseless responses and the vertex order.

A twin dataset (``DATA/ground_truth/twin.json`` present) holds, per subject, the noiseless
responses to the test images and each vertex's pRF and area; the oracle-noiseless row and the
pRF agreement read them here.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from brainit_core.errors import BrainITError


def twin_dir_of(ds) -> Path | None:
    """The dataset's folder when it is a twin (it holds ``ground_truth/twin.json``), else None."""
    path = Path(ds.path)
    return path if (path / "ground_truth" / "twin.json").exists() else None


def ground_truth(twin_dir, subject: str) -> dict:
    """The twin's ground truth of ``subject`` (``noiseless_test``, ``vertices``, ``hemispheres``,
    ``x``, ``y``, ``area_names``, ...)."""
    from brainit_core.data.twin import load_ground_truth

    return load_ground_truth(twin_dir, subject)["subject"]


def vertex_order(ds, subject: str, gt: dict, twin_dir=None) -> np.ndarray:
    """Rows of the ground-truth arrays in the dataset's vertex order.

    Raises
    ------
    BrainITError
        When a vertex of the dataset is missing from the ground truth.
    """
    sd = ds.subject(subject)
    if np.array_equal(gt["vertices"], sd.vertices) and np.array_equal(gt["hemispheres"], sd.hemispheres):
        return np.arange(len(sd.vertices))
    lookup = {(int(h), int(v)): i for i, (h, v) in enumerate(zip(gt["hemispheres"], gt["vertices"]))}
    try:
        return np.array([lookup[(int(h), int(v))] for h, v in zip(sd.hemispheres, sd.vertices)])
    except KeyError as exc:
        raise BrainITError(f"{twin_dir}: ground truth of {subject} lacks vertex {exc}") from exc


def noiseless_responses(ds, twin_dir, subject: str, ids) -> np.ndarray:
    """The noiseless responses of ``subject`` to test images ``ids``: float32 (N, V) in the
    dataset's vertex order.

    Raises
    ------
    BrainITError
        When the twin's noiseless test responses do not match the subject's test images.
    """
    gt = ground_truth(twin_dir, subject)
    if "noiseless_test" not in gt:
        raise BrainITError(f"{twin_dir}: the ground truth of {subject} has no noiseless test responses (a compact "
                           "slice such as the demo bundle leaves them out); benchmark the full twin (twin build)")
    test_ids = np.unique(ds.subject(subject).split_image_ids("test"))
    rows = np.searchsorted(test_ids, ids)
    if len(gt["noiseless_test"]) != len(test_ids) or not np.array_equal(test_ids[rows], ids):
        raise BrainITError(f"{twin_dir}: noiseless test responses of {subject} do not match its test images")
    return gt["noiseless_test"][rows][:, vertex_order(ds, subject, gt, twin_dir)].astype(np.float32)


def category_coverage(ds) -> tuple[np.ndarray, list[str]] | None:
    """The share of each image every category covers, float (n_images, n_categories) indexed by image
    id, and the category names; None when ``ds`` carries no category labels (not a twin, or a twin
    written without ``ground_truth/stimuli.npz``).

    Raises
    ------
    BrainITError
        When ``stimuli.npz`` does not match the twin's category list.
    """
    from brainit_core.data.twin import load_ground_truth

    twin_dir = twin_dir_of(ds)
    if twin_dir is None or not (twin_dir / "ground_truth" / "stimuli.npz").is_file():
        return None
    path = twin_dir / "ground_truth" / "stimuli.npz"
    names = list(load_ground_truth(twin_dir).get("categories") or [])
    with np.load(path, allow_pickle=False) as z:
        if "category_coverage" not in z.files:
            return None
        coverage = z["category_coverage"].astype(np.float32)
    if coverage.ndim != 2 or coverage.shape[1] != len(names):
        raise BrainITError(f"{path}: category_coverage has shape {coverage.shape}, expected (n_images, "
                           f"{len(names)}) for the categories {names} of ground_truth/twin.json")
    return coverage, names
