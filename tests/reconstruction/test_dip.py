import numpy as np
import torch

from brainit_core.reconstruction.losses import feature_matching_loss
from brainit_core.reconstruction.dip import DIPConfig, SkipUNet, invert_dip


def _targets(space, seed=0, n=2):
    from skimage import data
    from skimage.transform import resize

    imgs = [data.astronaut(), data.coffee(), data.chelsea()][:n]
    x = torch.from_numpy(np.stack([resize(i, (64, 64)) for i in imgs]).astype(np.float32)).permute(0, 3, 1, 2)
    with torch.no_grad():
        return x, space.lowlevel_maps(x)


def test_dip_reduces_feature_loss(space):
    x, targets = _targets(space)
    cfg = DIPConfig.preset("ci")
    start = invert_dip(targets, space, cfg, seeds=0, steps=0)
    # 60 steps: the EMA output (decay 0.99) lags the raw one early on; at 30 steps the ratio was
    # 0.67-0.71 with one set of package versions and under 0.7 with another, at 60 it is 0.39-0.48
    out = invert_dip(targets, space, cfg, seeds=0, steps=60)
    with torch.no_grad():
        l0 = feature_matching_loss(space.lowlevel_maps(start), targets)
        l1 = feature_matching_loss(space.lowlevel_maps(out), targets)
    assert out.shape == (2, 3, 64, 64) and out.min() >= 0 and out.max() <= 1
    assert torch.all(l1 < 0.7 * l0), (l0, l1)


def test_dip_seeded_and_images_independent(space):
    _, targets = _targets(space)
    cfg = DIPConfig.preset("ci")
    a = invert_dip(targets, space, cfg, seeds=[3, 4], steps=4)
    b = invert_dip(targets, space, cfg, seeds=[3, 4], steps=4)
    assert torch.equal(a, b)
    # image 1 depends only on its own target and seed, not on image 0's
    swapped = invert_dip([torch.cat([t[1:], t[1:]]) for t in targets], space, cfg, seeds=[3, 4], steps=4)
    assert torch.allclose(swapped[1], a[1], atol=1e-5)
    assert (swapped[0] - a[0]).abs().mean() > 1e-3
    # alone in a batch it matches too (early steps; Adam amplifies float noise later)
    single = invert_dip([t[1:] for t in targets], space, cfg, seeds=[4], steps=2)
    assert torch.allclose(single[0], invert_dip(targets, space, cfg, seeds=[3, 4], steps=2)[1], atol=1e-3)
    other = invert_dip(targets, space, cfg, seeds=[5, 6], steps=4)
    assert (other - a).abs().mean() > 1e-3


def test_dip_starts_from_init_image(space):
    x, targets = _targets(space)
    out = invert_dip(targets, space, DIPConfig.preset("ci"), init=x, steps=0)
    assert torch.allclose(out, x, atol=1e-6)
    refined = invert_dip(targets, space, DIPConfig.preset("ci"), init=x * 0.5 + 0.25, steps=3)
    assert (refined - (x * 0.5 + 0.25)).abs().max() > 0  # it moved, but started from the image


def test_skip_unet_groups_match_single_networks():
    cfg = DIPConfig(channels=8, noise_channels=4)
    gens = [torch.Generator().manual_seed(s) for s in (0, 1)]
    net2 = SkipUNet(cfg, groups=2)
    net2.init_per_group(gens)
    net1 = SkipUNet(cfg, groups=1)
    net1.init_per_group([torch.Generator().manual_seed(1)])
    z = torch.rand(1, 8, 32, 32)
    out2 = net2(z)
    out1 = net1(z[:, 4:])
    assert torch.allclose(out2[:, 3:], out1, atol=1e-5)
