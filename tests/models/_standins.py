"""Minimal stand-ins for ``brainit_core.models.encoder`` / ``v2c`` (interfaces.md API).

Used by the BIT tests only while the real modules are missing, so that the training pipeline can
be exercised end to end. The encoder is a ridge regression from pooled semantic tokens to betas
whose weights are factorised into voxel embeddings; V2C is a diagonal GMM.
"""
from __future__ import annotations

import json
import sys
import types
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn


@dataclass
class EncoderConfig:
    embed_dim: int = 8
    alpha: float = 10.0

    @classmethod
    def preset(cls, name):
        return cls()


class ImageToFMRIEncoder(nn.Module):
    def __init__(self, config, subjects, token_specs=None):
        super().__init__()
        self.config = config
        self.emb = nn.ParameterDict({s: nn.Parameter(torch.zeros(v, config.embed_dim)) for s, v in subjects.items()})
        self.proj = None

    def add_subject(self, name, n_vertices, init=None):
        self.emb[name] = nn.Parameter(torch.zeros(n_vertices, self.config.embed_dim) if init is None else init)

    def voxel_embeddings(self, subject):
        return self.emb[subject]

    def predict(self, pooled, subject):
        return pooled @ self.proj @ self.emb[subject].detach().numpy().T


def _pooled(features):
    return features.semantic.astype(np.float32).mean(1)


def train_encoder(dataset, space, config, out_dir, subjects=None, device=None, train_only_subjects=None,
                  trials=None, init=None):
    from brainit_core.features import extract_features

    subjects = list(subjects or dataset.training_subjects)
    enc = init or ImageToFMRIEncoder(config, {s: dataset.subject(s).n_vertices for s in subjects})
    fit = train_only_subjects or subjects
    for s in fit:
        if s not in enc.emb:
            enc.add_subject(s, dataset.subject(s).n_vertices)
        sd = dataset.subject(s)
        rows = np.sort(trials[s]) if trials and s in trials else np.flatnonzero(np.isin(sd.image_ids, sd.train_image_ids))
        X = _pooled(extract_features(dataset, sd.image_ids[rows], space, read_lowlevel=False))
        Y = sd.betas_for_trials(rows)
        if enc.proj is None:
            rng = np.random.default_rng(0)
            enc.proj = rng.standard_normal((X.shape[1], config.embed_dim)).astype(np.float32) / np.sqrt(X.shape[1])
        Z = X @ enc.proj
        W = np.linalg.solve(Z.T @ Z + config.alpha * np.eye(Z.shape[1]), Z.T @ Y)  # (E, V)
        enc.emb[s] = nn.Parameter(torch.from_numpy(W.T.astype(np.float32).copy()))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "encoder.npz", proj=enc.proj, **{f"emb_{k}": v.detach().numpy() for k, v in enc.emb.items()})
    (out / "encoder.json").write_text(json.dumps(asdict(config)))
    return enc


def load_encoder(path, device=None):
    path = Path(path)
    z = np.load(path.with_suffix(".npz"))
    cfg = EncoderConfig(**json.loads(path.with_suffix(".json").read_text()))
    embs = {k[4:]: z[k] for k in z.files if k.startswith("emb_")}
    enc = ImageToFMRIEncoder(cfg, {k: len(v) for k, v in embs.items()})
    for k, v in embs.items():
        enc.emb[k] = nn.Parameter(torch.from_numpy(v))
    enc.proj = z["proj"]
    return enc


def predict_fmri(encoder, features, subject, batch_size=64):
    return encoder.predict(_pooled(features), subject).astype(np.float32)


def evaluate_encoder(encoder, dataset, space, subjects=None):
    return {s: {"median_r": 0.0} for s in subjects or []}


class V2C:
    def __init__(self, n_clusters=128, covariance_type="diag", seed=0, max_iter=100):
        self.n_clusters, self.covariance_type, self.seed, self.max_iter = n_clusters, covariance_type, seed, max_iter

    @staticmethod
    def _norm(x):
        return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)

    def fit(self, embeddings):
        from sklearn.mixture import GaussianMixture

        X = np.concatenate([self._norm(v) for v in embeddings.values()])
        self.gmm_ = GaussianMixture(self.n_clusters, covariance_type="diag", random_state=self.seed, max_iter=20).fit(X)
        self.labels_ = {s: self.gmm_.predict(self._norm(v)).astype(np.int64) for s, v in embeddings.items()}
        self.means_ = self.gmm_.means_
        return self

    def predict(self, embeddings):
        return self.gmm_.predict(self._norm(embeddings))

    def assign_nearest(self, new, reference):
        names = list(reference)
        ref = np.concatenate([self._norm(reference[s]) for s in names])
        subj = np.concatenate([[s] * len(reference[s]) for s in names])
        idx = np.concatenate([np.arange(len(reference[s])) for s in names])
        d = ((self._norm(new)[:, None, :] - ref[None]) ** 2).sum(-1)
        nn_ = d.argmin(1)
        lab = np.concatenate([self.labels_[s] for s in names])
        return lab[nn_], subj[nn_], idx[nn_]

    def save(self, path):
        path = Path(path)
        np.savez(path.with_suffix(".npz"), means=self.means_, n=self.n_clusters,
                 **{f"labels_{k}": v for k, v in self.labels_.items()})

    @classmethod
    def load(cls, path):
        z = np.load(Path(path).with_suffix(".npz"))
        v = cls(int(z["n"]))
        v.means_ = z["means"]
        v.labels_ = {k[7:]: z[k] for k in z.files if k.startswith("labels_")}
        return v


def install_if_missing(monkeypatch) -> bool:
    """Register the stand-ins under the real module names when those are absent. Returns True if used."""
    used = False
    for name, attrs in (("brainit_core.models.encoder", ["EncoderConfig", "ImageToFMRIEncoder", "train_encoder",
                                                         "load_encoder", "predict_fmri", "evaluate_encoder"]),
                        ("brainit_core.models.v2c", ["V2C"])):
        try:
            __import__(name)
        except ImportError:
            mod = types.ModuleType(name)
            for a in attrs:
                setattr(mod, a, globals()[a])
            monkeypatch.setitem(sys.modules, name, mod)
            used = True
    return used
