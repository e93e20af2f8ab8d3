import numpy as np
import torch

from brainit_core.features import extract_features, get_feature_space
from tests.factories import make_tiny_dataset


def test_lite0_recognises_the_cat():
    import skimage.data

    space = get_feature_space("lite0", preset="demo")
    img = torch.from_numpy(skimage.data.chelsea()).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        logits = space.net(( torch.nn.functional.interpolate(img, size=(224, 224), mode="bilinear", antialias=True)
                             - space._mean) / space._scale)
    assert int(logits.argmax()) in range(281, 286)
    tok = space.semantic_tokens(img)
    assert tok.shape == (1, 64, 192)
    maps = space.lowlevel_maps(img)
    assert [tuple(m.shape[1:]) for m in maps] == [(s.dim, *s.grid) for s in space.lowlevel_specs]
    assert [s.grid for s in space.lowlevel_specs] == [(32, 32), (16, 16), (8, 8), (4, 4)]


def test_lowlevel_is_differentiable():
    space = get_feature_space("lite0", preset="ci", pretrained=False)
    x = torch.rand(2, 3, 64, 64, requires_grad=True)
    sum(m.square().mean() for m in space.lowlevel_maps(x)).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_cache_matches_direct_and_resumes(tmp_path):
    ds = make_tiny_dataset(tmp_path / "d")
    space = get_feature_space("lite0", preset="ci")
    ids = ds.image_ids[[3, 1, 1, 5]]
    fs = extract_features(ds, ids[:2], space, batch_size=2)
    fs2 = extract_features(ds, ids, space, batch_size=2)  # appends only the new id
    direct = extract_features(ds, ids, space, cache=False)
    np.testing.assert_allclose(fs2.semantic.astype(np.float32), direct.semantic.astype(np.float32), atol=1e-2)
    np.testing.assert_array_equal(fs2.semantic[1], fs2.semantic[2])
    np.testing.assert_array_equal(fs.semantic[0], fs2.semantic[0])
    for a, b in zip(fs2.lowlevel, direct.lowlevel):
        np.testing.assert_allclose(a.astype(np.float32), b.astype(np.float32), atol=1e-2)


def test_cache_waits_for_another_process_holding_the_lock(tmp_path):
    """Two jobs on one dataset share the cache: the second waits for the writer instead of failing."""
    import subprocess
    import sys
    import time

    from brainit_core.features.cache import feature_cache_path

    ds = make_tiny_dataset(tmp_path / "d")
    space = get_feature_space("lite0", preset="ci")
    ids = ds.image_ids[:3]
    extract_features(ds, ids, space, batch_size=2)
    path = feature_cache_path(ds, space)
    holder = subprocess.Popen([sys.executable, "-c",
                               f"import h5py, time\nf = h5py.File({str(path)!r}, 'a')\nprint('locked', flush=True)\n"
                               "time.sleep(4)\nf.close()"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        t0 = time.monotonic()
        fs = extract_features(ds, ids, space, batch_size=2)
        assert time.monotonic() - t0 > 1.0  # it really waited for the lock
    finally:
        holder.wait(timeout=30)
    assert fs.semantic.shape[0] == 3


def test_nonfinite_features_are_refused(tmp_path, monkeypatch):
    """Probe: a NaN written into the feature cache (or computed by the network) was read and trained on;
    the cache now refuses it by name, and non-finite computed features are never cached."""
    import h5py
    import pytest

    from brainit_core.errors import BrainITError, DataFormatError
    from brainit_core.features.cache import feature_cache_path

    ds = make_tiny_dataset(tmp_path / "d")
    space = get_feature_space("lite0", preset="ci")
    ids = ds.image_ids[[1, 3]]
    extract_features(ds, ids, space, batch_size=2)
    path = feature_cache_path(ds, space)
    with h5py.File(path, "a") as f:
        f["lowlevel/0"][1, 0, 0, :2] = np.nan
    with pytest.raises(DataFormatError, match=rf"feature cache .*{path.name}: NaN or inf feature values: 2 in lowlevel/0 "
                                              rf"\(images {ids[1]}\).*delete the file"):
        extract_features(ds, ids, space, batch_size=2)
    path.unlink()
    real = type(space).semantic_tokens
    monkeypatch.setattr(type(space), "semantic_tokens", lambda self, x: real(self, x) * float("inf"))
    with pytest.raises(BrainITError, match="feature space 'lite0'.*NaN or inf feature values: .* in semantic"):
        extract_features(ds, ids, space, batch_size=2)
    with h5py.File(path, "r") as f:
        assert f["ids"].shape == (0,)  # nothing cached


def test_a_bundled_dataset_caches_outside_the_repository(tmp_path, monkeypatch):
    """The shipped bundle's dataset lies in assets/ (its MANIFEST lists every file): its feature cache goes
    to the data directory, any other dataset's beside it."""
    from brainit_core.features.cache import feature_cache_path
    from brainit_core.utils import assets_dir

    monkeypatch.setenv("BRAINIT_DATA", str(tmp_path / "data"))
    space = get_feature_space("lite0", preset="ci", pretrained=False)
    own = make_tiny_dataset(tmp_path / "d")
    assert feature_cache_path(own, space).parent == (tmp_path / "d" / "features")
    bundled = make_tiny_dataset(tmp_path / "d2")
    monkeypatch.setattr(bundled, "path", assets_dir() / "demo" / "dataset", raising=False)
    path = feature_cache_path(bundled, space)
    assert path.parent == tmp_path / "data" / "bundle-features" / "dataset" / "features"
