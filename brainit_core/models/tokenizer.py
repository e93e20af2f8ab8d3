"""Brain Tokenizer: voxels -> C brain tokens by graph attention restricted to V2C clusters.

Each voxel v of subject s has a learned decoder embedding e_v (D) that is multiplied by the
voxel's activation a_v. Each of the C learned cluster embeddings c_k queries, with single-head
attention, the modulated embeddings a_v e_v of *its own* voxels (the V2C labels); the result goes
through ReLU and LayerNorm and becomes brain token k. This is the official graph-transformer
convolution (torch_geometric ``TransformerConv``, one head, root weight) written in plain torch.

Because keys and values are linear in the modulated embedding, the computation factorises and
never builds a (B, V, D) tensor:

    score_v = a_v (W_k^T q_k) . e_v / sqrt(D)      q_k . b_k is the same for every voxel of cluster
                                                   k and cancels in the softmax
    alpha_v = softmax of score over the voxels of cluster k (scatter max / exp / index_add)
    token_k = W_v (sum_v alpha_v a_v e_v) + b_v [k non-empty] + W_skip c_k + b_skip

The weighted sum is an ``embedding_bag`` over (sample, cluster) bags, so memory grows with
B x V scalars, not B x V x D. An empty cluster gets only its skip term: a constant learned token
(never NaN).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from brainit_core.errors import UnknownSubjectError


def _buffer_name(subject: str) -> str:
    return f"labels__{subject}"


class BrainTokenizer(nn.Module):
    """Graph attention from voxels to C brain tokens.

    Parameters
    ----------
    n_clusters : int
        Number of V2C clusters C (= brain tokens).
    dim : int
        Width D of voxel embeddings, cluster embeddings and brain tokens.
    init_scale : float
        Voxel and cluster embeddings start as ``init_scale / (2 sqrt(D)) * N(0, 1)`` (official).
    root_weight : bool
        Add ``W_skip c_k`` to each token (official ``TransformerConv`` default).

    Notes
    -----
    Subjects are added with :meth:`add_subject`; their cluster labels are persistent buffers
    ``labels__<subject>`` so a checkpoint is self-contained.
    """

    def __init__(self, n_clusters: int, dim: int, init_scale: float = 0.1, root_weight: bool = True):
        super().__init__()
        self.n_clusters = int(n_clusters)
        self.dim = int(dim)
        self.init_scale = float(init_scale)
        self.root_weight = bool(root_weight)
        std = self.init_scale / (2 * math.sqrt(dim))
        self.cluster_embeddings = nn.Parameter(std * torch.randn(n_clusters, dim))  # (C, D)
        self.voxel_embeddings = nn.ParameterDict()  # subject -> (V_s, D)
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.skip = nn.Linear(dim, dim) if root_weight else None
        self.norm = nn.LayerNorm(dim)

    # -- subjects ---------------------------------------------------------------------------
    @property
    def subjects(self) -> list[str]:
        return list(self.voxel_embeddings.keys())

    def add_subject(self, name: str, n_vertices: int, labels=None, init: torch.Tensor | None = None) -> None:
        """Register a subject's voxels.

        Parameters
        ----------
        name : str
        n_vertices : int
        labels : array-like of int, shape (n_vertices,), optional
            V2C cluster of each voxel (zeros until :meth:`set_labels` or a checkpoint fills them).
        init : Tensor, shape (n_vertices, D), optional
            Initial decoder voxel embeddings (transfer: the nearest reference voxels' ones).
        """
        if name in self.voxel_embeddings:
            raise ValueError(f"subject {name!r} is already registered")
        if init is None:
            std = self.init_scale / (2 * math.sqrt(self.dim))
            init = std * torch.randn(n_vertices, self.dim, device=self.cluster_embeddings.device)
        init = torch.as_tensor(init, dtype=self.cluster_embeddings.dtype, device=self.cluster_embeddings.device)
        if init.shape != (n_vertices, self.dim):
            raise ValueError(f"init for {name!r} has shape {tuple(init.shape)}, expected ({n_vertices}, {self.dim})")
        self.voxel_embeddings[name] = nn.Parameter(init.clone())
        self.register_buffer(_buffer_name(name), torch.zeros(n_vertices, dtype=torch.long,
                                                             device=self.cluster_embeddings.device))
        if labels is not None:
            self.set_labels(name, labels)

    def set_labels(self, name: str, labels) -> None:
        """Set the V2C labels (int in [0, C)) of a registered subject's voxels."""
        buf = self.labels(name)
        lab = torch.as_tensor(np.asarray(labels), dtype=torch.long, device=buf.device)
        if lab.shape != buf.shape:
            raise ValueError(f"labels for {name!r} have shape {tuple(lab.shape)}, expected {tuple(buf.shape)}")
        if len(lab) and (int(lab.min()) < 0 or int(lab.max()) >= self.n_clusters):
            raise ValueError(f"labels for {name!r} must lie in [0, {self.n_clusters})")
        buf.copy_(lab)

    def labels(self, name: str) -> torch.Tensor:
        """(V,) cluster index of each voxel of ``name``."""
        if name not in self.voxel_embeddings:
            raise UnknownSubjectError(f"subject {name!r} is not known to this model; known: {self.subjects}")
        return getattr(self, _buffer_name(name))

    def n_vertices(self, name: str) -> int:
        return int(self.labels(name).shape[0])

    # -- forward ----------------------------------------------------------------------------
    def forward(self, betas: torch.Tensor, subject: str, voxel_idx: torch.Tensor | None = None,
                return_attention: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Voxel activations of one subject -> brain tokens.

        Parameters
        ----------
        betas : Tensor, shape (B, N)
            Activations of the selected voxels.
        subject : str
        voxel_idx : LongTensor, shape (B, N) or (N,), optional
            Which of the subject's voxels each column is (distinct within a row); ``None`` means
            all voxels in order (then N = V).
        return_attention : bool
            Also return each voxel's attention weight inside its cluster.

        Returns
        -------
        tokens : Tensor, shape (B, C, D)
        attention : Tensor, shape (B, N), or None
            Weights sum to 1 over the voxels of each non-empty cluster of each sample.
        """
        emb = self.voxel_embeddings[subject]  # (V, D)
        labels = self.labels(subject)  # (V,)
        B, N = betas.shape
        C, D = self.n_clusters, self.dim
        device = betas.device
        if voxel_idx is None:
            if N != emb.shape[0]:
                raise ValueError(f"{subject}: got {N} activations for {emb.shape[0]} voxels and no voxel_idx")
            voxel_idx = torch.arange(N, device=device)
        if voxel_idx.ndim == 1:
            voxel_idx = voxel_idx.unsqueeze(0).expand(B, N)
        betas = betas.float()

        # 1. one attention logit per voxel and unit activation: (W_k^T q_k) . e_v / sqrt(D)
        q = self.query(self.cluster_embeddings)  # (C, D)
        qk = q @ self.key.weight  # (C, D)
        unit_score = (emb * qk[labels]).sum(-1) / math.sqrt(D)  # (V,)

        # 2. softmax within each (sample, cluster) group
        group = labels[voxel_idx] + C * torch.arange(B, device=device).unsqueeze(1)  # (B, N)
        g = group.reshape(-1)
        score = (betas * unit_score[voxel_idx]).reshape(-1)  # (B*N,)
        gmax = torch.full((B * C,), float("-inf"), device=device, dtype=score.dtype)
        gmax = gmax.scatter_reduce(0, g, score.detach(), reduce="amax", include_self=True)
        ex = torch.exp(score - gmax[g])
        denom = torch.zeros(B * C, device=device, dtype=ex.dtype).index_add(0, g, ex)
        alpha = ex / denom[g]  # (B*N,)

        # 3. aggregate sum_v alpha_v a_v e_v per group without a (B, N, D) tensor
        order = torch.argsort(g, stable=True)
        counts = torch.bincount(g, minlength=B * C)  # (B*C,)
        offsets = torch.cumsum(counts, 0) - counts
        weights = (alpha * betas.reshape(-1))[order].to(emb.dtype)
        agg = F.embedding_bag(voxel_idx.reshape(-1)[order], emb, offsets, mode="sum",
                              per_sample_weights=weights)  # (B*C, D)

        # 4. value projection (its bias counts once per non-empty cluster), root weight, ReLU, LN
        nonempty = (counts > 0).to(agg.dtype).unsqueeze(1)  # (B*C, 1)
        out = F.linear(agg, self.value.weight) + nonempty * self.value.bias  # (B*C, D)
        out = out.view(B, C, D)
        if self.skip is not None:
            out = out + self.skip(self.cluster_embeddings)  # (B, C, D)
        tokens = self.norm(F.relu(out))  # (B, C, D)
        return tokens, (alpha.view(B, N) if return_attention else None)
