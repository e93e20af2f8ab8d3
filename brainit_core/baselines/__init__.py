"""Baselines decoded with the same generators as Brain-IT.

- :class:`RidgeFeatureDecoder` (Brain-Diffuser style): ridge regression from betas to every
  feature target (semantic tokens, low-level maps), alpha per target by leave-one-out.
- :class:`GlobalEmbeddingDecoder` (MindEye style): an MLP from betas to one global semantic
  vector (broadcast to the token grid) and a low-resolution image.
"""
from brainit_core.baselines.global_embedding import GlobalEmbeddingConfig, GlobalEmbeddingDecoder, GlobalEmbeddingMLP
from brainit_core.baselines.ridge import RidgeFeatureDecoder

__all__ = ["GlobalEmbeddingConfig", "GlobalEmbeddingDecoder", "GlobalEmbeddingMLP", "RidgeFeatureDecoder"]
