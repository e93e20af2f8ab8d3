"""The evaluation protocol of the literature's 8-metric table (MindEye2's notebook), plus offline columns.

Pixel metrics (:mod:`.pixel`), feature scores (:mod:`.identification`) and the network-backed
table (:mod:`.networks`). See ``docs/metrics.md``.
"""
from brainit_core.metrics.identification import correlation_distance, two_way_identification
from brainit_core.metrics.images import to_float_nchw
from brainit_core.metrics.networks import (
    COLUMNS, NETWORKS, UNAVAILABLE, build_extractor, describe_columns, evaluate_reconstructions, extract_features,
    find_weights, image_features, score_columns,
)
from brainit_core.metrics.pixel import pixcorr, ssim

__all__ = [
    "COLUMNS", "NETWORKS", "UNAVAILABLE", "build_extractor", "correlation_distance", "describe_columns",
    "evaluate_reconstructions", "extract_features", "find_weights", "image_features", "pixcorr", "score_columns", "ssim",
    "to_float_nchw", "two_way_identification",
]
