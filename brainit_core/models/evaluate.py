"""Feature-level evaluation of a run: how well BIT predicts the features of test images.

Per head and subject, on the test images (repeat-averaged betas):

- token r: Pearson correlation over channels between predicted and true tokens (both
  standardised per channel with the training statistics), mean over tokens and images;
- 2-way identification: the evaluation protocol's two-way test on flattened standardised
  features (prediction i against all N-1 other true images, strict less-than);

for Brain-IT and for a ridge regression from the same betas to the same features
(``brainit_core.baselines.RidgeFeatureDecoder``: one alpha per block by leave-one-out), plus the
encoder's held-out accuracy.
"""
from __future__ import annotations

import logging
import time
from typing import Sequence

import numpy as np
import torch

from brainit_core.features.base import maps_to_tokens

log = logging.getLogger(__name__)

def token_correlation(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean Pearson r over channels per token. pred, true: (n, N, C)."""
    p = pred - pred.mean(-1, keepdims=True)
    t = true - true.mean(-1, keepdims=True)
    r = (p * t).sum(-1) / (np.linalg.norm(p, axis=-1) * np.linalg.norm(t, axis=-1) + 1e-8)
    return float(r.mean())


def two_way_identification(pred: np.ndarray, true: np.ndarray) -> float:
    """Two-way identification accuracy of predicted features among the true ones (chance 0.5), as
    :func:`brainit_core.metrics.two_way_identification` scores reconstructions. pred, true: (n, ...)
    flattened per image; NaN for fewer than 2 images."""
    from brainit_core.metrics.identification import two_way_identification as identify

    if len(pred) < 2:
        return float("nan")
    return float(identify(true, pred))


def _standardize(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return (x - mean) / std


def _feature_blocks(features, model) -> dict:
    """Standardised tokens per block: "semantic" and "low<l>", each (n, N, C) float32."""
    out = {}
    m, s = (t.cpu().numpy() for t in model.target_stats("semantic"))
    out["semantic"] = _standardize(features.semantic.astype(np.float32), m, s)
    for l, arr in enumerate(features.lowlevel):
        m, s = (t.cpu().numpy() for t in model.target_stats(f"low{l}"))
        out[f"low{l}"] = _standardize(maps_to_tokens(torch.from_numpy(arr.astype(np.float32))).numpy(), m, s)
    return out


def _prediction_blocks(pred, model) -> dict:
    out = {}
    m, s = (t.cpu().numpy() for t in model.target_stats("semantic"))
    out["semantic"] = _standardize(pred.semantic.float().cpu().numpy(), m, s)
    for l, maps in enumerate(pred.lowlevel):
        m, s = (t.cpu().numpy() for t in model.target_stats(f"low{l}"))
        out[f"low{l}"] = _standardize(maps_to_tokens(maps.float().cpu()).numpy(), m, s)
    return out


def _scores(pred: dict, true: dict) -> dict:
    res = {}
    for k in pred:
        res[k] = {"token_r": token_correlation(pred[k], true[k]), "two_way": two_way_identification(pred[k], true[k])}
    low = [k for k in res if k.startswith("low")]
    res["lowlevel"] = {m: float(np.mean([res[k][m] for k in low])) for m in ("token_r", "two_way")}
    return res


def evaluate_subject(run, dataset, subject: str, train_trials: np.ndarray | None = None, ridge: bool = True,
                     same_data_trials: np.ndarray | None = None) -> dict:
    """Brain-IT and ridge scores of one subject's test images.

    Parameters
    ----------
    run : BrainITRun
    dataset : Dataset
    subject : str
    train_trials : ndarray, optional
        Trials the ridge may use (default: all the subject's training trials).
    ridge : bool
    same_data_trials : ndarray, optional
        Also score a ridge trained on only these trials (``ridge_same_data``; transfer runs).
    """
    from brainit_core.features import extract_features

    sd = dataset.subject(subject)
    test_b, test_ids = sd.averaged("test")
    feats = extract_features(dataset, test_ids, run.space, device=run.device)
    true = _feature_blocks(feats, run.model)
    t0 = time.time()
    pred = _prediction_blocks(run.predict(test_b, subject), run.model)
    out = {"n_test": int(len(test_ids)), "brainit": _scores(pred, true), "predict_seconds": time.time() - t0}
    if ridge:
        out.update(_ridge_scores(run, dataset, sd, test_b, true, train_trials, "ridge"))
        if same_data_trials is not None:
            out.update(_ridge_scores(run, dataset, sd, test_b, true, same_data_trials, "ridge_same_data"))
    return out


def _ridge_scores(run, dataset, sd, test_b, true: dict, train_trials, key: str) -> dict:
    """Scores of ``baselines.RidgeFeatureDecoder`` (alpha per block by leave-one-out) on the same blocks."""
    from brainit_core.baselines.ridge import RidgeFeatureDecoder
    from brainit_core.features import extract_features
    from brainit_core.models.bit_data import subject_training_betas

    tr_b, tr_ids = subject_training_betas(sd, run.model.config.betas, trials=train_trials)
    tr_f = _feature_blocks(extract_features(dataset, tr_ids, run.space, device=run.device), run.model)
    t0 = time.time()
    ridge = RidgeFeatureDecoder().fit(tr_b, tr_f)
    pred = ridge.predict(test_b)
    return {key: _scores(pred, true), f"{key}_alpha": dict(ridge.alpha_), f"{key}_seconds": time.time() - t0,
            f"{key}_n_train": int(len(tr_b))}


def evaluate_run(run_path, data, subjects: Sequence[str] | None = None, ridge: bool = True,
                 encoder: bool = True, device=None) -> dict:
    """Evaluate a run on a dataset's test images (see the module docstring).

    Returns
    -------
    dict
        ``subjects`` (per-subject scores), ``mean`` (over subjects), ``encoder`` (held-out
        accuracy per subject, if available), ``training_seconds`` (per stage, from run.json).
    """
    from brainit_core.data import load_dataset
    from brainit_core.models.run import BrainITRun

    run = BrainITRun.load(run_path, device=device)
    dataset = data if hasattr(data, "subject") else load_dataset(data)
    transfer = run.config.get("transfer")
    if subjects is None:
        subjects = [transfer["subject"]] if transfer else [s for s in run.subjects if s in dataset.subjects]
    res = {"run": str(run.path), "checkpoint_sha256": run.checkpoint_sha256, "subjects": {}}
    for s in subjects:
        log.info("evaluating %s", s)
        same = None
        if transfer and s == transfer["subject"] and transfer["minutes"] != "all":
            from brainit_core.models.transfer import transfer_trials

            same = transfer_trials(dataset.subject(s), transfer["minutes"])
        res["subjects"][s] = evaluate_subject(run, dataset, s, ridge=ridge, same_data_trials=same)
    res["mean"] = _mean_scores([res["subjects"][s] for s in subjects])
    res["training_seconds"] = {k: v.get("seconds") for k, v in run.config.get("stages", {}).items()}
    if transfer:
        res["transfer"] = transfer
    if encoder:
        try:
            from brainit_core.models.encoder import evaluate_encoder

            res["encoder"] = evaluate_encoder(run.encoder, dataset, run.encoder_backbone, subjects=list(subjects))
        except (ImportError, AttributeError, FileNotFoundError) as exc:
            res["encoder"] = f"unavailable: {exc}"
    return res


def _mean_scores(per_subject: list[dict]) -> dict:
    out = {}
    for model in ("brainit", "ridge", "ridge_same_data"):
        if not all(model in p for p in per_subject):
            continue
        out[model] = {}
        for block in per_subject[0][model]:
            out[model][block] = {m: float(np.mean([p[model][block][m] for p in per_subject]))
                                 for m in ("token_r", "two_way")}
    return out


def format_table(res: dict) -> str:
    """Markdown table of the mean scores."""
    lines = ["| model | block | token r | 2-way |", "|---|---|---|---|"]
    for model, blocks in res["mean"].items():
        for block, sc in blocks.items():
            lines.append(f"| {model} | {block} | {sc['token_r']:.3f} | {100 * sc['two_way']:.1f}% |")
    return "\n".join(lines)
