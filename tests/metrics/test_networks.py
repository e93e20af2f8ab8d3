"""Network-backed columns: layer hooks and input sizes with random weights, weight lookup, Lite2 for real."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from brainit_core.errors import CheckpointError, MissingWeightsError
from brainit_core.metrics import (
    NETWORKS, UNAVAILABLE, build_extractor, correlation_distance, describe_columns, evaluate_reconstructions,
    extract_features, find_weights, two_way_identification,
)
from brainit_core.metrics.images import resize


@pytest.fixture(autouse=True)
def no_local_weights(tmp_path, monkeypatch):
    """Point every search place at empty folders, so no real cache on the machine is used."""
    monkeypatch.delenv("BRAINIT_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(0)
    return torch.rand(3, 3, 64, 64, generator=g)


@pytest.mark.parametrize("name, expected", [
    ("alexnet", {"features.4": (192, 31, 31), "features.11": (256, 15, 15)}),
    ("inception", {"avgpool": (2048, 1, 1)}),
    ("effnet", {"avgpool": (1280, 1, 1)}),
    ("swav", {"avgpool": (2048, 1, 1)}),
])
def test_torchvision_plumbing_with_random_weights(name, expected, images):
    torch.manual_seed(0)
    ext = build_extractor(name, random_init=True)
    out = ext(resize(images, 256))
    size = NETWORKS[name].input_size
    assert ext.input_shapes == [(3, 3, size, size)]
    assert {k: tuple(v.shape[1:]) for k, v in out.items()} == expected
    if name == "alexnet":  # the hook returns exactly features[:5] of the normalised, resized input
        x = (resize(resize(images, 256), 256) - ext.mean) / ext.std
        torch.testing.assert_close(out["features.4"], ext.model.features[:5](x))
        torch.testing.assert_close(out["features.11"], ext.model.features[:12](x))
    real, fake = extract_features(ext, images, images.flip(0), batch_size=2)
    assert real[ext.layers[0]].shape == (3, int(np.prod(expected[ext.layers[0]])))
    np.testing.assert_allclose(real[ext.layers[0]][0], fake[ext.layers[0]][2], rtol=1e-4, atol=1e-5)


def test_lookup_order_and_unavailable_reason(tmp_path, monkeypatch):
    fname = NETWORKS["alexnet"].weight_files[0]
    with pytest.raises(MissingWeightsError, match=fname):
        find_weights("alexnet")
    hub = tmp_path / "torch_home" / "hub" / "checkpoints"
    env, explicit = tmp_path / "env", tmp_path / "explicit"
    for d in (hub, env, explicit):
        d.mkdir(parents=True)
        (d / fname).write_bytes(b"")
    assert find_weights("alexnet") == hub / fname
    monkeypatch.setenv("BRAINIT_WEIGHTS", str(env))
    assert find_weights("alexnet") == env / fname
    assert find_weights("alexnet", weights=explicit) == explicit / fname
    assert find_weights("alexnet", weights={"alexnet": explicit / fname}) == explicit / fname
    with pytest.raises(MissingWeightsError, match="does not exist"):
        find_weights("alexnet", weights={"alexnet": tmp_path / "nope.pth"})


def test_missing_weights_give_unavailable_columns(images):
    scores = evaluate_reconstructions(images, images, networks=["alexnet", "clip"], device="cpu")
    assert list(scores) == ["PixCorr", "SSIM", "Alex(2)", "Alex(5)", "CLIP"]
    assert scores["Alex(2)"] == scores["CLIP"] == UNAVAILABLE
    cols = describe_columns()
    assert not cols["CLIP"]["available"] and "ViT-L-14.pt" in cols["CLIP"]["reason"]
    assert cols["Eff"]["higher_is_better"] is False and cols["Incep"]["input_size"] == 342
    assert cols["Lite2 dist"]["available"] and "Lite2" in cols["Lite2 dist"]["network"]


def test_weights_file_is_loaded_and_used(tmp_path, images):
    import torchvision

    torch.manual_seed(1)
    model = torchvision.models.efficientnet_b1(weights=None).eval()
    torch.save(model.state_dict(), tmp_path / NETWORKS["effnet"].weight_files[0])
    recon = images.roll(1, dims=-1)
    scores = evaluate_reconstructions(images, recon, networks="effnet", device="cpu", weights=tmp_path)
    ext = build_extractor("effnet", weights=tmp_path)
    torch.testing.assert_close(ext.model.features[0][0].weight, model.features[0][0].weight)
    real, fake = extract_features(ext, images, recon)
    assert scores["Eff"] == pytest.approx(correlation_distance(real["avgpool"], fake["avgpool"]))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / NETWORKS["effnet"].weight_files[0]).write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="weights_only"):
        build_extractor("effnet", weights=tmp_path / "bad")


def test_swav_checkpoint_layout(tmp_path):
    import torchvision

    torch.manual_seed(2)
    trunk = torchvision.models.resnet50(weights=None).state_dict()
    state = {f"module.{k}": v for k, v in trunk.items() if not k.startswith("fc.")}
    state["module.projection_head.0.weight"] = torch.zeros(2048, 2048)  # SwAV's extras are ignored
    state["module.prototypes.weight"] = torch.zeros(3000, 128)
    path = tmp_path / "swav_800ep_pretrain.pth.tar"
    torch.save(state, path)
    ext = build_extractor("swav", weights={"swav": path})
    torch.testing.assert_close(ext.model.layer4[2].conv3.weight, trunk["layer4.2.conv3.weight"])
    del state["module.layer1.0.conv1.weight"]
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="not a SwAV"):
        build_extractor("swav", weights={"swav": path})


def _photos():
    from skimage import data

    return np.stack([data.chelsea()[:300, :300], data.astronaut()[:300, :300], data.coffee()[:300, :300],
                     data.rocket()[:300, :300]])


def test_lite2_real_weights_identify_real_photos():
    photos = _photos()  # uint8 (4, 300, 300, 3)
    ext = build_extractor("lite2")
    x = resize(torch.from_numpy(photos).permute(0, 3, 1, 2).float() / 255, 256)
    logits = ext.model(((resize(x, 260) - ext.mean) / ext.std)[:1])
    assert 281 <= int(logits.argmax()) <= 285  # the cat is a cat: weights and preprocessing are right
    scores = evaluate_reconstructions(photos, photos, networks="lite2", device="cpu")
    assert scores["Lite2-early (2-way)"] == scores["Lite2-late (2-way)"] == 1.0
    assert scores["Lite2 dist"] == pytest.approx(0.0, abs=1e-6)
    shuffled = evaluate_reconstructions(photos, photos[[1, 2, 3, 0]], networks="lite2", device="cpu",
                                        reduce=False)
    assert shuffled["Lite2-late (2-way)"].shape == (4,) and shuffled["Lite2-late (2-way)"].mean() < 0.7
    assert shuffled["Lite2 dist"].min() > 0.2


@pytest.mark.slow
def test_clip_plumbing_with_random_weights(images):
    ext = build_extractor("clip", random_init=True)
    out = ext(resize(images, 256))
    assert ext.input_shapes == [(3, 3, 224, 224)] and out["embedding"].shape == (3, 768)
    assert two_way_identification(out["embedding"], out["embedding"]) == 1.0


@pytest.mark.parametrize("name", ["lite1", "alexnet"])
def test_channels_last_layout_gives_the_default_layouts_features(name, images):
    """Extractors run convolutional networks channels-last (faster on CPU); the flattened features must
    be those of the same network in the default layout, in the same order."""
    def build():
        torch.manual_seed(0)
        return build_extractor(name, random_init=name != "lite1")

    ext, plain = build(), build()
    assert ext.channels_last
    plain.channels_last = False
    plain.model = plain.model.to(memory_format=torch.contiguous_format)
    x = resize(images, 256)
    a, b = ext(x), plain(x)
    for k in a:
        torch.testing.assert_close(a[k].flatten(1), b[k].flatten(1), rtol=1e-4, atol=1e-4)
    assert not build_extractor("clip", random_init=True).channels_last
