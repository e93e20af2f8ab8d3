"""BIT, the Brain Interaction Transformer: fMRI betas -> image feature tokens.

One :class:`BrainIT` network = Brain Tokenizer (voxels -> C brain tokens) + Cross-Transformer
(learned query tokens, one per output feature location, read the brain tokens) + one linear
read-out per output layer. :class:`BrainITModel` holds the two heads as two separate networks,
as the official code trains them (semantic: batch 128, MSE; low-level: batch 64, InfoNCE), plus
the per-subject input statistics and the per-channel target statistics needed to return
predictions in feature units.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Sequence

import numpy as np
import torch
from torch import nn

from brainit_core.features.base import TokenSpec, tokens_to_maps
from brainit_core.models.tokenizer import BrainTokenizer
from brainit_core.models.transformer import CrossTransformer


@dataclass
class BITConfig:
    """Sizes and training settings of BIT (both heads use the same sizes).

    Parameters
    ----------
    n_clusters : int
        V2C clusters = brain tokens per sample (official 128).
    dim : int
        Width of voxel/cluster embeddings, brain tokens and query tokens (official 512).
    heads : int
        Attention heads of the Cross-Transformer (official 8).
    n_self_blocks : int
        Self-attention blocks; cross blocks = n_self_blocks + 1 (official 5 and 6).
    mlp_ratio : float
        MLP hidden width / dim (4).
    init_scale : float
        Embeddings and query tokens start at ``init_scale / (2 sqrt(dim)) * N(0, 1)`` (official 0.1).
    voxels_per_sample : int
        Random voxels per training sample, without replacement (official 15,000); all voxels at test.
    betas : str
        ``"averaged"`` (official: repeat-averaged betas, one sample per image) or ``"single"``
        (every trial is a sample).
    semantic_epochs, lowlevel_epochs : int
        Epoch limits of the two heads (official <= 75).
    warmup_epochs : int
        Learning-rate warm-up: factor 1e-3 + (1 - 1e-3) (epoch / warmup)^3 (official 15).
    lr, weight_decay : float
        AdamW (official 5e-4, torch default decay 0.01).
    plateau_patience, plateau_factor : int, float
        ReduceLROnPlateau on the validation loss after warm-up (official 5, 0.1).
    semantic_batch, lowlevel_batch : int
        Batch sizes (official 128 and 64).
    eval_batch : int
        Batch size of validation and prediction.
    lowlevel_samples : tuple of int
        Tokens sampled per image per low-level layer for the InfoNCE (official 512/512/128/64/16).
        Layer l uses ``lowlevel_samples[min(l, len - 1)]``, capped at the layer's token count.
    logit_scale : float
        InfoNCE logits = scale x raw dot products (official 1).
    lowlevel_mse_weight : float
        Weight of the MSE term added to the low-level InfoNCE (this project's addition, so the
        predicted maps are in feature units for the MSE-based inversion).
    synthetic_per_real : float
        Synthetic samples (encoder predictions for unlabeled images, random subject) drawn per
        real sample in each epoch.
    max_unlabeled : int or None
        Cap on the unlabeled images used for synthetic fMRI (None: all).
    amp : bool
        bfloat16/float16 autocast on CUDA (ignored on CPU).
    transfer_epochs : int
        Epochs of decoder voxel-embedding training for a new subject (official 50).
    transfer_synthetic_per_real : float
        Synthetic : real ratio in transfer (official 3).
    transfer_selection, transfer_holdout : str, float
        Epoch choice within a transfer's budget, never on the val split: ``"last"`` (official) keeps the
        last, ``"holdout"`` the best on ``transfer_holdout`` of the budget's images (trained on the rest).
    v2c_covariance : {"full", "diag"}
        Covariance of the V2C Gaussian mixture (official: full).
    seed : int
    """

    n_clusters: int = 128
    dim: int = 512
    heads: int = 8
    n_self_blocks: int = 5
    mlp_ratio: float = 4.0
    init_scale: float = 0.1
    voxels_per_sample: int = 15000
    betas: str = "averaged"
    semantic_epochs: int = 75
    lowlevel_epochs: int = 75
    warmup_epochs: int = 15
    lr: float = 5e-4
    weight_decay: float = 0.01
    plateau_patience: int = 5
    plateau_factor: float = 0.1
    semantic_batch: int = 128
    lowlevel_batch: int = 64
    eval_batch: int = 32
    lowlevel_samples: tuple = (512, 512, 128, 64, 16)
    logit_scale: float = 1.0
    lowlevel_mse_weight: float = 1.0
    synthetic_per_real: float = 3.0
    max_unlabeled: int | None = None
    amp: bool = True
    transfer_epochs: int = 50
    transfer_synthetic_per_real: float = 3.0
    transfer_selection: str = "last"
    transfer_holdout: float = 0.2
    v2c_covariance: str = "full"
    seed: int = 0

    @classmethod
    def preset(cls, name: str) -> "BITConfig":
        """``ci`` (seconds), ``demo`` (2 CPU cores, 65 min with the encoder, docs/models.md), ``full`` (the official code's sizes, docs/models.md)."""
        if name == "ci":
            return cls(n_clusters=8, dim=32, heads=2, n_self_blocks=1, voxels_per_sample=10**9,
                       semantic_epochs=3, lowlevel_epochs=3, warmup_epochs=1, semantic_batch=16,
                       lowlevel_batch=16, eval_batch=16, lowlevel_samples=(32, 16, 8, 4),
                       synthetic_per_real=1.0, max_unlabeled=256, transfer_epochs=2)
        if name == "demo":
            return cls(n_clusters=32, dim=128, heads=4, n_self_blocks=2, voxels_per_sample=1500,
                       semantic_epochs=10, lowlevel_epochs=20, warmup_epochs=2, plateau_patience=2,
                       semantic_batch=64, lowlevel_batch=32, eval_batch=64,
                       lowlevel_samples=(64, 64, 32, 16), lowlevel_mse_weight=5.0, synthetic_per_real=0.5,
                       max_unlabeled=None, transfer_epochs=8)
        if name == "full":
            return cls()
        raise ValueError(f"unknown preset {name!r} (ci, demo, full)")

    @classmethod
    def from_dict(cls, d: dict) -> "BITConfig":
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        if "lowlevel_samples" in kw:
            kw["lowlevel_samples"] = tuple(kw["lowlevel_samples"])
        return cls(**kw)

    def samples_per_layer(self, specs: Sequence[TokenSpec]) -> list[int]:
        s = list(self.lowlevel_samples)
        return [min(s[min(i, len(s) - 1)], spec.n_tokens) for i, spec in enumerate(specs)]


@dataclass
class BITOutput:
    """Raw output of one :class:`BrainIT` network (standardised units)."""

    tokens: list  # [(B, n_l, C_l)] per output layer
    tokenizer_attention: torch.Tensor | None = None  # (B, N)
    cross_attention: list | None = None  # per cross block, (B, Nq, C)


@dataclass
class BITPrediction:
    """What a trained run predicts from betas (feature units, ready for the generators).

    Attributes
    ----------
    semantic : Tensor, shape (B, N_sem, D_sem)
    lowlevel : list of Tensor, [(B, C_l, h_l, w_l)]
    tokenizer_attention : dict of str -> Tensor (B, V), or None
        Per head (``"semantic"``, ``"lowlevel"``): each voxel's attention weight inside its
        cluster, from that head's Brain Tokenizer (sums to 1 over a non-empty cluster).
    cluster_of_voxel : Tensor, shape (V,), or None
    cross_attention : dict of str -> Tensor (B, n_queries, n_brain_tokens), or None
        Per head: mean over attention heads and cross blocks.
    cross_attention_layers : dict of str -> Tensor (n_cross_blocks, B, n_queries, n_brain_tokens), or None
        Per head: each cross block's map (mean over attention heads).
    meta : dict
        Free-form extras (empty from :meth:`BrainITModel.predict`).
    """

    semantic: torch.Tensor
    lowlevel: list
    tokenizer_attention: dict | None = None
    cluster_of_voxel: torch.Tensor | None = None
    cross_attention: dict | None = None
    cross_attention_layers: dict | None = None
    meta: dict = field(default_factory=dict)


class BrainIT(nn.Module):
    """One Brain Interaction Transformer predicting one or several token grids.

    Parameters
    ----------
    config : BITConfig
    token_specs : sequence of TokenSpec
        Output grids; one query token per location of each.
    subjects : dict of str -> int, optional
        Subject name -> number of voxels (labels are set with :meth:`set_labels`).
    """

    def __init__(self, config: BITConfig, token_specs: Sequence[TokenSpec], subjects: dict | None = None):
        super().__init__()
        self.config = config
        self.token_specs = tuple(token_specs)
        c = config
        self.tokenizer = BrainTokenizer(c.n_clusters, c.dim, c.init_scale)
        self.transformer = CrossTransformer(c.dim, c.heads, c.n_self_blocks, c.mlp_ratio)
        counts = [s.n_tokens for s in self.token_specs]
        self.register_buffer("_starts", torch.tensor(np.cumsum([0] + counts[:-1]), dtype=torch.long), persistent=False)
        std = c.init_scale / (2 * math.sqrt(c.dim))
        self.query_tokens = nn.Parameter(std * torch.randn(sum(counts), c.dim))  # (Nq_total, D)
        self.readout = nn.ModuleList(nn.Linear(c.dim, s.dim) for s in self.token_specs)
        for name, n in (subjects or {}).items():
            self.add_subject(name, n)

    def add_subject(self, name: str, n_vertices: int, labels=None, init=None) -> None:
        self.tokenizer.add_subject(name, n_vertices, labels, init)

    def set_labels(self, name: str, labels) -> None:
        self.tokenizer.set_labels(name, labels)

    def voxel_embeddings(self, subject: str) -> torch.Tensor:
        """(V, D) decoder voxel embeddings of a subject."""
        return self.tokenizer.voxel_embeddings[subject]

    def tokenize(self, groups: Sequence[tuple], return_attention: bool = False):
        """Brain tokens of a batch that may mix subjects.

        Parameters
        ----------
        groups : sequence of (subject, betas (b, N), voxel_idx (b, N) or None)
            Consecutive samples of one subject each; N may differ between groups.

        Returns
        -------
        brain : Tensor, shape (B, C, D)
            Groups concatenated in order.
        attention : list of Tensor (b, N) or None
        """
        toks, attn = [], []
        for subject, betas, idx in groups:
            t, a = self.tokenizer(betas, subject, idx, return_attention)
            toks.append(t)
            attn.append(a)
        return torch.cat(toks, 0), (attn if return_attention else None)

    def read_out(self, brain: torch.Tensor, query_idx: Sequence[torch.Tensor] | None = None,
                 return_attention: bool = False):
        """Brain tokens (B, C, D) -> per-layer tokens [(B, n_l, C_l)] and cross-attention maps."""
        B = brain.shape[0]
        if query_idx is None:
            q = self.query_tokens.unsqueeze(0).expand(B, -1, -1)  # (B, Nq, D)
            sizes = [s.n_tokens for s in self.token_specs]
        else:
            flat = torch.cat([idx + self._starts[l] for l, idx in enumerate(query_idx)], dim=1)  # (B, Nq)
            q = self.query_tokens[flat]  # (B, Nq, D)
            sizes = [idx.shape[1] for idx in query_idx]
        out, maps = self.transformer(brain, q.to(brain.dtype), return_attention)  # (B, Nq, D)
        parts = torch.split(out, sizes, dim=1)
        return [head(p) for head, p in zip(self.readout, parts)], maps

    def forward(self, betas: torch.Tensor, subject: str, voxel_idx: torch.Tensor | None = None,
                query_idx: Sequence[torch.Tensor] | None = None, return_attention: bool = False) -> BITOutput:
        """
        Parameters
        ----------
        betas : Tensor, shape (B, N)
            Standardised activations of the selected voxels of ``subject``.
        subject : str
        voxel_idx : LongTensor, shape (B, N), optional
            Voxel of each column (``None``: all voxels in order).
        query_idx : list of LongTensor, each (B, n_l), optional
            Locations to predict in each output grid (``None``: all).
        return_attention : bool

        Returns
        -------
        BITOutput
            ``tokens[l]`` has shape (B, n_l, C_l).
        """
        # 1. voxels -> brain tokens
        brain, tok_attn = self.tokenize([(subject, betas, voxel_idx)], return_attention)  # (B, C, D)
        # 2. query tokens read the brain tokens, one read-out per layer
        tokens, maps = self.read_out(brain, query_idx, return_attention)
        return BITOutput(tokens, tok_attn[0] if tok_attn else None, maps)


def _stat_name(kind: str, key: str) -> str:
    return f"{kind}__{key}"


class BrainITModel(nn.Module):
    """The two BIT heads and the statistics that put their outputs in feature units.

    Parameters
    ----------
    config : BITConfig
    semantic_spec : TokenSpec
    lowlevel_specs : sequence of TokenSpec
    subjects : dict of str -> int
        Subject name -> voxel count.

    Notes
    -----
    Buffers: ``input_mean__<s>``, ``input_std__<s>`` (V_s,) standardise a subject's betas;
    ``target_mean__semantic`` / ``target_std__semantic`` (D_sem,) and ``target_mean__low<l>`` /
    ``target_std__low<l>`` (C_l,) undo the per-channel standardisation of the targets.
    """

    def __init__(self, config: BITConfig, semantic_spec: TokenSpec, lowlevel_specs: Sequence[TokenSpec],
                 subjects: dict | None = None):
        super().__init__()
        self.config = config
        self.semantic_spec = semantic_spec
        self.lowlevel_specs = tuple(lowlevel_specs)
        self.semantic = BrainIT(config, [semantic_spec])
        self.lowlevel = BrainIT(config, self.lowlevel_specs)
        self.register_buffer(_stat_name("target_mean", "semantic"), torch.zeros(semantic_spec.dim))
        self.register_buffer(_stat_name("target_std", "semantic"), torch.ones(semantic_spec.dim))
        for l, s in enumerate(self.lowlevel_specs):
            self.register_buffer(_stat_name("target_mean", f"low{l}"), torch.zeros(s.dim))
            self.register_buffer(_stat_name("target_std", f"low{l}"), torch.ones(s.dim))
        for name, n in (subjects or {}).items():
            self.add_subject(name, n)

    # -- subjects and statistics -------------------------------------------------------------
    @property
    def subjects(self) -> list[str]:
        return self.semantic.tokenizer.subjects

    @property
    def heads(self) -> dict:
        return {"semantic": self.semantic, "lowlevel": self.lowlevel}

    def add_subject(self, name: str, n_vertices: int, labels=None, init_semantic=None, init_lowlevel=None) -> None:
        """Register a subject in both heads (labels: V2C clusters, (n_vertices,))."""
        self.semantic.add_subject(name, n_vertices, labels, init_semantic)
        self.lowlevel.add_subject(name, n_vertices, labels, init_lowlevel)
        dev = self.semantic.query_tokens.device
        self.register_buffer(_stat_name("input_mean", name), torch.zeros(n_vertices, device=dev))
        self.register_buffer(_stat_name("input_std", name), torch.ones(n_vertices, device=dev))

    def set_labels(self, name: str, labels) -> None:
        self.semantic.set_labels(name, labels)
        self.lowlevel.set_labels(name, labels)

    def cluster_labels(self, name: str) -> torch.Tensor:
        return self.semantic.tokenizer.labels(name)

    def set_input_stats(self, name: str, mean, std) -> None:
        """Per-voxel mean and std (V,) of the subject's training betas (std floored at 1e-6)."""
        m = getattr(self, _stat_name("input_mean", name))
        s = getattr(self, _stat_name("input_std", name))
        m.copy_(torch.as_tensor(np.asarray(mean), dtype=m.dtype))
        s.copy_(torch.as_tensor(np.maximum(np.asarray(std), 1e-6), dtype=s.dtype))

    def set_target_stats(self, semantic: tuple, lowlevel: Sequence[tuple]) -> None:
        """Per-channel (mean, std) of the semantic tokens and of each low-level layer."""
        pairs = [("semantic", semantic)] + [(f"low{l}", st) for l, st in enumerate(lowlevel)]
        for key, (mean, std) in pairs:
            getattr(self, _stat_name("target_mean", key)).copy_(torch.as_tensor(np.asarray(mean)))
            getattr(self, _stat_name("target_std", key)).copy_(torch.as_tensor(np.maximum(np.asarray(std), 1e-6)))

    def standardize_betas(self, betas: torch.Tensor, subject: str, voxel_idx: torch.Tensor | None = None) -> torch.Tensor:
        """(B, N) raw betas -> standardised with the subject's training statistics."""
        m = getattr(self, _stat_name("input_mean", subject))
        s = getattr(self, _stat_name("input_std", subject))
        if voxel_idx is not None:
            m, s = m[voxel_idx], s[voxel_idx]
        return (betas - m) / s

    def target_stats(self, key: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, std) of ``"semantic"`` or ``"low<l>"``, each (C,)."""
        return getattr(self, _stat_name("target_mean", key)), getattr(self, _stat_name("target_std", key))

    # -- prediction --------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, betas: torch.Tensor, subject: str, return_attention: bool = False) -> BITPrediction:
        """Raw betas of all the subject's voxels (B, V) -> features in feature units."""
        x = self.standardize_betas(betas.float(), subject)
        sem = self.semantic(x, subject, return_attention=return_attention)
        low = self.lowlevel(x, subject, return_attention=return_attention)
        m, s = self.target_stats("semantic")
        semantic = sem.tokens[0].float() * s + m  # (B, N_sem, D_sem)
        lowlevel = []
        for l, (spec, t) in enumerate(zip(self.lowlevel_specs, low.tokens)):
            m, s = self.target_stats(f"low{l}")
            lowlevel.append(tokens_to_maps(t.float() * s + m, spec.grid))  # (B, C_l, h_l, w_l)
        pred = BITPrediction(semantic, lowlevel)
        if return_attention:
            pred.tokenizer_attention = {"semantic": sem.tokenizer_attention, "lowlevel": low.tokenizer_attention}
            pred.cluster_of_voxel = self.cluster_labels(subject)
            layers = {"semantic": torch.stack(sem.cross_attention), "lowlevel": torch.stack(low.cross_attention)}
            pred.cross_attention = {k: v.mean(0) for k, v in layers.items()}
            pred.cross_attention_layers = layers
        return pred


def config_dict(config: BITConfig) -> dict:
    d = asdict(config)
    d["lowlevel_samples"] = list(d["lowlevel_samples"])
    return d
