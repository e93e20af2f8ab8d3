"""V2C: the voxel-to-cluster map (Brain-IT, arXiv 2510.25976; docs/models.md "Architecture").

A Gaussian mixture over the L2-normalised encoder voxel embeddings of all subjects together, with
hard labels: cluster k of one subject and cluster k of another are functionally alike, which is
what lets BIT share its brain tokens across subjects.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from brainit_core.errors import CheckpointError
from brainit_core.fileio import save_npz, write_json


COVARIANCE_TYPES = ("diag", "full")


def precision_cholesky(covariances: np.ndarray, covariance_type: str) -> np.ndarray:
    """Cholesky factors of the precisions, as ``GaussianMixture.precisions_cholesky_`` holds them.

    ``diag``: (K, E) -> 1 / sqrt(cov); ``full``: (K, E, E) -> for each component the upper factor
    ``inv(L).T`` of ``cov = L L^T``.
    """
    if covariance_type == "diag":
        return 1.0 / np.sqrt(covariances)
    if covariance_type != "full":
        raise ValueError(f"V2C covariance_type must be one of {COVARIANCE_TYPES}, got {covariance_type!r}")
    from scipy.linalg import solve_triangular

    eye = np.eye(covariances.shape[-1])
    return np.stack([solve_triangular(np.linalg.cholesky(c), eye, lower=True).T for c in covariances])


def seed_stability(embeddings: dict[str, np.ndarray], n_clusters: int, covariance_type: str,
                   seeds=(0, 1, 2)) -> float:
    """Mean adjusted Rand index between the V2C labels of fits with different seeds (1 = identical clusters).

    Parameters
    ----------
    embeddings : dict of str -> ndarray (V_s, E)
        Encoder voxel embeddings of every subject.
    n_clusters : int
    covariance_type : {"diag", "full"}
    seeds : sequence of int
    """
    from itertools import combinations

    from sklearn.metrics import adjusted_rand_score

    fits = [np.concatenate(list(V2C(n_clusters, covariance_type, seed=s).fit(embeddings).labels_.values()))
            for s in seeds]
    return float(np.mean([adjusted_rand_score(a, b) for a, b in combinations(fits, 2)]))


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class V2C:
    """Voxel-to-cluster map (scikit-learn style).

    Parameters
    ----------
    n_clusters : int, default=128
        Number of clusters C (= brain tokens).
    covariance_type : {"full", "diag"}, default="full"
        Passed to ``sklearn.mixture.GaussianMixture`` (official: full; the run's choice is
        ``BITConfig.v2c_covariance``, docs/models.md "Recipe choices").
    seed : int, default=0
    max_iter : int, default=100

    Attributes
    ----------
    labels_ : dict of str -> ndarray (V,) int64
        Cluster of every voxel of every subject seen by :meth:`fit` (and added by transfer).
    means_, covariances_, weights_ : ndarray
        The fitted mixture.
    """

    def __init__(self, n_clusters: int = 128, covariance_type: str = "full", seed: int = 0, max_iter: int = 100):
        self.n_clusters = n_clusters
        self.covariance_type = covariance_type
        self.seed = seed
        self.max_iter = max_iter

    def fit(self, embeddings: dict[str, np.ndarray]) -> "V2C":
        """Fit the mixture on all subjects' embeddings stacked; sets ``labels_``."""
        from sklearn.mixture import GaussianMixture

        if not embeddings:
            raise ValueError("V2C.fit needs at least one subject's embeddings")
        if self.covariance_type not in COVARIANCE_TYPES:
            raise ValueError(f"V2C covariance_type must be one of {COVARIANCE_TYPES}, got {self.covariance_type!r}")
        x = np.concatenate([_normalise(v) for v in embeddings.values()])
        if len(x) < self.n_clusters:
            raise ValueError(f"{len(x)} voxels cannot form {self.n_clusters} clusters")
        gmm = GaussianMixture(self.n_clusters, covariance_type=self.covariance_type, random_state=self.seed,
                              max_iter=self.max_iter, reg_covar=1e-5)
        gmm.fit(x)
        self.means_, self.covariances_, self.weights_ = gmm.means_, gmm.covariances_, gmm.weights_
        self._gmm = gmm
        self.labels_ = {s: self.predict(v) for s, v in embeddings.items()}
        return self

    def _mixture(self):
        if getattr(self, "_gmm", None) is None:
            from sklearn.mixture import GaussianMixture

            g = GaussianMixture(self.n_clusters, covariance_type=self.covariance_type)
            g.means_, g.covariances_, g.weights_ = self.means_, self.covariances_, self.weights_
            g.precisions_cholesky_ = precision_cholesky(self.covariances_, self.covariance_type)
            self._gmm = g
        return self._gmm

    def predict(self, embeddings: np.ndarray) -> np.ndarray:
        """Cluster of each row of (V, E) embeddings (normalised inside). Returns (V,) int64."""
        return self._mixture().predict(_normalise(embeddings)).astype(np.int64)

    def cluster_sizes(self) -> dict[str, np.ndarray]:
        return {s: np.bincount(v, minlength=self.n_clusters) for s, v in self.labels_.items()}

    def assign_nearest(self, new: np.ndarray, reference: dict[str, np.ndarray], chunk: int = 2048):
        """Map new voxels to the cluster of their nearest reference voxel (transfer; docs/models.md "Transfer to a new subject").

        Parameters
        ----------
        new : ndarray (V_new, E)
            The new subject's encoder embeddings.
        reference : dict of str -> ndarray (V_s, E)
            Reference subjects' encoder embeddings (their labels must be in ``labels_``).

        Returns
        -------
        labels : ndarray (V_new,) int64
        ref_subject : ndarray (V_new,) of str
        ref_index : ndarray (V_new,) int64
            Which reference voxel was nearest (L2 between normalised embeddings).
        """
        names = list(reference)
        ref = np.concatenate([_normalise(reference[s]) for s in names])
        subj = np.concatenate([np.full(len(reference[s]), s, dtype=object) for s in names])
        idx = np.concatenate([np.arange(len(reference[s])) for s in names])
        lab = np.concatenate([self.labels_[s] for s in names])
        q = _normalise(new)
        nearest = np.empty(len(q), dtype=np.int64)
        ref_sq = (ref ** 2).sum(1)
        for i in range(0, len(q), chunk):
            d = ref_sq[None, :] - 2 * q[i:i + chunk] @ ref.T  # |q|^2 is constant per row
            nearest[i:i + chunk] = d.argmin(1)
        return lab[nearest], subj[nearest].astype(str), idx[nearest]

    # -- persistence (npz without pickle + JSON) --------------------------------------------
    def save(self, path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        names = list(self.labels_)
        save_npz(path.with_suffix(".npz"), means=self.means_, covariances=self.covariances_, weights=self.weights_,
                 **{f"labels_{i}": self.labels_[s] for i, s in enumerate(names)})
        write_json(path.with_suffix(".json"), {
            "n_clusters": self.n_clusters, "covariance_type": self.covariance_type, "seed": self.seed,
            "max_iter": self.max_iter, "subjects": names}, indent=1, sort_keys=False)

    @classmethod
    def load(cls, path) -> "V2C":
        path = Path(path)
        npz, record = path.with_suffix(".npz"), path.with_suffix(".json")
        try:
            meta = json.loads(record.read_text())
            v = cls(meta["n_clusters"], meta["covariance_type"], meta["seed"], meta["max_iter"])
            subjects = list(meta["subjects"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{record}: cannot read the V2C record ({type(exc).__name__}: {exc})") from exc
        try:  # np.load of a zip is lazy: a truncated member fails only when read, so read everything here
            with np.load(npz, allow_pickle=False) as z:
                arrays = {k: z[k] for k in ("means", "covariances", "weights",
                                            *(f"labels_{i}" for i in range(len(subjects))))}
        except Exception as exc:  # zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, zlib.error
            raise CheckpointError(f"{npz}: cannot read the V2C map ({type(exc).__name__}: {exc}); the file may be "
                                  "truncated or corrupt: retrain or re-copy the run") from exc
        v.means_, v.covariances_, v.weights_ = arrays["means"], arrays["covariances"], arrays["weights"]
        v._gmm = None
        v.labels_ = {s: arrays[f"labels_{i}"].astype(np.int64) for i, s in enumerate(subjects)}
        return v
