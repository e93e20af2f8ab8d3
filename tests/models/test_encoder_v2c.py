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


def test_v2c_full_covariance_fits_saves_and_predicts_after_loading(tmp_path):
    """Probe: a loaded V2C could predict only with diagonal covariances; the official GMM is full."""
    from sklearn.mixture import GaussianMixture

    from brainit_core.models.v2c import precision_cholesky

    rng = np.random.default_rng(1)
    mix = rng.standard_normal((3, 5, 5))  # correlated clusters: full covariance is what fits them
    emb = {s: np.concatenate([rng.standard_normal((40, 5)) @ mix[k] + 4 * k for k in range(3)]) for s in ("a", "b")}
    v = V2C(n_clusters=3, covariance_type="full", seed=0).fit(emb)
    assert v.covariances_.shape == (3, 5, 5)
    np.testing.assert_allclose(precision_cholesky(v.covariances_, "full"), v._gmm.precisions_cholesky_, rtol=1e-6,
                               atol=1e-8)
    v.save(tmp_path / "v2c")
    w = V2C.load(tmp_path / "v2c")
    assert w.covariance_type == "full"
    np.testing.assert_array_equal(w.predict(emb["b"]), v.labels_["b"])
    probe = rng.standard_normal((50, 5)) * 3
    np.testing.assert_array_equal(w.predict(probe), v.predict(probe))
    d = GaussianMixture(3, covariance_type="diag").fit(probe)
    np.testing.assert_allclose(precision_cholesky(d.covariances_, "diag"), d.precisions_cholesky_)
    import pytest

    with pytest.raises(ValueError, match="covariance_type"):
        V2C(n_clusters=3, covariance_type="tied").fit(emb)


def test_v2c_seed_stability_tells_clear_clusters_from_noise():
    from brainit_core.models.v2c import seed_stability

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((4, 6)) * 5
    clear = {"a": centres[rng.integers(0, 4, 120)] + 0.05 * rng.standard_normal((120, 6))}
    noise = {"a": rng.standard_normal((120, 6))}
    assert seed_stability(clear, 4, "diag") == 1.0
    assert seed_stability(clear, 4, "full") == 1.0
    assert seed_stability(noise, 4, "full") < 0.9


def test_encoder_training_samples_modes_and_fixed_schedule(tmp_path):
    import json

    import pytest

    from brainit_core.models.encoder_training import training_samples

    ds = make_tiny_dataset(tmp_path / "d", n_train=10)
    sd = ds.subject("sub01")
    avg_b, avg_ids = training_samples(sd, "averaged")
    one_b, one_ids = training_samples(sd, "single")
    both_b, both_ids = training_samples(sd, "both")
    assert len(avg_ids) == len(np.unique(avg_ids)) == len(sd.train_image_ids)
    assert len(one_ids) == sum(len(g) for g in sd.trials_of(sd.train_image_ids)) > len(avg_ids)
    assert len(both_ids) == len(avg_ids) + len(one_ids)
    row = np.flatnonzero(one_ids == avg_ids[0])
    np.testing.assert_allclose(one_b[row].mean(0), avg_b[0], rtol=1e-5, atol=1e-6)  # the average of its trials
    with pytest.raises(ValueError, match="trials"):
        EncoderConfig(trials="pairs")

    from brainit_core.features import get_feature_space

    space = get_feature_space("lite0", preset="ci", pretrained=False)
    cfg = EncoderConfig.preset("ci")
    cfg.epochs, cfg.patience, cfg.trials = 3, 0, "single"
    # patience 0 stops a best-on-validation run before its first epoch; a fixed schedule runs them all
    train_encoder(ds, space, cfg, tmp_path / "best", subjects=["sub01"])
    assert json.loads((tmp_path / "best" / "encoder.json").read_text())["meta"]["epoch"] == 0
    train_encoder(ds, space, cfg, tmp_path / "last", subjects=["sub01"], keep="last",
                  val_trials={"sub01": np.flatnonzero(np.isin(sd.image_ids, sd.train_image_ids[:4]))})
    meta = json.loads((tmp_path / "last" / "encoder.json").read_text())["meta"]
    assert meta["epoch"] == 3
    assert len(json.loads((tmp_path / "last" / "curves.json").read_text())) == 3
