"""Training the image-to-fMRI encoder (all subjects in one model), resumable after every epoch.

The model itself is :mod:`brainit_core.models.encoder`. The training state (weights, AdamW moments,
early-stopping counters, curves) is saved after each epoch (``state.*``) and the best epoch on the
validation images is kept as ``encoder.*``.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from brainit_core import distributed
from brainit_core.checkpoint import checkpoint_exists, load_checkpoint, optimizer_state, restore_optimizer, save_checkpoint
from brainit_core.errors import check_loss
from brainit_core.fileio import write_json
from brainit_core.models.bit_data import TrialRows, subject_training_betas, training_trial_rows
from brainit_core.models.encoder import (
    TRIAL_MODES, EncoderConfig, ImageToFMRIEncoder, encoder_inputs, encoder_loss, load_encoder, pearson_per_voxel, predict_rows,
    save_encoder, token_shapes,
)
from brainit_core.progress import track
from brainit_core.utils import resolve_device

log = logging.getLogger(__name__)


def _save_state(path: Path, encoder, optimizer, epoch: int, best: float, bad_epochs: int, history: list) -> None:
    opt_t, opt_meta = optimizer_state(optimizer)
    tensors = {**{f"model.{k}": v for k, v in encoder.state_dict().items()}, **opt_t}
    save_checkpoint(path, tensors, {"epoch": epoch, "best": best, "bad_epochs": bad_epochs, "history": history,
                                    **opt_meta})


def _load_state(path: Path, encoder, optimizer) -> tuple[int, float, int, list]:
    tensors, cfg, _ = load_checkpoint(path)
    encoder.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    restore_optimizer(optimizer, tensors, cfg)
    return cfg["epoch"], cfg["best"], cfg["bad_epochs"], cfg["history"]


def _subject_arrays(dataset, subject: str, trials=None, mode: str = "averaged", val_trials=None):
    """(train_ids, train_betas, val_ids, val_betas): training samples by ``mode`` (``trials``, when given, as
    they are), validation betas averaged over repeats (of ``val_trials`` when given, else the val split)."""
    sd = dataset.subject(subject)
    if trials is not None:
        rows = np.sort(np.asarray(trials, dtype=np.int64))
        tr_ids, tr_b = sd.image_ids[rows], sd.betas_for_trials(rows)
    else:
        tr_b, tr_ids = training_samples(sd, mode)
    va_b, va_ids = sd.averaged("val") if val_trials is None else subject_training_betas(sd, "averaged", trials=val_trials)
    return tr_ids, tr_b, va_ids, va_b


def training_samples(subject_data, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """(betas (n, V), image ids (n,)) of a subject's training images: ``EncoderConfig.trials`` modes.

    Single trials come as :class:`TrialRows`, read from the subject's file a batch at a time; the
    repeat averages are held in memory."""
    if mode not in TRIAL_MODES:
        raise ValueError(f"encoder trials must be 'averaged', 'single' or 'both', got {mode!r}")
    avg, avg_ids = subject_data.averaged("train") if mode != "single" else (None, np.zeros(0, np.int64))
    if mode == "averaged":
        return avg, avg_ids
    rows = training_trial_rows(subject_data)
    return TrialRows(subject_data, rows, head=avg), np.concatenate([avg_ids, subject_data.image_ids[rows]])


def train_encoder(dataset, space, config: EncoderConfig, out_dir, subjects=None, device=None,
                  train_only_subjects=None, trials=None, init: ImageToFMRIEncoder | None = None,
                  val_trials=None, keep: str = "best") -> ImageToFMRIEncoder:
    """Train the encoder on the subjects' training images (all subjects in one model).

    Parameters
    ----------
    dataset : Dataset
    space : FeatureSpace
        The encoder's backbone (``config.backbone``); its cached features are the image tokens.
    config : EncoderConfig
    out_dir : path
        Writes ``encoder.{safetensors,json}`` (best on validation) and ``state.*`` (resume).
    subjects : list of str, optional
        Defaults to the dataset's training subjects.
    train_only_subjects : list of str, optional
        Train only these subjects' voxel embeddings; every other parameter stays frozen (transfer).
    trials : dict of str -> array of int, optional
        Use only these single trials of a subject (e.g. the first 750 for "60 minutes").
    init : ImageToFMRIEncoder, optional
        Start from this model (transfer).
    val_trials : dict of str -> array of int, optional
        Validate a subject on these trials (averaged over repeats) instead of its val split (transfer
        within a budget).
    keep : {"best", "last"}
        Keep the best epoch on validation (early stopping after ``patience``), or train every epoch
        and keep the last (a fixed schedule).

    Returns
    -------
    ImageToFMRIEncoder
        The best model on validation, on ``device``.
    """
    from brainit_core.features import extract_features

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device or "auto") if not isinstance(device, torch.device) else device
    subjects = list(subjects or dataset.training_subjects)
    fit_subjects = list(train_only_subjects or subjects)
    trials = trials or {}
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)

    # 1. data: training samples (config.trials), validation averages, the backbone features of every image used
    val_trials = val_trials or {}
    data = {s: _subject_arrays(dataset, s, trials.get(s), config.trials, val_trials.get(s)) for s in fit_subjects}
    all_ids = np.unique(np.concatenate([np.r_[d[0], d[2]] for d in data.values()]))
    fs = extract_features(dataset, all_ids, space)
    row_of = {int(i): r for r, i in enumerate(all_ids)}

    # 2. model and optimiser
    n_vox = {s: dataset.subject(s).n_vertices for s in subjects}
    low, sem = token_shapes(fs)
    specs = [(min(g, config.max_grid) ** 2, c) for c, g in low] + [sem]
    encoder = init if init is not None else ImageToFMRIEncoder(config, n_vox, specs)
    encoder.to(dev)
    if train_only_subjects:
        encoder.requires_grad_(False)
        params = [encoder.voxel_emb[s] for s in fit_subjects]
        for p in params:
            p.requires_grad_(True)
    else:
        params = list(encoder.parameters())
    optimizer = torch.optim.Adam(params, lr=config.lr)
    state_path = out / "state"
    start, best, bad, history = 0, -np.inf, 0, []
    if checkpoint_exists(state_path) and checkpoint_exists(out / "encoder"):
        start, best, bad, history = _load_state(state_path, encoder, optimizer)
        log.info("encoder: resuming at epoch %d", start)
    distributed.broadcast_parameters(encoder)
    world = distributed.world_size()

    # 3. epochs: each batch = one subject, a batch of its images, a random voxel subset
    for epoch in range(start, config.epochs):
        if bad >= config.patience and keep == "best":
            break
        encoder.train()
        batches = [(s, b) for s in fit_subjects
                   for b in np.array_split(rng.permutation(len(data[s][0])), max(1, len(data[s][0]) // config.batch_size))]
        order = rng.permutation(len(batches))
        losses = []
        kept = f"{state_path.name} after epoch {epoch}, encoder" if epoch else "no epoch was saved yet"
        for k in track(order, desc=f"encoder epoch {epoch + 1}/{config.epochs}"):
            s, b = batches[k]
            shard = distributed.shard_of(len(b))  # this process's images of the batch (all of them in one)
            ids, betas = shard.take(data[s][0][b]), shard.take(data[s][1][b])
            x = encoder_inputs(fs, [row_of[int(i)] for i in ids], config.max_grid, dev) if len(shard) else None
            n_sel = min(config.voxels_per_sample, n_vox[s])
            vox = torch.from_numpy(rng.choice(n_vox[s], n_sel, replace=False)).to(dev)
            loss = None
            if len(shard):
                y = torch.from_numpy(betas).to(dev)[:, vox]
                with distributed.autocast(dev):
                    pred = encoder(x, s, vox)
                loss = shard.share(encoder_loss(pred.float(), y, config.cosine_weight))
            value = (float(loss.detach()) if world == 1
                     else float(distributed.all_reduce_sum([0.0 if loss is None else float(loss.detach())])[0]))
            losses.append(check_loss(value, f"encoder, epoch {epoch + 1}, subject {s}", kept))
            optimizer.zero_grad()
            if loss is not None:
                loss.backward()
            distributed.sync_gradients(params)
            optimizer.step()
        val = _median_r(encoder, fs, row_of, {s: (data[s][2], data[s][3]) for s in fit_subjects}, config, dev)
        check_loss(val, f"encoder, epoch {epoch + 1}, validation (median r)", kept)
        history.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "val_median_r": val})
        if val > best or keep == "last":
            best, bad = max(val, best), 0
            save_encoder(encoder, out / "encoder", {"epoch": epoch + 1, "val_median_r": val})
        else:
            bad += 1
        _save_state(state_path, encoder, optimizer, epoch + 1, best, bad, history)
        write_json(out / "curves.json", history, indent=1, sort_keys=False)
        log.info("encoder epoch %d: loss %.4f, val median r %.3f", epoch + 1, np.mean(losses), val)
    if not checkpoint_exists(out / "encoder"):
        save_encoder(encoder, out / "encoder", {"epoch": 0})
    distributed.barrier()  # rank 0 has written the best epoch
    best_model = load_encoder(out / "encoder")
    return best_model.to(dev)


@torch.no_grad()
def _median_r(encoder, fs, row_of, val: dict, config, dev) -> float:
    encoder.eval()
    rs = []
    for s, (ids, betas) in val.items():
        if len(ids) < 3:
            continue
        pred = predict_rows(encoder, fs, [row_of[int(i)] for i in ids], s, config.batch_size, dev)
        rs.append(np.median(pearson_per_voxel(pred, betas)))
    return float(np.mean(rs)) if rs else 0.0
