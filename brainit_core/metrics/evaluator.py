"""The evaluation table: one :class:`Evaluator` behind ``evaluate_reconstructions``, the
``evaluate`` command and the benchmark.

An :class:`Evaluator` builds each network once and, given a key, computes the ground truth's
features once, so several reconstruction sets of the same images (the benchmark's methods) are
scored against them without re-extracting. :func:`evaluate_reconstructions` is the one-shot
form: it builds each network, scores, and drops it before the next (peak memory of one network).
"""
from __future__ import annotations

import numpy as np
import torch

from brainit_core.errors import MissingWeightsError
from brainit_core.metrics.identification import correlation_distance, two_way_identification
from brainit_core.metrics.networks import (
    COLUMNS, NETWORKS, UNAVAILABLE, Column, FeatureExtractor, build_extractor, find_weights, image_features,
)
from brainit_core.metrics.pixel import pixcorr, ssim


def select_networks(networks) -> list[str]:
    """Network names for ``networks``: "auto" (all), "protocol", "offline", one name or a list of names."""
    if networks == "auto":
        return list(NETWORKS)
    if networks == "protocol":
        return [n for n, s in NETWORKS.items() if s.protocol]
    if networks == "offline":
        return [n for n, s in NETWORKS.items() if not s.protocol]
    if isinstance(networks, str):
        networks = [networks]
    unknown = [n for n in networks if n not in NETWORKS]
    if unknown:
        raise ValueError(f"unknown evaluation networks {unknown}; use 'auto', 'protocol', 'offline' or names from "
                         f"{list(NETWORKS)}")
    return list(networks)


def score_columns(columns, real: dict, fake: dict, reduce: bool = True) -> dict:
    """Score network columns from the features of the ground truth (``real``) and the
    reconstructions (``fake``): two-way identification or correlation distance per column."""
    out = {}
    for c in columns:
        score = two_way_identification if c.metric == "two-way" else correlation_distance
        out[c.name] = score(real[c.layer], fake[c.layer], reduce=reduce)
    return out


def describe_columns(weights=None) -> dict[str, dict]:
    """Which network backs each column, how it is scored, and whether it can be computed here.

    Parameters
    ----------
    weights : str, Path or mapping, optional
        As in :func:`~brainit_core.metrics.networks.find_weights`.

    Returns
    -------
    dict
        Column name -> ``{"network", "layer", "input_size", "metric", "higher_is_better",
        "protocol", "available", "weights", "reason"}`` (``weights``: the file found;
        ``reason``: why the column is unavailable, naming the expected file).
    """
    out = {}
    for col in COLUMNS:
        if col.network is None:
            info = {"network": "none (pixels)", "input_size": 425, "protocol": True, "available": True,
                    "weights": None, "reason": None}
        else:
            spec = NETWORKS[col.network]
            try:
                path, reason = str(find_weights(col.network, weights)), None
            except MissingWeightsError as exc:
                path, reason = None, str(exc)
            info = {"network": spec.title, "input_size": spec.input_size, "protocol": spec.protocol,
                    "available": path is not None, "weights": path, "reason": reason}
        out[col.name] = {"layer": col.layer, "metric": col.metric, "higher_is_better": col.higher_is_better, **info}
    return out


class Evaluator:
    """The evaluation table for reconstruction sets, with each network built once.

    Parameters
    ----------
    networks : str or list of str, default="auto"
        As in :func:`evaluate_reconstructions`. PixCorr and SSIM are always computed.
    weights : str, Path or mapping, optional
        Where to look first for protocol weights.
    device : str or torch.device, default="auto"
        Where the networks run (see :func:`brainit_core.utils.resolve_device`).
    batch_size : int, default=32
    keep_networks : bool, default=True
        Keep each network after its first use (scoring several sets); ``False`` drops it once its
        columns are scored (one set, the peak memory of one network).

    Examples
    --------
    >>> ev = Evaluator("offline", device="cpu")                       # doctest: +SKIP
    >>> a = ev.score(truth, recon_a, truth_key="sub01")               # doctest: +SKIP
    >>> b = ev.score(truth, recon_b, truth_key="sub01")  # reuses the truth's features  # doctest: +SKIP
    """

    def __init__(self, networks="auto", weights=None, device="auto", batch_size: int = 32,
                 keep_networks: bool = True):
        from brainit_core.utils import resolve_device

        self.networks = select_networks(networks)
        self.weights, self.batch_size, self.keep_networks = weights, batch_size, keep_networks
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        self._extractors: dict[str, FeatureExtractor | None] = {}
        self._truth: dict[tuple, dict[str, np.ndarray]] = {}

    def columns(self) -> list[Column]:
        """The columns this evaluator scores, in :data:`~brainit_core.metrics.networks.COLUMNS` order."""
        return [c for c in COLUMNS if c.network is None or c.network in self.networks]

    def extractor(self, name: str) -> FeatureExtractor | None:
        """Network ``name``, built on first use; None when its weights are not on this machine."""
        if name not in self._extractors:
            try:
                self._extractors[name] = build_extractor(name, self.weights, self.device)
            except MissingWeightsError:
                self._extractors[name] = None
        return self._extractors[name]

    def truth_features(self, name: str, truth, truth_key=None) -> dict[str, np.ndarray]:
        """Features of the ground truth under network ``name``; computed once per ``truth_key``
        (every call when ``truth_key`` is None)."""
        if truth_key is not None and (truth_key, name) in self._truth:
            return self._truth[(truth_key, name)]
        feats = image_features(self.extractor(name), truth, self.batch_size, self.device, "ground truth")
        if truth_key is not None:
            self._truth[(truth_key, name)] = feats
        return feats

    def truth_keys(self) -> list[tuple]:
        """The (truth_key, network) pairs whose ground-truth features are held."""
        return list(self._truth)

    def _release(self, name: str) -> None:
        self._extractors.pop(name, None)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def score(self, truth, recon, truth_key=None, reduce: bool = True, features: dict | None = None) -> dict:
        """The table for one reconstruction set.

        Parameters
        ----------
        truth, recon : array or tensor
            Ground truth and reconstructions, float (N, 3, H, W) in [0, 1] or uint8
            (N, H, W, 3), row i of both showing image i (N >= 2 when a network is chosen).
        truth_key : hashable, optional
            Names ``truth``: its features are computed once per key and network. Give the same
            key only for the same images.
        reduce : bool, default=True
            Means (floats) or per-image values ((N,) arrays).
        features : dict, optional
            Filled with the reconstructions' features, ``{network: {layer: (N, D)}}``, for a caller
            that reads more from them (the benchmark's category accuracy) without extracting again.

        Returns
        -------
        dict
            Column name -> score or ``"unavailable"``, in :meth:`columns` order.

        Raises
        ------
        ValueError
            On invalid images, different counts, or fewer than 2 images with a network chosen.
        """
        scores = {"PixCorr": pixcorr(truth, recon, reduce=reduce), "SSIM": ssim(truth, recon, reduce=reduce)}
        if len(truth) < 2 and self.networks:
            raise ValueError("network columns need at least 2 images (two-way identification)")
        for name in self.networks:
            cols = [c for c in COLUMNS if c.network == name]
            ext = self.extractor(name)
            if ext is None:
                scores.update({c.name: UNAVAILABLE for c in cols})
                continue
            real = self.truth_features(name, truth, truth_key)
            fake = image_features(ext, recon, self.batch_size, self.device, "reconstructions")
            if features is not None:
                features[name] = fake
            if not self.keep_networks:
                self._release(name)
            table = score_columns(cols, real, fake, reduce=reduce)
            scores.update({k: float(v) for k, v in table.items()} if reduce else table)
        return {c.name: scores[c.name] for c in self.columns()}


def evaluate_reconstructions(gt, recon, networks="auto", device="auto", weights=None, batch_size: int = 32,
                             reduce: bool = True) -> dict:
    """The evaluation table for one reconstruction set.

    Parameters
    ----------
    gt, recon : array or tensor
        Ground truth and reconstructions, float (N, 3, H, W) in [0, 1] or uint8 (N, H, W, 3),
        row i of both showing image i (N >= 2).
    networks : str or list of str, default="auto"
        ``"auto"``: every column (protocol columns whose weights are missing say
        ``"unavailable"``); ``"protocol"``: the 8 literature columns; ``"offline"``: PixCorr, SSIM
        and the bundled Lite1/Lite2 substitutes; or network names (``["alexnet", "lite2"]``).
        PixCorr and SSIM are always computed.
    device : str, default="auto"
        Where the networks run (see :func:`brainit_core.utils.resolve_device`).
    weights : str, Path or mapping, optional
        Where to look first for protocol weights (see
        :func:`~brainit_core.metrics.networks.find_weights`).
    batch_size : int, default=32
    reduce : bool, default=True
        Means (the table) or per-image values ((N,) arrays, for the app).

    Returns
    -------
    dict
        Column name -> float (or (N,) array when ``reduce=False``) or ``"unavailable"``, in
        :data:`~brainit_core.metrics.networks.COLUMNS` order. :func:`describe_columns` says which
        network backs each column and why one is unavailable. Distances are lower-is-better,
        everything else higher-is-better.
    """
    ev = Evaluator(networks, weights, device, batch_size, keep_networks=False)
    return ev.score(gt, recon, reduce=reduce)
