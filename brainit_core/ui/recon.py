"""Reconstruction helpers for the app's pages (no streamlit here, so they are testable alone).

- :func:`reconstruct_grid`: test images of one subject through the pipeline (fast mode, both
  branches plus semantic-only), with per-image metrics, cached on disk under
  ``$BRAINIT_DATA/cache/app`` (default ``~/.brainit/cache/app``) keyed by the run's and the
  generators' sha256, the dataset, the subject, the image ids and the settings, so revisiting the
  page is instant and a retrained model never shows stale images. A bundle (``assets/demo``) can
  ship the default grids in ``<bundle>/grids/`` (:func:`add_shipped_grids`), read when the disk
  cache has no entry, so the app's first visit to Reconstructions does not wait for the pipeline.
- :func:`image_metrics`, :func:`metrics_csv`, :func:`grid_png`: per-image PixCorr / SSIM and exports.
- :func:`read_betas`: one trial's betas from an uploaded ``.npy`` / ``.h5`` / ``.mgh`` file, checked.
- :func:`nsd_check`, :func:`twin_report_rows`: the Data page's checks as data.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from brainit_core.errors import DataFormatError
from brainit_core.utils import default_data_dir

COLUMNS = ("ground truth", "low-level", "semantic", "fused")
MAX_UPLOAD_MB = 50
CACHE_VERSION = 1
GRID_SIZE = 8  # test images in the Reconstructions page's grid by default (and in a bundle's shipped grids)


@dataclass(frozen=True)
class ReconSettings:
    """Pipeline settings the app lets the user change (``None`` = the generators' default).

    Parameters
    ----------
    branches : tuple of str
        Subset of ``("low_level", "semantic")``.
    mode : str
        ``"fast"`` (amortised inverter) or ``"dip"`` (Deep Image Prior).
    fusion_strength, guidance_scale : float or None
    steps, dip_steps : int or None
    seed : int
        Image ``b`` of id ``i`` uses seed ``seed + i`` (as the CLI does), so an image's result does
        not depend on which other images are reconstructed with it.
    semantic_only : bool
        Also return the semantic-only generation when both branches are on.
    """

    branches: tuple = ("low_level", "semantic")
    mode: str = "fast"
    fusion_strength: float | None = None
    guidance_scale: float | None = None
    steps: int | None = None
    seed: int = 0
    dip_steps: int | None = None
    semantic_only: bool = True

    def pipeline_kwargs(self, image_ids) -> dict:
        return {"branches": tuple(self.branches), "mode": self.mode, "fusion_strength": self.fusion_strength,
                "guidance_scale": self.guidance_scale, "steps": self.steps,
                "seed": [int(self.seed) + int(i) for i in image_ids],
                "dip_steps": self.dip_steps if self.mode == "dip" else None,
                "semantic_only": self.semantic_only and len(self.branches) == 2, "return_attention": False}


GRID_SETTINGS = ReconSettings(mode="fast", seed=0)  # the Reconstructions page's grid


@dataclass
class GridResult:
    """Reconstructions of some test images of one subject.

    Attributes
    ----------
    subject : str
    image_ids : ndarray, int64, (N,)
    images : dict
        Column name (:data:`COLUMNS`) -> uint8 (N, H, W, 3); a column is missing when its branch was off.
    metrics : dict
        Column name -> {"PixCorr": (N,), "SSIM": (N,)} for each reconstruction column.
    seconds : float
        Compute time when the result was made (0 when the cache did not know).
    cached : bool
        Read from the disk cache.
    key : str
    """

    subject: str
    image_ids: np.ndarray
    images: dict
    metrics: dict = field(default_factory=dict)
    seconds: float = 0.0
    cached: bool = False
    key: str = ""

    def rows(self) -> list[dict]:
        """One row per image and reconstruction column (for a table or a CSV file)."""
        out = []
        for b, i in enumerate(self.image_ids):
            for col, m in self.metrics.items():
                out.append({"subject": self.subject, "image_id": int(i), "reconstruction": col,
                            "PixCorr": round(float(m["PixCorr"][b]), 4), "SSIM": round(float(m["SSIM"][b]), 4)})
        return out


def cache_root() -> Path:
    """``$BRAINIT_DATA/cache/app`` (default ``~/.brainit/cache/app``)."""
    return default_data_dir() / "cache" / "app"


def cache_key(run_sha: str, generators_sha: str, dataset: str, subject: str, image_ids, settings: ReconSettings) -> str:
    """sha256 of everything a reconstruction depends on (checkpoints, data, ids, settings).

    ``dataset`` is the dataset's directory; see :func:`dataset_identity` for how it enters the key.
    """
    blob = json.dumps({"v": CACHE_VERSION, "run": run_sha, "generators": generators_sha,
                       "dataset": dataset_identity(dataset), "subject": subject,
                       "ids": [int(i) for i in image_ids], "settings": asdict(settings)}, sort_keys=True, default=list)
    return hashlib.sha256(blob.encode()).hexdigest()


def _bundle_of(dataset) -> Path | None:
    """The bundle directory holding ``dataset`` as its ``dataset/`` (with a ``MANIFEST.json``), else None."""
    path = Path(dataset).expanduser().resolve()
    return path.parent if path.name == "dataset" and (path.parent / "MANIFEST.json").is_file() else None


def dataset_identity(dataset) -> str:
    """What identifies a dataset in the cache key.

    A dataset inside a bundle is identified by the sha256 of its files as the bundle's
    ``MANIFEST.json`` lists them (``verify-bundle`` checks the files against it), so the same bundle
    has the same key in every checkout and a bundle can ship its grids. Any other dataset is
    identified by its resolved path.
    """
    bundle = _bundle_of(dataset)
    if bundle is not None:
        mf = bundle / "MANIFEST.json"
        st = mf.stat()
        listed = _manifest_dataset_hash(str(mf), st.st_mtime_ns, st.st_size)
        if listed:
            return "bundle:" + listed
    return str(Path(dataset).expanduser().resolve())


@lru_cache(maxsize=16)
def _manifest_dataset_hash(manifest: str, mtime_ns: int, size: int) -> str | None:
    """sha256 over the ``dataset/`` entries of a bundle manifest (parsed once per version of the file:
    the page asks for it on every rerun)."""
    try:
        files = json.loads(Path(manifest).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(files, dict):
        return None
    listed = {k: v.get("sha256") for k, v in files.items() if k.startswith("dataset/") and isinstance(v, dict)}
    return hashlib.sha256(json.dumps(listed, sort_keys=True).encode()).hexdigest() if listed else None


def shipped_grids_dir(dataset) -> Path | None:
    """``<bundle>/grids`` when ``dataset`` is a bundle's dataset (whether or not it ships grids)."""
    bundle = _bundle_of(dataset)
    return None if bundle is None else bundle / "grids"


def add_shipped_grids(pipeline, dataset, subjects=None, n: int = GRID_SIZE,
                      settings: ReconSettings = GRID_SETTINGS) -> list[Path]:
    """Compute the default grid of each subject into the bundle's ``grids/`` directory.

    ``dataset`` must be the bundle's ``dataset/`` and ``pipeline`` its run and generators; the bundle's
    ``MANIFEST.json`` must already list the dataset files (its file table is refreshed afterwards by
    the caller, see :func:`brainit_core.bundle.add_grids`). Returns the files written.
    """
    out_dir = shipped_grids_dir(dataset.path)
    if out_dir is None:
        raise DataFormatError(f"{dataset.path} is not the dataset/ of a bundle with a MANIFEST.json")
    written = []
    for subject in subjects or pipeline.run.subjects:
        result = reconstruct_grid(pipeline, dataset, subject, n, settings, cache=False)
        path = out_dir / f"{result.key}.npz"
        _save(path, result)
        written.append(path)
    return written


def cached_grids(root=None) -> int:
    """Number of reconstruction sets in the disk cache."""
    root = Path(root) if root else cache_root()
    return len(list(root.glob("*.npz"))) if root.is_dir() else 0


def test_set(dataset, subject: str, n: int | None = None, image_ids=None) -> tuple[np.ndarray, np.ndarray]:
    """Repeat-averaged test betas and image ids of ``subject`` (the first ``n``, or the given ids).

    Returns
    -------
    betas : float32 (N, V)
    ids : int64 (N,)
    """
    betas, ids = dataset.subject(subject).averaged("test")
    if image_ids is not None:
        pos = {int(i): k for k, i in enumerate(ids)}
        missing = [int(i) for i in image_ids if int(i) not in pos]
        if missing:
            raise DataFormatError(f"{subject} has no test betas for image ids {missing}")
        rows = np.array([pos[int(i)] for i in image_ids], dtype=np.int64)
        return betas[rows], ids[rows]
    n = len(ids) if n is None else int(n)
    return betas[:n], ids[:n]


def outputs_to_columns(out) -> dict:
    """A :class:`ReconstructionOutput` as column name -> images (only the branches it produced)."""
    cols = {}
    for name, x in (("low-level", out.low_level), ("semantic", out.semantic), ("fused", out.fused)):
        if x is not None:
            cols[name] = x
    return cols


def reconstruct_grid(pipeline, dataset, subject: str, n: int | None = None, settings: ReconSettings | None = None,
                     image_ids=None, cache: bool = True, root=None, compute: bool = True) -> GridResult | None:
    """Reconstruct test images of ``subject`` (disk-cached) with per-image metrics.

    Parameters
    ----------
    pipeline : BrainITPipeline
    dataset : Dataset
    subject : str
    n : int, optional
        The first ``n`` test images (in the dataset's order), unless ``image_ids`` is given.
    settings : ReconSettings, optional
        Default: fast mode, both branches plus semantic-only.
    image_ids : sequence of int, optional
    cache : bool
        Read and write the disk cache; also read a bundle's shipped grids (:func:`add_shipped_grids`).
    root : path, optional
        Cache directory (default :func:`cache_root`).
    compute : bool
        ``False``: return the cached result or ``None`` (never run the pipeline).
    """
    import time

    settings = settings or ReconSettings()
    betas, ids = test_set(dataset, subject, n, image_ids)
    run_sha = getattr(pipeline.run, "checkpoint_sha256", "") or ""
    key = cache_key(run_sha, pipeline.generators.sha256, str(dataset.path), subject, ids, settings)
    root = Path(root) if root else cache_root()
    path = root / f"{key}.npz"
    shipped = shipped_grids_dir(dataset.path)
    # the disk cache first, then a bundle's shipped grids (read-only: never deleted here, verify-bundle
    # reports a damaged one); a damaged cache entry is recomputed, never shown
    candidates = [(path, True)] + ([(shipped / f"{key}.npz", False)] if shipped is not None else [])
    for candidate, ours in candidates if cache else []:
        if candidate.is_file():
            try:
                return _load(candidate, subject, key)
            except (OSError, ValueError, KeyError):
                if ours:
                    candidate.unlink(missing_ok=True)
    if not compute:
        return None
    t0 = time.perf_counter()
    out = pipeline(betas, subject, **settings.pipeline_kwargs(ids))
    images = {"ground truth": _fit(dataset.images(ids), out.images.shape[1:3]), **outputs_to_columns(out)}
    result = GridResult(subject, np.asarray(ids, dtype=np.int64), images, seconds=time.perf_counter() - t0, key=key)
    result.metrics = {c: image_metrics(images["ground truth"], x) for c, x in images.items() if c != "ground truth"}
    if cache:
        _save(path, result)
    return result


def image_metrics(gt, recon) -> dict:
    """Per-image PixCorr and SSIM (protocol definitions, ``brainit_core.metrics.pixel``).

    Parameters
    ----------
    gt, recon : uint8 (N, H, W, 3)

    Returns
    -------
    dict with ``PixCorr`` and ``SSIM``, each float64 (N,)
    """
    from brainit_core.metrics.pixel import pixcorr, ssim

    return {"PixCorr": np.asarray(pixcorr(gt, recon, reduce=False), dtype=np.float64),
            "SSIM": np.asarray(ssim(gt, recon, reduce=False), dtype=np.float64)}


def metrics_csv(rows: list[dict]) -> str:
    """Rows of :meth:`GridResult.rows` as CSV text."""
    import csv

    buf = io.StringIO()
    fields = ["subject", "image_id", "reconstruction", "PixCorr", "SSIM"]
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: r[k] for k in fields})
    return buf.getvalue()


def grid_image(columns: dict, cell: int = 128, pad: int = 4, header: int = 18) -> np.ndarray:
    """Columns of images side by side, one row per image, with a header naming each column.

    Parameters
    ----------
    columns : dict
        Column name -> uint8 (N, H, W, 3); all with the same N.
    cell : int
        Size of each image in the grid (pixels).

    Returns
    -------
    uint8 (header + N * (cell + pad) + pad, n_columns * (cell + pad) + pad, 3)
    """
    from PIL import Image, ImageDraw

    names = list(columns)
    n = {len(v) for v in columns.values()}
    if len(n) != 1:
        raise ValueError(f"all columns need the same number of images, got {sorted(n)}")
    n = n.pop()
    W = len(names) * (cell + pad) + pad
    H = header + n * (cell + pad) + pad
    canvas = Image.new("RGB", (W, H), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for c, name in enumerate(names):
        x = pad + c * (cell + pad)
        draw.text((x + 2, 3), name, fill=(0, 0, 0))
        for r, im in enumerate(columns[name]):
            tile = Image.fromarray(np.asarray(im, dtype=np.uint8)).resize((cell, cell), Image.BILINEAR)
            canvas.paste(tile, (x, header + r * (cell + pad)))
    return np.asarray(canvas)


def grid_png(columns: dict, cell: int = 128) -> bytes:
    """:func:`grid_image` encoded as PNG bytes (for a download button)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(grid_image(columns, cell=cell)).save(buf, format="PNG")
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------
# uploaded betas

def read_betas(name: str, data: bytes, n_vertices: int, key: str | None = None,
               max_mb: float = MAX_UPLOAD_MB) -> np.ndarray:
    """One trial's betas from an uploaded file, checked against the subject's vertex count.

    Parameters
    ----------
    name : str
        File name; its suffix picks the reader: ``.npy`` (``allow_pickle=False``), ``.h5`` /
        ``.hdf5`` (the dataset ``key``, else the first 1-D or 2-D dataset), ``.mgh`` / ``.mgz``
        (nibabel).
    data : bytes
    n_vertices : int
        The subject's vertex count V.
    key : str, optional
        HDF5 dataset name.
    max_mb : float
        Files larger than this are refused.

    Returns
    -------
    float32 (V,)
        A 2-D array with one row of V values (or one column) is accepted; several rows are
        averaged only if they are repeats the user meant, so they are refused instead.

    Raises
    ------
    DataFormatError
        With what was expected: unknown suffix, too large, unreadable, wrong shape, NaN or inf.
    """
    size_mb = len(data) / 2 ** 20
    if size_mb > max_mb:
        raise DataFormatError(f"{name}: {size_mb:.1f} MB is over the {max_mb:.0f} MB limit for one trial's betas")
    suffix = Path(name).suffix.lower()
    if suffix == ".gz" and name.lower().endswith(".mgh.gz"):
        suffix = ".mgz"
    try:
        if suffix == ".npy":
            arr = np.load(io.BytesIO(data), allow_pickle=False)
        elif suffix in (".h5", ".hdf5"):
            arr = _read_h5(data, key)
        elif suffix in (".mgh", ".mgz"):
            arr = _read_mgh(data, suffix)
        else:
            raise DataFormatError(f"{name}: unknown file type {suffix or '(none)'}; use .npy, .h5/.hdf5 or .mgh")
    except DataFormatError as exc:
        raise DataFormatError(f"{name}: {exc}" if not str(exc).startswith(name) else str(exc)) from exc
    except Exception as exc:  # any reader failure is the file's fault, reported as such
        raise DataFormatError(f"{name}: cannot read as {suffix} ({type(exc).__name__}: {exc})") from exc
    arr = np.asarray(arr)
    if not np.issubdtype(arr.dtype, np.number):
        raise DataFormatError(f"{name}: expected numbers, got dtype {arr.dtype}")
    squeezed = np.squeeze(arr)
    if squeezed.ndim != 1 or squeezed.shape[0] != n_vertices:
        raise DataFormatError(f"{name}: expected one trial of {n_vertices} values (shape ({n_vertices},) or "
                              f"(1, {n_vertices})), got shape {arr.shape}")
    out = squeezed.astype(np.float32)
    bad = ~np.isfinite(out)
    if bad.any():
        raise DataFormatError(f"{name}: {int(bad.sum())} of {n_vertices} values are NaN or inf "
                              "(set them to 0 after z-scoring)")
    return out


def _read_h5(data: bytes, key: str | None) -> np.ndarray:
    import h5py

    with h5py.File(io.BytesIO(data), "r") as f:
        if key:
            if key not in f or not isinstance(f[key], h5py.Dataset):
                raise DataFormatError(f"no dataset {key!r} in the file")
            return f[key][()]
        found = []
        f.visititems(lambda n, obj: found.append(n) if isinstance(obj, h5py.Dataset) and obj.ndim in (1, 2) else None)
        if not found:
            raise DataFormatError("no 1-D or 2-D dataset in the file")
        return f[found[0]][()]


def _read_mgh(data: bytes, suffix: str) -> np.ndarray:
    import nibabel as nib

    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / f"upload{suffix}"
        p.write_bytes(data)
        return np.asarray(nib.load(str(p)).get_fdata(dtype=np.float32))


# ------------------------------------------------------------------------------------------------
# Data page checks

def nsd_check(root, subjects=(1, 2, 5, 7), space: str = "fsaverage") -> tuple[bool, list[str]]:
    """The ``nsd check`` command's verdict and lines (what is present or missing under ``root``)."""
    import argparse

    from brainit_core.data.nsd_cli import _check

    root = Path(str(root)).expanduser()
    if not root.is_dir():
        return False, [f"MISSING NSD root: {root} is not a directory"]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = _check(argparse.Namespace(nsd_root=str(root), subjects=list(subjects), space=space))
    return rc == 0, [line for line in buf.getvalue().splitlines() if line.strip()]


def twin_report_rows(report: dict) -> list[dict]:
    """``validate_twin``'s report as one table row per subject."""
    rows = []
    for s, r in report.items():
        nc = r["noise_ceiling_median"]
        rows.append({"subject": s, "vertices": r["n_vertices"], "contralateral": r["contralateral_fraction"],
                     "ecc-gradient rho": r["eccentricity_gradient_rho"], "NC designed": nc["designed"],
                     "NC measured": nc["measured"], "NC < 10%": r["noise_ceiling_under_10pct"],
                     **{f"d' {k}": v for k, v in r["category_selectivity_dprime"].items()}})
    return rows


def dataset_summary(dataset) -> list[dict]:
    """One row per subject: vertices, trials, split sizes, held out or not."""
    rows = []
    for s in dataset.subjects:
        sd = dataset.subject(s)
        rows.append({"subject": s, "vertices": int(len(sd.vertices)), "trials": int(len(sd.image_ids)),
                     "train images": int(len(sd.train_image_ids)), "val images": int(len(sd.val_image_ids)),
                     "test images": int(len(sd.test_image_ids)), "held out": s in dataset.heldout_subjects})
    return rows


def fit_image(image: np.ndarray, size: int) -> np.ndarray:
    """An RGB uint8 image centre-cropped to a square and resized to ``size`` (H, W, 3)."""
    from PIL import Image

    im = np.asarray(image)
    if im.ndim == 2:
        im = np.repeat(im[..., None], 3, axis=2)
    im = im[..., :3].astype(np.uint8)
    h, w = im.shape[:2]
    s = min(h, w)
    im = im[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    return np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR))


def _fit(images: np.ndarray, hw) -> np.ndarray:
    if tuple(images.shape[1:3]) == tuple(hw):
        return images
    return np.stack([fit_image(im, hw[0]) for im in images])


def _save(path: Path, result: GridResult) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"img::{k}": v for k, v in result.images.items()}
    arrays.update({f"met::{c}::{m}": v for c, d in result.metrics.items() for m, v in d.items()})
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.part")
    os.close(fd)
    with open(tmp, "wb") as f:
        np.savez(f, ids=result.image_ids, seconds=np.float64(result.seconds), **arrays)
    os.replace(tmp, path)  # atomic: a crash never leaves a half-written entry under the key


def _load(path: Path, subject: str, key: str) -> GridResult:
    with np.load(path, allow_pickle=False) as z:
        images = {k.split("::", 1)[1]: z[k] for k in z.files if k.startswith("img::")}
        metrics: dict = {}
        for k in z.files:
            if k.startswith("met::"):
                _, c, m = k.split("::")
                metrics.setdefault(c, {})[m] = z[k]
        images = {c: images[c] for c in COLUMNS if c in images}
        metrics = {c: metrics[c] for c in COLUMNS if c in metrics}
        return GridResult(subject, z["ids"], images, metrics, float(z["seconds"]), True, key)
