"""Checkpoints: safetensors tensors + a JSON file with the config, metadata and sha256.

``save_checkpoint(path, tensors, config)`` writes ``path.safetensors`` and ``path.json``;
``load_checkpoint(path)`` verifies the hash before returning anything. Nothing is ever unpickled.
Writes go to a temporary file first and are renamed, so a killed process never leaves a torn file.
In a job of several processes only rank 0 writes (:mod:`brainit_core.distributed`).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from brainit_core.distributed import is_main
from brainit_core.errors import CheckpointError
from brainit_core.fileio import write_json

if TYPE_CHECKING:
    from torch.nn import Module

FORMAT_VERSION = 1


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def _paths(path: str | os.PathLike) -> tuple[Path, Path]:
    p = Path(path)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


def checkpoint_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """The ``(tensors, record)`` files of the checkpoint ``path`` (``X`` -> ``X.safetensors``, ``X.json``)."""
    return _paths(path)


def save_checkpoint(path, tensors: Mapping[str, Any], config: Mapping[str, Any], meta: Mapping[str, Any] | None = None) -> Path:
    """Write ``tensors`` (name -> torch tensor) and ``config`` (JSON-able) atomically.

    Returns the path of the ``.json`` file. On ranks other than 0 of a multi-process job nothing is written.
    """
    from safetensors.torch import save_file

    st_path, js_path = _paths(path)
    if not is_main():
        return js_path
    st_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = st_path.with_name(st_path.name + ".tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, st_path)
    record = {
        "format_version": FORMAT_VERSION,
        "config": dict(config),
        "meta": dict(meta or {}),
        "sha256": sha256_file(st_path),
        "tensors_file": st_path.name,
    }
    write_json(js_path, record)
    return js_path


def read_checkpoint_record(path) -> dict:
    """Read and validate the JSON part of a checkpoint (no tensors loaded)."""
    st_path, js_path = _paths(path)
    if not js_path.exists():
        raise CheckpointError(f"checkpoint config {js_path} not found (expected a .json beside {st_path.name})")
    try:
        record = json.loads(js_path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{js_path} is not valid JSON: {exc}") from exc
    for key in ("config", "sha256"):
        if key not in record:
            raise CheckpointError(f"{js_path} lacks the '{key}' field of a Brain-IT checkpoint")
    return record


def load_checkpoint(path, device: str = "cpu", verify: bool = True) -> tuple[dict, dict, dict]:
    """Load a checkpoint written by :func:`save_checkpoint`.

    Returns
    -------
    tensors : dict of str -> torch.Tensor
    config : dict
    meta : dict
    """
    from safetensors.torch import load_file

    st_path, js_path = _paths(path)
    record = read_checkpoint_record(path)
    if not st_path.exists():
        raise CheckpointError(f"checkpoint tensors {st_path} not found (named in {js_path})")
    if verify:
        digest = sha256_file(st_path)
        if digest != record["sha256"]:
            raise CheckpointError(
                f"{st_path} is corrupt or was changed: sha256 {digest[:12]}... "
                f"but {js_path.name} records {record['sha256'][:12]}..."
            )
    try:
        tensors = load_file(str(st_path), device=device)
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"{st_path} could not be read as safetensors: {exc}") from exc
    return tensors, record["config"], record.get("meta", {})


def checkpoint_exists(path) -> bool:
    st_path, js_path = _paths(path)
    return st_path.exists() and js_path.exists()


def copy_checkpoint(src, dst) -> Path:
    """Copy the checkpoint ``src`` (both files) to ``dst`` after verifying its sha256; the record goes last,
    so an interrupted copy is never taken for a checkpoint. Returns the destination's ``.json`` path.

    Raises
    ------
    CheckpointError
        When ``src`` is missing or its tensors do not match the sha256 its record holds.
    """
    import shutil

    (src_st, src_js), (dst_st, dst_js) = _paths(src), _paths(dst)
    record = read_checkpoint_record(src)
    if not src_st.exists() or sha256_file(src_st) != record["sha256"]:
        raise CheckpointError(f"{src_st} is missing or does not match the sha256 in {src_js.name}; not copied")
    dst_st.parent.mkdir(parents=True, exist_ok=True)
    for a, b in ((src_st, dst_st), (src_js, dst_js)):
        tmp = b.with_name(b.name + ".tmp")
        shutil.copyfile(a, tmp)
        os.replace(tmp, b)
    return dst_js


# --------------------------------------------------------------------------------------------
# optimiser state (resumable training)
# --------------------------------------------------------------------------------------------
OPTIMIZER_PREFIX = "opt."


def optimizer_state(optimizer) -> tuple[dict, dict]:
    """An optimiser's state as (tensors, JSON-able meta) for :func:`save_checkpoint`.

    Tensors are named ``opt.<param index>.<name>`` (e.g. ``opt.3.exp_avg``); non-tensor entries and
    the parameter groups go into the meta dict. :func:`restore_optimizer` reverses it.
    """
    import torch

    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for pid, state in sd["state"].items():
        for k, v in state.items():
            if torch.is_tensor(v):
                tensors[f"{OPTIMIZER_PREFIX}{pid}.{k}"] = v
            else:
                scalars[f"{pid}.{k}"] = v
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def restore_optimizer(optimizer, tensors: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
    """Load what :func:`optimizer_state` saved into ``optimizer`` (other tensors are ignored).

    Also reads the ``optim/<index>/<name>`` tensor names of checkpoints written before the format
    was unified, so training states saved by earlier versions still resume.
    """
    state: dict = {}
    for name, v in tensors.items():
        if name.startswith(OPTIMIZER_PREFIX):
            _, pid, k = name.split(".", 2)
        elif name.startswith("optim/"):
            _, pid, k = name.split("/", 2)
        else:
            continue
        state.setdefault(int(pid), {})[k] = v
    for key, v in (meta.get("scalars") or {}).items():
        pid, k = key.split("/", 1) if "/" in key else key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    groups = [dict(g) for g in meta["param_groups"]]
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    optimizer.load_state_dict({"state": state, "param_groups": groups})


class TrainingState:
    """Save/restore a training loop (model, optimizer, optional EMA copy, step) at ``path``.

    Parameters
    ----------
    path : Path
        Checkpoint stem (``GEN_DIR/train/unet_state``).
    """

    def __init__(self, path):
        self.path = Path(path)

    def exists(self) -> bool:
        return checkpoint_exists(self.path)

    def save(self, step: int, model: Module, optimizer, config: dict, ema: Module | None = None,
             extra: dict | None = None) -> None:
        tensors = {f"model/{k}": v for k, v in model.state_dict().items()}
        if ema is not None:
            tensors.update({f"ema/{k}": v for k, v in ema.state_dict().items()})
        opt_t, opt_meta = optimizer_state(optimizer)
        tensors.update(opt_t)
        save_checkpoint(self.path, tensors, config, {"step": int(step), "optimizer": opt_meta, **(extra or {})})

    def load(self, model: Module, optimizer, ema: Module | None = None, device="cpu") -> tuple[int, dict]:
        """Restore in place; returns (step, meta)."""
        tensors, _, meta = load_checkpoint(self.path, device=str(device))
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model/")})
        if ema is not None:
            ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema/")})
        restore_optimizer(optimizer, tensors, meta["optimizer"])
        return int(meta["step"]), meta
