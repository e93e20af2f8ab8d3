"""Transfer a trained run to a new subject with little data (Brain-IT, arXiv 2510.25976; docs/models.md).

Everything trained before stays frozen; only the new subject's voxel embeddings are learned:

1. encoder voxel embeddings of the new subject (``train_encoder(train_only_subjects=[new])``);
2. each new voxel takes the V2C cluster of its nearest reference voxel (L2 between normalised
   encoder embeddings, ``V2C.assign_nearest``);
3. each new decoder voxel embedding (both heads) starts as that nearest voxel's one;
4. only those embeddings are trained, mixing 1 real : 3 synthetic samples (synthetic = encoder
   predictions for unlabeled images, for the new subject), constant learning rate as in the
   official transfer script.

The epochs kept (encoder and each head) are chosen within the budget, never on the subject's val
split (:func:`budget_split`, ``BITConfig.transfer_selection``): by default (``"last"``, as the
official code) the whole budget is trained for a fixed schedule and the last epoch kept;
``"holdout"`` holds out 20% of the budget's images and keeps the epoch best on them.

Amounts of data follow NSD's sessions: 750 trials = one 60-minute session, so ``minutes=15`` is
the first 187 training trials in session order, ``60`` the first 750, ``"all"`` every training
trial.

The transfer lab's bookkeeping is here too: where a transfer run of each amount lives
(:func:`transfer_dir`), who can be transferred to (:func:`heldout_candidates`), time estimates and
the learning curve of the scored runs (:func:`curve_rows`) or of a benchmark (:func:`benchmark_curve`).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch

from brainit_core import distributed
from brainit_core.errors import BrainITError
from brainit_core.fileio import save_npz, save_npy
from brainit_core.models import encoder as enc
from brainit_core.models.encoder_training import train_encoder
from brainit_core.models.bit import BITConfig, config_dict
from brainit_core.models.bit_data import build_bit_data, load_run_features, needed_image_ids
from brainit_core.models.bit_io import load_bit, save_bit
from brainit_core.models.head_training import HEADS, train_head, train_heads
from brainit_core.models.v2c import V2C
from brainit_core.progress import report
from brainit_core.runs import RunDirectory, RunStages
from brainit_core.utils import default_data_dir
from brainit_core.viz.curves import plot_curves

log = logging.getLogger(__name__)

TRIALS_PER_HOUR = 750
AMOUNTS = (15, 60, "all")


def transfer_trials(subject_data, minutes) -> np.ndarray:
    """Trial rows of the subject's training images, in session order, for an amount of scanning.

    Parameters
    ----------
    subject_data : SubjectData
    minutes : int or "all"
        15 -> the first 187 trials, 60 -> 750, ``"all"`` -> all training trials.

    Returns
    -------
    ndarray, int64, (n_trials,)
    """
    train = np.isin(subject_data.image_ids, subject_data.train_image_ids)
    rows = np.flatnonzero(train)
    rows = rows[np.lexsort((rows, subject_data.sessions[rows]))]
    if minutes in ("all", None):
        return rows
    n = trials_of_minutes(minutes)
    if n <= 0:
        raise ValueError(f"minutes must be positive or 'all', got {minutes!r}")
    if n > len(rows):
        log.warning("%s has only %d training trials (< %d for %s min); using all", subject_data.name, len(rows), n, minutes)
    return rows[:n]


def budget_split(subject_data, trials: np.ndarray, selection: str = "holdout", holdout: float = 0.2,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split a transfer budget's trials into the ones trained on and the ones that choose the epoch.

    Parameters
    ----------
    subject_data : SubjectData
    trials : ndarray of int
        The budget (:func:`transfer_trials`).
    selection : {"holdout", "last"}
        ``"holdout"``: ``holdout`` of the budget's images (at least 3), all their trials, are held out
        (split by image, so no repeat of a held-out image is trained on); ``"last"``: nothing is.
    holdout : float
    seed : int

    Returns
    -------
    fit, held : ndarray of int
        Trial rows, each in the budget's order.
    """
    trials = np.asarray(trials, dtype=np.int64)
    if selection == "last":
        return trials, np.zeros(0, np.int64)
    if selection != "holdout":
        raise ValueError(f"transfer_selection must be 'holdout' or 'last', got {selection!r}")
    if not 0 < holdout < 1:
        raise ValueError(f"transfer_holdout must be between 0 and 1, got {holdout!r}")
    images = np.unique(subject_data.image_ids[trials])
    n_held = max(3, int(round(holdout * len(images))))
    if n_held >= len(images):
        raise BrainITError(f"{subject_data.name}: a budget of {len(images)} images is too small to hold out "
                           f"{n_held} for choosing the epoch; use transfer_selection='last'")
    held_images = np.random.default_rng(seed).choice(images, n_held, replace=False)
    held = np.isin(subject_data.image_ids[trials], held_images)
    return trials[~held], trials[held]


def transfer_subject(data, subject: str, minutes, from_run, out, device: str = "auto",
                     bit_config: BITConfig | None = None, resume: bool = True) -> Path:
    """Add ``subject`` to a trained run by learning only its voxel embeddings.

    Parameters
    ----------
    data : str or PathLike or Dataset
        Dataset holding the new subject (and the unlabeled images).
    subject : str
        The new subject (e.g. the twin's held-out one).
    minutes : int or "all"
        Amount of the subject's data (see :func:`transfer_trials`).
    from_run : str or PathLike
        The trained reference run.
    out : str or PathLike
        New run directory: a complete run that decodes the old subjects and the new one.
    device : str
    bit_config : BITConfig, optional
        Overrides the reference run's config (e.g. fewer transfer epochs).
    resume : bool

    Returns
    -------
    Path of the new run directory.
    """
    from brainit_core.data import load_dataset
    from brainit_core.features import get_feature_space

    dataset = data if hasattr(data, "subject") else load_dataset(data)
    src_run, new_run = RunDirectory(from_run), RunDirectory(out)
    src, out = src_run.path, new_run.path
    if not src_run.is_complete:
        raise BrainITError(f"{src} is not a finished Brain-IT run (no run.json or bit.safetensors)")
    src_record = src_run.record
    ref_subjects = src_run.training_subjects
    if subject in ref_subjects:
        raise BrainITError(f"{subject} is already a subject of {src}; transfer needs a new subject")
    dev = distributed.setup(device)
    if not new_run.is_empty() and not resume:
        raise BrainITError(f"{out} already exists; pass --resume to continue it or choose another --out")
    distributed.barrier()  # every process has looked at --out before rank 0 writes into it
    out.mkdir(parents=True, exist_ok=True)
    sd = dataset.subject(subject)
    trials = transfer_trials(sd, minutes)
    record = new_run.read_record() or {
        **{k: v for k, v in src_record.items() if k != "stages"},
        "subjects": ref_subjects,
        "transfer": {"from": str(src), "subject": subject, "minutes": minutes, "n_trials": int(len(trials)),
                     "bit_config": config_dict(bit_config) if bit_config is not None else None},
        "stages": {},
    }
    new_run.save_record(record)
    stages = RunStages(new_run, record)
    config = BITConfig.from_dict(record["transfer"]["bit_config"] or src_record["bit_config"])
    fit, held = budget_split(sd, trials, config.transfer_selection, config.transfer_holdout, config.seed)
    if "selection" not in record["transfer"]:
        record["transfer"]["selection"] = {"mode": config.transfer_selection, "n_fit_trials": int(len(fit)),
                                           "n_holdout_trials": int(len(held))}
        new_run.save_record(record)
    keep, val_trials = ("best", {subject: held}) if len(held) else ("last", None)
    enc_config = (enc.EncoderConfig(**src_run.encoder_config) if src_run.encoder_config
                  else enc.load_encoder(src_run.encoder_path).config)
    enc_config.backbone = src_run.encoder_backbone
    space = get_feature_space(src_record["space"]["name"], preset=src_record["space"]["preset"], device=dev)
    backbone = None
    if not (stages.done("encoder") and stages.done("synthetic")):
        backbone = enc.encoder_backbone(enc_config, src_run.preset, dev, decoder_space=space)

    # 1. features of the budget's images (and of the val split when it chooses the epoch) and of the
    #    unlabeled pool: a 15-minute transfer extracts 15 minutes' worth of images, not the subject's all
    t0 = time.time()
    _, unl = needed_image_ids(dataset, [subject], config.max_unlabeled)
    val_ids = sd.val_image_ids if val_trials is None else np.zeros(0, np.int64)
    ids = np.unique(np.concatenate([sd.image_ids[trials], val_ids]))
    features = load_run_features(dataset, space, np.concatenate([ids, unl]), dev)
    if not stages.done("features"):
        stages.finish("features", time.time() - t0, n_images=len(features))
    report(0.1, "features ready")

    # 2. the new subject's encoder voxel embeddings (everything else frozen)
    t0 = time.time()
    if not stages.done("encoder"):
        encoder = enc.load_encoder(src_run.encoder_path, device=dev)
        encoder.add_subject(subject, sd.n_vertices)
        encoder = train_encoder(dataset, backbone, enc_config, out / "encoder",
                                subjects=ref_subjects + [subject], device=dev, train_only_subjects=[subject],
                                trials={subject: fit}, init=encoder, val_trials=val_trials, keep=keep)
        stages.finish("encoder", time.time() - t0)
    else:
        encoder = enc.load_encoder(new_run.encoder_path, device=dev)
    report(0.3, "encoder embeddings ready")

    # 3. clusters and nearest reference voxels
    t0 = time.time()
    nn_path = out / "transfer_nearest.npz"
    if not stages.done("v2c"):
        v2c = V2C.load(src_run.v2c_path)
        reference = {s: encoder.voxel_embeddings(s).detach().cpu().numpy() for s in ref_subjects}
        labels, ref_subject, ref_index = v2c.assign_nearest(encoder.voxel_embeddings(subject).detach().cpu().numpy(), reference)
        v2c.labels_[subject] = np.asarray(labels, dtype=np.int64)
        v2c.save(new_run.v2c_path)
        save_npz(nn_path, labels=labels, ref_subject=np.asarray(ref_subject).astype(str), ref_index=ref_index)
        distributed.barrier()
        stages.finish("v2c", time.time() - t0)
    nearest = np.load(nn_path)
    report(0.35, "clusters assigned")

    # 4. synthetic fMRI for the new subject
    t0 = time.time()
    syn_dir = out / "synthetic"
    if not stages.done("synthetic"):
        fs_unl = load_run_features(dataset, backbone, unl, dev)
        if len(unl):
            enc.write_synthetic(syn_dir / f"{subject}.npy", encoder, fs_unl, subject)
        else:
            save_npy(syn_dir / f"{subject}.npy", enc.predict_fmri(encoder, fs_unl, subject).astype(np.float16))
        save_npy(syn_dir / "ids.npy", unl)
        distributed.barrier()
        stages.finish("synthetic", time.time() - t0, n=len(unl))
    synthetic = {subject: np.load(syn_dir / f"{subject}.npy", mmap_mode="r")}
    del encoder
    report(0.4, "synthetic fMRI ready")

    # 5. decoder voxel embeddings: nearest-voxel init, train only them
    model, _, _ = load_bit(src_run.bit_path, device=dev)
    labels = nearest["labels"]
    ref_subject, ref_index = nearest["ref_subject"], nearest["ref_index"]
    inits = []
    for head in HEADS:
        net = model.heads[head]
        init = torch.zeros(sd.n_vertices, config.dim, device=dev)
        for s in np.unique(ref_subject):
            m = torch.from_numpy(ref_subject == s)
            init[m] = net.voxel_embeddings(str(s)).detach()[torch.from_numpy(ref_index[ref_subject == s]).long()]
        inits.append(init)
    model.add_subject(subject, sd.n_vertices, labels, init_semantic=inits[0], init_lowlevel=inits[1])
    bit_data = build_bit_data(dataset, features, [subject], config.betas, synthetic, np.load(syn_dir / "ids.npy"),
                              trials={subject: fit}, val_trials=val_trials)
    pool = bit_data.real[subject]
    model.set_input_stats(subject, pool.betas.mean(0), pool.betas.std(0))
    model.to(dev)
    tags = {head: f"transfer-{head}" for head in HEADS}
    curves = train_heads(
        model, stages, out,
        lambda head: train_head(model, head, bit_data, config, out, dev, epochs=config.transfer_epochs,
                                params=[model.heads[head].voxel_embeddings(subject)], subjects=[subject],
                                synthetic_per_real=config.transfer_synthetic_per_real, tag=tags[head], schedule=False,
                                keep=keep),
        seeds={h: config.seed + 10 + k for k, h in enumerate(HEADS)}, tags=tags, label="embeddings ")

    # 6. a complete run directory for the old subjects and the new one
    t0 = time.time()
    save_bit(new_run.bit_path, model, record, meta={"transfer": record["transfer"]})
    stages.finish("bit", time.time() - t0, total_seconds=stages.total_seconds())
    if distributed.is_main():
        plot_curves(curves, out / "curves.png")
    distributed.barrier()
    return out


# -- the transfer lab's bookkeeping --------------------------------------------------------------

def trials_of_minutes(minutes: int) -> int:
    """Single trials in ``minutes`` of scanning (750 per hour, NSD's session)."""
    return int(int(minutes) * TRIALS_PER_HOUR // 60)


def trials_for(minutes, n_train_trials: int) -> int:
    """Trials a transfer of ``minutes`` (or ``"all"``) uses when the subject has ``n_train_trials``."""
    return n_train_trials if minutes == "all" else min(n_train_trials, trials_of_minutes(minutes))


def estimate_minutes(n_trials: int, epochs: int, seconds_per_sample: float = 0.01,
                     synthetic_per_real: float = 3.0) -> float:
    """Rough wall time: encoder embeddings + (1 real + ``synthetic_per_real`` synthetic) samples per real one
    x epochs x 2 heads; ``synthetic_per_real`` is the run's ``BITConfig.transfer_synthetic_per_real`` (official 3)."""
    samples = n_trials * (1.0 + float(synthetic_per_real))
    return (samples * epochs * 2 * seconds_per_sample + 60 + n_trials * 0.05) / 60


def heldout_candidates(info, run_subjects) -> list[str]:
    """Dataset subjects the run cannot decode yet (the dataset's held-out subjects first).

    Parameters
    ----------
    info : DatasetInfo
    run_subjects : list of str
        :attr:`brainit_core.runs.RunDirectory.subjects` of the run.
    """
    held = [s for s in info.heldout_subjects if s in info.subjects]
    return held + [s for s in info.subjects if s not in run_subjects and s not in held]


def transfer_dir(run, subject: str, minutes, root=None) -> Path:
    """``<data dir>/runs/<run name>-<subject>-<minutes>min`` (``-all`` for all data)."""
    tag = "all" if minutes == "all" else f"{int(minutes)}min"
    return Path(root or default_data_dir()) / "runs" / f"{Path(run).name}-{subject}-{tag}"


def curve_rows(run, subject: str, root=None) -> list[dict]:
    """One row per scored transfer run of ``subject`` (15 min, 60 min, all): the amount and every score,
    flattened (``"brainit.semantic.two_way"``, ``"ridge.semantic.two_way"``, ...)."""
    rows = []
    for m in AMOUNTS:
        scores = RunDirectory(transfer_dir(run, subject, m, root)).read_scores()
        if not scores or subject not in scores.get("subjects", {}):
            continue
        rows.append({"amount": "all" if m == "all" else f"{m} min", **_flatten(scores["subjects"][subject])})
    return rows


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        elif isinstance(v, (int, float)):
            out[key] = float(v)
    return out


def benchmark_curve(results: dict | None, run=None) -> tuple[list[dict], dict] | None:
    """The transfer curve a finished benchmark measured (image-level scores), or ``None``.

    Parameters
    ----------
    results : dict or None
        ``load_results`` of a benchmark directory.
    run : path, optional
        Only a benchmark of this run counts (its :attr:`~brainit_core.runs.RunDirectory.identities`,
        so a bundled copy matches the benchmark of the run it was made from).

    Returns
    -------
    rows : list of dict
        One per amount: ``{"amount": "15 min" | "60 min" | "all", column: score, ...}`` (numeric columns only).
    baselines : dict
        Baseline name -> {column: score} (fitted on all of the subject's data).
    """
    tr = (results or {}).get("transfer") or {}
    if not tr.get("scores"):
        return None
    if run is not None and results.get("run_sha256") not in RunDirectory(run).identities:
        return None

    def numeric(d: dict) -> dict:
        return {k: float(v) for k, v in d.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}

    rows = [{"amount": "all" if a == "all" else f"{a} min", **numeric(tr["scores"][a])}
            for a in tr.get("amounts", []) if a in tr["scores"]]
    return rows, {m: numeric(v) for m, v in (tr.get("baselines") or {}).items()}
