"""Low-level branch: Deep Image Prior inversion of predicted low-level features.

Brain-IT (section "low-level reconstruction") inverts the predicted VGG pyramid with a Deep
Image Prior (Ulyanov et al. 2018): a randomly initialised "skip" U-Net maps a fixed noise image
to an RGB image and is optimised with Adam so that the image's features match the prediction.
The network's structure acts as the image prior; no training data is involved.

Here the pyramid is whatever ``FeatureSpace.lowlevel_maps`` returns (Lite0 by default). Several
images are inverted at once by giving every image its own network inside one grouped
convolution stack (``groups = B``): batch-norm statistics, weights and Adam moments stay
per image, so image ``b``'s result depends only on its own seed and target.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
import torch.nn.functional as F

from brainit_core.progress import track
from brainit_core.reconstruction.images import image_size_of
from brainit_core.reconstruction.losses import feature_matching_loss


@dataclass
class DIPConfig:
    """Deep Image Prior settings.

    Parameters
    ----------
    channels : int
        Channels at every scale of the skip U-Net (official 128).
    scales : int
        Number of down/up-sampling levels (official 3).
    skip_channels : int
        Channels of each skip connection (4, as in the DIP "skip" network).
    noise_channels : int
        Channels of the fixed input noise (32).
    steps : int
        Adam steps (official 1,800).
    lr : float
        Adam learning rate (official 1e-3).
    noise_jitter : float
        Std of the Gaussian perturbation added to the input noise at every step (1/30).
    ema : float
        Decay of the output exponential moving average (0.99), warmed up as
        ``min(ema, (1 + t) / (10 + t))`` so that short runs are not dominated by early outputs.
    size : int or None
        Output side in pixels; ``None`` uses the feature space's low-level input size.
    layer_weights : tuple of float or None
        Weight of each pyramid level in the loss (``None``: all 1).
    """

    channels: int = 128
    scales: int = 3
    skip_channels: int = 4
    noise_channels: int = 32
    steps: int = 1800
    lr: float = 1e-3
    noise_jitter: float = 1.0 / 30.0
    ema: float = 0.99
    size: int | None = None
    layer_weights: tuple | None = None

    @classmethod
    def preset(cls, name: str) -> "DIPConfig":
        """``ci`` (tiny, 40 steps), ``demo`` (64 channels, 200 steps), ``full`` (official)."""
        if name == "ci":
            return cls(channels=16, steps=40, lr=1e-2)
        if name == "demo":
            return cls(channels=64, steps=200, lr=1e-2)
        if name == "full":
            return cls()
        raise ValueError(f"unknown preset {name!r} (ci, demo, full)")

    def to_dict(self) -> dict:
        return asdict(self)


def _interleave(a: torch.Tensor, b: torch.Tensor, groups: int) -> torch.Tensor:
    """Concatenate channels group by group: (1, G*Ca, H, W), (1, G*Cb, H, W) -> (1, G*(Ca+Cb), H, W)."""
    _, ca, h, w = a.shape
    cb = b.shape[1]
    out = torch.cat([a.view(1, groups, ca // groups, h, w), b.view(1, groups, cb // groups, h, w)], dim=2)
    return out.view(1, ca + cb, h, w)


def _conv_bn_act(cin: int, cout: int, k: int, groups: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin * groups, cout * groups, k, stride=stride, padding=k // 2, padding_mode="reflect", groups=groups),
        nn.BatchNorm2d(cout * groups),
        nn.LeakyReLU(0.2),
    )


class SkipUNet(nn.Module):
    """The DIP "skip" network, ``groups`` independent copies side by side.

    Input (1, G * noise_channels, H, W), output (1, G * 3, H, W) logits. Level ``i`` keeps a
    ``skip_channels`` projection of its input, downsamples by a strided 3x3 convolution, processes
    the next level, upsamples bilinearly and merges the skip in the decoder.
    """

    def __init__(self, config: DIPConfig, groups: int = 1):
        super().__init__()
        c, s, G = config.channels, config.skip_channels, groups
        self.groups = G
        self.skips, self.downs, self.ups = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        cin = config.noise_channels
        for _ in range(config.scales):
            self.skips.append(_conv_bn_act(cin, s, 1, G))
            self.downs.append(nn.Sequential(_conv_bn_act(cin, c, 3, G, stride=2), _conv_bn_act(c, c, 3, G)))
            self.ups.append(nn.Sequential(nn.BatchNorm2d((c + s) * G), _conv_bn_act(c + s, c, 3, G),
                                          _conv_bn_act(c, c, 1, G)))
            cin = c
        self.out = nn.Conv2d(c * G, 3 * G, 1, groups=G)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        skips, x = [], z
        for skip, down in zip(self.skips, self.downs):
            skips.append(skip(x))  # (1, G*s, h, w)
            x = down(x)            # (1, G*c, h/2, w/2)
        for i in reversed(range(len(self.ups))):
            x = F.interpolate(x, size=skips[i].shape[-2:], mode="bilinear", align_corners=False)
            x = self.ups[i](_interleave(skips[i], x, self.groups))
        return self.out(x)  # (1, G*3, H, W)

    @torch.no_grad()
    def init_per_group(self, generators: list[torch.Generator], zero_output: bool = False) -> None:
        """Initialise each group's weights from its own generator (Kaiming-uniform convolutions)."""
        G = self.groups
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                o = m.out_channels // G
                fan_in = m.in_channels // G * m.kernel_size[0] * m.kernel_size[1]
                bound = 1.0 / math.sqrt(fan_in) * math.sqrt(3.0)
                for g, gen in enumerate(generators):
                    w = torch.empty(m.weight[g * o:(g + 1) * o].shape).uniform_(-bound, bound, generator=gen)
                    m.weight[g * o:(g + 1) * o] = w.to(m.weight)
                m.bias.zero_()
        if zero_output:
            self.out.weight.zero_()


def invert_dip(targets: list[torch.Tensor], space, config: DIPConfig | None = None, seeds=0,
               init: torch.Tensor | None = None, steps: int | None = None, desc: str = "DIP") -> torch.Tensor:
    """Invert low-level feature maps with a Deep Image Prior.

    Parameters
    ----------
    targets : list of Tensor
        Predicted pyramid [(B, C_l, h_l, w_l)] in feature units.
    space : FeatureSpace
        The (frozen) space whose ``lowlevel_maps`` produced the targets.
    config : DIPConfig
    seeds : int or list of int
        One seed per image (an int ``s`` means ``s, s + 1, ...``).
    init : Tensor (B, 3, H, W) in [0, 1], optional
        Start from this image (e.g. the amortised inverter's output): the network then predicts
        a residual in logit space whose last layer starts at zero.
    steps : int, optional
        Override ``config.steps``.

    Returns
    -------
    Tensor, float32, (B, 3, H, W) in [0, 1]
        The EMA of the network's outputs.
    """
    config = config or DIPConfig()
    steps = config.steps if steps is None else int(steps)
    device = targets[0].device
    B = targets[0].shape[0]
    size = config.size or image_size_of(space)
    seeds = [int(seeds) + b for b in range(B)] if isinstance(seeds, int) else [int(s) for s in seeds]
    if len(seeds) != B:
        raise ValueError(f"{len(seeds)} seeds for {B} images")
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    net = SkipUNet(config, groups=B)
    net.init_per_group(gens, zero_output=init is not None)
    net.to(device).train()
    z = torch.cat([torch.rand(config.noise_channels, size, size, generator=g) * 0.1 for g in gens])[None].to(device)
    base = None
    if init is not None:
        base = torch.logit(init.detach().to(device).float().clamp(1e-3, 1 - 1e-3))
        if base.shape[-1] != size:
            base = F.interpolate(base, size=(size, size), mode="bilinear", align_corners=False)
    targets = [t.detach().float().to(device) for t in targets]
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    ema = None if init is None else init.detach().to(device).float().clone()
    if ema is not None and ema.shape[-1] != size:
        ema = F.interpolate(ema, size=(size, size), mode="bilinear", align_corners=False)
    for t in track(range(steps), desc=desc):
        jitter = torch.cat([torch.randn(config.noise_channels, size, size, generator=g) for g in gens])[None]
        logits = net(z + config.noise_jitter * jitter.to(device)).view(B, 3, size, size)
        image = torch.sigmoid(logits if base is None else base + logits)  # (B, 3, H, W)
        # images are independent: summing their losses keeps each network's gradient its own
        loss = feature_matching_loss(space.lowlevel_maps(image), targets, config.layer_weights).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        decay = min(config.ema, (1.0 + t) / (10.0 + t))
        ema = image.detach() if ema is None else ema.lerp(image.detach(), 1.0 - decay)
    if ema is None:  # steps == 0 without a starting image: the untrained network's output
        with torch.no_grad():
            ema = torch.sigmoid(net(z).view(B, 3, size, size))
    return ema.clamp(0, 1)
