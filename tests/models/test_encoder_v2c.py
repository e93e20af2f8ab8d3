import numpy as np
import torch

from brainit_core.features import FeatureSet
from brainit_core.models.encoder import (EncoderConfig, ImageToFMRIEncoder, encoder_inputs, load_encoder,
                                         predict_fmri)
from brainit_core.models.encoder_training import train_encoder
from brainit_core.models.v2c import V2C
from tests.factories import make_tiny_dataset


def _planted(n=160, v=40, seed=0):
    rng = np.random.default_rng(seed)
    sem = rng.standard_normal((n, 4, 8)).astype(np.float16)
    low = [rng.standard_normal((n, 6, 4, 4)).astype(np.float16)]
    w = rng.standard_normal((8, v))
    y = sem.astype(np.float32).mean(1) @ w
    return FeatureSet(np.arange(n), sem, low), ((y - y.mean(0)) / y.std(0)).astype(np.float32)


def test_encoder_learns_planted_map():
    fs, y = _planted()
    cfg = EncoderConfig.preset("ci")
    torch.manual_seed(0)
    enc = ImageToFMRIEncoder(cfg, {"s": y.shape[1]}, [(16, 6), (4, 8)])
    opt = torch.optim.Adam(enc.parameters(), lr=3e-3)
    for _ in range(300):
        b = np.random.default_rng(_).choice(120, 32, replace=False)
        loss = torch.nn.functional.mse_loss(enc(encoder_inputs(fs, b, 4), "s"), torch.from_numpy(y[b]))
        opt.zero_grad(); loss.backward(); opt.step()
    pred = predict_fmri(enc, fs.subset(np.arange(120, 160)), "s")
    r = [np.corrcoef(pred[:, i], y[120:, i])[0, 1] for i in range(y.shape[1])]
    assert np.median(r) > 0.6


def test_train_resume_roundtrip_and_transfer_freezing(tmp_path):
    from brainit_core.features import get_feature_space

    ds = make_tiny_dataset(tmp_path / "d", n_train=10)
    space = get_feature_space("lite0", preset="ci", pretrained=False)
    cfg = EncoderConfig.preset("ci")
    cfg.epochs = 2
    enc = train_encoder(ds, space, cfg, tmp_path / "enc", subjects=["sub01"])
    again = load_encoder(tmp_path / "enc" / "encoder")
    tokens = [torch.randn(2, n, c) for n, c in enc.token_specs]
    torch.testing.assert_close(enc(tokens, "sub01"), again(tokens, "sub01"))
    # resume: a longer schedule continues from the saved epoch
    cfg.epochs = 3
    train_encoder(ds, space, cfg, tmp_path / "enc", subjects=["sub01"])
    import json
    hist = json.loads((tmp_path / "enc" / "curves.json").read_text())
    assert [h["epoch"] for h in hist] == [1, 2, 3]
    # transfer: only the new subject's embeddings move
    before = {k: v.clone() for k, v in again.state_dict().items()}
    again.add_subject("sub02", ds.subject("sub02").n_vertices)
    new_before = again.voxel_emb["sub02"].detach().clone()
    out = train_encoder(ds, space, cfg, tmp_path / "enc2", subjects=["sub01", "sub02"],
                        train_only_subjects=["sub02"], trials={"sub02": np.arange(10)}, init=again)
    after = out.state_dict()
    for k, v in before.items():
        torch.testing.assert_close(after[k], v, rtol=0, atol=0)
    assert not torch.equal(after["voxel_emb.sub02"], new_before)


def test_v2c_shared_clusters_nearest_and_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((4, 6)) * 5
    emb, truth = {}, {}
    for s, n in (("a", 80), ("b", 60)):
        truth[s] = rng.integers(0, 4, n)
        emb[s] = centres[truth[s]] + 0.1 * rng.standard_normal((n, 6))
    v = V2C(n_clusters=4, seed=0).fit(emb)
    assert set(v.labels_) == {"a", "b"} and v.labels_["a"].shape == (80,)
    mapping = {t: l for t, l in zip(truth["a"], v.labels_["a"])}
    assert all(mapping[t] == l for t, l in zip(truth["b"], v.labels_["b"]))  # same function -> same cluster
    new = centres[[0, 3]] + 0.05
    lab, subj, idx = v.assign_nearest(new, emb)
    allref = np.concatenate([emb["a"], emb["b"]])
    nrm = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)
    brute = ((nrm(new)[:, None] - nrm(allref)[None]) ** 2).sum(-1).argmin(1)
    got = np.array([i if s == "a" else 80 + i for s, i in zip(subj, idx)])
    np.testing.assert_array_equal(got, brute)
    v.save(tmp_path / "v2c")
    w = V2C.load(tmp_path / "v2c")
    np.testing.assert_array_equal(w.predict(emb["a"]), v.labels_["a"])
    np.testing.assert_array_equal(w.labels_["b"], v.labels_["b"])


def test_encoder_stops_on_a_nonfinite_loss_and_resumes_after(tmp_path, monkeypatch):
    """Probe: the encoder's loop trained on through NaN losses; now it stops with the last good epoch kept."""
    import pytest

    from brainit_core.errors import NonFiniteLossError
    from brainit_core.features import get_feature_space
    from brainit_core.models import encoder_training

    ds = make_tiny_dataset(tmp_path / "d", n_train=10)
    space = get_feature_space("lite0", preset="ci", pretrained=False)
    cfg = EncoderConfig.preset("ci")
    cfg.epochs = 1
    out = tmp_path / "enc"
    train_encoder(ds, space, cfg, out, subjects=["sub01"])
    files = {p.name: p.read_bytes() for p in out.iterdir()}
    real = encoder_training.encoder_loss
    monkeypatch.setattr(encoder_training, "encoder_loss", lambda *a: real(*a) * float("nan"))
    cfg.epochs = 2
    with pytest.raises(NonFiniteLossError, match=r"encoder, epoch 2, subject sub01: the loss is nan; stopped; the last "
                                                 r"good state is kept \(state after epoch 1, encoder\)"):
        train_encoder(ds, space, cfg, out, subjects=["sub01"])
    assert {p.name: p.read_bytes() for p in out.iterdir()} == files
    monkeypatch.setattr(encoder_training, "encoder_loss", real)
    train_encoder(ds, space, cfg, out, subjects=["sub01"])
    import json
    assert [h["epoch"] for h in json.loads((out / "curves.json").read_text())] == [1, 2]
