"""The image-to-fMRI encoder of Brain-IT (arXiv 2510.25976), after Beliy et al. 2024.

Every voxel of every subject owns a learned embedding. The embedding queries the image tokens of
each backbone depth with single-head attention (learned positional embedding on the keys), giving
one d-vector per depth; the vectors are concatenated and read out by per-voxel weights derived
from the same embedding. The encoder gives (a) voxel embeddings for the V2C clustering and
(b) synthetic fMRI for unlabeled images.

Training is :mod:`brainit_core.models.encoder_training`. The frozen backbone is the encoder's own
network, never the decoder's feature space (:mod:`brainit_core.features.backbones`): offline
EfficientNet-Lite1, full size DINOv2 ViT-L/14 with registers (blocks 1/6/12/18/24, as the official
code). Its cached maps (pooled to at most ``max_grid`` x ``max_grid``) and deepest tokens are the
depths. Runs made before the backbone was configurable read the decoder's Lite0 (``backbone="lite0"``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from brainit_core.checkpoint import load_checkpoint, save_checkpoint
from brainit_core.distributed import write_rows
from brainit_core.errors import CheckpointError
from brainit_core.utils import resolve_device



@dataclass
class EncoderConfig:
    """Sizes and training schedule of :class:`ImageToFMRIEncoder`.

    Parameters
    ----------
    token_dim : int
        Width d of each depth after LayerNorm + linear (official 128).
    voxel_dim : int
        Width of the voxel embeddings (official 256).
    max_grid : int
        Low-level maps are average-pooled to at most this grid before tokenising.
    voxels_per_sample : int
        Random voxels per sample at train time (official 5,000).
    cosine_weight : float
        Loss = MSE - cosine_weight * cosine similarity across voxels (official 0.1).
    lr, epochs, batch_size, patience, seed : training schedule.
    backbone : str
        The frozen network whose tokens the encoder reads (:func:`brainit_core.features.backbones.build_backbone`):
        ``"lite1"`` offline, ``"dinov2-vitl14-reg"`` full size; ``"lite0"`` (the decoder's own space) is what
        runs recorded without this field used.
    trials : {"averaged", "single", "both"}
        Training samples: repeat-averaged betas (one per image), single trials (official), or both
        (every image's average and each of its trials; the demo and full presets', measured best in
        docs/models.md "Recipe choices"). Validation always uses averages.
    """

    token_dim: int = 64
    voxel_dim: int = 64
    max_grid: int = 8
    voxels_per_sample: int = 1500
    cosine_weight: float = 0.1
    lr: float = 1e-3
    epochs: int = 12
    batch_size: int = 32
    patience: int = 4
    seed: int = 0
    backbone: str = "lite0"
    trials: str = "averaged"

    def __post_init__(self):
        if self.trials not in TRIAL_MODES:
            raise ValueError(f"encoder trials must be one of {TRIAL_MODES}, got {self.trials!r}")

    @classmethod
    def preset(cls, name: str) -> "EncoderConfig":
        if name == "ci":
            return cls(token_dim=16, voxel_dim=16, max_grid=4, voxels_per_sample=200, epochs=4, batch_size=16,
                       backbone="lite1")
        if name == "demo":
            return cls(backbone="lite1", trials="both")
        if name == "full":
            return cls(token_dim=128, voxel_dim=256, max_grid=16, voxels_per_sample=5000, epochs=30, batch_size=64,
                       patience=5, backbone="dinov2-vitl14-reg", trials="both")
        raise ValueError(f"unknown preset {name!r} (ci, demo, full)")


TRIAL_MODES = ("averaged", "single", "both")


def encoder_backbone(config: EncoderConfig, preset: str, device=None, decoder_space=None, **kwargs):
    """The frozen backbone ``config.backbone`` at the run's preset (maps pooled to ``config.max_grid``).

    ``decoder_space`` is returned itself when the backbone is the decoder's space (old runs);
    ``kwargs`` go to the backbone's config (e.g. ``weights=`` for DINOv2).
    """
    from brainit_core.features.backbones import build_backbone

    return build_backbone(config.backbone, preset, device=device, grid=config.max_grid,
                          decoder_space=decoder_space, **kwargs)


def token_shapes(features) -> list[tuple[int, int]]:
    """(n_tokens, width) of each depth that :func:`encoder_inputs` produces, from a FeatureSet or space."""
    if hasattr(features, "semantic_spec"):  # a FeatureSpace
        low = [(s.dim, s.grid[0]) for s in features.lowlevel_specs]
        sem = (features.semantic_spec.n_tokens, features.semantic_spec.dim)
    else:
        low = [(m.shape[1], m.shape[2]) for m in features.lowlevel]
        sem = tuple(features.semantic.shape[1:])
    return low, sem


def encoder_inputs(features, rows, max_grid: int = 8, device=None) -> list[torch.Tensor]:
    """Multi-depth image tokens for the encoder from cached features.

    Parameters
    ----------
    features : brainit_core.features.FeatureSet
    rows : array-like of int
        Rows of ``features`` to use.
    max_grid : int
        Pool each low-level map to at most ``max_grid`` x ``max_grid``.

    Returns
    -------
    list of Tensor
        One (B, N_d, C_d) float32 tensor per depth: the low-level maps, then the semantic tokens.
    """
    rows = np.asarray(rows)
    out = []
    for m in features.lowlevel:
        x = torch.from_numpy(np.asarray(m[rows], dtype=np.float32))  # (B, C, h, w)
        if x.shape[-1] > max_grid:
            x = F.adaptive_avg_pool2d(x, max_grid)
        out.append(x.flatten(2).transpose(1, 2))  # (B, h*w, C)
    out.append(torch.from_numpy(np.asarray(features.semantic[rows], dtype=np.float32)))  # (B, N, D)
    return [t.to(device) for t in out] if device is not None else out


class ImageToFMRIEncoder(nn.Module):
    """Per-voxel embeddings attending to multi-depth image tokens, all subjects in one model.

    Parameters
    ----------
    config : EncoderConfig
    subjects : dict of str -> int
        Subject name -> number of vertices.
    token_specs : list of (n_tokens, width)
        One entry per depth, as produced by :func:`encoder_inputs`.
    """

    def __init__(self, config: EncoderConfig, subjects: dict[str, int], token_specs: list[tuple[int, int]]):
        super().__init__()
        self.config = config
        self.token_specs = [tuple(int(v) for v in s) for s in token_specs]
        d, e = config.token_dim, config.voxel_dim
        self.norms = nn.ModuleList([nn.LayerNorm(c) for _, c in self.token_specs])
        self.projs = nn.ModuleList([nn.Linear(c, d) for _, c in self.token_specs])
        self.key_pos = nn.ParameterList([nn.Parameter(torch.randn(n, d) * 0.02) for n, _ in self.token_specs])
        self.query = nn.ModuleList([nn.Linear(e, d, bias=False) for _ in self.token_specs])
        self.readout = nn.Linear(e, d * len(self.token_specs) + 1)  # per-voxel weights + bias
        self.voxel_emb = nn.ParameterDict()
        for name, n in subjects.items():
            self.add_subject(name, n)

    @property
    def subjects(self) -> list[str]:
        return list(self.voxel_emb.keys())

    def add_subject(self, name: str, n_vertices: int, init: torch.Tensor | None = None) -> None:
        """Add (or replace) a subject's voxel embeddings, randomly or from ``init`` (V, E)."""
        if init is None:
            g = torch.Generator().manual_seed(self.config.seed + len(self.voxel_emb) + 1)
            init = torch.randn(n_vertices, self.config.voxel_dim, generator=g) / self.config.voxel_dim ** 0.5
        dev = self.readout.weight.device
        self.voxel_emb[name] = nn.Parameter(init.detach().clone().float().to(dev))

    def voxel_embeddings(self, subject: str) -> torch.Tensor:
        """(V, E) learned embeddings of a subject's voxels."""
        return self.voxel_emb[subject]

    def forward(self, tokens: list[torch.Tensor], subject: str, voxel_idx: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.voxel_emb[subject]
        if voxel_idx is not None:
            emb = emb[voxel_idx]  # (V, E)
        d = self.config.token_dim
        per_depth = []
        for x, norm, proj, pos, query in zip(tokens, self.norms, self.projs, self.key_pos, self.query):
            k = proj(norm(x)) + pos  # (B, N, d)
            q = query(emb)  # (V, d)
            att = torch.softmax(torch.einsum("vd,bnd->bvn", q, k) / d ** 0.5, dim=-1)  # (B, V, N)
            per_depth.append(torch.einsum("bvn,bnd->bvd", att, k))  # (B, V, d)
        h = torch.cat(per_depth, dim=-1)  # (B, V, D*d)
        w = self.readout(emb)  # (V, D*d + 1)
        return (h * w[:, :-1]).sum(-1) + w[:, -1]  # (B, V)


def encoder_loss(pred: torch.Tensor, target: torch.Tensor, cosine_weight: float) -> torch.Tensor:
    """MSE minus ``cosine_weight`` x cosine similarity across voxels (per sample, averaged)."""
    return F.mse_loss(pred, target) - cosine_weight * F.cosine_similarity(pred, target, dim=-1).mean()


def pearson_per_voxel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(0)
    b = b - b.mean(0)
    den = np.sqrt((a * a).sum(0) * (b * b).sum(0))
    return np.where(den > 0, (a * b).sum(0) / np.maximum(den, 1e-12), 0.0)


# ----------------------------------------------------------------------------------------------
# checkpoints
# ----------------------------------------------------------------------------------------------
def save_encoder(encoder: ImageToFMRIEncoder, path, meta: dict | None = None) -> None:
    config = {"encoder": asdict(encoder.config), "token_specs": encoder.token_specs,
              "subjects": {s: int(encoder.voxel_emb[s].shape[0]) for s in encoder.subjects}}
    save_checkpoint(path, encoder.state_dict(), config, meta)


def load_encoder(path, device=None) -> ImageToFMRIEncoder:
    """Load an encoder saved by :func:`train_encoder` (``path`` = ``<dir>/encoder``)."""
    tensors, config, _ = load_checkpoint(path)
    enc = ImageToFMRIEncoder(EncoderConfig(**config["encoder"]), config["subjects"], config["token_specs"])
    try:
        enc.load_state_dict(tensors)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: encoder weights do not match their config: {exc}") from exc
    return enc.to(resolve_device(device) if isinstance(device, str) else (device or torch.device("cpu")))


@torch.no_grad()
def predict_rows(encoder, fs, rows, subject, batch_size, dev) -> np.ndarray:
    out = []
    for i in range(0, len(rows), batch_size):
        x = encoder_inputs(fs, rows[i:i + batch_size], encoder.config.max_grid, dev)
        out.append(encoder(x, subject).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, encoder.voxel_emb[subject].shape[0]), np.float32)


@torch.no_grad()
def predict_fmri(encoder: ImageToFMRIEncoder, features, subject: str, batch_size: int = 64) -> np.ndarray:
    """Synthetic fMRI for the images of a FeatureSet. Returns float32 (n_images, n_vertices)."""
    encoder.eval()
    dev = encoder.readout.weight.device
    return predict_rows(encoder, features, np.arange(len(features)), subject, batch_size, dev).astype(np.float32)


def write_synthetic(path, encoder: ImageToFMRIEncoder, features, subject: str, batch_size: int = 64):
    """Write :func:`predict_fmri` of every image of ``features`` as float16 to the ``.npy`` file ``path``.

    Several processes (:mod:`brainit_core.distributed`) each predict a shard of whole batches into
    the same file; one process writes what ``save_npy(path, predict_fmri(...).astype(float16))`` would.
    """
    encoder.eval()
    dev = encoder.readout.weight.device

    def rows(lo: int, hi: int) -> np.ndarray:
        with torch.no_grad():
            pred = predict_rows(encoder, features, np.arange(lo, hi), subject, batch_size, dev)
        return pred.astype(np.float32).astype(np.float16)

    return write_rows(path, len(features), (encoder.voxel_emb[subject].shape[0],), np.float16, rows, align=batch_size)


def split_half_noise_ceiling(subject_data, ids) -> np.ndarray:
    """Per-voxel noise ceiling (correlation units) from repeats: Spearman-Brown split-half reliability.

    Uses images with at least two trials: correlates the first repeat with the mean of the others
    across images, corrects with Spearman-Brown, and takes the square root to give the largest
    Pearson r a perfect model could reach against the repeat-averaged response.
    """
    groups = [np.sort(g) for g in subject_data.trials_of(ids) if len(g) >= 2]
    if len(groups) < 3:
        return np.full(subject_data.n_vertices, np.nan)
    rows = np.unique(np.concatenate(groups))  # only these images' trials are read, not the subject's
    b = subject_data.betas_for_trials(rows)
    a = np.stack([b[np.searchsorted(rows, g[0])] for g in groups])
    rest = np.stack([b[np.searchsorted(rows, g[1:])].mean(0) for g in groups])
    r = np.clip(pearson_per_voxel(a, rest), 0, None)
    n_rep = np.mean([len(g) for g in groups])
    rel = 2 * r / (1 + r)  # reliability of a two-part mean
    rel_full = n_rep / 2 * rel / (1 + (n_rep / 2 - 1) * rel)  # extend to n_rep repeats
    return np.sqrt(np.clip(rel_full, 0, 1))


def evaluate_encoder(encoder: ImageToFMRIEncoder, dataset, space, subjects=None) -> dict:
    """Held-out voxel-wise prediction correlation on the test images.

    Returns
    -------
    dict
        subject -> {"median_r", "median_noise_ceiling", "median_r_over_ceiling", "n_test"}.
    """
    from brainit_core.features import extract_features

    out = {}
    for s in subjects or encoder.subjects:
        sd = dataset.subject(s)
        betas, ids = sd.averaged("test")
        fs = extract_features(dataset, ids, space)
        r = pearson_per_voxel(predict_fmri(encoder, fs, s), betas)
        nc = split_half_noise_ceiling(sd, ids)
        ok = nc > 0.1
        out[s] = {"median_r": float(np.median(r)), "median_noise_ceiling": float(np.nanmedian(nc)),
                  "median_r_over_ceiling": float(np.median(r[ok] / nc[ok])) if ok.any() else float("nan"),
                  "n_test": int(len(ids))}
    return out
