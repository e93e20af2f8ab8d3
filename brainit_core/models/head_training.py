"""Training one BIT head: AdamW with the official warm-up and reduce-on-plateau, resumable per epoch.

All randomness of an epoch (order, synthetic draws, voxel subsets, sampled tokens) comes from a
generator seeded by (seed, head, epoch), so a resumed run repeats exactly what an uninterrupted one
would have done. After every epoch the head's weights, AdamW moments, scheduler and curves are saved
(``bit_<tag>_state``) and the best epoch's weights kept (``bit_<tag>_best``).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from brainit_core import distributed
from brainit_core.checkpoint import checkpoint_exists, load_checkpoint, optimizer_state, restore_optimizer, save_checkpoint
from brainit_core.errors import check_loss
from brainit_core.fileio import read_json, write_json
from brainit_core.models.bit import BITConfig, BrainITModel, config_dict
from brainit_core.models.bit_data import BITData, epoch_samples, make_groups, standardized_targets
from brainit_core.models.losses import lowlevel_loss, semantic_loss
from brainit_core.progress import report, track

log = logging.getLogger(__name__)

HEADS = ("semantic", "lowlevel")
# stream of each training tag in the per-epoch seeds (fixed: changing it changes every run)
STREAM_ID = {"semantic": 1, "lowlevel": 2, "transfer-semantic": 3, "transfer-lowlevel": 4}


def epoch_generators(seed: int, head: str, epoch: int) -> tuple[np.random.Generator, torch.Generator]:
    ss = np.random.SeedSequence([int(seed), STREAM_ID[head], int(epoch)])
    rng = np.random.default_rng(ss)
    tg = torch.Generator().manual_seed(int(ss.generate_state(1, dtype=np.uint64)[0] % (2**63)))
    return rng, tg


def head_loss(model: BrainITModel, head: str, groups, targets: list[torch.Tensor], config: BITConfig,
              tg: torch.Generator | None, sample_tokens: bool = True, shard=None) -> tuple[torch.Tensor, dict]:
    """Loss of one head on one batch (targets standardised, all locations).

    With a :class:`~brainit_core.distributed.Shard` the groups hold this process's samples and the
    loss is its share of the batch's loss (token samples are drawn for the whole batch).
    """
    net = model.heads[head]
    brain, _ = net.tokenize(groups)  # (B, C, D)
    if head == "semantic":
        pred, _ = net.read_out(brain)
        loss = semantic_loss(pred[0], targets[0])
        return (loss if shard is None else shard.share(loss)), {"mse": float(loss.detach())}
    B = brain.shape[0]
    query_idx = None
    if sample_tokens:
        counts = config.samples_per_layer(model.lowlevel_specs)
        def rand(shape):
            return torch.rand(*shape, generator=tg)

        query_idx = [(rand((B, t.shape[1])) if shard is None else shard.draw(rand, (B, t.shape[1])))
                     .argsort(1)[:, :k].to(brain.device) for t, k in zip(targets, counts)]
        targets = [torch.gather(t, 1, i.unsqueeze(-1).expand(-1, -1, t.shape[-1])) for t, i in zip(targets, query_idx)]
    pred, _ = net.read_out(brain, query_idx)
    return lowlevel_loss(pred, targets, config.logit_scale, config.lowlevel_mse_weight, shard=shard)


def mixed_precision(device, enabled: bool):
    """bf16 autocast on CUDA when ``enabled`` (:func:`brainit_core.distributed.autocast`)."""
    return distributed.autocast(device, enabled)


@torch.no_grad()
def validate_head(model: BrainITModel, head: str, data: BITData, config: BITConfig, device,
                  subjects: Sequence[str] | None = None, amp: bool = False) -> dict:
    """Validation loss and per-token correlation of a head on the real validation samples
    (all voxels, all locations). The low-level InfoNCE uses a fixed token sample (seed 0) so that
    epochs are comparable. Several processes take turns by validation batch and sum the results.
    """
    model.eval()
    net = model.heads[head]
    tg = torch.Generator().manual_seed(0)
    counts = config.samples_per_layer(model.lowlevel_specs) if head != "semantic" else []
    n_tokens = [int(np.prod(s.grid)) for s in model.lowlevel_specs]
    loss_sum, corr_sum, n, k = 0.0, 0.0, 0, -1
    for subject in subjects or list(data.val):
        pool = data.val.get(subject)
        if pool is None or not len(pool):
            continue
        for start in range(0, len(pool), config.eval_batch):
            batch = [("real", subject, i) for i in range(start, min(start + config.eval_batch, len(pool)))]
            idx = [torch.rand(len(batch), nt, generator=tg).argsort(1)[:, :c].to(device) for nt, c in zip(n_tokens, counts)]
            k += 1
            if not distributed.my_turn(k):
                continue
            groups, rows = make_groups(model, BITData(data.features, {subject: pool}, {}, {}), batch, None, device, None)
            targets = standardized_targets(model, head, data, rows, device)
            with mixed_precision(device, amp):
                pred, _ = net.read_out(net.tokenize(groups)[0])
            pred = [p.float() for p in pred]
            if head == "semantic":
                loss = semantic_loss(pred[0], targets[0])
            else:
                pick = lambda t, i: torch.gather(t, 1, i.unsqueeze(-1).expand(-1, -1, t.shape[-1]))  # noqa: E731
                loss, _ = lowlevel_loss([pick(p, i) for p, i in zip(pred, idx)], [pick(t, i) for t, i in zip(targets, idx)],
                                        config.logit_scale, config.lowlevel_mse_weight)
            loss_sum += float(loss) * len(rows)
            corr_sum += float(np.mean([token_corr(p, t).mean().item() for p, t in zip(pred, targets)])) * len(rows)
            n += len(rows)
    loss_sum, corr_sum, n = distributed.all_reduce_sum([loss_sum, corr_sum, n]).tolist()
    return {"val_loss": loss_sum / max(n, 1), "val_corr": corr_sum / max(n, 1)}


def token_corr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Pearson r over channels for each (sample, token): (B, N, C) x2 -> (B, N)."""
    p = pred - pred.mean(-1, keepdim=True)
    t = target - target.mean(-1, keepdim=True)
    return (p * t).sum(-1) / (p.norm(dim=-1) * t.norm(dim=-1) + 1e-8)


def warmup_factor(epoch: int, warmup_epochs: int, start: float = 1e-3) -> float:
    """Official warm-up: ``start + (1 - start) (epoch / warmup)^3`` for epoch <= warmup."""
    if warmup_epochs <= 0 or epoch >= warmup_epochs:
        return 1.0
    return start + (1 - start) * (epoch / warmup_epochs) ** 3


def train_head(model: BrainITModel, head: str, data: BITData, config: BITConfig, out_dir: Path, device,
               epochs: int | None = None, params: Sequence[torch.nn.Parameter] | None = None,
               subjects: Sequence[str] | None = None, synthetic_per_real: float | None = None,
               tag: str | None = None, schedule: bool = True, batch_size: int | None = None,
               keep: str = "best") -> list[dict]:
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
    keep : {"best", "last"}
        Weights kept in ``bit_<tag>_best``: the epoch with the lowest validation loss, or the last one
        (a fixed schedule; validation is then only reported).

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
    world = distributed.world_size()
    if checkpoint_exists(state_path):
        tensors, cfg, meta = load_checkpoint(state_path, device="cpu")
        own = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        model.load_state_dict({**model.state_dict(), **own})
        restore_optimizer(opt, tensors, meta["optimizer"])
        plateau.load_state_dict(meta["plateau"])
        curves, start_epoch, best = meta["curves"], meta["epoch"] + 1, meta["best"]
        log.info("%s: resuming after epoch %d", tag, meta["epoch"])
    distributed.broadcast_parameters(net)  # identical replicas on every process
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
        rng, tg = epoch_generators(config.seed, tag if tag in STREAM_ID else head, epoch)
        samples = epoch_samples(data, ratio, rng, subjects)
        model.train()
        total, count = 0.0, 0
        starts = range(0, len(samples), batch_size)
        kept = (f"{state_path.name} after epoch {epoch - 1}, {best_path.name}" if checkpoint_exists(state_path)
                else "no epoch was saved yet")
        for start in track(starts, desc=f"BIT {tag} epoch {epoch}/{epochs}"):
            batch = samples[start:start + batch_size]
            if len(batch) < max(2, world):  # (several processes: each needs a sample)
                continue
            shard = distributed.shard_of(len(batch)) if world > 1 else None
            groups, rows = make_groups(model, data, batch, config.voxels_per_sample, device, tg, shard)
            targets = standardized_targets(model, head, data, rows, device)
            with mixed_precision(device, amp):
                loss, _ = head_loss(model, head, groups, targets, config, tg, shard=shard)
            value = float(loss.detach()) if world == 1 else float(distributed.all_reduce_sum([float(loss.detach())])[0])
            value = check_loss(value, f"BIT {tag}, epoch {epoch}, batch {start // batch_size + 1}", kept)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            distributed.sync_gradients(params)
            opt.step()
            total += value * len(batch)
            count += len(batch)
        # 3. validation, best weights, resumable state
        val = validate_head(model, head, data, config, device, subjects, amp)
        check_loss(val["val_loss"], f"BIT {tag}, epoch {epoch}, validation", kept)
        last_metric = val["val_loss"]
        rec = {"epoch": epoch, "train_loss": total / max(count, 1), "lr": lr, "seconds": time.time() - t0, **val}
        curves.append(rec)
        log.info("%s epoch %d: train %.4f val %.4f corr %.3f (%.0f s)", tag, epoch, rec["train_loss"],
                 val["val_loss"], val["val_corr"], rec["seconds"])
        head_state = {k: v for k, v in model.state_dict().items() if k.startswith(head_prefix)}
        if val["val_loss"] < best or keep == "last" or not checkpoint_exists(best_path):
            best = min(best, val["val_loss"])
            save_checkpoint(best_path, head_state, {"bit": config_dict(config)}, {"epoch": epoch, "val": val})
        opt_t, opt_meta = optimizer_state(opt)
        save_checkpoint(state_path, {**{f"model.{k}": v for k, v in head_state.items()}, **opt_t},
                        {"bit": config_dict(config)},
                        {"epoch": epoch, "best": best, "curves": curves, "optimizer": opt_meta,
                         "plateau": plateau.state_dict()})
        distributed.barrier()  # rank 0 has written the epoch's files
    if checkpoint_exists(best_path):
        tensors, _, _ = load_checkpoint(best_path, device="cpu")
        model.load_state_dict({**model.state_dict(), **tensors})
    for p in net.parameters():
        p.requires_grad_(True)
    return curves


def train_heads(model: BrainITModel, stages, out_dir: Path, train, seeds: dict, tags: dict | None = None,
                label: str = "") -> dict:
    """Train both heads as the stages ``bit-semantic`` and ``bit-lowlevel`` of a run, one after the other.

    A finished stage is not trained again: the head's best weights (``bit_<tag>_best``) are loaded.

    Parameters
    ----------
    model : BrainITModel
    stages : RunStages
    out_dir : Path
        The run directory (``curves.json`` is updated after each head).
    train : callable
        ``train(head) -> curves`` (one dict per epoch), e.g. a call of :func:`train_head`.
    seeds : dict
        Head -> torch seed set before its training.
    tags : dict, optional
        Head -> checkpoint tag (default: the head's name).
    label : str
        Appended to the progress message (``"BIT semantic ready"``).

    Returns
    -------
    dict
        Head -> its curves (all heads trained so far, earlier calls included).
    """
    out_dir = Path(out_dir)
    tags = tags or {}
    curves = read_json(out_dir / "curves.json", {})
    for k, head in enumerate(HEADS):
        t0 = time.time()
        if not stages.done(f"bit-{head}"):
            torch.manual_seed(seeds[head])
            curves[head] = train(head)
            write_json(out_dir / "curves.json", curves)
            stages.finish(f"bit-{head}", time.time() - t0, best_val=min(c["val_loss"] for c in curves[head]))
        else:
            tensors, _, _ = load_checkpoint(out_dir / f"bit_{tags.get(head, head)}_best", device="cpu")
            model.load_state_dict({**model.state_dict(), **tensors})
        report(0.4 + 0.3 * (k + 1), f"BIT {head} {label}ready")
    return curves
