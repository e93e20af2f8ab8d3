import pytest
import torch

from brainit_core.errors import MissingWeightsError
from brainit_core.reconstruction.sdxl import ImageTokenProjection, SDXLAdapterConfig, SDXLReconstructor, check_sdxl_directory

TOKENS, TOKEN_DIM = 6, 24


@pytest.fixture(scope="module")
def sdxl_dir(tmp_path_factory):
    from tests.factories import make_tiny_sdxl

    return make_tiny_sdxl(tmp_path_factory.mktemp("sdxl"), TOKEN_DIM)


def test_generation_and_fusion_with_tiny_components(sdxl_dir):
    rec = SDXLReconstructor.from_pretrained(sdxl_dir, config=SDXLAdapterConfig(size=16, steps=4, guidance_scale=3.0))
    assert rec.pooled_dim == 32
    tokens = torch.randn(2, TOKENS, TOKEN_DIM)
    a = rec(tokens, seeds=[0, 1])
    b = rec(tokens, seeds=[0, 1])
    assert a.shape == (2, 3, 16, 16) and torch.equal(a, b) and 0 <= a.min() and a.max() <= 1
    low = torch.rand(2, 3, 32, 32)
    fused = rec(tokens, low_level=low, seeds=[0, 1], strength=0.5)
    assert fused.shape == (2, 3, 16, 16) and not torch.allclose(fused, a)
    kept = rec(tokens, low_level=low, seeds=[0, 1], strength=0.0)  # VAE round trip of the low-level image
    with torch.no_grad():
        x = torch.nn.functional.interpolate(low, size=(16, 16), mode="bilinear", align_corners=False, antialias=True)
        ref = ((rec.vae.decode(rec.vae.encode(x * 2 - 1).latent_dist.mean).sample + 1) / 2).clamp(0, 1)
    assert torch.allclose(kept, ref, atol=1e-5)


def test_projection_must_fit_unet(sdxl_dir):
    with pytest.raises(ValueError, match="does not fit"):
        SDXLReconstructor.from_pretrained(sdxl_dir, projection=ImageTokenProjection(TOKEN_DIM, 48, 32))


def test_missing_weights_message_names_files(tmp_path):
    with pytest.raises(MissingWeightsError) as err:
        SDXLReconstructor.from_pretrained(tmp_path / "sdxl-unclip")
    msg = str(err.value)
    for part in ("unet/diffusion_pytorch_model.safetensors", "vae/config.json", "scheduler/scheduler_config.json",
                 "image_token_projection.safetensors", str(tmp_path / "sdxl-unclip")):
        assert part in msg
    (tmp_path / "partial" / "unet").mkdir(parents=True)
    (tmp_path / "partial" / "unet" / "config.json").write_text("{}")
    with pytest.raises(MissingWeightsError) as err:
        check_sdxl_directory(tmp_path / "partial")
    assert "unet/config.json" not in str(err.value) and "unet/diffusion_pytorch_model.safetensors" in str(err.value)


def test_training_loss_reaches_the_projection_and_the_unet_and_is_seeded(sdxl_dir):
    rec = SDXLReconstructor.from_pretrained(sdxl_dir, config=SDXLAdapterConfig(size=16))
    images = torch.rand(3, 3, 24, 24)
    latents = rec.encode(images)
    assert latents.shape == (3, 4, 8, 8)
    tokens = torch.randn(3, TOKENS, TOKEN_DIM, requires_grad=True)
    loss = rec.loss(latents, tokens, torch.Generator().manual_seed(1), cond_dropout=0.0)
    loss.backward()
    assert torch.isfinite(loss) and tokens.grad.abs().sum() > 0
    assert rec.projection.tokens.weight.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in rec.unet.parameters())
    again = rec.loss(latents, tokens, torch.Generator().manual_seed(1), cond_dropout=0.0)
    other = rec.loss(latents, tokens, torch.Generator().manual_seed(2), cond_dropout=0.0)
    assert torch.equal(loss, again) and not torch.equal(loss, other)
    # a sample given the unconditional embedding no longer depends on its tokens
    tokens.grad = None
    rec.loss(latents, tokens, torch.Generator().manual_seed(1), cond_dropout=1.0).backward()
    assert tokens.grad is None or tokens.grad.abs().sum() == 0
    assert set(dict(rec.trainable().named_children())) == {"unet", "projection"}
