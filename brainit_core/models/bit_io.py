"""The final BIT checkpoint of a run: ``bit.safetensors`` + ``bit.json`` (asdict(BITConfig), token specs,
subjects with their vertex counts, feature space). Inference loads it without the training code."""
from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path

from brainit_core.checkpoint import checkpoint_paths, load_checkpoint, read_checkpoint_record, save_checkpoint
from brainit_core.errors import CheckpointError
from brainit_core.features.base import TokenSpec
from brainit_core.models.bit import BITConfig, BrainITModel, config_dict


def save_bit(path: Path, model: BrainITModel, record: dict, meta: dict | None = None) -> Path:
    """Write ``path.safetensors`` + ``path.json`` (config: asdict(BITConfig), specs, subjects)."""
    cfg = {
        "bit": config_dict(model.config),
        "semantic_spec": spec_dict(model.semantic_spec),
        "lowlevel_specs": [spec_dict(s) for s in model.lowlevel_specs],
        "subjects": {s: model.semantic.tokenizer.n_vertices(s) for s in model.subjects},
        "space": record.get("space"),
    }
    return save_checkpoint(path, model.state_dict(), cfg, meta or {})


def load_bit(path: Path, device="cpu") -> tuple[BrainITModel, dict, str]:
    """Rebuild a :class:`BrainITModel` from ``path`` (returns model, config dict, sha256)."""
    tensors, cfg, _ = load_checkpoint(path, device="cpu")
    sha = read_checkpoint_record(path)["sha256"]
    check_config(cfg.get("bit") if isinstance(cfg, dict) else None, checkpoint_paths(path)[1])
    try:
        config = BITConfig.from_dict(cfg["bit"])
        sem = TokenSpec(cfg["semantic_spec"]["name"], tuple(cfg["semantic_spec"]["grid"]), cfg["semantic_spec"]["dim"])
        low = [TokenSpec(s["name"], tuple(s["grid"]), s["dim"]) for s in cfg["lowlevel_specs"]]
        model = BrainITModel(config, sem, low, cfg["subjects"])
        model.load_state_dict(tensors, strict=True)
    except (KeyError, RuntimeError, TypeError) as exc:
        raise CheckpointError(f"{path}: checkpoint does not match this code's BIT model ({exc})") from exc
    return model.to(device).eval(), cfg, sha


# fields that count something (a 0 would build an empty network); the others may be 0
_POSITIVE = {"n_clusters", "dim", "heads", "n_self_blocks", "voxels_per_sample", "semantic_batch", "lowlevel_batch",
             "eval_batch"}


def check_config(bit: dict | None, record: Path) -> None:
    """Refuse a ``bit`` config whose fields have the wrong type or an impossible value.

    Raises
    ------
    CheckpointError
        Naming ``record`` (the checkpoint's JSON file) and the field: ``'heads' must be an integer``,
        ``'heads' = 3 must divide 'dim' = 128``.
    """
    if not isinstance(bit, dict):
        raise CheckpointError(f"{record}: no 'bit' configuration (config.bit) in the checkpoint record")
    for f in fields(BITConfig):
        if f.name not in bit:
            continue
        value, default = bit[f.name], f.default
        if isinstance(default, bool):
            ok, what = isinstance(value, bool), "true or false"
        elif isinstance(default, int):
            ok, what = isinstance(value, int) and not isinstance(value, bool), "an integer"
        elif isinstance(default, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            what = "a number"
        else:
            continue
        if not ok:
            raise CheckpointError(f"{record}: field 'bit' -> {f.name!r} must be {what}, got {value!r}")
        if f.name in _POSITIVE and value < 1:
            raise CheckpointError(f"{record}: field 'bit' -> {f.name!r} must be a positive integer, got {value!r}")
    dim, heads = bit.get("dim", 512), bit.get("heads", 8)
    if dim % heads:
        raise CheckpointError(f"{record}: field 'bit' -> 'heads' = {heads} must divide 'dim' = {dim} "
                              "(attention heads split the token width)")


def spec_dict(spec) -> dict:
    return {"name": spec.name, "grid": list(spec.grid), "dim": int(spec.dim)}
