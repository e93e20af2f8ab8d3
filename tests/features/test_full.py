"""Full-size feature spaces (bigG + VGG16-BN): layout, tokenisation, weights, caching.

No pretrained weights are needed: full sizes are checked analytically and on the meta device,
everything else with tiny random networks of the same classes.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from brainit_core.errors import CheckpointError, MissingWeightsError
from brainit_core.features import extract_features, get_feature_space, maps_to_tokens
from brainit_core.features import fullsize as fs
from brainit_core.features import weights as fw
from tests.factories import make_tiny_dataset


@pytest.fixture(scope="module")
def tiny():
    return get_feature_space("bigg-vgg16bn", preset="ci")


@pytest.fixture
def no_caches(tmp_path, monkeypatch):
    """No weight file anywhere: empty HOME, HF and torch caches, no BRAINIT_* variables."""
    for var in ("BRAINIT_BIGG_WEIGHTS", "BRAINIT_VGG_WEIGHTS", "HF_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path


def test_full_size_layout_is_the_official_one():
    specs = fs.vgg_token_specs(112)
    assert [s.name for s in specs] == ["relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"]
    assert [s.grid for s in specs] == [(56, 56), (55, 55), (28, 28), (14, 14), (7, 7)]
    assert [s.dim for s in specs] == [512] * 5
    assert sum(s.n_tokens for s in specs) == 56**2 + 55**2 + 28**2 + 14**2 + 7**2 == 7190
    assert [s.dim for s in fs.vgg_token_specs(112, duplicate=False)] == [256, 512, 256, 512, 512]
    assert fs._relu_indices(fs.VGG16_CFG) == [5, 12, 22, 32, 42]
    sem = fs.clip_token_spec(fs.FullFeatureConfig().vision_cfg)
    assert (sem.grid, sem.dim, sem.n_tokens) == ((16, 16), 1664, 256)


def test_full_size_shapes_on_meta_device():
    """The real VGG16-BN and ViT-bigG/14 classes, built without memory, give the analytic shapes."""
    from torchvision.models import vgg16_bn

    with torch.device("meta"):
        vgg = vgg16_bn().features  # torchvision's own VGG16-BN
        x = torch.empty(2, 3, 112, 112)
        raw = []
        for i, layer in enumerate(vgg):
            x = layer(x)
            if i in (5, 12, 22, 32, 42):
                assert isinstance(layer, torch.nn.ReLU)
                raw.append(x)
        maps = fs.vgg_tokenize(raw)
        visual = fs.build_clip_visual(fs.FullFeatureConfig().vision_cfg, pretrained=False)
        _, tokens = visual(torch.empty(1, 3, 224, 224))
    assert [tuple(r.shape[1:]) for r in raw] == [(64, 112, 112), (128, 56, 56), (256, 28, 28), (512, 14, 14), (512, 7, 7)]
    assert [tuple(m.shape[1:]) for m in maps] == [(s.dim, *s.grid) for s in fs.vgg_token_specs(112)]
    assert tuple(tokens.shape) == (1, 256, 1664)


def test_tiny_space_end_to_end(tiny):
    assert isinstance(tiny, fs.BigGVGG16BNFeatures) and tiny.name == "bigg-vgg16bn"
    assert tiny.cache_key() == "bigg-vgg16bn_4x32-16x64-15x64-8x64-4x64-2x64_random0"
    assert tiny.describe()["config"]["pretrained"] is False
    x = torch.rand(3, 3, 48, 48)
    with torch.no_grad():
        sem = tiny.semantic_tokens(x)
        maps = tiny.lowlevel_maps(x)
    assert sem.shape == (3, tiny.semantic_spec.n_tokens, tiny.semantic_spec.dim) == (3, 16, 32)
    assert [tuple(m.shape[1:]) for m in maps] == [(s.dim, *s.grid) for s in tiny.lowlevel_specs]
    assert torch.isfinite(sem).all() and all(torch.isfinite(m).all() for m in maps)
    assert sem[0].std() > 0 and not torch.allclose(sem[0], sem[1])


def test_semantic_tokens_are_unprojected_spatial_tokens(tiny):
    """= last block, ln_post, CLS dropped, no projection; input mapped to [0.5, 1] then CLIP-normalised."""
    x = torch.rand(2, 3, 32, 32)
    ref_in = ((x + 1) / 2 - torch.tensor(fs.CLIP_MEAN).view(1, 3, 1, 1)) / torch.tensor(fs.CLIP_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        out = tiny.clip.forward_intermediates(ref_in, indices=[1], normalize_intermediates=True,
                                              output_fmt="NLC", intermediates_only=True)
        ref = out["image_intermediates"][-1]
        got = tiny.semantic_tokens(x)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    assert got.shape[-1] == tiny.clip.transformer.width != tiny.clip.proj.shape[1]


def test_lowlevel_tokens_follow_the_official_recipe(tiny):
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        h = (x - torch.tensor(fs.IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(fs.IMAGENET_STD).view(1, 3, 1, 1)
        raw = []
        for i, layer in enumerate(tiny.vgg):
            h = layer(h)
            if i in (5, 12, 22, 32, 42):
                raw.append(h)
        tokens = [maps_to_tokens(m) for m in tiny.lowlevel_maps(x)]
    one = F.unfold(raw[0], kernel_size=2, stride=2).transpose(1, 2)
    expected = [torch.cat([one, one], -1), F.unfold(raw[1], kernel_size=2, stride=1).transpose(1, 2)]
    third = raw[2].flatten(2).transpose(1, 2)
    expected += [torch.cat([third, third], -1), raw[3].flatten(2).transpose(1, 2), raw[4].flatten(2).transpose(1, 2)]
    for got, exp in zip(tokens, expected):
        torch.testing.assert_close(got, exp)
    # a relu2_2 token holds channel-major 2x2 patch values: token (row 1, col 2) of channel 3
    g = tiny.lowlevel_specs[1].grid[1]
    t = tokens[1][0, 1 * g + 2].view(-1, 2, 2)
    torch.testing.assert_close(t[3], raw[1][0, 3, 1:3, 2:4])


def test_untokenize_inverts_tokenize(tiny):
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        raw = tiny.raw_lowlevel_maps(x)
        back = fs.vgg_untokenize(tiny.lowlevel_maps(x), size=32)
    for r, b in zip(raw, back):
        torch.testing.assert_close(b, r)


def test_lowlevel_is_differentiable(tiny):
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    sum(m.square().mean() for m in tiny.lowlevel_maps(x)).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in tiny.parameters())


def test_missing_weights_name_both_files(no_caches):
    with pytest.raises(MissingWeightsError) as err:
        get_feature_space("bigg-vgg16bn", preset="full")
    msg = str(err.value)
    assert "open_clip_pytorch_model.bin" in msg and "laion/CLIP-ViT-bigG-14-laion2B-39B-b160k" in msg
    assert "vgg16_bn-6c64b313.pth" in msg and str(no_caches / "torch" / "hub" / "checkpoints") in msg
    assert "BRAINIT_BIGG_WEIGHTS" in msg and "BRAINIT_VGG_WEIGHTS" in msg


def test_missing_explicit_file_is_named(no_caches, tiny):
    vgg = no_caches / "vgg.pth"
    torch.save({f"features.{k}": v for k, v in tiny.vgg.state_dict().items()}, vgg)
    cfg = dict(fs.FullFeatureConfig.preset("tiny").__dict__, pretrained=True)
    with pytest.raises(MissingWeightsError, match="nowhere/bigg.bin") as err:
        fs.BigGVGG16BNFeatures(fs.FullFeatureConfig(**{**cfg, "clip_weights": "/nowhere/bigg.bin", "vgg_weights": str(vgg)}))
    assert "vgg16_bn" not in str(err.value)  # only the missing one is reported


def _save_tiny_weights(space, d, safetensors=False):
    """Files laid out like the real ones: whole-CLIP ``visual.*`` (+ text keys), torchvision ``features.*``."""
    clip = {f"visual.{k}": v.clone() for k, v in space.clip.state_dict().items()}
    clip["text_projection"] = torch.zeros(4, 4)
    vgg = {f"features.{k}": v.clone() for k, v in space.vgg.state_dict().items()}
    vgg["classifier.0.weight"] = torch.zeros(2, 2)
    if safetensors:
        from safetensors.torch import save_file

        clip_path = d / "open_clip_model.safetensors"
        save_file(clip, str(clip_path))
    else:
        clip_path = d / "open_clip_pytorch_model.bin"
        torch.save(clip, clip_path)
    vgg_path = d / fw.VGG_FILE
    torch.save(vgg, vgg_path)
    return clip_path, vgg_path


@pytest.mark.parametrize("safetensors", [False, True])
def test_weights_round_trip(tmp_path, tiny, safetensors):
    clip_path, vgg_path = _save_tiny_weights(tiny, tmp_path, safetensors)
    loaded = get_feature_space("bigg-vgg16bn", preset="tiny", pretrained=True, seed=1,
                               clip_weights=str(clip_path), vgg_weights=str(vgg_path))
    other = get_feature_space("bigg-vgg16bn", preset="tiny", seed=1)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.semantic_tokens(x), tiny.semantic_tokens(x))
        for a, b in zip(loaded.lowlevel_maps(x), tiny.lowlevel_maps(x)):
            assert torch.equal(a, b)
        assert not torch.allclose(other.semantic_tokens(x), tiny.semantic_tokens(x))
    assert not loaded.cache_key().endswith("random1")


def test_weights_found_through_environment(tmp_path, tiny, no_caches, monkeypatch):
    clip_path, vgg_path = _save_tiny_weights(tiny, tmp_path)
    monkeypatch.setenv("BRAINIT_BIGG_WEIGHTS", str(clip_path))
    monkeypatch.setenv("BRAINIT_VGG_WEIGHTS", str(vgg_path))
    loaded = get_feature_space("bigg-vgg16bn", preset="tiny", pretrained=True, seed=3)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.semantic_tokens(x), tiny.semantic_tokens(x))


def test_weights_in_the_standard_caches(tmp_path, tiny, no_caches):
    snap = no_caches / "hf" / "hub" / "models--laion--CLIP-ViT-bigG-14-laion2B-39B-b160k" / "snapshots" / "abc"
    ckpt = no_caches / "torch" / "hub" / "checkpoints"
    snap.mkdir(parents=True)
    ckpt.mkdir(parents=True)
    _save_tiny_weights(tiny, snap)
    (snap / fw.VGG_FILE).rename(ckpt / fw.VGG_FILE)
    assert fw.find_clip_weights() == snap / "open_clip_pytorch_model.bin"
    assert fw.find_vgg_weights() == ckpt / fw.VGG_FILE


def test_wrong_architecture_is_a_checkpoint_error(tmp_path, tiny):
    clip_path, vgg_path = _save_tiny_weights(tiny, tmp_path)
    bad = dict(fs.TINY_CLIP_CFG, width=48, head_width=16)
    with pytest.raises(CheckpointError, match="open_clip_pytorch_model.bin"):
        get_feature_space("bigg-vgg16bn", preset="tiny", pretrained=True, clip_vision_cfg=bad,
                          clip_weights=str(clip_path), vgg_weights=str(vgg_path))


def test_registry_rejects_unknown_names_and_options():
    with pytest.raises(ValueError, match="unknown feature space"):
        get_feature_space("bigg-resnet", preset="ci")
    with pytest.raises(TypeError, match="unknown option"):
        get_feature_space("bigg-vgg16bn", preset="ci", weights="x")


def test_extract_features_caches_tiny_space(tmp_path, tiny):
    ds = make_tiny_dataset(tmp_path / "d")
    ids = ds.image_ids[[2, 0, 0, 4]]
    first = extract_features(ds, ids[:2], tiny, batch_size=2)
    again = extract_features(ds, ids, tiny, batch_size=2)
    direct = extract_features(ds, ids, tiny, cache=False)
    from brainit_core.features.cache import dataset_key

    assert (tmp_path / "d" / "features" / f"{tiny.cache_key()}-{dataset_key(ds)}.h5").is_file()
    assert again.semantic.shape == (4, 16, 32)
    assert [m.shape[1:] for m in again.lowlevel] == [(s.dim, *s.grid) for s in tiny.lowlevel_specs]
    np.testing.assert_array_equal(first.semantic[0], again.semantic[0])
    np.testing.assert_array_equal(again.semantic[1], again.semantic[2])
    np.testing.assert_allclose(again.semantic.astype(np.float32), direct.semantic.astype(np.float32), atol=1e-2)
    for a, b in zip(again.lowlevel, direct.lowlevel):
        np.testing.assert_allclose(a.astype(np.float32), b.astype(np.float32), atol=1e-2)
