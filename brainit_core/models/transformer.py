"""Cross-Transformer: brain tokens talk to each other (self-attention) and are read out by
query tokens (cross-attention), one query token per output feature location.

Layout (official): cross block 0, then n x [self-attention block, cross block], so there is one
more cross block than self-attention blocks (full size: 5 self, 6 cross, 8 heads, width 512).

- Self-attention block: pre-LN, multi-head attention (qkv without bias), MLP x4 with GELU,
  residuals (ViT/DINO style).
- Cross block: the running query state enters the attention *unprojected* (split into heads as
  it is); keys and values are a linear map of the layer-normed brain tokens. The block returns an
  update ``y = attn + MLP(LN(attn))`` that is added to the query state.
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F


class MLP(nn.Module):
    def __init__(self, dim: int, ratio: float = 4.0):
        super().__init__()
        hidden = int(dim * ratio)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, need_weights: bool):
    """q (B, H, Nq, d), k/v (B, H, Nk, d) -> (B, H, Nq, d) and weights (B, H, Nq, Nk) or None."""
    if not need_weights:
        return F.scaled_dot_product_attention(q, k, v), None
    w = torch.softmax((q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5, dim=-1)  # (B, H, Nq, Nk)
    return w @ v, w


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, need_weights: bool = False):
        B, N, D = x.shape
        qkv = self.qkv(x).view(B, N, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)  # (3, B, H, N, d)
        y, w = _attend(qkv[0], qkv[1], qkv[2], need_weights)
        return self.proj(y.transpose(1, 2).reshape(B, N, D)), w


class CrossAttention(nn.Module):
    """Queries enter unprojected; keys/values from the (normed) brain tokens."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.kv = nn.Linear(dim, 2 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, query: torch.Tensor, x: torch.Tensor, need_weights: bool = False):
        B, Nq, D = query.shape
        N = x.shape[1]
        d = D // self.heads
        q = query.reshape(B, Nq, self.heads, d).transpose(1, 2)  # (B, H, Nq, d)
        kv = self.kv(x).view(B, N, 2, self.heads, d).permute(2, 0, 3, 1, 4)  # (2, B, H, N, d)
        y, w = _attend(q.to(kv.dtype), kv[0], kv[1], need_weights)
        return self.proj(y.transpose(1, 2).reshape(B, Nq, D)), w


class SelfAttentionBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))[0]  # (B, C, D)
        return x + self.mlp(self.norm2(x))


class CrossAttentionBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = CrossAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, mlp_ratio)

    def forward(self, brain: torch.Tensor, query: torch.Tensor, need_weights: bool = False):
        """Return the update for the query state (B, Nq, D) and attention (B, H, Nq, C) or None."""
        y, w = self.attn(query, self.norm1(brain), need_weights)
        return y + self.mlp(self.norm2(y)), w


class CrossTransformer(nn.Module):
    """Self-attention over brain tokens interleaved with cross-attention from query tokens.

    Parameters
    ----------
    dim : int
    heads : int
    n_self_blocks : int
        Self-attention blocks; there are ``n_self_blocks + 1`` cross blocks.
    mlp_ratio : float
    """

    def __init__(self, dim: int, heads: int, n_self_blocks: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.self_blocks = nn.ModuleList(SelfAttentionBlock(dim, heads, mlp_ratio) for _ in range(n_self_blocks))
        self.cross_blocks = nn.ModuleList(CrossAttentionBlock(dim, heads, mlp_ratio) for _ in range(n_self_blocks + 1))

    def forward(self, brain: torch.Tensor, queries: torch.Tensor, return_attention: bool = False):
        """
        Parameters
        ----------
        brain : Tensor, shape (B, C, D)
            Brain tokens.
        queries : Tensor, shape (B, Nq, D)
            Query tokens (one per output location).
        return_attention : bool

        Returns
        -------
        out : Tensor, shape (B, Nq, D)
        attention : list of Tensor, each (B, Nq, C), or None
            Cross-attention of each cross block, averaged over heads.
        """
        maps = [] if return_attention else None
        update, w = self.cross_blocks[0](brain, queries, return_attention)
        x = queries + update  # (B, Nq, D)
        if maps is not None:
            maps.append(w.mean(1))
        for block, cross in zip(self.self_blocks, self.cross_blocks[1:]):
            brain = block(brain)  # (B, C, D)
            update, w = cross(brain, x, return_attention)
            x = x + update
            if maps is not None:
                maps.append(w.mean(1))
        return x, maps
