import copy

import numpy as np
import pytest
import torch

from brainit_core.reconstruction.diffusion import (ConditionalUNet, DiffusionConfig, diffusion_loss, generate_latents,
                                                   load_conditional_unet, make_scheduler, save_conditional_unet,
                                                   train_diffusion)


def _cfg():
    cfg = DiffusionConfig.preset("ci")
    return cfg


def test_demo_unet_size():
    m = ConditionalUNet(DiffusionConfig.preset("demo"))
    n = sum(p.numel() for p in m.unet.parameters())
    assert 10e6 < n < 25e6
    blocks = m.unet.config.down_block_types
    assert blocks == ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D")


def test_one_training_step_updates_and_loss_drops():
    from diffusers import DDPMScheduler

    torch.manual_seed(0)
    cfg = _cfg()
    model = ConditionalUNet(cfg)
    lat = torch.randn(4, 4, 8, 8)
    tok = torch.randn(4, cfg.n_tokens, cfg.token_dim)
    sched = DDPMScheduler(**cfg.scheduler_config())
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = copy.deepcopy(model.state_dict())
    losses = []
    for i in range(15):
        loss = diffusion_loss(model, sched, lat, tok, cfg, torch.Generator().manual_seed(0))  # fixed noise and t
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("unet.") for k in changed) and "conditioner.pos" in changed
    assert losses[-1] < 0.7 * losses[0], losses


@pytest.mark.parametrize("sampler", ["dpm", "ddim"])
def test_sampler_deterministic_per_seed(sampler):
    torch.manual_seed(0)
    cfg = _cfg()
    model = ConditionalUNet(cfg).eval()
    tok = torch.randn(2, cfg.n_tokens, cfg.token_dim)
    sc = cfg.scheduler_config()
    a = generate_latents(model, sc, tok, seeds=[1, 2], steps=4, guidance_scale=2.0, sampler=sampler)
    b = generate_latents(model, sc, tok, seeds=[1, 2], steps=4, guidance_scale=2.0, sampler=sampler)
    c = generate_latents(model, sc, tok, seeds=[3, 4], steps=4, guidance_scale=2.0, sampler=sampler)
    assert a.shape == (2, 4, 8, 8)
    assert torch.equal(a, b)
    assert (a - c).abs().mean() > 0.1
    single = generate_latents(model, sc, tok[1:], seeds=[2], steps=4, guidance_scale=2.0, sampler=sampler)
    assert torch.allclose(single[0], a[1], atol=1e-4)


def test_guidance_changes_output_and_unknown_sampler():
    torch.manual_seed(0)
    cfg = _cfg()
    model = ConditionalUNet(cfg).eval()
    with torch.no_grad():
        model.conditioner.pos.normal_()
    tok = torch.randn(1, cfg.n_tokens, cfg.token_dim) * 3
    sc = cfg.scheduler_config()
    a = generate_latents(model, sc, tok, 0, steps=3, guidance_scale=1.0)
    b = generate_latents(model, sc, tok, 0, steps=3, guidance_scale=4.0)
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="sampler"):
        make_scheduler(sc, "euler")


def test_train_diffusion_resume_and_round_trip(tmp_path):
    cfg = _cfg()
    cfg.steps, cfg.checkpoint_every, cfg.batch_size = 3, 1, 2
    lat = np.random.default_rng(0).standard_normal((6, 4, 8, 8)).astype(np.float32)
    tok = np.random.default_rng(1).standard_normal((6, cfg.n_tokens, cfg.token_dim)).astype(np.float32) * 2 + 1
    train_diffusion(lat, tok, cfg, tmp_path / "unet", max_seconds=0.0)
    assert not (tmp_path / "unet.safetensors").exists()
    model = train_diffusion(lat, tok, cfg, tmp_path / "unet")
    steps = [r.split(",")[0] for r in (tmp_path / "train" / "unet_loss.csv").read_text().splitlines()[1:]]
    assert steps == ["1", "2", "3"]
    again = load_conditional_unet(tmp_path / "unet")
    assert torch.allclose(again.conditioner.mean, torch.from_numpy(tok).reshape(-1, cfg.token_dim).mean(0), atol=1e-4)
    x = torch.randn(1, 4, 8, 8)
    t = torch.tensor([10])
    with torch.no_grad():
        ctx = model.context(torch.from_numpy(tok[:1]))
        assert torch.equal(model(x, t, ctx), again(x, t, again.context(torch.from_numpy(tok[:1]))))
    save_conditional_unet(again, tmp_path / "copy")


def test_spatial_map_keeps_the_token_layout():
    """Token i lies at row i // g, column i % g: moving the tokens one column to the right moves the map
    one column to the right (the projection is convolutional; borders aside)."""
    from brainit_core.reconstruction.diffusion import SpatialTokenMap

    torch.manual_seed(0)
    g = 6
    m = SpatialTokenMap(dim=5, channels=3, grid=g, size=g).eval()
    ctx = torch.randn(2, g * g, 5)
    moved = ctx.reshape(2, g, g, 5).roll(1, dims=2).reshape(2, g * g, 5)  # column j -> j + 1
    with torch.no_grad():
        a, b = m(ctx), m(moved)
    assert torch.allclose(b[..., 2:-1], a[..., 1:-2], atol=1e-5)
    wrong = ctx.reshape(2, g, g, 5).roll(1, dims=1).reshape(2, g * g, 5)  # rows moved instead
    with torch.no_grad():
        assert not torch.allclose(m(wrong)[..., 2:-1], a[..., 1:-2], atol=1e-3)


def test_spatial_conditioning_reaches_the_unet_and_needs_a_square_grid():
    cfg = _cfg()
    assert cfg.spatial_channels > 0
    model = ConditionalUNet(cfg).eval()
    assert model.unet.config.in_channels == cfg.latent_channels + cfg.spatial_channels
    x, t = torch.randn(1, 4, 8, 8), torch.tensor([500])
    tok = torch.randn(1, cfg.n_tokens, cfg.token_dim)
    with torch.no_grad():
        for p in model.spatial.parameters():
            p.normal_()
        ctx = model.context(tok)
        ctx2 = ctx.clone()
        ctx2[:, 0] += 3.0  # one token's value: the prediction changes through the map
        assert not torch.allclose(model(x, t, ctx), model(x, t, ctx2))
    with pytest.raises(ValueError, match="square grid"):
        ConditionalUNet(DiffusionConfig(**{**cfg.__dict__, "n_tokens": 15}))


def test_checkpoint_without_the_new_fields_loads_as_cross_attention_only(tmp_path):
    """Generators saved before spatial conditioning existed (the shipped demo's) still load."""
    import json

    cfg = DiffusionConfig(**{**_cfg().__dict__, "spatial_channels": 0})
    save_conditional_unet(ConditionalUNet(cfg), tmp_path / "old")
    record = json.loads((tmp_path / "old.json").read_text())
    for key in ("spatial_channels", "cond_shrink", "cond_noise_max"):
        record["config"]["config"].pop(key)
    (tmp_path / "old.json").write_text(json.dumps(record))
    model = load_conditional_unet(tmp_path / "old")
    assert model.spatial is None and model.config.spatial_channels == 0


def test_prediction_like_conditioning_changes_the_loss():
    """With shrink/noise augmentation on, the same batch, noise and t give a different loss than without."""
    from diffusers import DDPMScheduler

    torch.manual_seed(0)
    cfg = _cfg()
    model = ConditionalUNet(cfg).eval()
    lat, tok = torch.randn(8, 4, 8, 8), torch.randn(8, cfg.n_tokens, cfg.token_dim) * 3
    sched = DDPMScheduler(**cfg.scheduler_config())
    plain = DiffusionConfig(**{**cfg.__dict__, "cond_shrink": 1.0, "cond_noise_max": 0.0, "cond_dropout": 0.0})
    aug = DiffusionConfig(**{**cfg.__dict__, "cond_shrink": 0.1, "cond_noise_max": 2.0, "cond_dropout": 0.0})
    with torch.no_grad():
        a = diffusion_loss(model, sched, lat, tok, plain, torch.Generator().manual_seed(1))
        b = diffusion_loss(model, sched, lat, tok, plain, torch.Generator().manual_seed(1))
        c = diffusion_loss(model, sched, lat, tok, aug, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, c)
