"""MindEye-style baseline: an MLP from betas to one global semantic vector and a low-resolution image.

What it outputs (:meth:`GlobalEmbeddingDecoder.predict`), so the benchmark can drive the same
generators as Brain-IT:

- ``"global"`` (n, D): the predicted mean over the semantic tokens (MindEye predicts one CLIP
  vector; here the feature space's tokens pooled);
- ``"semantic"`` (n, T, D): that vector copied to all T token positions, the shape the diffusion
  generator is conditioned on (the spatial layout Brain-IT predicts is exactly what this lacks);
- ``"lowres"`` (n, 3, r, r) in [0, 1]: the predicted blurry image (MindEye2's low-level branch);
- ``"image"`` (n, 3, S, S) in [0, 1]: ``lowres`` upsampled (bilinear) to ``image_size``; the
  low-level image for fusion, or the input of the feature space's ``lowlevel_maps`` when a
  generator wants a low-level pyramid.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from brainit_core.progress import track


@dataclass
class GlobalEmbeddingConfig:
    """Configuration of :class:`GlobalEmbeddingDecoder`.

    Parameters
    ----------
    hidden : int
        Width of the MLP.
    n_blocks : int
        Residual blocks (LayerNorm, Linear, GELU, Dropout) after the input layer.
    dropout : float
    lowres : int
        Side of the predicted low-resolution image.
    epochs, batch_size, lr, weight_decay :
        AdamW training, cosine-decayed learning rate.
    image_weight : float
        Weight of the low-resolution image MSE (the global vector's MSE has weight 1).
    contrastive_weight : float
        Weight of a symmetric InfoNCE loss between predicted and true global vectors in a batch
        (0 switches it off); ``temperature`` is its softmax temperature.
    seed : int
    """

    hidden: int = 1024
    n_blocks: int = 2
    dropout: float = 0.15
    lowres: int = 32
    epochs: int = 60
    batch_size: int = 64
    lr: float = 3e-4
    weight_decay: float = 1e-2
    image_weight: float = 1.0
    contrastive_weight: float = 0.1
    temperature: float = 0.05
    seed: int = 0

    @classmethod
    def preset(cls, name: str) -> "GlobalEmbeddingConfig":
        if name == "ci":
            return cls(hidden=128, n_blocks=1, lowres=16, epochs=15, batch_size=32, lr=1e-3)
        if name == "demo":
            return cls()
        if name == "full":
            return cls(hidden=4096, n_blocks=4, epochs=150, batch_size=128)
        raise ValueError(f"unknown preset {name!r} (ci, demo, full)")


class GlobalEmbeddingMLP(nn.Module):
    """betas (B, V) -> global vector (B, D) and low-resolution image (B, 3, r, r)."""

    def __init__(self, n_voxels: int, dim: int, config: GlobalEmbeddingConfig):
        super().__init__()
        c = config
        self.lowres = c.lowres
        self.inp = nn.Sequential(nn.Linear(n_voxels, c.hidden), nn.LayerNorm(c.hidden), nn.GELU(),
                                 nn.Dropout(c.dropout))
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(c.hidden), nn.Linear(c.hidden, c.hidden), nn.GELU(), nn.Dropout(c.dropout))
            for _ in range(c.n_blocks))
        self.semantic_head = nn.Linear(c.hidden, dim)
        self.image_head = nn.Linear(c.hidden, 3 * c.lowres * c.lowres)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.inp(x)  # (B, H)
        for block in self.blocks:
            h = h + block(h)
        image = torch.sigmoid(self.image_head(h)).view(-1, 3, self.lowres, self.lowres)  # (B, 3, r, r)
        return self.semantic_head(h), image  # (B, D), (B, 3, r, r)


def _images_float(images) -> torch.Tensor:
    from brainit_core.metrics.images import to_float_nchw

    return to_float_nchw(images, "images")


def _contrastive(pred: torch.Tensor, target: torch.Tensor, temperature: float) -> torch.Tensor:
    logits = F.normalize(pred, dim=-1) @ F.normalize(target, dim=-1).T / temperature  # (B, B)
    labels = torch.arange(len(pred), device=pred.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


class GlobalEmbeddingDecoder:
    """MLP baseline predicting a global semantic vector and a blurry image from betas.

    One decoder per subject. Betas are z-scored per vertex and the global vector per dimension
    with training statistics; both losses are MSE (+ optional contrastive on the global vector).

    Parameters
    ----------
    config : GlobalEmbeddingConfig, optional
        Defaults to the ``demo`` preset.
    device : str, default="auto"

    Attributes
    ----------
    model_ : GlobalEmbeddingMLP
    n_tokens_ : int
        T, the token count the global vector is broadcast to.
    history_ : list of dict
        Per epoch: ``{"epoch", "loss", "semantic", "image"}`` (training-set means).
    x_mean_, x_scale_, g_mean_, g_scale_ : torch.Tensor
        Normalisation of betas (V,) and of the global vector (D,).
    """

    def __init__(self, config: GlobalEmbeddingConfig | None = None, device: str = "auto"):
        self.config = config or GlobalEmbeddingConfig()
        self.device = device

    def fit(self, betas, semantic, images) -> "GlobalEmbeddingDecoder":
        """Train on one subject's samples.

        Parameters
        ----------
        betas : array, shape (N, V)
        semantic : array, shape (N, T, D) or (N, D)
            Semantic tokens of the seen images (mean-pooled over T here), or global vectors.
        images : array
            The seen images, uint8 (N, H, W, 3) or float (N, 3, H, W) in [0, 1].

        Returns
        -------
        self
        """
        from brainit_core.utils import resolve_device

        c = self.config
        dev = resolve_device(self.device)
        x = torch.as_tensor(np.asarray(betas), dtype=torch.float32)
        sem = torch.as_tensor(np.asarray(semantic), dtype=torch.float32)
        if x.ndim != 2 or len(sem) != len(x) or sem.ndim not in (2, 3):
            raise ValueError(f"expected betas (N, V) and semantic (N, T, D) or (N, D); got {tuple(x.shape)} "
                             f"and {tuple(sem.shape)}")
        if not (torch.isfinite(x).all() and torch.isfinite(sem).all()):
            raise ValueError("betas or semantic targets contain NaN or infinite values")
        self.n_tokens_ = int(sem.shape[1]) if sem.ndim == 3 else 1
        g = sem.mean(1) if sem.ndim == 3 else sem  # (N, D)
        img = F.interpolate(_images_float(images), size=(c.lowres, c.lowres), mode="bilinear",
                            align_corners=False, antialias=True)  # (N, 3, r, r)
        if len(img) != len(x):
            raise ValueError(f"{len(img)} images but {len(x)} betas")
        self.x_mean_, self.x_scale_ = x.mean(0), x.std(0, unbiased=False).clamp_min(1e-6)
        self.g_mean_, self.g_scale_ = g.mean(0), g.std(0, unbiased=False).clamp_min(1e-6)
        x, g = (x - self.x_mean_) / self.x_scale_, (g - self.g_mean_) / self.g_scale_

        gen = torch.Generator().manual_seed(c.seed)
        torch.manual_seed(c.seed)
        self.model_ = GlobalEmbeddingMLP(x.shape[1], g.shape[1], c).to(dev)
        opt = torch.optim.AdamW(self.model_.parameters(), lr=c.lr, weight_decay=c.weight_decay)
        steps = c.epochs * max(1, len(x) // c.batch_size)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
        self.history_ = []
        self.model_.train()
        for epoch in track(range(c.epochs), desc="global-embedding MLP"):
            order = torch.randperm(len(x), generator=gen)
            sums, batches = np.zeros(3), 0
            for s in range(0, max(1, len(x) - c.batch_size + 1), c.batch_size):  # full batches only
                idx = order[s:s + c.batch_size]
                xb, gb, ib = x[idx].to(dev), g[idx].to(dev), img[idx].to(dev)
                pred_g, pred_i = self.model_(xb)
                sem_loss = F.mse_loss(pred_g, gb)
                if c.contrastive_weight > 0 and len(idx) > 1:
                    sem_loss = sem_loss + c.contrastive_weight * _contrastive(pred_g, gb, c.temperature)
                img_loss = F.mse_loss(pred_i, ib)
                loss = sem_loss + c.image_weight * img_loss
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                sums += [loss.item(), sem_loss.item(), img_loss.item()]
                batches += 1
            loss, sem_loss, img_loss = sums / max(batches, 1)
            self.history_.append({"epoch": epoch, "loss": float(loss), "semantic": float(sem_loss),
                                  "image": float(img_loss)})
        self.model_.eval()
        return self

    @torch.no_grad()
    def predict(self, betas, image_size: int | None = None, batch_size: int = 256) -> dict[str, np.ndarray]:
        """Predict the global vector, its token-grid broadcast and the low-resolution image.

        Parameters
        ----------
        betas : array, shape (n, V)
        image_size : int, optional
            Also return ``"image"``: the low-resolution image upsampled to this size.
        batch_size : int, default=256

        Returns
        -------
        dict of str -> numpy.ndarray (float32)
            ``"global"`` (n, D), ``"semantic"`` (n, T, D), ``"lowres"`` (n, 3, r, r) and, with
            ``image_size``, ``"image"`` (n, 3, S, S); images in [0, 1]. See the module docstring.
        """
        if not hasattr(self, "model_"):
            raise RuntimeError("GlobalEmbeddingDecoder is not fitted; call fit() or load() first")
        x = torch.as_tensor(np.asarray(betas), dtype=torch.float32)
        if x.ndim != 2 or x.shape[1] != len(self.x_mean_):
            raise ValueError(f"betas must be (n, {len(self.x_mean_)}) for this decoder (one per subject), "
                             f"got {tuple(x.shape)}")
        dev = next(self.model_.parameters()).device
        x = (x - self.x_mean_) / self.x_scale_
        glob, low = [], []
        for s in range(0, len(x), batch_size):
            g, img = self.model_(x[s:s + batch_size].to(dev))
            glob.append(g.cpu() * self.g_scale_ + self.g_mean_)
            low.append(img.cpu())
        g, img = torch.cat(glob), torch.cat(low)  # (n, D), (n, 3, r, r)
        out = {"global": g.numpy(), "semantic": g[:, None, :].expand(-1, self.n_tokens_, -1).numpy().copy(),
               "lowres": img.numpy()}
        if image_size is not None:
            out["image"] = F.interpolate(img, size=(image_size, image_size), mode="bilinear",
                                         align_corners=False).clamp(0, 1).numpy()
        return out

    def save(self, path) -> None:
        """Write ``path.safetensors`` + ``path.json`` (see :mod:`brainit_core.checkpoint`)."""
        from brainit_core.checkpoint import save_checkpoint

        tensors = {f"model.{k}": v for k, v in self.model_.state_dict().items()}
        tensors.update({"x_mean": self.x_mean_, "x_scale": self.x_scale_, "g_mean": self.g_mean_,
                        "g_scale": self.g_scale_})
        meta = {"kind": "GlobalEmbeddingDecoder", "n_tokens": self.n_tokens_, "history": self.history_}
        save_checkpoint(path, tensors, asdict(self.config), meta)

    @classmethod
    def load(cls, path, device: str = "auto") -> "GlobalEmbeddingDecoder":
        """Read a decoder written by :meth:`save`."""
        from brainit_core.checkpoint import load_checkpoint
        from brainit_core.errors import CheckpointError
        from brainit_core.utils import resolve_device

        tensors, config, meta = load_checkpoint(path)
        if meta.get("kind") != "GlobalEmbeddingDecoder":
            raise CheckpointError(f"{path} is not a GlobalEmbeddingDecoder checkpoint (kind {meta.get('kind')!r})")
        self = cls(GlobalEmbeddingConfig(**config), device=device)
        self.x_mean_, self.x_scale_ = tensors["x_mean"], tensors["x_scale"]
        self.g_mean_, self.g_scale_ = tensors["g_mean"], tensors["g_scale"]
        self.n_tokens_, self.history_ = int(meta["n_tokens"]), meta.get("history", [])
        self.model_ = GlobalEmbeddingMLP(len(self.x_mean_), len(self.g_mean_), self.config)
        state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        try:
            self.model_.load_state_dict(state)
        except RuntimeError as exc:
            raise CheckpointError(f"{path} does not match its own config: {exc}") from exc
        self.model_.to(resolve_device(device)).eval()
        return self
