"""A hand-made benchmark results dict with known winners and losers (tests of claims and report)."""
from __future__ import annotations

import copy

# mean scores per method: SSIM (higher better), Lite2-late (2-way) (higher), Lite2 dist (lower)
COLUMNS = {"SSIM": {"higher_is_better": True, "protocol": True},
           "Lite2-late (2-way)": {"higher_is_better": True, "protocol": False},
           "Lite2 dist": {"higher_is_better": False, "protocol": False}}
MEANS = {
    "brainit_fused": (0.5, 0.9, 0.4),
    "brainit_low_level": (0.52, 0.7, 0.6),
    "brainit_semantic": (0.3, 0.85, 0.45),
    "ridge": (0.4, 0.8, 0.5),
    "global_embedding": (0.45, 0.95, 0.41),  # beats Brain-IT on Lite2-late: claim 1 fails there
    "oracle": (0.625, 0.99, 0.2),
}
TRANSFER_60 = (0.46, 0.97, 0.3)  # beats both baselines on every column


def _row(v) -> dict:
    return dict(zip(COLUMNS, v))


def make_results() -> dict:
    """A results dict as run_benchmark writes it (without ``claims``), two subjects equal to the mean."""
    methods = list(MEANS)
    return copy.deepcopy({
        "dataset": "/data/twin", "run": "/runs/r", "generators": "/gens/g", "subjects": ["s1", "s2"],
        "n_images": {"s1": 4, "s2": 4}, "wall_seconds": 12.0, "columns": COLUMNS, "methods": methods,
        "method_labels": {m: m.replace("_", " ") for m in methods},
        "scores": {m: {"mean": _row(v), "s1": _row(v), "s2": _row(v)} for m, v in MEANS.items()},
        "seconds_per_image": {m: {"mean": 1.5, "s1": 1.0, "s2": 2.0} for m in methods},
        "transfer": {"subject": "s3", "amounts": ["60"], "n_images": 4, "scores": {"60": _row(TRANSFER_60)},
                     "baselines": {"ridge": _row(MEANS["ridge"]), "global_embedding": _row(MEANS["global_embedding"])},
                     "seconds_per_image": {"60": 1.25, "ridge": 0.5, "global_embedding": 0.75}},
        "attention": {"s1": {"contralaterality": {"index": 0.5}}, "s2": {"contralaterality": {"index": 0.7}}},
        "attention_summary": {"contralaterality_index": 0.6, "contralaterality_signed_mean": 0.1,
                              "contralaterality_weighted": 0.55, "contralaterality_lateralised": 0.65},
        "notes": ["a note"], "plots": [],
    })
