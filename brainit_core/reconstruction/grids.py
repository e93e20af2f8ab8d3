"""The app's reconstruction grids: test images of one subject through the pipeline, with per-image
metrics, cached on disk.

- :func:`reconstruct_grid`: test images of one subject through the pipeline (fast mode, both
  branches plus semantic-only), with per-image metrics, cached on disk under
  ``$BRAINIT_DATA/cache/app`` (default ``~/.brainit/cache/app``) keyed by the run's and the
  generators' sha256, the dataset, the subject, the image ids and the settings, so revisiting the
  page is instant and a retrained model never shows stale images. A bundle (``assets/demo``) can
  ship the default grids in ``<bundle>/grids/`` (:func:`add_shipped_grids`), read when the disk
  cache has no entry, so the app's first visit to Reconstructions does not wait for the pipeline.
- :func:`reconstruct_betas`: any betas (an upload, a simulated response) the same way, uncached.
- :func:`image_metrics`: per-image PixCorr / SSIM. Exports of a grid are in :mod:`brainit_core.viz.grids`.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from brainit_core.errors import BrainITError, DataFormatError
from brainit_core.fileio import try_read_json
from brainit_core.utils import default_data_dir
from brainit_core.viz.images import fit_images

COLUMNS = ("ground truth", "low-level", "semantic", "fused")
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

    def metric_caption(self, column: str, b: int) -> str:
        """``"PixCorr 0.412 · SSIM 0.301"`` of image ``b`` in a reconstruction ``column``."""
        m = self.metrics[column]
        return f"PixCorr {m['PixCorr'][b]:.3f} · SSIM {m['SSIM'][b]:.3f}"

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
    record = try_read_json(manifest)
    files = record.get("files") if isinstance(record, dict) else None
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


#: Names of the files :func:`add_shipped_grids` writes (the entry's key, and ``_save``'s temporary files).
GRID_ENTRY = re.compile(r"^[0-9a-f]{64}\.npz$|^tmp[^/]*\.npz\.part$")


def remove_shipped_grids(grids_dir) -> int:
    """Remove the grid entries (files named like :data:`GRID_ENTRY`) in a bundle's ``grids/``; returns
    how many. A folder holding anything else is refused whole (``BrainITError`` naming what it holds)."""
    grids_dir = Path(grids_dir)
    if not grids_dir.is_dir():
        return 0
    entries = sorted(grids_dir.iterdir())
    foreign = [p.name for p in entries if not (p.is_file() and GRID_ENTRY.match(p.name))]
    if foreign:
        raise BrainITError(f"{grids_dir} holds {', '.join(foreign[:5])}, which are not reconstruction grids "
                           "(<sha256>.npz): nothing there is removed; move them away and run this again")
    for p in entries:
        p.unlink()
    return len(entries)


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
    result = _result(subject, ids, out, dataset.images(ids), time.perf_counter() - t0, key)
    if cache:
        _save(path, result)
    return result


def reconstruct_betas(pipeline, betas, subject: str, truth=None, settings: ReconSettings | None = None) -> GridResult:
    """Reconstruct any betas of ``subject`` (not cached), scored against ``truth`` when given.

    Parameters
    ----------
    pipeline : BrainITPipeline
    betas : float32 (B, V)
        The subject's betas in the dataset's vertex order (one trial, or a mean of repeats).
    subject : str
    truth : uint8 (B, H, W, 3), optional
        The images seen (any size: centre-cropped and resized to the reconstructions'); it becomes
        the ``"ground truth"`` column and the reference of the metrics.
    settings : ReconSettings, optional
        Default: fast mode, both branches, no semantic-only image, seed 0 (image ``b`` uses seed ``b``).

    Returns
    -------
    GridResult
        ``image_ids`` are ``0..B-1``; ``seconds`` is the pipeline's own timing.
    """
    settings = settings or ReconSettings(semantic_only=False)
    ids = np.arange(len(betas), dtype=np.int64)
    out = pipeline(np.asarray(betas, dtype=np.float32), subject, **settings.pipeline_kwargs(ids))
    return _result(subject, ids, out, truth, float(out.timing.get("total", 0.0)), "")


def compare_subjects(pipeline, dataset, subjects, image_id: int, settings: ReconSettings,
                     compute: bool = True) -> dict:
    """One shared test image reconstructed for each subject (disk-cached like :func:`reconstruct_grid`).

    Returns
    -------
    dict
        Subject -> :class:`GridResult` of that one image, ``None`` when not cached and ``compute`` is
        False, or a message (str) saying why that subject cannot be reconstructed.
    """
    out = {}
    for s in subjects:
        try:
            out[s] = reconstruct_grid(pipeline, dataset, s, settings=settings, image_ids=[image_id], compute=compute)
        except BrainITError as exc:
            out[s] = str(exc)
    return out


def _result(subject: str, ids, out, truth, seconds: float, key: str) -> GridResult:
    """A :class:`GridResult` from a :class:`ReconstructionOutput` and the seen images (or None)."""
    images = outputs_to_columns(out)
    if truth is not None:
        images = {"ground truth": fit_images(truth, out.images.shape[1:3]), **images}
    result = GridResult(subject, np.asarray(ids, dtype=np.int64), images, seconds=seconds, key=key)
    if truth is not None:
        result.metrics = {c: image_metrics(images["ground truth"], x) for c, x in images.items() if c != "ground truth"}
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
