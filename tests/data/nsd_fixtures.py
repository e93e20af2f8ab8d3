"""Tiny NSD trees in exactly NSD's file formats (small trial and vertex counts)."""
from __future__ import annotations

from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import scipy.io

from brainit_core.data.nsd import NSDLayout


def make_nsd_tree(root: Path, subjects=(1, 2), sessions=None, trials=12, n_vert=50, n_brick=200, img=16,
                  seed=0, nan_vertex=3, skip_sessions=()):
    """Write expdesign, imgBrick, fsaverage .mgh betas and nsdgeneral labels under ``root``.

    Returns a dict with the raw betas per (subject, session) for value checks.
    """
    rng = np.random.default_rng(seed)
    layout = NSDLayout(Path(root))
    sessions = sessions or {s: 3 for s in subjects}
    n_total = max(sessions.values()) * trials
    # masterordering: 1-based into the 10k list; <= 1000 = shared test images
    shared_cols = rng.integers(1, 7, n_total)  # 6 shared images, repeated
    train_cols = rng.integers(1001, 1013, n_total)  # 12 training images
    mo = np.where(rng.random(n_total) < 0.4, shared_cols, train_cols)
    subjectim = np.zeros((8, 1012), np.int64)
    subjectim[:, :1000] = (np.arange(1000) % 100) + 1  # shared: same 73k ids in every row
    for s in range(8):
        subjectim[s, 1000:] = 101 + s * 12 + np.arange(12)  # subject-specific ids
    layout.expdesign.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(layout.expdesign, {"masterordering": mo[None].astype(np.float64),
                                        "subjectim": subjectim.astype(np.float64),
                                        "sharedix": (np.arange(1000) % 100 + 1)[None].astype(np.float64)})
    layout.stimuli.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(layout.stimuli, "w") as f:
        f.create_dataset("imgBrick", data=rng.integers(0, 256, (n_brick, img, img, 3), dtype=np.uint8))
    label_dir = layout.nsdgeneral_label("lh").parent
    label_dir.mkdir(parents=True, exist_ok=True)
    masks = {}
    for hemi in ("lh", "rh"):
        m = (rng.random(n_vert) < 0.5).astype(np.float32)
        m[nan_vertex] = 1
        masks[hemi] = m > 0
        nib.save(nib.MGHImage(m.reshape(-1, 1, 1), np.eye(4)), str(layout.nsdgeneral_label(hemi)))
    raw = {}
    for s in subjects:
        for k in range(1, sessions[s] + 1):
            if (s, k) in skip_sessions:
                continue
            d = layout.betas_dir(s, "fsaverage")
            d.mkdir(parents=True, exist_ok=True)
            for hemi in ("lh", "rh"):
                b = (rng.standard_normal((trials, n_vert)) * 2 + 1).astype(np.float32)
                b[:, nan_vertex] = np.nan  # a vertex NaN in every trial
                b[0, nan_vertex + 1] = np.nan  # a single NaN
                raw[(s, k, hemi)] = b
                nib.save(nib.MGHImage(b.T.reshape(n_vert, 1, 1, trials), np.eye(4)), str(layout.mgh(s, hemi, k)))
    return {"layout": layout, "masterordering": mo, "subjectim": subjectim, "raw": raw, "masks": masks,
            "trials": trials, "n_vert": n_vert}
