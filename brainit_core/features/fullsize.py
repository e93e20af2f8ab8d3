"""The official full-size feature spaces: OpenCLIP ViT-bigG/14 tokens + VGG16-BN pyramid.

Facts from the official code (WeizmannVision/brainit-fmri, ``data/scripts/prepare_clip.py`` and
``utils/vgg_utils.py``); the code here is this project's own.

Semantic tokens
    OpenCLIP ViT-bigG/14 (``laion2b_s39b_b160k``) on 224 px images; the 256 spatial tokens of the
    last block after ``ln_post`` and before the projection (CLS dropped): (B, 256, 1664).
    Pre-processing: images in [0, 1] are first mapped to [0.5, 1] by ``(x + 1) / 2`` and then
    normalised with the OpenAI CLIP mean/std. The official script keeps this on purpose (the
    MindEye2 unCLIP generator was trained on tokens made this way); ``clip_half_range=False``
    gives the textbook pre-processing.

Low-level pyramid
    torchvision VGG16-BN ``features`` at 112 px (ImageNet mean/std), outputs of relu1_2, relu2_2,
    relu3_3, relu4_3, relu5_3 (``features`` indices 5, 12, 22, 32, 42), tokenised to 512-d tokens:

    ========  ================  =====================================  ==========
    layer     map (C, h, w)     tokenisation                           tokens
    ========  ================  =====================================  ==========
    relu1_2   64 x 112 x 112    2x2 patches, stride 2 (256-d), twice   56^2 x 512
    relu2_2   128 x 56 x 56     2x2 patches, stride 1                  55^2 x 512
    relu3_3   256 x 28 x 28     one token per location, twice          28^2 x 512
    relu4_3   512 x 14 x 14     one token per location                 14^2 x 512
    relu5_3   512 x 7 x 7       one token per location                 7^2 x 512
    ========  ================  =====================================  ==========

    7,190 tokens in all. A patch token lists its values channel-major, then row, then column
    (``F.unfold`` order); "twice" means the vector is concatenated with itself. ``lowlevel_maps``
    returns these tokens laid out as maps (B, 512, g, g), so ``maps_to_tokens`` gives exactly the
    official token sequence; :meth:`BigGVGG16BNFeatures.raw_lowlevel_maps` gives the plain VGG
    activations and :func:`vgg_untokenize` maps tokens back to them (overlaps averaged).

Weights never download: local files only (see :func:`find_clip_weights`, :func:`find_vgg_weights`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
import torch.nn.functional as F

from brainit_core.features.base import FeatureSpace, TokenSpec, resize
from brainit_core.features.weights import (
    BIGG_MODEL, check_full_weights, find_clip_weights, find_vgg_weights, load_strict, read_state_dict, strip_prefix,
)

NAME = "bigg-vgg16bn"

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
VGG_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# tiny stand-ins (tests): same classes, same layer layout, random weights
TINY_CLIP_CFG = {"image_size": 32, "patch_size": 8, "width": 32, "layers": 2, "head_width": 16, "mlp_ratio": 2.0}
TINY_VGG_CFG = (8, 8, "M", 16, 16, "M", 32, 32, 32, "M", 64, 64, 64, "M", 64, 64, 64, "M")


@dataclass
class FullFeatureConfig:
    """Configuration of :class:`BigGVGG16BNFeatures`.

    Parameters
    ----------
    clip_vision_cfg : dict or None
        open_clip ``vision_cfg`` of the semantic ViT; ``None`` = ViT-bigG/14 (224 px, 16 x 16 x 1664).
    clip_embed_dim : int
        open_clip ``embed_dim`` (size of the unused projection; 1280 for bigG).
    vgg_cfg : tuple or None
        torchvision VGG ``features`` layout (channels and ``"M"``); ``None`` = VGG16 (``"D"``).
        Must have VGG16's shape: 2, 2, 3, 3, 3 convolutions per stage.
    lowlevel_size : int
        VGG input size (official 112).
    duplicate : bool
        Concatenate relu1_2 and relu3_3 tokens with themselves to 512-d (official).
    clip_half_range : bool
        Map [0, 1] to [0.5, 1] before the CLIP normalisation (official, see module docstring).
    clip_weights, vgg_weights : str or None
        Local weight files; ``None`` searches the environment variables ``BRAINIT_BIGG_WEIGHTS`` /
        ``BRAINIT_VGG_WEIGHTS`` and the standard Hugging Face / torch hub caches.
    pretrained : bool
        ``False`` keeps the random initialisation (tests).
    clip_dtype : str
        Dtype of the ViT weights (``"float32"``; ``"float16"``/``"bfloat16"`` halve bigG's 7.4 GB on
        a GPU). Outputs are always float32.
    seed : int
        Seed of the random initialisation (makes random spaces reproducible).
    """

    clip_vision_cfg: dict | None = None
    clip_embed_dim: int = 1280
    vgg_cfg: tuple | None = None
    lowlevel_size: int = 112
    duplicate: bool = True
    clip_half_range: bool = True
    clip_weights: str | None = None
    vgg_weights: str | None = None
    pretrained: bool = True
    clip_dtype: str = "float32"
    seed: int = 0

    @classmethod
    def preset(cls, name: str) -> "FullFeatureConfig":
        """``full`` / ``demo``: the official networks (needs the weight files); ``ci`` / ``tiny``:
        tiny random networks of the same classes (32 px inputs, no weights, milliseconds)."""
        if name in ("full", "demo"):
            return cls()
        if name in ("ci", "tiny"):
            return cls(clip_vision_cfg=dict(TINY_CLIP_CFG), clip_embed_dim=16, vgg_cfg=TINY_VGG_CFG,
                       lowlevel_size=32, pretrained=False)
        raise ValueError(f"unknown preset {name!r} (full, demo, ci, tiny)")

    @property
    def vision_cfg(self) -> dict:
        if self.clip_vision_cfg is not None:
            return dict(self.clip_vision_cfg)
        import open_clip

        return dict(open_clip.get_model_config(BIGG_MODEL)["vision_cfg"])


# ---------------------------------------------------------------------------------------------
# analytic token layout
# ---------------------------------------------------------------------------------------------
def _stage_channels(cfg) -> list[int]:
    """Last conv width of each of the 5 VGG stages."""
    out, last = [], None
    for v in cfg:
        if v == "M":
            out.append(last)
        else:
            last = int(v)
    return out


def clip_token_spec(vision_cfg: dict) -> TokenSpec:
    """Spatial token grid of an open_clip ViT (CLS dropped)."""
    g = int(vision_cfg["image_size"]) // int(vision_cfg["patch_size"])
    return TokenSpec("bigg", (g, g), int(vision_cfg["width"]))


def vgg_token_specs(size: int = 112, cfg=VGG16_CFG, duplicate: bool = True) -> tuple[TokenSpec, ...]:
    """Official token grids of relu1_2..relu5_3 for a ``size`` px input, computed without a network.

    Full size (112 px, VGG16): 56^2, 55^2, 28^2, 14^2, 7^2 tokens, all 512-d (7,190 tokens).
    """
    if size % 16:
        raise ValueError(f"VGG input size must be a multiple of 16, got {size}")
    c1, c2, c3, c4, c5 = _stage_channels(cfg)
    k = 2 if duplicate else 1
    grids_dims = [(size // 2, 4 * c1 * k), (size // 2 - 1, 4 * c2), (size // 4, c3 * k), (size // 8, c4), (size // 16, c5)]
    return tuple(TokenSpec(n, (g, g), d) for n, (g, d) in zip(VGG_LAYERS, grids_dims))


def _relu_indices(cfg) -> list[int]:
    """``features`` indices of the last ReLU of each stage (VGG16-BN: 5, 12, 22, 32, 42)."""
    idx, out, prev_relu = 0, [], None
    for v in cfg:
        if v == "M":
            out.append(prev_relu)
            idx += 1
        else:
            prev_relu = idx + 2  # conv, bn, relu
            idx += 3
    return out


def vgg_tokenize(raw: list[torch.Tensor], duplicate: bool = True) -> list[torch.Tensor]:
    """Raw relu1_2..relu5_3 maps -> official token maps [(B, D_l, g_l, g_l)] (differentiable)."""
    out = []
    for l, x in enumerate(raw):
        B, C, H, W = x.shape
        if l in (0, 1):
            stride = 2 if l == 0 else 1
            t = F.unfold(x, kernel_size=2, stride=stride)  # (B, 4C, g*g), channel-major patch vectors
            g = (H - 2) // stride + 1
            t = t.reshape(B, 4 * C, g, g)
        else:
            t = x
        if duplicate and l in (0, 2):
            t = torch.cat([t, t], dim=1)
        out.append(t)
    return out


def vgg_untokenize(maps: list[torch.Tensor], size: int = 112, duplicate: bool = True) -> list[torch.Tensor]:
    """Inverse of :func:`vgg_tokenize`: token maps -> raw VGG maps (duplicates and overlapping
    patch values averaged), e.g. to invert predicted tokens with a plain VGG feature loss."""
    out = []
    for l, t in enumerate(maps):
        if duplicate and l in (0, 2):
            half = t.shape[1] // 2
            t = 0.5 * (t[:, :half] + t[:, half:])
        if l in (0, 1):
            stride = 2 if l == 0 else 1
            H = size // (1 if l == 0 else 2)
            cols = t.flatten(2)  # (B, 4C, L)
            folded = F.fold(cols, (H, H), kernel_size=2, stride=stride)
            count = F.fold(torch.ones_like(cols[:1, :4]), (H, H), kernel_size=2, stride=stride)  # (1, 1, H, H)
            t = folded / count.clamp_min(1.0)
        out.append(t)
    return out


# ---------------------------------------------------------------------------------------------
# networks
# ---------------------------------------------------------------------------------------------
def build_clip_visual(vision_cfg: dict, embed_dim: int = 1280, weights: str | Path | None = None,
                      pretrained: bool = True, dtype: str = "float32") -> nn.Module:
    """An open_clip ``VisionTransformer`` in eval mode, frozen, returning tokens.

    ``weights`` may be a whole-CLIP state dict (keys ``visual.*``, as on the Hugging Face hub) or a
    visual-only one.
    """
    from open_clip.model import _build_vision_tower

    visual = _build_vision_tower(embed_dim, dict(vision_cfg))
    if pretrained:
        path = find_clip_weights(str(weights) if weights else None)
        load_strict(visual, strip_prefix(read_state_dict(path), "visual."), path, "OpenCLIP visual")
    visual.output_tokens = True
    return visual.to(getattr(torch, dtype)).eval().requires_grad_(False)


def build_vgg_features(cfg=VGG16_CFG, weights: str | Path | None = None, pretrained: bool = True) -> nn.Sequential:
    """torchvision VGG-BN ``features`` (no classifier) in eval mode, frozen.

    ``weights`` is a torchvision VGG16-BN state dict (keys ``features.*``; ``classifier.*`` ignored).
    """
    from torchvision.models.vgg import make_layers

    features = make_layers(list(cfg), batch_norm=True)
    if pretrained:
        path = find_vgg_weights(str(weights) if weights else None)
        state = {k: v for k, v in strip_prefix(read_state_dict(path), "features.").items() if not k.startswith("classifier.")}
        load_strict(features, state, path, "VGG16-BN features")
    return features.eval().requires_grad_(False)


class BigGVGG16BNFeatures(FeatureSpace):
    """The official Brain-IT targets: bigG spatial tokens + tokenised VGG16-BN pyramid.

    Parameters
    ----------
    config : FullFeatureConfig

    Attributes
    ----------
    clip : open_clip VisionTransformer
    vgg : nn.Sequential
        VGG16-BN ``features`` up to relu5_3.
    semantic_spec : TokenSpec
        ``bigg``, 16 x 16 x 1664 at full size.
    lowlevel_specs : tuple of TokenSpec
        relu1_2..relu5_3 token grids (56, 55, 28, 14, 7) x 512 at full size.
    """

    name = NAME

    def __init__(self, config: FullFeatureConfig | None = None):
        super().__init__()
        self.config = c = config or FullFeatureConfig()
        vgg_cfg = tuple(c.vgg_cfg or VGG16_CFG)
        vision_cfg = c.vision_cfg
        if c.pretrained:
            check_full_weights(c.clip_weights, c.vgg_weights)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(c.seed)
            self.clip = build_clip_visual(vision_cfg, c.clip_embed_dim, c.clip_weights, c.pretrained, c.clip_dtype)
            vgg = build_vgg_features(vgg_cfg, c.vgg_weights, c.pretrained)
        self._relu_idx = _relu_indices(vgg_cfg)
        self.vgg = vgg[: self._relu_idx[-1] + 1]  # the last max-pool is never used
        self.clip_size = int(vision_cfg["image_size"])
        self.semantic_spec = clip_token_spec(vision_cfg)
        self.lowlevel_specs = vgg_token_specs(c.lowlevel_size, vgg_cfg, c.duplicate)
        self.register_buffer("_clip_mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_clip_std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_vgg_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_vgg_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def semantic_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, 256, 1664) bigG spatial tokens (unprojected, CLS dropped)."""
        x = resize(images, self.clip_size)
        if self.config.clip_half_range:
            x = (x + 1.0) / 2.0
        x = (x - self._clip_mean) / self._clip_std
        dtype = self.clip.conv1.weight.dtype
        _, tokens = self.clip(x.to(dtype))  # (B, g*g, width)
        return tokens.float()

    def raw_lowlevel_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) in [0, 1] -> plain relu1_2..relu5_3 activations [(B, C, h, w)] at ``lowlevel_size``."""
        x = (resize(images, self.config.lowlevel_size) - self._vgg_mean) / self._vgg_std
        out, wanted = [], set(self._relu_idx)
        for i, layer in enumerate(self.vgg):
            x = layer(x)
            if i in wanted:
                out.append(x)
        return out

    def lowlevel_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) in [0, 1] -> official token maps [(B, 512, g, g)] (differentiable)."""
        return vgg_tokenize(self.raw_lowlevel_maps(images), self.config.duplicate)

    def cache_key(self) -> str:
        c = self.config
        key = super().cache_key()
        if not c.pretrained:
            key += f"_random{c.seed}"
        if not c.clip_half_range:
            key += "_cliprange01"
        return key

    def describe(self) -> dict:
        d = asdict(self.config)
        d["vgg_cfg"] = list(d["vgg_cfg"]) if d["vgg_cfg"] is not None else None
        return {**super().describe(), "config": d}


def build(name: str = NAME, preset: str = "full", **kwargs) -> BigGVGG16BNFeatures:
    """Build a full-size feature space by name (called by ``get_feature_space``).

    Parameters
    ----------
    name : str
        ``"bigg-vgg16bn"``.
    preset : str
        ``full``/``demo`` (official networks, local weights) or ``ci``/``tiny`` (random tiny ones).
    **kwargs
        :class:`FullFeatureConfig` fields, e.g. ``clip_weights=``, ``vgg_weights=``, ``pretrained=``.
    """
    if name != NAME:
        raise ValueError(f"unknown feature space {name!r} (known: 'lite0', {NAME!r})")
    cfg = FullFeatureConfig.preset(preset)
    for k, v in kwargs.items():
        if not hasattr(cfg, k):
            raise TypeError(f"unknown option {k!r} for {NAME}")
        setattr(cfg, k, v)
    return BigGVGG16BNFeatures(cfg)
