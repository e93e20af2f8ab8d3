"""The final BIT checkpoint of a run: ``bit.safetensors`` + ``bit.json`` (asdict(BITConfig), token specs,
subjects with their vertex counts, feature space). Inference loads it without the training code."""
from __future__ import annotations

from pathlib import Path

from brainit_core.checkpoint import load_checkpoint, read_checkpoint_record, save_checkpoint
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
    try:
        config = BITConfig.from_dict(cfg["bit"])
        sem = TokenSpec(cfg["semantic_spec"]["name"], tuple(cfg["semantic_spec"]["grid"]), cfg["semantic_spec"]["dim"])
        low = [TokenSpec(s["name"], tuple(s["grid"]), s["dim"]) for s in cfg["lowlevel_specs"]]
        model = BrainITModel(config, sem, low, cfg["subjects"])
        model.load_state_dict(tensors, strict=True)
    except (KeyError, RuntimeError, TypeError) as exc:
        raise CheckpointError(f"{path}: checkpoint does not match this code's BIT model ({exc})") from exc
    return model.to(device).eval(), cfg, sha


def spec_dict(spec) -> dict:
    return {"name": spec.name, "grid": list(spec.grid), "dim": int(spec.dim)}
