"""Training losses of the two BIT heads.

- Semantic head: MSE on standardised semantic tokens (official stage 1: MSE on CLIP tokens).
- Low-level head: per-layer InfoNCE over the sampled tokens of the whole batch (official: raw dot
  products, logit scale 1, symmetric cross-entropy, averaged over layers), plus
  ``mse_weight`` x MSE on the same tokens. The MSE term is this project's addition: InfoNCE alone
  fixes directions but not the scale of the predicted maps, while the low-level branch inverts
  them with an MSE feature match, so the maps must be in feature units.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


def info_nce(pred: torch.Tensor, target: torch.Tensor, logit_scale: float = 1.0,
             accuracy: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Symmetric InfoNCE between matching rows of ``pred`` and ``target``.

    Parameters
    ----------
    pred, target : Tensor, shape (..., C)
        Flattened to (M, C); row i of ``pred`` matches row i of ``target``, every other row of
        the batch is a negative.
    logit_scale : float
        Logits are ``logit_scale * pred @ target.T`` (no normalisation).
    accuracy : bool
        Also compute the retrieval accuracy (skipped in training steps: an extra pass).

    Returns
    -------
    loss : Tensor, scalar
    accuracy : Tensor, scalar
        Fraction of targets whose best-scoring prediction is their own.
    """
    p = pred.reshape(-1, pred.shape[-1]).float()
    t = target.reshape(-1, target.shape[-1]).float()
    logits = logit_scale * p @ t.T  # (M, M)
    labels = torch.arange(len(p), device=p.device)
    loss = 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
    acc = (logits.T.argmax(1) == labels).float().mean() if accuracy else None
    return loss, acc


def info_nce_rows(pred: torch.Tensor, target: torch.Tensor, shard, logit_scale: float = 1.0,
                  accuracy: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """This process's share of :func:`info_nce` over the whole batch of several processes, by rows.

    ``pred`` and ``target`` are this process's samples ``(b, ..., C)`` of the batch (``shard``). The
    other processes' rows are gathered (``Shard.gather``, gradients summed back); this process
    computes only its own rows of the logits (its predictions against every target) and of their
    transpose (its targets against every prediction): two ``(m, M)`` blocks instead of the
    ``(M, M)`` matrix (``m`` its rows, ``M`` the batch's), so the logits' memory is split by the
    number of processes. Each block's cross-entropies are summed over its rows and divided by ``M``:
    the shares (loss and accuracy) sum to :func:`info_nce` of the gathered batch, and so do their
    gradients once summed over processes.
    """
    c = pred.shape[-1]
    p_own, t_own = pred.reshape(-1, c).float(), target.reshape(-1, c).float()
    p_all, t_all = shard.gather(pred).reshape(-1, c).float(), shard.gather(target).reshape(-1, c).float()
    per_sample = p_own.shape[0] // max(len(shard), 1)
    labels = torch.arange(shard.lo * per_sample, shard.lo * per_sample + p_own.shape[0], device=p_own.device)
    rows = logit_scale * p_own @ t_all.T  # (m, M): row i of the logits
    cols = logit_scale * t_own @ p_all.T  # (m, M): row i of the logits' transpose
    n = p_all.shape[0]
    loss = 0.5 * (F.cross_entropy(rows, labels, reduction="sum") + F.cross_entropy(cols, labels, reduction="sum")) / n
    acc = (cols.argmax(1) == labels).float().sum() / n if accuracy else None
    return loss, acc


def semantic_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE between standardised semantic tokens, (B, N, D) each."""
    return F.mse_loss(pred.float(), target.float())


def lowlevel_loss(preds: Sequence[torch.Tensor], targets: Sequence[torch.Tensor], logit_scale: float = 1.0,
                  mse_weight: float = 0.0, accuracy: bool = False, shard=None) -> tuple[torch.Tensor, dict]:
    """Low-level loss over layers.

    Parameters
    ----------
    preds, targets : sequence of Tensor, each (B, n_l, C_l)
        Sampled tokens of each layer, standardised per channel.
    logit_scale : float
    mse_weight : float
        Weight of the MSE term added to the mean InfoNCE.
    accuracy : bool
        Report the InfoNCE retrieval accuracy in ``parts``.
    shard : Shard, optional
        This process's part of the batch (:mod:`brainit_core.distributed`): the InfoNCE's negatives
        are the rows of every process (gathered), each process computing its own rows of the logits
        (:func:`info_nce_rows`), and the loss returned is this process's share.

    Returns
    -------
    loss : Tensor, scalar
    parts : dict
        ``infonce``, ``mse`` and, if asked, ``acc`` (floats, means over layers; shares with ``shard``).
    """
    nce, mse, acc = [], [], []
    split = shard is not None and not shard.whole
    for p, t in zip(preds, targets):
        if split:  # this process's rows of the whole batch's InfoNCE
            l, a = info_nce_rows(p, t, shard, logit_scale, accuracy)
        else:
            l, a = info_nce(p, t, logit_scale, accuracy)
        nce.append(l)
        if a is not None:
            acc.append(a)
        m = F.mse_loss(p.float(), t.float())
        mse.append(shard.share(m) if split else m)
    nce_m = torch.stack(nce).mean()
    mse_m = torch.stack(mse).mean()
    loss = nce_m + mse_weight * mse_m if mse_weight else nce_m
    parts = {"infonce": float(nce_m.detach()), "mse": float(mse_m.detach())}
    if acc:
        parts["acc"] = float(torch.stack(acc).mean())
    return loss, parts
