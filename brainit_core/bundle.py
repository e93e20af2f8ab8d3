"""The shipped demo bundle: a trained run, its generators and a test-set slice of the twin.

``assets/demo/`` lets the app run the moment the project is installed, with no training and no
download::

    assets/demo/
      MANIFEST.json      sha256 and size of every file, the configs, how the bundle was made
      dataset/           canonical dataset: the first ``n_test`` test images of every training
                         subject (all repeats) and a few OOD images, plus the twin's ground truth
                         (validation views only); betas float16, and with a held-out subject its
                         first hour of trials (:func:`export_dataset_slice`)
      run/               run.json, bit.*, v2c.*, encoder/encoder.* (no optimiser state)
      generators/        generators.json, autoencoder.*, inverter.*, unet.*
      benchmark/         (optional) the benchmark results the docs quote
      grids/             the Reconstructions page's default grid of the first subject(s), so the
                         app's first visit reads it instead of running the pipeline (:func:`add_grids`)

Checkpoints are stored in float16 (``--half``, the default) to keep the repository small; they
are loaded into float32 models, and their JSON records hold the sha256 of the float16 files.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from brainit_core.checkpoint import checkpoint_exists, read_checkpoint_record, save_checkpoint, sha256_file
from brainit_core.data.info import DatasetInfo
from brainit_core.errors import BrainITError, CheckpointError
from brainit_core.fileio import check_output_dir, read_json, try_read_json, write_json
from brainit_core.locks import FileLock, lock_path_for
from brainit_core.runs import RunDirectory

RUN_CHECKPOINTS = ("bit", "encoder/encoder")
RUN_FILES = ("run.json", "v2c.json", "v2c.npz", "curves.json", "curves.png", "encoder/curves.json")
GENERATOR_CHECKPOINTS = ("autoencoder", "inverter", "unet")
GT_FILES = ("twin.json", "stimuli.npz")
#: Arrays of a subject's ground truth that a compact slice leaves out (see :func:`export_dataset_slice`).
GT_OMITTED = ("noiseless_test",)
#: Marker of a bundle being assembled in ``<out>.tmp`` (a later run may remove that folder).
IN_PROGRESS = ".bundle-in-progress"


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)


def _copy_ground_truth(src: Path, dst: Path, omit=()) -> None:
    """Copy a subject's ground-truth ``.npz`` without the arrays named in ``omit``."""
    if not omit:
        _copy(src, dst)
        return
    with np.load(src, allow_pickle=False) as z:  # the twin's own file, written by twin build
        arrays = {k: z[k] for k in z.files if k not in omit}
    dst.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(dst, **arrays)


def copy_checkpoint(src, dst, half: bool = True) -> Path:
    """Copy the checkpoint ``src`` (``.safetensors`` + ``.json``) to ``dst``, float32 -> float16 if ``half``."""
    from safetensors.torch import load_file
    import torch

    src, dst = Path(src), Path(dst)
    if not checkpoint_exists(src):
        raise CheckpointError(f"{src}.safetensors / {src}.json not found: train it first")
    record = read_checkpoint_record(src)
    if not half:
        _copy(src.with_name(src.name + ".safetensors"), dst.with_name(dst.name + ".safetensors"))
        _copy(src.with_name(src.name + ".json"), dst.with_name(dst.name + ".json"))
        return dst
    tensors = load_file(str(src.with_name(src.name + ".safetensors")))
    tensors = {k: (v.half() if v.dtype == torch.float32 else v) for k, v in tensors.items()}
    meta = dict(record.get("meta", {}))
    meta["bundled_from_sha256"] = record["sha256"]
    meta["stored_dtype"] = "float16"
    save_checkpoint(dst, tensors, record["config"], meta)
    return dst


def export_dataset_slice(data, out, n_test: int = 100, n_ood: int = 24, subjects=None, heldout_minutes: int = 0,
                         n_unlabeled: int = 0, compact: bool = True) -> Path:
    """Write a canonical dataset with the first ``n_test`` test images of ``subjects`` (all trials).

    The slice keeps the subjects' vertex sets, sessions and z-scored single-trial betas as in the
    source (exactly, or rounded to float16 when ``compact``); their train and val lists are empty.
    Twin ground truth files are copied for the kept subjects.

    With ``heldout_minutes`` > 0, each held-out subject of the source (one the run was not trained on)
    comes along with its first ``heldout_minutes`` of training trials in session order (750 per hour,
    as :func:`brainit_core.models.transfer.transfer_trials` counts them) and its test trials, and the
    first ``n_unlabeled`` unlabeled images: enough for the Transfer lab's 15-minute and 1-hour transfers.

    ``compact`` (the default) keeps the bundle small: betas are stored as float16
    (:class:`~brainit_core.data.writer.DatasetWriter`'s ``compact_betas``), and the subjects' ground
    truth leaves out ``noiseless_test`` (:data:`GT_OMITTED`: the noiseless responses to all the twin's
    test images, which only the benchmark's noiseless-oracle row reads, on the full twin).
    """
    from brainit_core.data import DatasetWriter, load_dataset
    from brainit_core.models.transfer import transfer_trials

    ds = load_dataset(data)
    out = Path(out)
    subjects = list(subjects or ds.training_subjects)
    heldout = [s for s in ds.subjects if s not in subjects] if heldout_minutes > 0 else []
    test_ids = None
    for s in subjects + heldout:
        ids = np.sort(ds.subject(s).test_image_ids)
        test_ids = ids if test_ids is None else np.intersect1d(test_ids, ids)
    test_ids = np.sort(test_ids)[:n_test]
    ood = np.sort(ds.image_set("ood"))[:n_ood] if "ood" in ds.image_sets else np.zeros(0, np.int64)
    unl = (ds.image_set("unlabeled")[:n_unlabeled] if heldout and "unlabeled" in ds.image_sets
           else np.zeros(0, np.int64))
    budgets = {s: np.sort(transfer_trials(ds.subject(s), heldout_minutes)) for s in heldout}
    train_ids = {s: np.unique(ds.subject(s).image_ids[t]) for s, t in budgets.items()}
    meta = DatasetInfo(data).metadata
    extra = {k: v for k, v in meta.items() if k not in ("format_version", "source", "mesh", "image_size",
                                                          "subjects", "complete", "heldout_subjects", "build_id")}
    extra["bundle"] = {"from": str(Path(data).resolve()), "n_test": int(len(test_ids)), "n_ood": int(len(ood)),
                       "heldout_minutes": int(heldout_minutes) if heldout else 0,
                       "heldout_trials": {s: int(len(t)) for s, t in budgets.items()}, "n_unlabeled": int(len(unl)),
                       "compact": bool(compact), "ground_truth_omits": list(GT_OMITTED) if compact else []}
    w = DatasetWriter(out, source=ds.source, mesh=ds.mesh, image_size=meta["image_size"], compact_betas=compact,
                      **extra)
    keep = np.unique(np.concatenate([test_ids, ood, unl, *train_ids.values()]).astype(np.int64))
    for start in range(0, len(keep), 256):
        w.add_images(keep[start:start + 256], ds.images(keep[start:start + 256]))
    if len(ood):
        w.add_image_set("ood", ood)
    if len(unl):
        w.add_image_set("unlabeled", unl)
    for s in subjects + heldout:
        sub = ds.subject(s)
        w.begin_subject(s, sub.vertices, sub.hemispheres)
        trials = np.flatnonzero(np.isin(sub.image_ids, test_ids))
        if s in budgets:
            trials = np.union1d(trials, budgets[s])
        sessions = sub.sessions[trials]
        for sess in np.unique(sessions):
            t = trials[sessions == sess]
            w.append_session(s, sub.betas_for_trials(t), sub.image_ids[t], session=int(sess))
        w.finalize_subject(s, train_ids.get(s, np.zeros(0, np.int64)), np.zeros(0, np.int64), test_ids)
    gt = Path(data) / "ground_truth"
    if gt.is_dir():
        for name in GT_FILES:
            if (gt / name).exists():
                _copy(gt / name, out / "ground_truth" / name)
        for s in subjects + heldout:
            if (gt / f"{s}.npz").exists():
                _copy_ground_truth(gt / f"{s}.npz", out / "ground_truth" / f"{s}.npz", omit=GT_OMITTED if compact else ())
    w.finalize(heldout_subjects=heldout)
    return out


def make_bundle(data, run, generators, out, n_test: int = 100, n_ood: int = 24, half: bool = True,
                benchmark=None, grid_subjects: int = 1, heldout_minutes: int = 0, n_unlabeled: int = 0) -> dict:
    """Assemble ``out`` (normally ``assets/demo``) and write its ``MANIFEST.json``.

    ``heldout_minutes`` / ``n_unlabeled``: ship the held-out subjects' first minutes of training
    trials and unlabeled images (:func:`export_dataset_slice`).

    ``grid_subjects``: ship the default Reconstructions grid of the run's first N subjects (0: none).
    Returns the manifest.

    ``out`` must be missing, empty or a bundle whose ``MANIFEST.json`` lists every file in it
    (:func:`check_bundle_target`); the bundle is assembled in ``<out>.tmp`` (marked by
    :data:`IN_PROGRESS`) and renamed over ``out``, under ``out``'s lock (:mod:`brainit_core.locks`).
    """
    source = RunDirectory(run)
    run, generators, out = source.path, Path(generators).expanduser(), Path(out).expanduser()
    with FileLock(lock_path_for(out), what=f"bundle {out}"):
        check_bundle_target(out)
        tmp = out.with_name(out.name + ".tmp")
        if tmp.exists() and not (tmp / IN_PROGRESS).is_file():
            check_output_dir(tmp, "an unfinished bundle")  # refuses a folder of someone else's files
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        (tmp / IN_PROGRESS).write_text(str(os.getpid()))
        manifest = _assemble(tmp, data, source, generators, half, benchmark, grid_subjects, n_test=n_test,
                             n_ood=n_ood, heldout_minutes=heldout_minutes, n_unlabeled=n_unlabeled)
        check_bundle_target(out)
        (tmp / IN_PROGRESS).unlink()
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    return manifest


def _assemble(tmp: Path, data, source: RunDirectory, generators: Path, half: bool, benchmark, grid_subjects: int,
              **slice_sizes) -> dict:
    """The bundle's files in ``tmp``; ``slice_sizes`` go to :func:`export_dataset_slice`."""
    run = source.path
    for name in RUN_CHECKPOINTS:
        copy_checkpoint(run / name, tmp / "run" / name, half=half)
    for name in RUN_FILES:
        if (run / name).exists():
            _copy(run / name, tmp / "run" / name)
    for name in GENERATOR_CHECKPOINTS:
        copy_checkpoint(generators / name, tmp / "generators" / name, half=half)
    _copy(generators / "generators.json", tmp / "generators" / "generators.json")
    export_dataset_slice(Path(data).expanduser(), tmp / "dataset", subjects=source.subjects, **slice_sizes)
    if benchmark is not None:
        for f in Path(benchmark).expanduser().iterdir():
            if f.is_file() and f.suffix in (".json", ".md", ".png", ".csv"):
                _copy(f, tmp / "benchmark" / f.name)
    manifest = {
        "made": time.strftime("%Y-%m-%d %H:%M:%S"),
        "sources": {"data": str(Path(data).expanduser()), "run": str(run), "generators": str(generators)},
        "half": half,
        "configs": {"run": source.record, "generators": read_json(generators / "generators.json")},
        "files": file_table(tmp),
    }
    write_json(tmp / "MANIFEST.json", manifest)
    if grid_subjects > 0:
        manifest = add_grids(tmp, subjects=source.subjects[:grid_subjects])
    return manifest


def check_bundle_target(out) -> None:
    """Refuse a bundle output folder that holds anything but a bundle made by :func:`make_bundle`.

    ``out`` may be missing or empty, or hold a bundle: a ``MANIFEST.json`` whose file table lists
    every file in the folder (so replacing it deletes nothing the bundle command did not write).

    Raises
    ------
    BrainITError
        Naming the folder and the files that are not the bundle's.
    """
    out = Path(out)
    if not check_output_dir(out, "a bundle", marker="MANIFEST.json"):
        return
    manifest = try_read_json(out / "MANIFEST.json")
    listed = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(listed, dict):
        raise BrainITError(f"{out / 'MANIFEST.json'} is not a bundle manifest (expected a JSON object with a "
                           f"'files' table); {out} is left as it is: choose a new or empty --out")
    foreign = [str(p.relative_to(out)) for p in sorted(out.rglob("*"))
               if p.is_file() and p.name != "MANIFEST.json" and str(p.relative_to(out)) not in listed]
    if foreign:
        more = f", … ({len(foreign)} files)" if len(foreign) > 5 else ""
        raise BrainITError(f"{out} holds files its MANIFEST.json does not list ({', '.join(foreign[:5])}{more}): "
                           "they were not written by `bundle` and are not replaced; move them away or choose "
                           "another --out")


def add_grids(root, subjects=None, n: int | None = None, device: str = "cpu", pipeline=None) -> dict:
    """(Re)compute the bundle's shipped grids (``root/grids/``) and refresh ``MANIFEST.json``'s file table.

    Parameters
    ----------
    root : path
        A bundle with ``run/``, ``generators/``, ``dataset/`` and ``MANIFEST.json``.
    subjects : list of str, optional
        Default: the run's first subject (the app opens on it).
    n : int, optional
        Images per grid (default: the page's, :data:`brainit_core.reconstruction.grids.GRID_SIZE`).
    pipeline : BrainITPipeline, optional
        Default: built from ``root/run`` and ``root/generators`` on ``device``.

    Returns the new manifest.
    """
    from brainit_core.data import load_dataset
    from brainit_core.reconstruction import grids

    root = Path(root)
    mf = root / "MANIFEST.json"
    if not mf.is_file():
        raise CheckpointError(f"{mf} not found: add_grids works on a bundle made by make_bundle")
    grids.remove_shipped_grids(root / "grids")  # only grid entries; entries under old keys would only take space
    if pipeline is None:
        from brainit_core.models.run import BrainITRun
        from brainit_core.reconstruction import BrainITPipeline, Generators

        brun = BrainITRun.load(root / "run", device=device)
        pipeline = BrainITPipeline(brun, Generators.load(root / "generators", device=brun.device, space=brun.space))
    subjects = list(subjects) if subjects else list(pipeline.run.subjects[:1])
    n = n or grids.GRID_SIZE
    grids.add_shipped_grids(pipeline, load_dataset(root / "dataset"), subjects, n)
    return refresh_manifest(root, grids={"subjects": subjects, "n": n, "settings": asdict(grids.GRID_SETTINGS)})


def refresh_manifest(root, **extra) -> dict:
    """Rewrite ``root/MANIFEST.json``'s file table from the files now in ``root`` (after a deliberate
    change, e.g. new grids or a re-judged benchmark report); ``extra`` keys are set at the top level."""
    mf = Path(root) / "MANIFEST.json"
    manifest = read_json(mf)
    manifest["files"] = file_table(root)
    manifest.update(extra)
    write_json(mf, manifest)
    return manifest


def file_table(root) -> dict:
    """``{relative path: {"sha256", "bytes"}}`` of every file under ``root`` except the manifest."""
    root = Path(root)
    return {str(p.relative_to(root)): {"sha256": sha256_file(p), "bytes": p.stat().st_size}
            for p in sorted(root.rglob("*")) if p.is_file() and p.name not in ("MANIFEST.json", IN_PROGRESS)}


def verify_bundle(root) -> list[str]:
    """Problems with the bundle at ``root`` (missing files, changed files); empty when intact."""
    root = Path(root)
    mf = root / "MANIFEST.json"
    if not mf.exists():
        return [f"{mf} not found (make the bundle with `python -m brainit_core train-demo`)"]
    manifest = read_json(mf)
    problems = []
    for rel, info in manifest["files"].items():
        p = root / rel
        if not p.exists():
            problems.append(f"{p} is missing")
        elif p.stat().st_size != info["bytes"] or sha256_file(p) != info["sha256"]:
            problems.append(f"{p} differs from MANIFEST.json (sha256 {info['sha256'][:12]}…)")
    return problems

