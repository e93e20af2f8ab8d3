"""A dataset summarised for people: one row per subject (the app's Data page, ``inspect``-style views)."""
from __future__ import annotations


def dataset_summary(dataset) -> list[dict]:
    """One row per subject: vertices, trials, split sizes, held out or not.

    Parameters
    ----------
    dataset : Dataset

    Returns
    -------
    list of dict
        ``{"subject", "vertices", "trials", "train images", "val images", "test images", "held out"}``.
    """
    rows = []
    for s in dataset.subjects:
        sd = dataset.subject(s)
        rows.append({"subject": s, "vertices": int(len(sd.vertices)), "trials": int(len(sd.image_ids)),
                     "train images": int(len(sd.train_image_ids)), "val images": int(len(sd.val_image_ids)),
                     "test images": int(len(sd.test_image_ids)), "held out": s in dataset.heldout_subjects})
    return rows


def dataset_line(dataset) -> str:
    """``"source **twin** · mesh fsaverage5 · 120 images · image sets: ood"`` (markdown)."""
    return (f"source **{dataset.source}** · mesh {dataset.mesh} · {len(dataset.image_ids)} images "
            f"· image sets: {', '.join(dataset.image_sets) or 'none'}")
