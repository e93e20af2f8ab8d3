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


# -- NSD trees with what the app draws: fsaverage surfaces, ROI atlases, func1pt8mm volumes ----------

PRF_ROIS = ("V1v", "V1d", "V2v", "V2d", "V3v", "V3d", "hV4")
FLOC_FACES = ("OFA", "FFA-1", "FFA-2")
STREAMS = ("early", "midventral", "midlateral", "midparietal", "ventral", "lateral", "parietal")


def subdivide(faces: np.ndarray, n_vertices: int):
    """One icosahedral subdivision: every edge gets a new vertex (numbered after the old ones) and
    every triangle becomes four. Returns (faces, edges): the midpoint of ``edges[k]`` is vertex
    ``n_vertices + k``."""
    e = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    edges, inverse = np.unique(e, axis=0, return_inverse=True)
    mid = n_vertices + inverse.reshape(3, len(faces)).T  # (F, 3): ab, bc, ca
    a, b, c = faces.T
    ab, bc, ca = mid.T
    return np.concatenate([np.c_[a, ab, ca], np.c_[ab, b, bc], np.c_[ca, bc, c], np.c_[ab, bc, ca]]), edges


def fake_fsaverage(order: int = 1) -> dict:
    """nilearn's fsaverage5 subdivided ``order`` times: an icosahedral fsaverage whose first 10,242
    vertices are fsaverage5's (order 2 has fsaverage's 163,842 vertices and 327,680 faces).

    Returns ``{"lh"|"rh": {"inflated", "pial", "sphere", "flat": (N, 3), "faces", "flat_faces", "sulc"}}``.
    """
    from nilearn.datasets import load_fsaverage, load_fsaverage_data

    fs5 = load_fsaverage("fsaverage5")
    sulc = load_fsaverage_data(mesh="fsaverage5", data_type="sulcal")
    out = {}
    for hemi, part in (("lh", "left"), ("rh", "right")):
        geo = {k: np.asarray(fs5[k].parts[part].coordinates, np.float64) for k in ("inflated", "pial", "sphere", "flat")}
        faces = np.asarray(fs5["inflated"].parts[part].faces, np.int64)
        flat_faces = np.asarray(fs5["flat"].parts[part].faces, np.int64)
        s = np.asarray(sulc.data.parts[part], np.float64).ravel()
        for _ in range(order):
            n = len(geo["sphere"])
            new_faces, edges = subdivide(faces, n)
            flat_used = np.zeros(n, bool)
            flat_used[flat_faces.ravel()] = True
            for k in geo:
                geo[k] = np.concatenate([geo[k], geo[k][edges].mean(1)])
            geo["sphere"] *= 100 / np.linalg.norm(geo["sphere"], axis=1, keepdims=True)
            s = np.concatenate([s, s[edges].mean(1)])
            # the flat patch keeps the faces whose corners were all in it
            inside = np.concatenate([flat_used, flat_used[edges].all(1)])
            keep = {tuple(f) for f in np.sort(flat_faces, axis=1).tolist()}
            parent = np.sort(np.repeat(faces, 1, axis=0), axis=1)
            was_flat = np.array([tuple(f) in keep for f in parent.tolist()])
            flat_faces = new_faces[np.tile(was_flat, 4)]
            faces = new_faces
            assert inside[flat_faces].all()
        out[hemi] = {**{k: v.astype(np.float32) for k, v in geo.items()}, "faces": faces.astype(np.int32),
                     "flat_faces": flat_faces.astype(np.int32), "sulc": s.astype(np.float32)}
    return out


def write_patch(path: Path, coords: np.ndarray, faces: np.ndarray) -> None:
    """A FreeSurfer binary patch of the vertices used by ``faces`` (as ``?h.full.flat.patch.3d``)."""
    used = np.unique(faces)
    rec = np.zeros(len(used), np.dtype([("vno", ">i4"), ("xyz", ">f4", 3)]))
    rec["vno"] = used + 1
    rec["xyz"] = coords[used]
    path.write_bytes(np.array([-1, len(used)], ">i4").tobytes() + rec.tobytes())


def write_fsaverage_dir(fsdir: Path, mesh: dict, flat: bool = True) -> None:
    """FreeSurfer files of a (fake) fsaverage: surf/{lh,rh}.inflated, .pial, .sphere, .sulc (+ flat patch)."""
    surf = Path(fsdir) / "surf"
    surf.mkdir(parents=True, exist_ok=True)
    for hemi, m in mesh.items():
        for kind in ("inflated", "pial", "sphere"):
            nib.freesurfer.write_geometry(str(surf / f"{hemi}.{kind}"), m[kind].astype(np.float64), m["faces"])
        nib.freesurfer.write_morph_data(str(surf / f"{hemi}.sulc"), m["sulc"])
        if flat:
            write_patch(surf / f"{hemi}.full.flat.patch.3d", m["flat"], m["flat_faces"])


def surface_atlases(coords: np.ndarray, region: np.ndarray) -> dict:
    """Plausible ROI atlases on one hemisphere's inflated ``coords``: bands from the occipital pole
    inside ``region``; returns {atlas: (N,) int labels}."""
    y, z = coords[:, 1], coords[:, 2]
    lo, hi = np.percentile(y[region], [0, 100])
    t = (y - lo) / max(hi - lo, 1e-6)  # 0 at the occipital pole
    band = np.clip((t * 4).astype(int), 0, 3)  # V1, V2, V3, hV4
    prf = np.where(band < 3, 1 + 2 * band + (z > np.median(z[region])), 7)
    faces = np.where((t > 0.45) & (z < np.percentile(z[region], 35)), 1 + np.clip(((t - 0.45) * 6).astype(int), 0, 2), 0)
    streams = np.clip((t * 7).astype(int), 0, 6) + 1
    return {name: np.where(region, lab, 0).astype(np.int32)
            for name, lab in (("prf-visualrois", prf), ("floc-faces", faces), ("streams", streams))}


ATLAS_NAMES = {"prf-visualrois": PRF_ROIS, "floc-faces": FLOC_FACES, "streams": STREAMS}


def write_ctab(path: Path, names) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("0 Unknown\n" + "".join(f"{k} {n}\n" for k, n in enumerate(names, start=1)))


def _patterns(sphere: np.ndarray, region: np.ndarray, k: int, rng) -> np.ndarray:
    """k smooth bumps on the sphere centred inside ``region``: (k, N)."""
    unit = sphere / np.linalg.norm(sphere, axis=1, keepdims=True)
    centres = unit[rng.choice(np.flatnonzero(region), k, replace=False)]
    angle = np.arccos(np.clip(unit @ centres.T, -1, 1))  # (N, k)
    return np.exp(-(angle / 0.12) ** 2).T


def _structured_images(n: int, size: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Images of a few coloured blobs and the latent (n, 8) that drew them (it drives the betas)."""
    z = rng.standard_normal((n, 8))
    yy, xx = np.mgrid[0:size, 0:size] / size
    imgs = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        im = np.ones((size, size, 3)) * (0.5 + 0.2 * np.tanh(z[i, :3]))
        for b in range(3):
            cx, cy = 0.5 + 0.3 * np.tanh(z[i, 3 + b]), 0.5 + 0.3 * np.tanh(z[i, (4 + b) % 8])
            blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 0.02)[..., None]
            im = im * (1 - blob) + blob * rng.random(3)
        imgs[i] = np.clip(im * 255, 0, 255).astype(np.uint8)
    return imgs, z


def make_nsd_display_tree(root: Path, space: str = "fsaverage", subjects=(1, 2), sessions: int = 2, trials: int = 30,
                          order: int = 1, flat: bool = True, volume_shape=(20, 24, 20), n_brick: int = 200,
                          img: int = 32, seed: int = 0) -> dict:
    """An NSD tree in NSD's formats with what the app draws, betas driven by the images.

    ``fsaverage``: a fake fsaverage (:func:`fake_fsaverage`, ``order`` 1 = 40,962 vertices per
    hemisphere, 2 = fsaverage's 163,842) under ``nsddata/freesurfer/fsaverage/surf``, a posterior
    nsdgeneral and the prf-visualrois / floc-faces / streams atlases (``.mgz`` + ``.mgz.ctab``) under
    ``label/``, and ``.mgh`` betas. ``func1pt8mm``: per subject a ``volume_shape`` grid with
    ``roi/nsdgeneral.nii.gz`` and the same atlases, ``mean.nii.gz``, ``brainmask.nii.gz``, int16
    ``betas_sessionNN.hdf5`` and the transforms to the (fake) fsaverage. Returns facts for checks.
    """
    rng = np.random.default_rng(seed)
    root = Path(root)
    info = make_nsd_tree(root, subjects=subjects, sessions={s: sessions for s in subjects}, trials=trials, n_vert=8,
                         n_brick=n_brick, img=img, seed=seed)
    layout = info["layout"]
    images, latent = _structured_images(n_brick, img, rng)
    with h5py.File(layout.stimuli, "w") as f:
        f.create_dataset("imgBrick", data=images)
    mesh = fake_fsaverage(order)
    fsdir = root / "nsddata" / "freesurfer" / "fsaverage"
    write_fsaverage_dir(fsdir, mesh, flat=flat)
    regions = {h: mesh[h]["inflated"][:, 1] < np.percentile(mesh[h]["inflated"][:, 1], 12) for h in ("lh", "rh")}
    for h in ("lh", "rh"):
        nib.save(nib.MGHImage(regions[h].astype(np.float32).reshape(-1, 1, 1), np.eye(4)), str(layout.nsdgeneral_label(h)))
        for name, lab in surface_atlases(mesh[h]["inflated"], regions[h]).items():
            nib.save(nib.MGHImage(lab.reshape(-1, 1, 1), np.eye(4)), str(fsdir / "label" / f"{h}.{name}.mgz"))
    for name, names in ATLAS_NAMES.items():
        write_ctab(fsdir / "label" / f"{name}.mgz.ctab", names)
    n = len(mesh["lh"]["sphere"])
    weights = {h: _patterns(mesh[h]["sphere"], regions[h], 8, rng) for h in ("lh", "rh")}
    trial_ids = {s: info["subjectim"][s - 1, info["masterordering"][:sessions * trials] - 1] - 1 for s in subjects}
    out = {"layout": layout, "n_vertices": n, "regions": regions, "fsaverage_dir": fsdir, "mesh": mesh}
    if space == "fsaverage":
        for s in subjects:
            for k in range(1, sessions + 1):
                ids = trial_ids[s][(k - 1) * trials:k * trials]
                for h in ("lh", "rh"):
                    b = latent[ids] @ weights[h] + 0.3 * rng.standard_normal((trials, n))
                    b[:, np.flatnonzero(regions[h])[0]] = np.nan  # a vertex of the mask with no value (NSD has a few)
                    nib.save(nib.MGHImage(b.T.astype(np.float32).reshape(n, 1, 1, trials), np.eye(4)),
                             str(layout.mgh(s, h, k)))
        return out
    out["volumes"] = {s: _write_volume_subject(root, layout, s, mesh, regions, volume_shape, latent, weights,
                                               trial_ids[s], sessions, trials, rng) for s in subjects}
    return out


def _write_volume_subject(root, layout, s, mesh, regions, shape, latent, weights, trial_ids, sessions, trials, rng):
    """One func1pt8mm subject: transforms, ROI and atlases, mean, brain mask and hdf5 betas."""
    X, Y, Z = shape
    affine = np.diag([1.8, 1.8, 1.8, 1.0])
    affine[:3, 3] = -(np.asarray(shape) - 1) / 2 * 1.8
    tdir = root / "nsddata" / "ppdata" / f"subj{s:02d}" / "transforms"
    func = root / "nsddata" / "ppdata" / f"subj{s:02d}" / "func1pt8mm"
    (func / "roi").mkdir(parents=True, exist_ok=True)
    tdir.mkdir(parents=True, exist_ok=True)
    roi = np.zeros(shape, np.int16)
    atlases = {name: np.zeros(shape, np.int16) for name in ATLAS_NAMES}
    resp = np.zeros((latent.shape[1], *shape))
    hits = np.zeros(shape)
    for h in ("lh", "rh"):
        infl = mesh[h]["inflated"]
        lo, hi = infl.min(0), infl.max(0)
        u = 0.15 + 0.7 * (infl - lo) / (hi - lo)  # inside the middle of the box
        xs = (X / 2 + u[:, 0] * (X / 2 - 1)) if h == "lh" else (u[:, 0] * (X / 2 - 1))  # lh at large x
        coords = np.c_[xs, u[:, 1] * (Y - 1), u[:, 2] * (Z - 1)] + 1  # 1-based, as NSD's transforms
        coords[~np.isfinite(coords).all(1)] = 9999
        nib.save(nib.MGHImage(coords.astype(np.float32).reshape(-1, 1, 1, 3), np.eye(4)),
                 str(tdir / f"{h}.func1pt8-to-white.mgz"))
        n = len(infl)
        nib.save(nib.MGHImage(np.arange(1, n + 1, dtype=np.float32).reshape(-1, 1, 1), np.eye(4)),
                 str(tdir / f"{h}.white-to-fsaverage.mgz"))
        ijk = np.rint(coords - 1).astype(int)
        inside = regions[h]
        roi[tuple(ijk[inside].T)] = 1
        for name, lab in surface_atlases(infl, inside).items():
            atlases[name][tuple(ijk[inside].T)] = lab[inside]
        np.add.at(resp, (slice(None), *ijk[inside].T), weights[h][:, inside])
        np.add.at(hits, tuple(ijk[inside].T), 1)
    resp /= np.maximum(hits, 1)
    roi[0, 0, 0] = -1  # NSD's ROIs use -1 outside the brain
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, d) for d in shape], indexing="ij"), -1)
    brain = (grid ** 2).sum(-1) < 1.1
    mean = (brain * (800 + 300 * np.cos(grid[..., 1] * 6) * np.cos(grid[..., 2] * 5))).astype(np.float32)
    for name, vol in (("roi/nsdgeneral", roi), ("mean", mean), ("brainmask", brain.astype(np.int16)),
                      *((f"roi/{n}", a) for n, a in atlases.items())):
        nib.save(nib.Nifti1Image(vol, affine), str(func / f"{name}.nii.gz"))
    for name, names in ATLAS_NAMES.items():
        write_ctab(root / "nsddata" / "freesurfer" / f"subj{s:02d}" / "label" / f"{name}.mgz.ctab", names)
    d = layout.betas_dir(s, "func1pt8mm")
    d.mkdir(parents=True, exist_ok=True)
    for k in range(1, sessions + 1):
        ids = trial_ids[(k - 1) * trials:k * trials]
        b = np.tensordot(latent[ids], resp, axes=1) + 0.3 * rng.standard_normal((trials, *shape))
        with h5py.File(d / f"betas_session{k:02d}.hdf5", "w") as f:
            f.create_dataset("betas", data=np.clip(b * 300, -32000, 32000).astype(np.int16).transpose(0, 3, 2, 1))
    return {"shape": shape, "affine": affine, "n_voxels": int((roi > 0).sum())}


def prepare_display_tree(root: Path, space: str, subjects=(1, 2), order: int = 0, trials: int = 12,
                         volume_shape=(12, 14, 12)):
    """:func:`make_nsd_display_tree` under ``root/nsd`` prepared into ``root/prepared``: (Dataset, facts)."""
    from brainit_core.data.nsd import prepare_nsd

    facts = make_nsd_display_tree(root / "nsd", space=space, subjects=subjects, order=order, trials=trials,
                                  volume_shape=volume_shape)
    ds, _ = prepare_nsd(root / "nsd", list(subjects), root / "prepared", space=space, trials_per_session=trials,
                        image_size=32, n_vertices_per_hemi=facts["n_vertices"], val_images=1)
    return ds, facts
