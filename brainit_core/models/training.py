"""Training a Brain-IT run: features -> encoder -> V2C -> synthetic fMRI -> BIT (both heads).

Every stage writes its output atomically into the run directory and is skipped when that output
exists, so ``train_run`` can be killed at any moment and started again. The two BIT heads also
save their full training state (weights, AdamW moments, scheduler, curves) after every epoch.
All randomness of an epoch (order, synthetic draws, voxel subsets, sampled tokens) comes from a
generator seeded by (seed, head, epoch), so a resumed run repeats exactly what an uninterrupted
one would have done.

Run directory::

    RUN/
      run.json                 preset, feature space, subjects, configs, stage timings
      encoder/encoder.*        image-to-fMRI encoder (brainit_core.models.encoder)
      v2c.*                    voxel-to-cluster map
      synthetic/<subject>.npy  float16 (n_unlabeled, V): encoder predictions for unlabeled images
      synthetic/ids.npy        the unlabeled image ids
      bit_<head>_state.*       per-epoch training state of a head (resume)
      bit_<head>_best.*        best weights of a head (lowest validation loss)
      bit.safetensors/json     the final BrainITModel (both heads, statistics), asdict(config)
      curves.json, curves.png  validation curves
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from brainit_core.checkpoint import checkpoint_exists, json_default, load_checkpoint, save_checkpoint
from brainit_core.errors import BrainITError, CheckpointError
from brainit_core.features.base import maps_to_tokens
from brainit_core.models.bit import BITConfig, BrainITModel, config_dict, count_parameters, estimate_memory
from brainit_core.models.losses import lowlevel_loss, semantic_loss
from brainit_core.progress import report, track
from brainit_core.utils import resolve_device

log = logging.getLogger(__name__)

HEADS = ("semantic", "lowlevel")
_HEAD_ID = {"semantic": 1, "lowlevel": 2, "transfer-semantic": 3, "transfer-lowlevel": 4}


# --------------------------------------------------------------------------------------------
# small file helpers
# --------------------------------------------------------------------------------------------
def write_json(path: Path, obj) -> None:
    """Write JSON atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=json_default))
    os.replace(tmp, path)


def read_json(path: Path, default=None):
    path = Path(path)
    if not path.exists():
        return default
    return json.loads(path.read_text())


def save_npy(path: Path, arr: np.ndarray) -> None:
    """``np.save`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npy")
    np.save(tmp, arr)
    os.replace(tmp, path)


def _generator(seed: int, head: str, epoch: int) -> tuple[np.random.Generator, torch.Generator]:
    ss = np.random.SeedSequence([int(seed), _HEAD_ID[head], int(epoch)])
    rng = np.random.default_rng(ss)
    tg = torch.Generator().manual_seed(int(ss.generate_state(1, dtype=np.uint64)[0] % (2**63)))
    return rng, tg


# --------------------------------------------------------------------------------------------
# data for BIT
# --------------------------------------------------------------------------------------------
@dataclass
class SamplePool:
    """Betas of one subject and the feature rows of their images.

    Attributes
    ----------
    betas : ndarray, shape (n, V)
        Raw betas (float32 real or float16 synthetic), standardised at batch time.
    rows : ndarray, int64, shape (n,)
        Row of each sample's image in :attr:`BITData.features`.
    """

    betas: np.ndarray
    rows: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)


@dataclass
class BITData:
    """Everything BIT training reads, in memory.

    Attributes
    ----------
    features : FeatureSet
        Features of every image used (train, val and unlabeled), any order.
    real, val, synthetic : dict of str -> SamplePool
        Per subject; ``synthetic`` may be empty.
    """

    features: object
    real: dict
    val: dict
    synthetic: dict

    def semantic_targets(self, rows: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(self.features.semantic[rows].astype(np.float32))  # (b, N, D)

    def lowlevel_targets(self, rows: np.ndarray) -> list[torch.Tensor]:
        return [maps_to_tokens(torch.from_numpy(m[rows].astype(np.float32))) for m in self.features.lowlevel]


def subject_training_betas(subject_data, mode: str, image_ids: np.ndarray | None = None,
                           trials: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Training inputs of a subject.

    Parameters
    ----------
    subject_data : SubjectData
    mode : {"averaged", "single"}
        Repeat-averaged betas (one sample per image) or single trials.
    image_ids : ndarray, optional
        Restrict to these images (default: the subject's training split).
    trials : ndarray, optional
        Restrict to these trial rows (transfer with little data); averaging uses only them.

    Returns
    -------
    betas : ndarray, float32, shape (n, V)
    image_ids : ndarray, int64, shape (n,)
    """
    ids = subject_data.train_image_ids if image_ids is None else np.asarray(image_ids)
    if trials is None:
        rows = np.concatenate([g for g in subject_data.trials_of(np.unique(ids))] or [np.zeros(0, np.int64)])
    else:
        rows = np.asarray(trials, dtype=np.int64)
        rows = rows[np.isin(subject_data.image_ids[rows], ids)]
    rows = np.sort(rows)
    trial_ids = subject_data.image_ids[rows]
    if mode == "single":
        return subject_data.betas_for_trials(rows), trial_ids
    if mode != "averaged":
        raise ValueError(f"betas mode must be 'averaged' or 'single', got {mode!r}")
    betas = subject_data.betas_for_trials(rows)
    uniq, inverse = np.unique(trial_ids, return_inverse=True)
    out = np.zeros((len(uniq), betas.shape[1]), np.float64)
    np.add.at(out, inverse, betas)
    out /= np.bincount(inverse, minlength=len(uniq))[:, None]
    return out.astype(np.float32), uniq


def channel_stats(features, rows: np.ndarray, chunk: int = 256) -> tuple[tuple, list]:
    """Per-channel (mean, std) of semantic tokens and of each low-level layer over ``rows``."""
    def stats(arr, axis_c):
        s = s2 = 0.0
        n = 0
        for start in range(0, len(rows), chunk):
            x = arr[np.sort(rows[start:start + chunk])].astype(np.float64)
            x = np.moveaxis(x, axis_c, -1).reshape(-1, x.shape[axis_c])
            s = s + x.sum(0)
            s2 = s2 + (x ** 2).sum(0)
            n += len(x)
        mean = s / max(n, 1)
        return mean.astype(np.float32), np.sqrt(np.maximum(s2 / max(n, 1) - mean ** 2, 0)).astype(np.float32)

    sem = stats(features.semantic, 2)
    low = [stats(m, 1) for m in features.lowlevel]
    return sem, low


# --------------------------------------------------------------------------------------------
# batches
# --------------------------------------------------------------------------------------------
def epoch_samples(data: BITData, synthetic_per_real: float, rng: np.random.Generator,
                  subjects: Sequence[str] | None = None) -> list[tuple[str, str, int]]:
    """Shuffled (source, subject, index) triples: every real sample once, plus
    ``round(synthetic_per_real * n_real)`` synthetic ones, each an unlabeled image drawn at random
    and given a random subject among those with synthetic fMRI."""
    subjects = list(subjects or data.real)
    samples = [("real", s, i) for s in subjects for i in range(len(data.real[s]))]
    syn_subjects = [s for s in subjects if s in data.synthetic and len(data.synthetic[s])]
    n_syn = int(round(synthetic_per_real * len(samples))) if syn_subjects else 0
    if n_syn:
        subj = rng.integers(0, len(syn_subjects), n_syn)
        for k, s in enumerate(syn_subjects):
            picks = rng.integers(0, len(data.synthetic[s]), int((subj == k).sum()))
            samples += [("synthetic", s, int(i)) for i in picks]
    order = rng.permutation(len(samples))
    return [samples[i] for i in order]


def make_groups(model: BrainITModel, data: BITData, batch: list[tuple[str, str, int]], n_voxels: int | None,
                device, tg: torch.Generator | None) -> tuple[list, np.ndarray]:
    """Turn a list of samples into per-subject groups for :meth:`BrainIT.tokenize`.

    Returns the groups ``[(subject, betas (b, N), voxel_idx (b, N) or None)]`` and the feature
    rows of the samples in group order. ``n_voxels=None`` keeps all voxels.
    """
    groups, rows = [], []
    for subject in dict.fromkeys(s for _, s, _ in batch):
        items = [(src, i) for src, s, i in batch if s == subject]
        betas = np.stack([(data.real if src == "real" else data.synthetic)[subject].betas[i] for src, i in items])
        rows += [(data.real if src == "real" else data.synthetic)[subject].rows[i] for src, i in items]
        x = torch.from_numpy(betas.astype(np.float32))  # (b, V)
        V = x.shape[1]
        idx = None
        if n_voxels is not None and n_voxels < V:
            idx = torch.rand(len(items), V, generator=tg).argsort(1)[:, :n_voxels]  # (b, N), distinct
            x = torch.gather(x, 1, idx)
        x = x.to(device)
        idx = idx.to(device) if idx is not None else None
        groups.append((subject, model.standardize_betas(x, subject, idx), idx))
    return groups, np.asarray(rows, dtype=np.int64)


def standardized_targets(model: BrainITModel, head: str, data: BITData, rows: np.ndarray, device) -> list[torch.Tensor]:
    if head == "semantic":
        m, s = model.target_stats("semantic")
        return [(data.semantic_targets(rows).to(device) - m) / s]  # [(B, N, D)]
    out = []
    for l, t in enumerate(data.lowlevel_targets(rows)):
        m, s = model.target_stats(f"low{l}")
        out.append((t.to(device) - m) / s)  # (B, n_l, C_l)
    return out


def head_loss(model: BrainITModel, head: str, groups, targets: list[torch.Tensor], config: BITConfig,
              tg: torch.Generator | None, sample_tokens: bool = True) -> tuple[torch.Tensor, dict]:
    """Loss of one head on one batch (targets standardised, all locations)."""
    net = model.heads[head]
    brain, _ = net.tokenize(groups)  # (B, C, D)
    if head == "semantic":
        pred, _ = net.read_out(brain)
        loss = semantic_loss(pred[0], targets[0])
        return loss, {"mse": float(loss.detach())}
    B = brain.shape[0]
    query_idx = None
    if sample_tokens:
        counts = config.samples_per_layer(model.lowlevel_specs)
        query_idx = [torch.rand(B, t.shape[1], generator=tg).argsort(1)[:, :k].to(brain.device)
                     for t, k in zip(targets, counts)]
        targets = [torch.gather(t, 1, i.unsqueeze(-1).expand(-1, -1, t.shape[-1])) for t, i in zip(targets, query_idx)]
    pred, _ = net.read_out(brain, query_idx)
    return lowlevel_loss(pred, targets, config.logit_scale, config.lowlevel_mse_weight)


def _autocast(device, enabled: bool):
    if enabled and device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return torch.autocast("cpu", enabled=False)


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------
@torch.no_grad()
def validate_head(model: BrainITModel, head: str, data: BITData, config: BITConfig, device,
                  subjects: Sequence[str] | None = None, amp: bool = False) -> dict:
    """Validation loss and per-token correlation of a head on the real validation samples
    (all voxels, all locations). The low-level InfoNCE uses a fixed token sample (seed 0) so that
    epochs are comparable.
    """
    model.eval()
    net = model.heads[head]
    tg = torch.Generator().manual_seed(0)
    loss_sum, corr_sum, n = 0.0, 0.0, 0
    for subject in subjects or list(data.val):
        pool = data.val.get(subject)
        if pool is None or not len(pool):
            continue
        for start in range(0, len(pool), config.eval_batch):
            batch = [("real", subject, i) for i in range(start, min(start + config.eval_batch, len(pool)))]
            groups, rows = make_groups(model, BITData(data.features, {subject: pool}, {}, {}), batch, None, device, None)
            targets = standardized_targets(model, head, data, rows, device)
            with _autocast(device, amp):
                pred, _ = net.read_out(net.tokenize(groups)[0])
            pred = [p.float() for p in pred]
            if head == "semantic":
                loss = semantic_loss(pred[0], targets[0])
            else:
                counts = config.samples_per_layer(model.lowlevel_specs)
                idx = [torch.rand(len(rows), t.shape[1], generator=tg).argsort(1)[:, :k].to(device)
                       for t, k in zip(targets, counts)]
                pick = lambda t, i: torch.gather(t, 1, i.unsqueeze(-1).expand(-1, -1, t.shape[-1]))  # noqa: E731
                loss, _ = lowlevel_loss([pick(p, i) for p, i in zip(pred, idx)], [pick(t, i) for t, i in zip(targets, idx)],
                                        config.logit_scale, config.lowlevel_mse_weight)
            loss_sum += float(loss) * len(rows)
            corr_sum += float(np.mean([_token_corr(p, t).mean().item() for p, t in zip(pred, targets)])) * len(rows)
            n += len(rows)
    return {"val_loss": loss_sum / max(n, 1), "val_corr": corr_sum / max(n, 1)}


def _token_corr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Pearson r over channels for each (sample, token): (B, N, C) x2 -> (B, N)."""
    p = pred - pred.mean(-1, keepdim=True)
    t = target - target.mean(-1, keepdim=True)
    return (p * t).sum(-1) / (p.norm(dim=-1) * t.norm(dim=-1) + 1e-8)


# --------------------------------------------------------------------------------------------
# the head training loop (resumable)
# --------------------------------------------------------------------------------------------
def warmup_factor(epoch: int, warmup_epochs: int, start: float = 1e-3) -> float:
    """Official warm-up: ``start + (1 - start) (epoch / warmup)^3`` for epoch <= warmup."""
    if warmup_epochs <= 0 or epoch >= warmup_epochs:
        return 1.0
    return start + (1 - start) * (epoch / warmup_epochs) ** 3


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict, dict]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"opt.{pid}.{k}"] = v
            else:
                scalars[f"{pid}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _load_optimizer(opt: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    state: dict = {}
    for name, v in tensors.items():
        if name.startswith("opt."):
            _, pid, k = name.split(".", 2)
            state.setdefault(int(pid), {})[k] = v
    for key, v in meta.get("scalars", {}).items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def train_head(model: BrainITModel, head: str, data: BITData, config: BITConfig, out_dir: Path, device,
               epochs: int | None = None, params: Sequence[torch.nn.Parameter] | None = None,
               subjects: Sequence[str] | None = None, synthetic_per_real: float | None = None,
               tag: str | None = None, schedule: bool = True, batch_size: int | None = None) -> list[dict]:
    """Train one head with AdamW, warm-up and reduce-on-plateau; keep the best epoch.

    Parameters
    ----------
    model : BrainITModel
        Trained in place; on return the head holds its best weights.
    head : {"semantic", "lowlevel"}
    data : BITData
    config : BITConfig
    out_dir : Path
        Where ``bit_<tag>_state`` and ``bit_<tag>_best`` checkpoints go.
    device : torch.device
    epochs : int, optional
        Defaults to the config's epochs of the head.
    params : sequence of Parameter, optional
        Parameters to train (default: all of the head). Transfer passes only voxel embeddings.
    subjects : sequence of str, optional
        Subjects whose samples are used (default: all in ``data.real``).
    synthetic_per_real : float, optional
        Defaults to ``config.synthetic_per_real``.
    tag : str, optional
        Name of the checkpoints and of the RNG stream (default: ``head``).
    schedule : bool
        Warm-up and plateau schedule (transfer uses a constant rate, as the official code).
    batch_size : int, optional

    Returns
    -------
    list of dict
        One record per epoch: ``epoch``, ``train_loss``, ``val_loss``, ``val_corr``, ``lr``, ``seconds``.
    """
    tag = tag or head
    net = model.heads[head]
    epochs = epochs if epochs is not None else (config.semantic_epochs if head == "semantic" else config.lowlevel_epochs)
    batch_size = batch_size or (config.semantic_batch if head == "semantic" else config.lowlevel_batch)
    ratio = config.synthetic_per_real if synthetic_per_real is None else synthetic_per_real
    params = list(params) if params is not None else list(net.parameters())
    trainable = {id(p) for p in params}
    for p in net.parameters():
        p.requires_grad_(id(p) in trainable)
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=config.plateau_factor,
                                                         patience=config.plateau_patience, threshold=1e-3,
                                                         threshold_mode="abs")
    state_path, best_path = Path(out_dir) / f"bit_{tag}_state", Path(out_dir) / f"bit_{tag}_best"
    curves, start_epoch, best = [], 1, float("inf")
    head_prefix = f"{head}."
    if checkpoint_exists(state_path):
        tensors, cfg, meta = load_checkpoint(state_path, device="cpu")
        own = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        model.load_state_dict({**model.state_dict(), **own})
        _load_optimizer(opt, {k: v for k, v in tensors.items() if k.startswith("opt.")}, meta["optimizer"])
        plateau.load_state_dict(meta["plateau"])
        curves, start_epoch, best = meta["curves"], meta["epoch"] + 1, meta["best"]
        log.info("%s: resuming after epoch %d", tag, meta["epoch"])
    amp = config.amp and device.type == "cuda"
    last_metric = curves[-1]["val_loss"] if curves else None
    if start_epoch == 1 and not curves:
        curves.append({"epoch": 0, "train_loss": None, "lr": 0.0, "seconds": 0.0,
                       **validate_head(model, head, data, config, device, subjects, amp)})
        last_metric = curves[-1]["val_loss"]
    for epoch in range(start_epoch, epochs + 1):
        t0 = time.time()
        # 1. learning rate: warm-up, then reduce on plateau of the last validation loss
        if schedule and epoch <= config.warmup_epochs:
            for g in opt.param_groups:
                g["lr"] = config.lr * warmup_factor(epoch, config.warmup_epochs)
        elif schedule and last_metric is not None and epoch > 1:
            plateau.step(last_metric)
        lr = opt.param_groups[0]["lr"]
        if lr < 1e-7:
            log.info("%s: learning rate below 1e-7, stopping", tag)
            break
        # 2. one pass over real + synthetic samples
        rng, tg = _generator(config.seed, tag if tag in _HEAD_ID else head, epoch)
        samples = epoch_samples(data, ratio, rng, subjects)
        model.train()
        total, count = 0.0, 0
        starts = range(0, len(samples), batch_size)
        for start in track(starts, desc=f"BIT {tag} epoch {epoch}/{epochs}"):
            batch = samples[start:start + batch_size]
            if len(batch) < 2:
                continue
            groups, rows = make_groups(model, data, batch, config.voxels_per_sample, device, tg)
            targets = standardized_targets(model, head, data, rows, device)
            with _autocast(device, amp):
                loss, _ = head_loss(model, head, groups, targets, config, tg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(batch)
            count += len(batch)
        # 3. validation, best weights, resumable state
        val = validate_head(model, head, data, config, device, subjects, amp)
        last_metric = val["val_loss"]
        rec = {"epoch": epoch, "train_loss": total / max(count, 1), "lr": lr, "seconds": time.time() - t0, **val}
        curves.append(rec)
        log.info("%s epoch %d: train %.4f val %.4f corr %.3f (%.0f s)", tag, epoch, rec["train_loss"],
                 val["val_loss"], val["val_corr"], rec["seconds"])
        head_state = {k: v for k, v in model.state_dict().items() if k.startswith(head_prefix)}
        if val["val_loss"] < best or not checkpoint_exists(best_path):
            best = min(best, val["val_loss"])
            save_checkpoint(best_path, head_state, {"bit": config_dict(config)}, {"epoch": epoch, "val": val})
        opt_t, opt_meta = _optimizer_tensors(opt)
        save_checkpoint(state_path, {**{f"model.{k}": v for k, v in head_state.items()}, **opt_t},
                        {"bit": config_dict(config)},
                        {"epoch": epoch, "best": best, "curves": curves, "optimizer": opt_meta,
                         "plateau": plateau.state_dict()})
    if checkpoint_exists(best_path):
        tensors, _, _ = load_checkpoint(best_path, device="cpu")
        model.load_state_dict({**model.state_dict(), **tensors})
    for p in net.parameters():
        p.requires_grad_(True)
    return curves


# --------------------------------------------------------------------------------------------
# the whole run
# --------------------------------------------------------------------------------------------
def describe_memory(model: BrainITModel, config: BITConfig, n_voxels: int, amp: bool) -> list[str]:
    """Human-readable memory estimate of training each head (see :func:`estimate_memory`)."""
    lines = []
    for head in HEADS:
        net = model.heads[head]
        contrastive = 0
        if head == "semantic":
            nq, batch, n_out = model.semantic_spec.n_tokens, config.semantic_batch, model.semantic_spec.dim
        else:
            counts = config.samples_per_layer(model.lowlevel_specs)
            nq, batch = sum(counts), config.lowlevel_batch
            n_out = max(s.dim for s in model.lowlevel_specs)
            contrastive = batch * max(counts)
        est = estimate_memory(config, count_parameters(net), nq, batch, min(n_voxels, config.voxels_per_sample), n_out,
                              amp, contrastive)
        lines.append(f"BIT {head}: {count_parameters(net) / 1e6:.2f} M parameters "
                     f"({count_parameters(net, False) / 1e6:.2f} M without voxel embeddings); "
                     f"memory estimate {est['total'] / 2**30:.2f} GiB (params {est['params'] / 2**30:.2f}, "
                     f"activations {est['activations'] / 2**30:.2f}; batch {batch}, {nq} queries"
                     f"{', AMP' if amp else ''})")
    return lines


def _extend_heads(record: dict, head_epochs: dict) -> None:
    """Raise a head's epoch count in ``record`` so that a resumed run trains it further.

    The head continues from its last per-epoch state (``bit_<head>_state``) up to the new total; the
    finished stage is reopened, and ``record["extended"][head]`` keeps the first epoch count and the
    seconds of every earlier training of that head.
    """
    for head, epochs in head_epochs.items():
        if head not in HEADS:
            raise BrainITError(f"unknown BIT head {head!r}; heads are {list(HEADS)}")
        key = f"{head}_epochs"
        old = int(record["bit_config"][key])
        if int(epochs) < old:
            raise BrainITError(f"{head} head: {epochs} epochs is fewer than the {old} it was trained for")
        if int(epochs) == old:
            continue
        record["bit_config"][key] = int(epochs)
        done = record.setdefault("stages", {}).pop(f"bit-{head}", None)
        record["stages"].pop("bit", None)
        if done is not None:
            before = record.setdefault("extended", {}).get(head, {})
            record["extended"][head] = {"from_epochs": before.get("from_epochs", old), "to_epochs": int(epochs),
                                        "earlier_seconds": round(before.get("earlier_seconds", 0.0)
                                                                 + done["seconds"], 2)}


class _Stages:
    """Book-keeping of the stages of a run in ``run.json``."""

    def __init__(self, run_dir: Path, record: dict):
        self.run_dir = run_dir
        self.record = record

    def done(self, name: str) -> bool:
        return name in self.record.setdefault("stages", {})

    def finish(self, name: str, seconds: float, **info) -> None:
        self.record.setdefault("stages", {})[name] = {"seconds": round(seconds, 2), **info}
        write_json(self.run_dir / "run.json", self.record)


def _imports():
    try:
        from brainit_core.models import encoder as enc
        from brainit_core.models.v2c import V2C
    except ImportError as exc:
        raise BrainITError(f"the encoder/V2C modules are not available: {exc}") from exc
    return enc, V2C


def v2c_path(run_dir: Path) -> Path:
    return Path(run_dir) / "v2c"


def load_run_features(dataset, space, ids, device) -> object:
    from brainit_core.features import extract_features

    return extract_features(dataset, np.asarray(ids, dtype=np.int64), space, batch_size=32, device=device)


def needed_image_ids(dataset, subjects: Sequence[str], max_unlabeled: int | None) -> tuple[np.ndarray, np.ndarray]:
    """All train/val/test ids of ``subjects`` and the unlabeled ids (capped, first ones)."""
    ids = [np.concatenate([s.train_image_ids, s.val_image_ids, s.test_image_ids])
           for s in (dataset.subject(n) for n in subjects)]
    unl = dataset.image_set("unlabeled") if "unlabeled" in dataset.image_sets else np.zeros(0, np.int64)
    if max_unlabeled is not None:
        unl = unl[:max_unlabeled]
    return np.unique(np.concatenate(ids)), unl


def build_bit_data(dataset, features, subjects: Sequence[str], mode: str, synthetic: dict | None = None,
                   synthetic_ids: np.ndarray | None = None, trials: dict | None = None) -> BITData:
    """Collect real (train), validation and synthetic samples of ``subjects``."""
    row_of = {int(i): r for r, i in enumerate(features.ids)}
    real, val, syn = {}, {}, {}
    for name in subjects:
        sd = dataset.subject(name)
        b, ids = subject_training_betas(sd, mode, trials=None if trials is None else trials.get(name))
        real[name] = SamplePool(b, np.array([row_of[int(i)] for i in ids], np.int64))
        vb, vids = sd.averaged("val")
        val[name] = SamplePool(vb, np.array([row_of[int(i)] for i in vids], np.int64))
        if synthetic is not None and name in synthetic:
            syn[name] = SamplePool(synthetic[name], np.array([row_of[int(i)] for i in synthetic_ids], np.int64))
    return BITData(features, real, val, syn)


def train_run(data, preset: str = "demo", out=None, device: str = "auto", space_name: str = "lite0",
              bit_config: BITConfig | None = None, encoder_config=None, resume: bool = True,
              head_epochs: dict | None = None) -> Path:
    """Train a complete Brain-IT run (resumable; see the module docstring for the layout).

    Parameters
    ----------
    data : str or PathLike or Dataset
        A canonical dataset directory.
    preset : {"ci", "demo", "full"}
        Sizes of the feature space, encoder and BIT.
    out : str or PathLike
        The run directory.
    device : str
        ``"auto"`` picks CUDA when available (mixed precision for BIT on CUDA).
    space_name : str
        Feature space (``"lite0"`` offline default).
    bit_config, encoder_config : optional
        Override the presets' configs.
    resume : bool
        Continue an existing run directory (otherwise it must be empty or absent).

    Returns
    -------
    Path of the run directory.
    """
    from brainit_core.data import load_dataset
    from brainit_core.features import get_feature_space

    enc, V2C = _imports()
    dataset = data if hasattr(data, "subject") else load_dataset(data)
    run_dir = Path(out)
    if run_dir.exists() and any(run_dir.iterdir()) and not resume:
        raise BrainITError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    config = bit_config or BITConfig.preset(preset)
    enc_config = encoder_config or enc.EncoderConfig.preset(preset)
    subjects = dataset.training_subjects
    record = read_json(run_dir / "run.json", None) or {
        "format_version": 1, "preset": preset, "dataset": str(dataset.path),
        "space": {"name": space_name, "preset": preset}, "subjects": subjects,
        "bit_config": config_dict(config), "encoder_config": _asdict(enc_config), "stages": {},
    }
    if record.get("preset") != preset:
        raise CheckpointError(f"{run_dir / 'run.json'} was made with --preset {record.get('preset')}, not {preset}")
    if record.get("subjects") != subjects:
        raise CheckpointError(f"{run_dir / 'run.json'} was made for subjects {record.get('subjects')}, "
                              f"the dataset has {subjects}")
    _extend_heads(record, head_epochs or {})
    config = BITConfig.from_dict(record["bit_config"])
    enc_config = enc.EncoderConfig(**record["encoder_config"]) if record.get("encoder_config") else enc_config
    write_json(run_dir / "run.json", record)
    stages = _Stages(run_dir, record)
    space = get_feature_space(space_name, preset=preset, device=dev)

    # 1. features of every image needed
    ids, unl = needed_image_ids(dataset, subjects, config.max_unlabeled)
    t0 = time.time()
    features = load_run_features(dataset, space, np.concatenate([ids, unl]), dev)
    if not stages.done("features"):
        stages.finish("features", time.time() - t0, n_images=len(features), n_unlabeled=len(unl))
    report(0.1, "features ready")

    # 2. image-to-fMRI encoder
    t0 = time.time()
    encoder = None
    if not stages.done("encoder"):
        encoder = enc.train_encoder(dataset, space, enc_config, run_dir / "encoder", subjects=subjects, device=dev)
        stages.finish("encoder", time.time() - t0)
    report(0.3, "encoder ready")

    # 3. V2C: GMM over all subjects' normalised encoder voxel embeddings
    t0 = time.time()
    if not stages.done("v2c"):
        encoder = encoder if encoder is not None else enc.load_encoder(run_dir / "encoder" / "encoder", device=dev)
        embeddings = {s: encoder.voxel_embeddings(s).detach().cpu().numpy() for s in subjects}
        v2c = V2C(n_clusters=config.n_clusters, seed=config.seed).fit(embeddings)
        v2c.save(v2c_path(run_dir))
        sizes = np.bincount(np.concatenate(list(v2c.labels_.values())), minlength=config.n_clusters)
        stages.finish("v2c", time.time() - t0, empty_clusters=int((sizes == 0).sum()))
    v2c = V2C.load(v2c_path(run_dir))
    report(0.35, "V2C ready")

    # 4. synthetic fMRI of the unlabeled images for every training subject
    t0 = time.time()
    syn_dir = run_dir / "synthetic"
    if not stages.done("synthetic"):
        encoder = encoder if encoder is not None else enc.load_encoder(run_dir / "encoder" / "encoder", device=dev)
        if len(unl):
            fs_unl = features.subset(np.arange(len(ids), len(ids) + len(unl)))
            for s in track(subjects, desc="synthetic fMRI"):
                if not (syn_dir / f"{s}.npy").exists():
                    save_npy(syn_dir / f"{s}.npy", enc.predict_fmri(encoder, fs_unl, s).astype(np.float16))
        save_npy(syn_dir / "ids.npy", unl)
        stages.finish("synthetic", time.time() - t0, n=len(unl))
    synthetic = {s: np.load(syn_dir / f"{s}.npy", mmap_mode="r") for s in subjects if (syn_dir / f"{s}.npy").exists()}
    syn_ids = np.load(syn_dir / "ids.npy")
    del encoder
    report(0.4, "synthetic fMRI ready")

    # 5. BIT, one head after the other
    bit_data = build_bit_data(dataset, features, subjects, config.betas, synthetic, syn_ids)
    model = BrainITModel(config, space.semantic_spec, space.lowlevel_specs)
    for s in subjects:
        model.add_subject(s, dataset.subject(s).n_vertices, v2c.labels_[s])
        pool = bit_data.real[s]
        model.set_input_stats(s, pool.betas.mean(0), pool.betas.std(0))
    train_rows = np.unique(np.concatenate([bit_data.real[s].rows for s in subjects]))
    model.set_target_stats(*channel_stats(features, train_rows))
    model.to(dev)
    amp = config.amp and dev.type == "cuda"
    for line in describe_memory(model, config, max(dataset.subject(s).n_vertices for s in subjects), amp):
        print(line, flush=True)
    curves = read_json(run_dir / "curves.json", {})
    for k, head in enumerate(HEADS):
        t0 = time.time()
        torch.manual_seed(config.seed + k)
        if not stages.done(f"bit-{head}"):
            curves[head] = train_head(model, head, bit_data, config, run_dir, dev)
            write_json(run_dir / "curves.json", curves)
            stages.finish(f"bit-{head}", time.time() - t0, best_val=min(c["val_loss"] for c in curves[head]))
        else:
            tensors, _, _ = load_checkpoint(run_dir / f"bit_{head}_best", device="cpu")
            model.load_state_dict({**model.state_dict(), **tensors})
        report(0.4 + 0.3 * (k + 1), f"BIT {head} ready")

    # 6. the final checkpoint
    t0 = time.time()
    save_bit(run_dir / "bit", model, record, meta={"curves_file": "curves.json"})
    earlier = sum(v["earlier_seconds"] for v in record.get("extended", {}).values())  # a head trained further
    stages.finish("bit", time.time() - t0,
                  total_seconds=round(sum(v["seconds"] for v in record["stages"].values()) + earlier, 2))
    plot_curves(curves, run_dir / "curves.png")
    return run_dir


def save_bit(path: Path, model: BrainITModel, record: dict, meta: dict | None = None) -> Path:
    """Write ``path.safetensors`` + ``path.json`` (config: asdict(BITConfig), specs, subjects)."""
    cfg = {
        "bit": config_dict(model.config),
        "semantic_spec": _spec_dict(model.semantic_spec),
        "lowlevel_specs": [_spec_dict(s) for s in model.lowlevel_specs],
        "subjects": {s: model.semantic.tokenizer.n_vertices(s) for s in model.subjects},
        "space": record.get("space"),
    }
    return save_checkpoint(path, model.state_dict(), cfg, meta or {})


def load_bit(path: Path, device="cpu") -> tuple[BrainITModel, dict, str]:
    """Rebuild a :class:`BrainITModel` from ``path`` (returns model, config dict, sha256)."""
    from brainit_core.checkpoint import read_checkpoint_record
    from brainit_core.features.base import TokenSpec

    tensors, cfg, _ = load_checkpoint(path, device="cpu")
    sha = read_checkpoint_record(path)["sha256"]
    try:
        config = BITConfig.from_dict(cfg["bit"])
        sem = TokenSpec(cfg["semantic_spec"]["name"], tuple(cfg["semantic_spec"]["grid"]), cfg["semantic_spec"]["dim"])
        low = [TokenSpec(s["name"], tuple(s["grid"]), s["dim"]) for s in cfg["lowlevel_specs"]]
        model = BrainITModel(config, sem, low, cfg["subjects"])
        model.load_state_dict(tensors, strict=True)
    except (KeyError, RuntimeError, TypeError) as exc:
        raise CheckpointError(f"{path}: checkpoint does not match this code's BIT model ({exc})") from exc
    return model.to(device).eval(), cfg, sha


def _spec_dict(spec) -> dict:
    return {"name": spec.name, "grid": list(spec.grid), "dim": int(spec.dim)}


def _asdict(cfg) -> dict:
    from dataclasses import asdict, is_dataclass

    return asdict(cfg) if is_dataclass(cfg) else dict(cfg or {})


def plot_curves(curves: dict, path: Path) -> None:
    """Validation (and training) loss per epoch of each head, saved as a PNG."""
    from matplotlib.figure import Figure

    heads = [h for h in curves if curves[h]]
    if not heads:
        return
    fig = Figure(figsize=(4.5 * len(heads), 3.2))
    for k, h in enumerate(heads):
        ax = fig.add_subplot(1, len(heads), k + 1)
        ep = [c["epoch"] for c in curves[h]]
        ax.plot(ep, [c["val_loss"] for c in curves[h]], "o-", label="validation")
        tr = [(c["epoch"], c["train_loss"]) for c in curves[h] if c.get("train_loss") is not None]
        if tr:
            ax.plot(*zip(*tr), "s--", label="train")
        ax.set_title(f"BIT {h}")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.legend()
        ax2 = ax.twinx()
        ax2.plot(ep, [c["val_corr"] for c in curves[h]], "g:", label="val token r")
        ax2.set_ylabel("val token r", color="g")
    fig.tight_layout()
    tmp = Path(path).with_name(Path(path).name + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    os.replace(tmp, path)
