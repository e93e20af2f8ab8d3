import json

import pytest
import torch

from brainit_core.errors import MissingWeightsError
from brainit_core.reconstruction.sdxl import (PROJECTION_NAME, ImageTokenProjection, SDXLAdapterConfig,
                                              SDXLReconstructor, check_sdxl_directory)

TOKENS, TOKEN_DIM = 6, 24


@pytest.fixture(scope="module")
def sdxl_dir(tmp_path_factory):
    """A tiny random SDXL in the diffusers directory layout (same classes, tiny configs)."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel

    d = tmp_path_factory.mktemp("sdxl")
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=8, transformer_layers_per_block=(1, 1), projection_class_embeddings_input_dim=80,
        cross_attention_dim=64, norm_num_groups=32)
    vae = AutoencoderKL(block_out_channels=(16, 32), in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        norm_num_groups=16, sample_size=16, scaling_factor=0.13025)
    unet.save_pretrained(d / "unet", safe_serialization=True)
    vae.save_pretrained(d / "vae", safe_serialization=True)
    EulerDiscreteScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                           steps_offset=1, timestep_spacing="leading").save_pretrained(d / "scheduler")
    (d / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionXLImg2ImgPipeline"}))
    ImageTokenProjection(TOKEN_DIM, 64, 32).save(d / PROJECTION_NAME)
    return d


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
        x = torch.nn.functional.interpolate(low, size=(16, 16), mode="bilinear", align_corners=False)
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
