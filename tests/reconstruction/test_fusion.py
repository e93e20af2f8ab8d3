import pytest
import torch

from brainit_core.reconstruction.autoencoder import decode_latents, encode_images
from brainit_core.reconstruction.diffusion import generate_latents
from brainit_core.reconstruction.fusion import OFFICIAL_STEPS, OFFICIAL_STRENGTH, fuse, fusion_start


def test_official_schedule_starts_at_step_14():
    assert fusion_start(OFFICIAL_STEPS, OFFICIAL_STRENGTH) == 14
    assert fusion_start(38, 0.0) == 38 and fusion_start(38, 1.0) == 0
    with pytest.raises(ValueError):
        fusion_start(38, 1.5)


def test_strength_zero_is_decoded_low_level_and_one_is_generation(generators):
    g = generators
    low = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    sem = torch.rand(2, g.space.semantic_spec.n_tokens, g.space.semantic_spec.dim) * 2
    with torch.no_grad():
        rec = decode_latents(g.autoencoder, encode_images(g.autoencoder, low))
        gen = decode_latents(g.autoencoder, generate_latents(g.unet, g.scheduler_config, sem, [5, 6], 6, 2.0))
    f0 = fuse(g.autoencoder, g.unet, g.scheduler_config, low, sem, [5, 6], strength=0.0, steps=6, guidance_scale=2.0)
    f1 = fuse(g.autoencoder, g.unet, g.scheduler_config, low, sem, [5, 6], strength=1.0, steps=6, guidance_scale=2.0)
    fh = fuse(g.autoencoder, g.unet, g.scheduler_config, low, sem, [5, 6], strength=0.5, steps=6, guidance_scale=2.0)
    assert torch.equal(f0, rec)
    assert torch.equal(f1, gen)
    assert (fh - rec).abs().mean() > 1e-3 and (fh - gen).abs().mean() > 1e-3
    fh2 = fuse(g.autoencoder, g.unet, g.scheduler_config, low, sem, [5, 6], strength=0.5, steps=6, guidance_scale=2.0)
    assert torch.equal(fh, fh2)
    low_other = torch.rand(2, 3, 64, 64)
    f1_other = fuse(g.autoencoder, g.unet, g.scheduler_config, low_other, sem, [5, 6], strength=1.0, steps=6,
                    guidance_scale=2.0)
    assert torch.equal(f1_other, f1)  # strength 1 ignores the low-level image


def test_ddim_fusion_runs(generators):
    g = generators
    low = torch.rand(1, 3, 64, 64)
    sem = torch.rand(1, g.space.semantic_spec.n_tokens, g.space.semantic_spec.dim)
    out = fuse(g.autoencoder, g.unet, g.scheduler_config, low, sem, 0, strength=OFFICIAL_STRENGTH, steps=8,
               sampler="ddim")
    assert out.shape == (1, 3, 64, 64) and torch.isfinite(out).all()


def test_detail_adds_back_what_the_autoencoder_loses(generators):
    g = generators
    low = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    sem = torch.rand(2, g.space.semantic_spec.n_tokens, g.space.semantic_spec.dim)
    kw = dict(steps=6, guidance_scale=2.0)
    f0 = fuse(g.autoencoder, g.unet, g.scheduler_config, low, sem, [1, 2], strength=0.0, detail=1.0, **kw)
    torch.testing.assert_close(f0, low, atol=1e-5, rtol=0)  # strength 0: the low-level image itself
    plain = fuse(g.autoencoder, g.unet, g.scheduler_config, low, sem, [1, 2], strength=0.5, **kw)
    kept = fuse(g.autoencoder, g.unet, g.scheduler_config, low, sem, [1, 2], strength=0.5, detail=1.0, **kw)
    with torch.no_grad():
        lost = low - decode_latents(g.autoencoder, encode_images(g.autoencoder, low))
    torch.testing.assert_close(kept, (plain + lost).clamp(0, 1), atol=1e-5, rtol=0)
    gen = fuse(g.autoencoder, g.unet, g.scheduler_config, low, sem, [1, 2], strength=1.0, detail=1.0, **kw)
    assert torch.equal(gen, fuse(g.autoencoder, g.unet, g.scheduler_config, low, sem, [1, 2], strength=1.0, **kw))
