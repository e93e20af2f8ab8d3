"""The evaluation protocol of the literature's 8-metric table (MindEye2's notebook), plus offline columns.

Pixel metrics (:mod:`.pixel`), feature scores (:mod:`.identification`), the networks
(:mod:`.networks`) and the table (:mod:`.evaluator`: :class:`Evaluator`,
:func:`evaluate_reconstructions`). See ``docs/metrics.md``.
"""
from brainit_core.metrics.evaluator import (
    Evaluator, describe_columns, evaluate_reconstructions, score_columns, select_networks,
)
from brainit_core.metrics.identification import correlation_distance, two_way_identification
from brainit_core.metrics.images import to_float_nchw
from brainit_core.metrics.networks import (
    COLUMNS, NETWORKS, UNAVAILABLE, build_extractor, extract_features, find_weights, image_features,
)
from brainit_core.metrics.pixel import pixcorr, ssim

__all__ = [
    "COLUMNS", "NETWORKS", "UNAVAILABLE", "Evaluator", "build_extractor", "correlation_distance", "describe_columns",
    "evaluate_reconstructions", "extract_features", "find_weights", "image_features", "pixcorr", "score_columns",
    "select_networks", "ssim", "to_float_nchw", "two_way_identification",
]
