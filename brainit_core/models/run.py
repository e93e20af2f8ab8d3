"""A trained run directory, loaded for prediction: betas -> features (and attention maps)."""
from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from brainit_core.errors import CheckpointError, DataFormatError, UnknownSubjectError
from brainit_core.models.bit import BITPrediction
from brainit_core.models.bit_io import load_bit
from brainit_core.runs import RunDirectory
from brainit_core.utils import resolve_device

__all__ = ["BrainITRun", "BITPrediction"]


class BrainITRun:
    """A trained Brain-IT run (``RUN/``): feature space, encoder, V2C map and both BIT heads.

    Attributes
    ----------
    path : Path
    space : FeatureSpace
        The feature space BIT predicts (built from ``run.json``; frozen, on ``device``).
    subjects : list of str
        Subjects BIT can decode (training subjects plus transferred ones).
    config : dict
        ``run.json`` (preset, space, configs, stage timings).
    v2c : V2C
    model : BrainITModel
    checkpoint_sha256 : str
        sha256 of ``bit.safetensors``.
    device : torch.device

    Examples
    --------
    >>> run = BrainITRun.load("~/.brainit/runs/demo")
    >>> pred = run.predict(betas, "twin01", return_attention=True)
    >>> pred.lowlevel[0].shape   # (B, C_0, h_0, w_0) in feature units
    """

    def __init__(self, path, space, config: dict, v2c, model, checkpoint_sha256: str, device):
        self.path = Path(path)
        self.space = space
        self.config = config
        self.v2c = v2c
        self.model = model
        self.checkpoint_sha256 = checkpoint_sha256
        self.device = device

    @classmethod
    def load(cls, path, device=None) -> "BrainITRun":
        """Load ``path`` (a directory written by ``train`` or ``transfer``).

        Parameters
        ----------
        path : str or PathLike
        device : str or torch.device, optional
            Default ``"auto"`` (CUDA when available).
        """
        from brainit_core.features import get_feature_space
        from brainit_core.models.v2c import V2C

        run = RunDirectory(path)
        dev = device if isinstance(device, torch.device) else resolve_device(device or "auto")
        config = run.record  # raises CheckpointError when run.json is missing
        if not run.is_complete:
            raise CheckpointError(f"{run.bit_path}.safetensors not found: the run's training has not finished "
                                  "(resume it with `python -m brainit_core train ... --resume`)")
        model, _, sha = load_bit(run.bit_path, device=dev)
        space_cfg = run.space
        space = get_feature_space(space_cfg["name"], preset=space_cfg["preset"], device=dev)
        if space.semantic_spec.dim != model.semantic_spec.dim or len(space.lowlevel_specs) != len(model.lowlevel_specs):
            raise CheckpointError(f"{run.path}: the feature space {space.describe()} does not match the BIT checkpoint")
        return cls(run.path, space, config, V2C.load(run.v2c_path), model, sha, dev)

    @property
    def subjects(self) -> list[str]:
        return self.model.subjects

    def n_vertices(self, subject: str) -> int:
        return self.model.semantic.tokenizer.n_vertices(subject)

    @cached_property
    def encoder(self):
        """The image-to-fMRI encoder of the run (loaded on first use)."""
        from brainit_core.models.encoder import load_encoder

        return load_encoder(RunDirectory(self.path).encoder_path, device=self.device)

    @cached_property
    def encoder_backbone(self):
        """The frozen network the encoder reads (``run.json``'s ``encoder_config.backbone``; the decoder's
        space, :attr:`space`, for runs recorded without it)."""
        from dataclasses import replace

        from brainit_core.models.encoder import encoder_backbone

        run = RunDirectory(self.path)
        config = replace(self.encoder.config, backbone=run.encoder_backbone)
        return encoder_backbone(config, run.preset, self.device, decoder_space=self.space)

    def predict(self, betas, subject: str, return_attention: bool = False, batch_size: int = 32) -> BITPrediction:
        """Decode features from betas.

        Parameters
        ----------
        betas : ndarray or Tensor, float32, shape (B, V)
            Betas of all the subject's vertices, in the dataset's vertex order, z-scored per
            session (as the canonical dataset stores them; repeat-averaged for best results).
        subject : str
            One of :attr:`subjects`.
        return_attention : bool
            Also return both heads' tokenizer attention (B, V), cluster labels (V,) and cross-attention maps.
        batch_size : int

        Returns
        -------
        BITPrediction
            Features in feature units (tensors on :attr:`device`).
        """
        if subject not in self.subjects:
            raise UnknownSubjectError(f"{self.path}: subject {subject!r} is not in this run; subjects: {self.subjects}")
        x = torch.as_tensor(np.asarray(betas, dtype=np.float32) if not torch.is_tensor(betas) else betas).float()
        if x.ndim == 1:
            x = x.unsqueeze(0)
        V = self.n_vertices(subject)
        if x.ndim != 2 or x.shape[1] != V:
            raise DataFormatError(f"betas for {subject} must have shape (B, {V}), got {tuple(x.shape)}")
        if not torch.isfinite(x).all():
            raise DataFormatError(f"betas for {subject} contain NaN or inf (z-score per session and set NaN to 0)")
        parts = [self.model.predict(x[i:i + batch_size].to(self.device), subject, return_attention)
                 for i in range(0, len(x), batch_size)]
        return _concat(parts)

    def __repr__(self) -> str:
        return f"BrainITRun({str(self.path)!r}, subjects={self.subjects}, sha256={self.checkpoint_sha256[:12]})"


def _concat(parts: list[BITPrediction]) -> BITPrediction:
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    out = BITPrediction(torch.cat([p.semantic for p in parts]),
                        [torch.cat([p.lowlevel[l] for p in parts]) for l in range(len(first.lowlevel))])
    if first.tokenizer_attention is not None:
        out.tokenizer_attention = {k: torch.cat([p.tokenizer_attention[k] for p in parts])
                                   for k in first.tokenizer_attention}
        out.cluster_of_voxel = first.cluster_of_voxel
        out.cross_attention = {k: torch.cat([p.cross_attention[k] for p in parts]) for k in first.cross_attention}
    if first.cross_attention_layers is not None:
        out.cross_attention_layers = {k: torch.cat([p.cross_attention_layers[k] for p in parts], dim=1)
                                      for k in first.cross_attention_layers}
    return out
