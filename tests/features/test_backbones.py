"""The encoder's backbones: Lite1 (offline), DINOv2 ViT-L/14-reg from local weights (tiny random models here)."""
import numpy as np
import pytest
import torch

from brainit_core.errors import CheckpointError, MissingWeightsError
from brainit_core.features import extract_features, get_feature_space
from brainit_core.features.backbones import LiteBackbone, LiteBackboneConfig, build_backbone
from brainit_core.features.cache import feature_cache_path
from brainit_core.features.dinov2 import (DinoV2Backbone, DinoV2BackboneConfig, ViTConfig, ViTWithRegisters,
                                          official_state_dict)
from tests.factories import make_tiny_dataset

TINY_VIT = ViTConfig(patch_size=4, dim=16, depth=3, heads=2, registers=4, pretrain_size=16)
BLOCK_KEYS = ["norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias",
              "ls1.gamma", "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight",
              "mlp.fc2.bias", "ls2.gamma"]


def _official(seed=0) -> tuple[ViTWithRegisters, dict]:
    """A tiny random ViT and its weights as the official DINOv2 file holds them (with the unused mask token)."""
    torch.manual_seed(seed)
    vit = ViTWithRegisters(TINY_VIT).eval()
    with torch.no_grad():
        for p in vit.parameters():  # LayerScale starts at 1e-5: make every block matter
            p.add_(torch.randn_like(p) * 0.1)
    return vit, {**vit.state_dict(), "mask_token": torch.zeros(1, 16)}


def test_vit_state_dict_has_the_official_dinov2_keys():
    _, state = _official()
    expected = {"cls_token", "register_tokens", "pos_embed", "mask_token", "patch_embed.proj.weight",
                "patch_embed.proj.bias", "norm.weight", "norm.bias"}
    expected |= {f"blocks.{i}.{k}" for i in range(TINY_VIT.depth) for k in BLOCK_KEYS}
    assert set(state) == expected
    assert state["pos_embed"].shape == (1, 1 + 4 * 4, 16) and state["register_tokens"].shape == (1, 4, 16)


def test_vit_matches_timm_loading_the_same_official_weights():
    """timm's VisionTransformer, an independent implementation, converts the official layout itself."""
    timm_vit = pytest.importorskip("timm.models.vision_transformer")
    vit, state = _official()
    ref = timm_vit.VisionTransformer(img_size=16, patch_size=4, embed_dim=16, depth=3, num_heads=2, reg_tokens=4,
                                     no_embed_class=True, init_values=1e-5, num_classes=0, global_pool="")
    ref.load_state_dict(timm_vit.checkpoint_filter_fn(dict(state), ref))
    ref.eval()
    x = torch.randn(2, 3, 16, 16)
    ours = vit.forward_depths(x, (1, 3))
    theirs = ref.get_intermediate_layers(x, n=[0, 2], norm=True)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_vit_resizes_positions_to_other_inputs():
    vit, _ = _official()
    pos = vit.positions((6, 6))
    assert pos.shape == (1, 1 + 36, 16)
    torch.testing.assert_close(pos[:, :1], vit.pos_embed[:, :1])  # the class position is kept as it is
    assert vit.forward_depths(torch.randn(1, 3, 24, 24), (2,))[0].shape == (1, 36, 16)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_dinov2_backbone_loads_a_local_official_file(tmp_path, suffix):
    vit, state = _official(seed=1)
    path = tmp_path / f"dinov2{suffix}"
    if suffix == ".pth":  # the official training layout: blocks in chunks (blocks.<chunk>.<i>.)
        torch.save({k.replace("blocks.", "blocks.0.", 1) if k.startswith("blocks.") else k: v
                    for k, v in state.items()}, path)
    else:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    cfg = DinoV2BackboneConfig(image_size=16, depths=(1, 2, 3), vit=TINY_VIT, weights=str(path))
    space = DinoV2Backbone(cfg)
    images = torch.rand(2, 3, 16, 16)
    sem, maps = space.extract(images)
    x = (images - space._mean) / space._std
    want = vit.forward_depths(x, (1, 2, 3))
    torch.testing.assert_close(sem, want[-1])
    torch.testing.assert_close(maps[0].flatten(2).transpose(1, 2), want[0])
    assert [m.shape[1:] for m in maps] == [(16, 4, 4)] * 2 and sem.shape == (2, 16, 16)
    assert "random" not in space.cache_key() and space.describe()["config"]["weights"] is None


def test_dinov2_missing_or_misfit_weights_are_clear_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("BRAINIT_DINOV2_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(MissingWeightsError, match=r"dinov2_vitl14_reg4_pretrain\.pth[\s\S]*BRAINIT_DINOV2_WEIGHTS"):
        build_backbone("dinov2-vitl14-reg", "full")
    _, state = _official()
    del state["blocks.2.ls2.gamma"]
    path = tmp_path / "cut.pth"
    torch.save(state, path)
    cfg = DinoV2BackboneConfig(image_size=16, depths=(1, 3), vit=TINY_VIT, weights=str(path))
    with pytest.raises(CheckpointError, match="cut.pth"):
        DinoV2Backbone(cfg)
    assert official_state_dict({"blocks.1.7.norm1.weight": 1, "mask_token": 0}) == {"blocks.7.norm1.weight": 1}


def test_lite1_backbone_depths_cache_and_refusals(tmp_path):
    ds = make_tiny_dataset(tmp_path / "d", n_train=6)
    space = build_backbone("lite1", "ci")
    assert space.name == "lite1" and [s.dim for s in space.lowlevel_specs] == [24, 40, 80, 112]
    assert space.semantic_spec.dim == 320 and all(s.grid == (4, 4) for s in space.lowlevel_specs)
    ids = ds.subject("sub01").train_image_ids[:4]
    fs = extract_features(ds, ids, space)
    path = feature_cache_path(ds, space)
    assert path.exists() and path.name.startswith("encoder-lite1")
    direct = space.extract(torch.from_numpy(ds.images(ids)).permute(0, 3, 1, 2).float() / 255)
    np.testing.assert_allclose(fs.semantic.astype(np.float32), direct[0].numpy(), rtol=1e-2, atol=1e-2)
    assert [m.shape[1:] for m in fs.lowlevel] == [(c, 4, 4) for c in (24, 40, 80, 112)]
    # pretrained: the ImageNet weights give other tokens than a random network
    random = LiteBackbone(LiteBackboneConfig(image_size=128, grid=4, pretrained=False))
    x = torch.rand(1, 3, 64, 64)
    assert not torch.allclose(random.extract(x)[0], space.extract(x)[0], atol=1e-2)
    with pytest.raises(ValueError, match="lite0 is the decoder's"):
        LiteBackbone(LiteBackboneConfig(variant="lite0"))
    with pytest.raises(ValueError, match="unknown encoder backbone"):
        build_backbone("resnet", "ci")
    decoder = get_feature_space("lite0", preset="ci", pretrained=False)
    assert build_backbone("lite0", "ci", decoder_space=decoder) is decoder  # old runs: the decoder's own space
