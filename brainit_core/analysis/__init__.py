"""Numbers computed from a trained run: attention analysis of the brain tokens.

- :mod:`.attention`: attention centroids and spread of the brain tokens, hemisphere balance,
  receptive-field (pRF) centroids and responses, the contralaterality index and the pRF
  agreement (numpy only; the benchmark and the Brain tokens page both use it).
- :mod:`.maps`: :class:`~brainit_core.analysis.maps.AttentionMaps` of one image (runs the model),
  query grids, location look-ups and per-vertex maps.

Nothing is imported here, so ``import brainit_core.analysis.attention`` stays free of torch.
"""
