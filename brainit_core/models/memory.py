"""Size and training memory of the BIT heads, for presets and the full-size plan (``scripts/bench_bit_memory.py``)."""
from __future__ import annotations

from torch import nn

from brainit_core.models.bit import BITConfig


def count_parameters(module: nn.Module, voxel_embeddings: bool = True) -> int:
    n = 0
    for name, p in module.named_parameters():
        if voxel_embeddings or "voxel_embeddings" not in name:
            n += p.numel()
    return n


def estimate_memory(config: BITConfig, n_params: int, n_queries: int, batch: int, n_voxels: int,
                    n_out: int, amp: bool, contrastive_tokens: int = 0, contrastive_rows: int | None = None) -> dict:
    """Rough training memory of one BIT head in bytes.

    ``params = 16 P`` (fp32 weights, gradients and two AdamW moments) and, per sample,
    ``tokenizer = 40 N + 16 C D`` (N sampled voxels: int64 index, logits, exp, weights;
    bags of width D), ``self blocks = n_self (16 C D + 2 H C^2)``, ``cross blocks =
    (n_self + 1) (3 C D + 14 Nq D + 2 H Nq C)``, ``read-out = Nq C_out`` elements; activation
    elements cost 2 bytes with AMP, 4 without; the InfoNCE of the largest layer adds ``16 M^2``
    bytes in one process (M = ``contrastive_tokens``, the batch x sampled tokens of that layer: fp32
    logits, two log-softmaxes and their gradient) and ``24 m M`` bytes when a process computes only
    its ``m = contrastive_rows`` rows of them (``losses.info_nce_rows``: two ``(m, M)`` blocks, the
    logits and their transpose, each with its log-softmax and gradient); plus 20 % for allocator slack.

    Returns
    -------
    dict with ``params``, ``activations``, ``total`` (bytes).
    """
    C, D, H, L = config.n_clusters, config.dim, config.heads, config.n_self_blocks
    elem = 2 if amp else 4
    tok = 40 * n_voxels + 16 * C * D * 4
    blocks = L * (16 * C * D + 2 * H * C * C) + (L + 1) * (3 * C * D + 14 * n_queries * D + 2 * H * n_queries * C)
    act = batch * (tok + elem * (blocks + n_queries * n_out)) + (
        16 * contrastive_tokens ** 2 if contrastive_rows is None else 24 * contrastive_rows * contrastive_tokens)
    params = 16 * n_params
    return {"params": params, "activations": act, "total": int(1.2 * (params + act))}
