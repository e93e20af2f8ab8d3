"""Brain-Diffuser-style baseline: ridge regression from one subject's betas to each feature target.

The betas are decomposed once (thin SVD through the smaller Gram matrix); every target and every
candidate alpha then costs only matrix products with that decomposition, and alpha is chosen per
target by exact leave-one-out error (the closed form sklearn's ``RidgeCV`` uses). The fitted map
is stored factorised, ``betas -> (n, k) -> (n, D)``, never as a (V, D) weight matrix per target.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

from brainit_core.progress import track

DEFAULT_ALPHAS = tuple(float(a) for a in np.logspace(-1, 6, 15))
_CHUNK = 8192  # target columns handled at a time


def _as_matrix(x, name: str, n: int | None = None) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"{name}: expected (N, ...) with one row per sample, got shape {x.shape}")
    if n is not None and len(x) != n:
        raise ValueError(f"{name}: {len(x)} rows but the betas have {n}")
    return x.reshape(len(x), -1)


class RidgeFeatureDecoder:
    """Ridge regression from betas (N, V) to several feature targets, one alpha per target.

    Fit one decoder per subject (each subject has its own vertices).

    Parameters
    ----------
    alphas : float or sequence of float, default=15 values from 0.1 to 1e6
        Candidate penalties; with several, each target takes the one with the lowest
        leave-one-out error.
    standardize : bool, default=True
        z-score each vertex with the training mean and standard deviation first.
    max_cv_columns : int, default=2048
        Alpha is selected on at most this many randomly chosen columns of each target.
    device : str, default="cpu"
        Where the linear algebra runs (float64 decomposition, float32 storage).
    seed : int, default=0
        For the choice of selection columns.

    Attributes
    ----------
    components_ : torch.Tensor, shape (k, V)
        Right singular vectors of the standardised training betas (k = rank).
    coef_ : dict of str -> torch.Tensor, shape (k, D)
        Per target: the ridge solution in the singular basis.
    alpha_ : dict of str -> float
    cv_scores_ : dict of str -> list of float
        Leave-one-out mean squared error / target variance, for each candidate alpha.
    target_shapes_ : dict of str -> tuple
    x_mean_, x_scale_, y_mean_, y_std_, n_features_in_
    """

    def __init__(self, alphas=DEFAULT_ALPHAS, standardize: bool = True, max_cv_columns: int = 2048,
                 device: str = "cpu", seed: int = 0):
        self.alphas = alphas
        self.standardize = standardize
        self.max_cv_columns = max_cv_columns
        self.device = device
        self.seed = seed

    # -- fitting -----------------------------------------------------------------------------

    def fit(self, betas, targets: Mapping[str, object]) -> "RidgeFeatureDecoder":
        """Fit every target.

        Parameters
        ----------
        betas : array, shape (N, V)
            One subject's (trial-averaged) betas.
        targets : dict of str -> array, shape (N, ...)
            Feature targets, flattened per sample: e.g. ``{"semantic": (N, 64, 192),
            "block2": (N, 24, 32, 32), ...}``.

        Returns
        -------
        self
        """
        dev = torch.device(self.device)
        x = torch.as_tensor(_as_matrix(betas, "betas"), dtype=torch.float64, device=dev)
        n, v = x.shape
        if n < 3:
            raise ValueError(f"ridge needs at least 3 samples, got {n}")
        if not torch.isfinite(x).all():
            raise ValueError("betas contain NaN or infinite values")
        alphas = torch.as_tensor(np.atleast_1d(np.asarray(self.alphas, dtype=np.float64)), device=dev)
        if (alphas <= 0).any():
            raise ValueError(f"alphas must be positive, got {alphas.tolist()}")
        # 1. standardise and decompose the betas once: X = U diag(s) Vt
        mean = x.mean(0)
        scale = x.std(0, unbiased=False).clamp_min(1e-12) if self.standardize else torch.ones_like(mean)
        xc = (x - mean) / scale  # (N, V)
        self.x_mean_, self.x_scale_ = mean.float(), scale.float()
        if v >= n:
            w, u = torch.linalg.eigh(xc @ xc.T)  # (N,), (N, N)
            keep = w > w.max() * 1e-10
            s, u = w[keep].sqrt(), u[:, keep]
            vt = (u.T @ xc) / s[:, None]  # (k, V)
        else:
            w, vm = torch.linalg.eigh(xc.T @ xc)  # (V,), (V, V)
            keep = w > w.max() * 1e-10
            s, vm = w[keep].sqrt(), vm[:, keep]
            u, vt = (xc @ vm) / s, vm.T  # (N, k), (k, V)
        self.components_ = vt.float()
        self.n_features_in_ = v
        # 2. per target: alpha by leave-one-out, then the solution in the singular basis
        rng = np.random.default_rng(self.seed)
        self._clear_targets()
        for name in track(list(targets), desc="ridge: targets"):
            raw = targets[name]
            self.target_shapes_[name] = tuple(np.shape(raw)[1:])
            y = _as_matrix(raw, f"target '{name}'", n)
            mean, std, uty = [], [], []
            for c in range(0, y.shape[1], _CHUNK):
                yc = torch.as_tensor(np.asarray(y[:, c:c + _CHUNK], dtype=np.float64), device=dev)
                if not torch.isfinite(yc).all():
                    raise ValueError(f"target '{name}' contains NaN or infinite values")
                mean.append(yc.mean(0))
                std.append(yc.std(0, unbiased=False))
                uty.append(u.T @ (yc - mean[-1]))  # (k, chunk)
            self.y_mean_[name] = torch.cat(mean).float()
            self.y_std_[name] = torch.cat(std).float()
            uty = torch.cat(uty, 1)  # (k, D)
            alpha, scores = self._select_alpha(u, s, y, uty, alphas, rng)
            self.alpha_[name], self.cv_scores_[name] = alpha, scores
            self.coef_[name] = ((s / (s**2 + alpha))[:, None] * uty).float()  # (k, D)
        return self

    def _clear_targets(self) -> None:
        self.coef_, self.y_mean_, self.y_std_ = {}, {}, {}
        self.alpha_, self.cv_scores_, self.target_shapes_ = {}, {}, {}

    def _select_alpha(self, u, s, y, uty, alphas, rng) -> tuple[float, list[float]]:
        if len(alphas) == 1:
            return float(alphas[0]), []
        n, d = y.shape
        cols = np.sort(rng.choice(d, min(d, self.max_cv_columns), replace=False))
        ys = torch.as_tensor(np.asarray(y[:, cols], dtype=np.float64), device=u.device)
        ys = ys - ys.mean(0)  # (N, m)
        uty_s = uty[:, torch.as_tensor(cols, device=u.device)]  # (k, m)
        var = (ys**2).mean().clamp_min(1e-30)
        u2 = u**2
        scores = []
        for a in alphas:
            shrink = s**2 / (s**2 + a)  # (k,)
            fitted = u @ (shrink[:, None] * uty_s)  # (N, m)
            hat = 1.0 / n + u2 @ shrink  # (N,) leverage, incl. the unpenalised intercept
            loo = (ys - fitted) / (1.0 - hat).clamp_min(1e-12)[:, None]
            scores.append(float((loo**2).mean() / var))
        return float(alphas[int(np.argmin(scores))]), scores

    # -- prediction --------------------------------------------------------------------------

    def predict(self, betas, match_train_stats: bool = False) -> dict[str, np.ndarray]:
        """Predict every target.

        Parameters
        ----------
        betas : array, shape (n, V)
        match_train_stats : bool, default=False
            Brain-Diffuser's step: standardise each predicted feature over the n given samples,
            then give it the training mean and standard deviation (undoes ridge's shrinkage; needs
            a batch of many test samples, and makes each prediction depend on the batch).

        Returns
        -------
        dict of str -> numpy.ndarray
            Target name -> float32 (n, ...) in the target's original shape.
        """
        if not hasattr(self, "components_"):
            raise RuntimeError("RidgeFeatureDecoder is not fitted; call fit() or load() first")
        dev = self.components_.device
        x = torch.as_tensor(_as_matrix(betas, "betas"), dtype=torch.float32, device=dev)
        if x.shape[1] != self.n_features_in_:
            raise ValueError(f"betas have {x.shape[1]} vertices but this decoder was fitted on "
                             f"{self.n_features_in_} (one decoder per subject)")
        if match_train_stats and len(x) < 2:
            raise ValueError("match_train_stats needs at least 2 samples")
        z = ((x - self.x_mean_) / self.x_scale_) @ self.components_.T  # (n, k)
        out = {}
        for name, coef in self.coef_.items():
            pred = z @ coef  # (n, D), centred
            if match_train_stats:
                pred = (pred - pred.mean(0)) / pred.std(0, unbiased=False).clamp_min(1e-12) * self.y_std_[name]
            pred = pred + self.y_mean_[name]
            out[name] = pred.cpu().numpy().reshape(len(x), *self.target_shapes_[name])
        return out

    # -- persistence -------------------------------------------------------------------------

    def save(self, path) -> None:
        """Write ``path.safetensors`` + ``path.json`` (see :mod:`brainit_core.checkpoint`)."""
        from brainit_core.checkpoint import save_checkpoint

        tensors = {"components": self.components_, "x_mean": self.x_mean_, "x_scale": self.x_scale_}
        for name in self.coef_:
            tensors.update({f"coef/{name}": self.coef_[name], f"y_mean/{name}": self.y_mean_[name],
                            f"y_std/{name}": self.y_std_[name]})
        config = {"alphas": [float(a) for a in np.atleast_1d(self.alphas)], "standardize": self.standardize,
                  "max_cv_columns": self.max_cv_columns, "seed": self.seed}
        meta = {"kind": "RidgeFeatureDecoder", "n_features_in": self.n_features_in_,
                "targets": {n: {"shape": list(self.target_shapes_[n]), "alpha": self.alpha_[n],
                                "cv_scores": self.cv_scores_[n]} for n in self.coef_}}
        save_checkpoint(path, tensors, config, meta)

    @classmethod
    def load(cls, path, device: str = "cpu") -> "RidgeFeatureDecoder":
        """Read a decoder written by :meth:`save`."""
        from brainit_core.checkpoint import load_checkpoint
        from brainit_core.errors import CheckpointError

        tensors, config, meta = load_checkpoint(path, device=device)
        if meta.get("kind") != "RidgeFeatureDecoder":
            raise CheckpointError(f"{path} is not a RidgeFeatureDecoder checkpoint (kind {meta.get('kind')!r})")
        self = cls(device=device, **config)
        self.components_, self.x_mean_, self.x_scale_ = tensors["components"], tensors["x_mean"], tensors["x_scale"]
        self.n_features_in_ = int(meta["n_features_in"])
        self._clear_targets()
        for name, info in meta["targets"].items():
            self.coef_[name] = tensors[f"coef/{name}"]
            self.y_mean_[name], self.y_std_[name] = tensors[f"y_mean/{name}"], tensors[f"y_std/{name}"]
            self.alpha_[name], self.cv_scores_[name] = info["alpha"], info["cv_scores"]
            self.target_shapes_[name] = tuple(info["shape"])
        return self
