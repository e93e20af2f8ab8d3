import numpy as np
import torch

from brainit_core.reconstruction.inverter import (FeatureInverter, InverterConfig, corrupt_features, inverter_loss,
                                                  load_inverter, save_inverter, train_inverter)


def _images(n=4, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    # smooth random images (low-frequency colour fields) are learnable in a few steps
    return torch.nn.functional.interpolate(torch.rand(n, 3, 4, 4, generator=g), size=(size, size), mode="bilinear",
                                           align_corners=False)


def test_inverter_shapes_and_range(space):
    inv = FeatureInverter(InverterConfig.for_space(space, "ci"))
    with torch.no_grad():
        out = inv(space.lowlevel_maps(_images()))
    assert out.shape == (4, 3, 64, 64)
    assert 0 <= out.min() and out.max() <= 1


def test_inverter_training_steps_reduce_loss(space):
    torch.manual_seed(0)
    cfg = InverterConfig.for_space(space, "ci")
    cfg.clean_prob = 1.0  # deterministic inputs: a clean check that optimisation works
    inv = FeatureInverter(cfg)
    x = _images()
    with torch.no_grad():
        inv.fit_statistics(space.lowlevel_maps(x))
    opt = torch.optim.Adam(inv.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(25):
        loss, parts = inverter_loss(inv, space, x, cfg, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert set(parts) == {"loss", "pixel_l1", "feature", "1-ssim"}
    assert losses[-1] < 0.7 * losses[0], losses


def test_corruption_is_seeded_and_clean_prob_keeps_features(space):
    cfg = InverterConfig.for_space(space, "ci")
    z = [torch.randn(6, s.dim, *s.grid) for s in space.lowlevel_specs]
    a = corrupt_features(z, cfg, torch.Generator().manual_seed(1))
    b = corrupt_features(z, cfg, torch.Generator().manual_seed(1))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert any((x - y).abs().mean() > 0.05 for x, y in zip(a, z))
    cfg.clean_prob = 1.0
    c = corrupt_features(z, cfg, torch.Generator().manual_seed(1))
    assert all(torch.equal(x, y) for x, y in zip(c, z))


def test_train_inverter_resumes_and_checkpoint_round_trip(space, tmp_path):
    imgs = (np.random.default_rng(0).random((10, 64, 64, 3)) * 255).astype(np.uint8)
    cfg = InverterConfig.for_space(space, "ci")
    cfg.steps, cfg.checkpoint_every, cfg.batch_size = 4, 2, 4
    inv = train_inverter(imgs, space, cfg, tmp_path / "inverter", max_seconds=0.0)  # stops after 1 step
    assert not (tmp_path / "inverter.safetensors").exists()
    rows = (tmp_path / "train" / "inverter_loss.csv").read_text().strip().splitlines()
    assert len(rows) == 2
    inv = train_inverter(imgs, space, cfg, tmp_path / "inverter")
    rows = (tmp_path / "train" / "inverter_loss.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3", "4"]
    again = load_inverter(tmp_path / "inverter")
    maps = space.lowlevel_maps(torch.rand(2, 3, 64, 64))
    with torch.no_grad():
        assert torch.equal(inv(maps), again(maps))
    save_inverter(again, tmp_path / "copy")
    assert torch.equal(load_inverter(tmp_path / "copy").mean_0, inv.mean_0)
