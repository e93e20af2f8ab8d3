"""Measure the training-recipe choices of docs/models.md ("Recipe choices"), each before/after in one run.

    python scripts/recipe_choices.py --data /tmp/recipe/twin --out /tmp/recipe/runs --threads 1

The data is a reduced demo twin (2 training subjects + twin03 held out, 810 train / 90 val / 100 test
images each, 600 unlabeled), built in Python with
``build_twin(out, TwinConfig.preset("demo", n_subjects=2, n_train=900, n_test=100, n_unlabeled=600,
n_ood=10, vertex_fraction=0.35))``. Models are small on purpose (2 shared CPU cores; see
``small_configs``): the figures compare choices at one scale, they are not the demo's figures.

Parts (``--parts``; each writes ``OUT/<part>.json`` and is skipped when that file exists):

- ``trials``: the encoder alone (twin01, Lite1 backbone) trained on averaged / single / both betas
  for the same number of steps: "short" 12 / 4 / 3 epochs (single trials are 3 x as many samples,
  both 4 x), "long" 60 / 20 / 15 epochs with early stopping (patience 3); median r and r / noise
  ceiling on the test images.
- ``trials_epochs``: single and both again for the averaged run's 60 epochs (equal epochs, 3 x / 4 x
  the steps), early stopping with patience 3.
- ``trials_downstream``: two whole runs (Lite1 backbone): the encoder on averaged betas to early
  stopping, then on both kinds of betas for as many epochs; the encoder's and BIT's test scores.
- ``backbone``: two whole runs, the encoder on the decoder's Lite0 (before) and on Lite1 (after);
  BIT's test scores (token r, 2-way) per head, the encoder's test r, and how well a ridge decodes
  the decoder's semantic tokens from the synthetic fMRI (held-out unlabeled images; the
  circularity) and from real betas (test images).
- ``backbone_seed1``: the same two runs with seed 1 (encoder and BIT), to see seed-to-seed spread.
- ``v2c``: seed stability (mean adjusted Rand index over seeds 0/1/2) and fit time of diagonal and
  full covariance on the after-run's encoder embeddings.
- ``v2c_bit``: the after-run with BIT trained again on full-covariance clusters.
- ``transfer``: twin03 at 15 / 60 min / all from the after-run: epoch chosen on the val split
  (before), on a held-out 20% of the budget, or the last epoch of the fixed schedule.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from brainit_core.data import load_dataset
from brainit_core.fileio import write_json
from brainit_core.models import transfer as transfer_module
from brainit_core.models.bit import BITConfig
from brainit_core.models.encoder import EncoderConfig, encoder_backbone, evaluate_encoder, load_encoder
from brainit_core.models.encoder_training import train_encoder
from brainit_core.models.evaluate import evaluate_run, token_correlation, two_way_identification
from brainit_core.models.training import train_run
from brainit_core.models.v2c import V2C, seed_stability
from brainit_core.runs import RunDirectory
from brainit_core.utils import cpu_threads

PRESET = "ci"  # feature sizes: Lite0 at 128 / 64 px, Lite1 backbone at 128 px, maps pooled to 4 x 4
PARTS = ("trials", "trials_epochs", "trials_downstream", "backbone", "backbone_seed1", "v2c", "v2c_bit", "transfer")


def small_configs() -> tuple[EncoderConfig, BITConfig]:
    enc = EncoderConfig(token_dim=32, voxel_dim=32, max_grid=4, voxels_per_sample=500, epochs=20, batch_size=32,
                        patience=3, backbone="lite1")
    bit = BITConfig(n_clusters=16, dim=64, heads=4, n_self_blocks=1, voxels_per_sample=1000, semantic_epochs=10,
                    lowlevel_epochs=10, warmup_epochs=2, plateau_patience=2, semantic_batch=32, lowlevel_batch=32,
                    eval_batch=64, lowlevel_samples=(32, 32, 16, 4), lowlevel_mse_weight=5.0, synthetic_per_real=0.5,
                    max_unlabeled=None, transfer_epochs=6, v2c_covariance="diag")
    return enc, bit


def scores(run_dir: Path, data, subjects=None) -> dict:
    """Mean BIT test scores per head and the encoder's median r / ceiling."""
    res = evaluate_run(run_dir, data, subjects=subjects, ridge=False, encoder=True, device="cpu")
    out = {f"{head}.{m}": res["mean"]["brainit"][head][m] for head in ("semantic", "lowlevel")
           for m in ("token_r", "two_way")}
    enc = res.get("encoder") or {}
    if isinstance(enc, dict):
        out["encoder.median_r"] = float(np.mean([v["median_r"] for v in enc.values()]))
        out["encoder.r_over_ceiling"] = float(np.mean([v["median_r_over_ceiling"] for v in enc.values()]))
    out["stage_seconds"] = {k: v.get("seconds") for k, v in RunDirectory(run_dir).stages.items()}
    return out


def encoder_trial(ds, backbone, config: EncoderConfig, run_dir: Path) -> dict:
    """Train the encoder on twin01 alone; its test median r, r / ceiling, epochs and CPU seconds."""
    t0 = time.process_time()
    enc = train_encoder(ds, backbone, config, run_dir, subjects=[ds.training_subjects[0]], device="cpu")
    ev = evaluate_encoder(enc, ds, backbone)
    curves = json.loads((run_dir / "curves.json").read_text())
    return {"median_r": float(np.mean([v["median_r"] for v in ev.values()])),
            "r_over_ceiling": float(np.mean([v["median_r_over_ceiling"] for v in ev.values()])),
            "epochs": len(curves), "best_epoch": int(np.argmax([c["val_median_r"] for c in curves])) + 1,
            "cpu_seconds": time.process_time() - t0}


def part_trials(ds, out: Path) -> dict:
    enc_cfg, _ = small_configs()
    backbone = encoder_backbone(enc_cfg, PRESET)
    return {length: {mode: encoder_trial(ds, backbone, replace(enc_cfg, trials=mode, epochs=epochs * scale),
                                         out / f"encoder-{length}-{mode}")
                     for mode, epochs in (("averaged", 12), ("single", 4), ("both", 3))}
            for length, scale in (("short", 1), ("long", 5))}


def part_trials_epochs(ds, out: Path) -> dict:
    """``trials`` "long" for single and both at the averaged run's 60 epochs (3 x and 4 x its steps)."""
    enc_cfg, _ = small_configs()
    backbone = encoder_backbone(enc_cfg, PRESET)
    return {mode: encoder_trial(ds, backbone, replace(enc_cfg, trials=mode, epochs=60), out / f"encoder-epochs-{mode}")
            for mode in ("single", "both")}


def part_trials_downstream(ds, out: Path) -> dict:
    """Two whole runs: the encoder on averaged betas to early stopping (60 epochs at most, patience 3), then
    on both kinds of betas for as many epochs (4 x the steps); the encoder's and BIT's test scores."""
    enc_cfg, bit_cfg = small_configs()
    res, epochs = {}, 60
    for mode in ("averaged", "both"):
        run_dir = out / f"run-lite1-{mode}"
        t0 = time.process_time()
        train_run(ds, preset=PRESET, out=run_dir, device="cpu", space_name="lite0", bit_config=bit_cfg,
                  encoder_config=replace(enc_cfg, trials=mode, epochs=epochs))
        epochs = len(json.loads((run_dir / "encoder" / "curves.json").read_text()))
        res[mode] = {"cpu_seconds_train": time.process_time() - t0, "encoder_epochs": epochs, **scores(run_dir, ds)}
    return res


def ridge_scores(fit_betas, fit_target, test_betas, test_target) -> dict:
    from brainit_core.baselines.ridge import RidgeFeatureDecoder

    pred = RidgeFeatureDecoder().fit(fit_betas, {"t": fit_target}).predict(test_betas)["t"]
    pred = np.asarray(pred).reshape(test_target.shape)
    return {"token_r": token_correlation(pred, test_target), "two_way": two_way_identification(pred, test_target)}


def decodability(ds, run_dir: Path, subject: str) -> dict:
    """Ridge to the decoder's semantic tokens: from a run's synthetic fMRI of unlabeled images (480 fit,
    120 test), and, for comparison, from real betas (training images -> test images)."""
    from brainit_core.features import extract_features, get_feature_space

    space = get_feature_space("lite0", preset=PRESET)
    syn = np.load(run_dir / "synthetic" / f"{subject}.npy").astype(np.float32)
    ids = np.load(run_dir / "synthetic" / "ids.npy")
    target = extract_features(ds, ids, space).semantic.astype(np.float32)
    n = int(0.8 * len(ids))
    sd = ds.subject(subject)
    (tr_b, tr_ids), (te_b, te_ids) = sd.averaged("train"), sd.averaged("test")
    real = ridge_scores(tr_b, extract_features(ds, tr_ids, space).semantic.astype(np.float32), te_b,
                        extract_features(ds, te_ids, space).semantic.astype(np.float32))
    return {"synthetic": ridge_scores(syn[:n], target[:n], syn[n:], target[n:]), "real": real}


def part_backbone(ds, out: Path, seed: int = 0) -> dict:
    enc_cfg, bit_cfg = small_configs()
    res = {}
    for name in ("lite0", "lite1"):
        run_dir = out / f"run-{name}{f'-seed{seed}' if seed else ''}"
        t0 = time.process_time()
        train_run(ds, preset=PRESET, out=run_dir, device="cpu", space_name="lite0", bit_config=replace(bit_cfg, seed=seed),
                  encoder_config=replace(enc_cfg, backbone=name, seed=seed))
        res[name] = {"cpu_seconds_train": time.process_time() - t0, **scores(run_dir, ds),
                     "ridge_to_lite0_semantic": decodability(ds, run_dir, ds.training_subjects[0])}
    return res


def part_backbone_seed1(ds, out: Path) -> dict:
    """``backbone`` again with seed 1 (encoder and BIT): how far two seeds of the same choice differ."""
    return part_backbone(ds, out, seed=1)


def part_v2c(ds, out: Path) -> dict:
    """Seed stability and fit time (one BLAS thread) of both covariances on the after-run's embeddings."""
    from threadpoolctl import threadpool_limits

    enc = load_encoder(RunDirectory(out / "run-lite1").encoder_path)
    emb = {s: enc.voxel_embeddings(s).detach().numpy() for s in ds.training_subjects}
    n_clusters = small_configs()[1].n_clusters
    res = {"n_voxels": int(sum(len(v) for v in emb.values())), "dim": int(enc.config.voxel_dim), "n_clusters": n_clusters}
    for cov in ("diag", "full"):
        with threadpool_limits(1):
            t0 = time.process_time()
            v2c = V2C(n_clusters, cov, seed=0).fit(emb)
            seconds = time.process_time() - t0
        sizes = np.bincount(np.concatenate(list(v2c.labels_.values())), minlength=n_clusters)
        res[cov] = {"ari_over_seeds": seed_stability(emb, n_clusters, cov, seeds=(0, 1, 2)),
                    "fit_cpu_seconds": seconds, "em_iterations": int(v2c._gmm.n_iter_),
                    "empty_clusters": int((sizes == 0).sum()), "largest_cluster_share": float(sizes.max() / sizes.sum())}
    return res


def part_v2c_bit(ds, out: Path) -> dict:
    """The after-run (features, encoder, synthetic fMRI kept) with BIT trained again on full-covariance clusters."""
    src, run_dir = out / "run-lite1", out / "run-lite1-v2cfull"
    if not run_dir.exists():
        shutil.copytree(src, run_dir, ignore=shutil.ignore_patterns("bit*", "v2c.*", "curves.*", "eval_features.json"))
        run = RunDirectory(run_dir)
        record = run.record
        record["bit_config"]["v2c_covariance"] = "full"
        for stage in ("v2c", "bit-semantic", "bit-lowlevel", "bit"):
            record["stages"].pop(stage, None)
        run.save_record(record)
    train_run(ds, preset=PRESET, out=run_dir, device="cpu", space_name="lite0", resume=True)
    diag = json.loads((out / "backbone.json").read_text())["lite1"]
    return {"diag": {k: v for k, v in diag.items() if k.startswith(("semantic", "lowlevel"))},
            "full": {k: v for k, v in scores(run_dir, ds).items() if k.startswith(("semantic", "lowlevel"))}}


@contextlib.contextmanager
def selection_on_val_split():
    """The transfer as it was before: the whole budget trained, the epochs chosen on the val split."""
    saved = {k: getattr(transfer_module, k) for k in ("train_encoder", "build_bit_data", "train_head")}

    def forced(fn, **kw):
        return lambda *a, **k: fn(*a, **{**k, **kw})

    transfer_module.train_encoder = forced(saved["train_encoder"], val_trials=None, keep="best")
    transfer_module.build_bit_data = forced(saved["build_bit_data"], val_trials=None)
    transfer_module.train_head = forced(saved["train_head"], keep="best")
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(transfer_module, k, v)


def part_transfer(ds, out: Path) -> dict:
    src = out / "run-lite1"
    subject = next(s for s in ds.subjects if s not in ds.training_subjects)  # twin03, held out
    res = {}
    for minutes in (15, 60, "all"):
        for mode in ("val-split", "holdout", "last"):
            run_dir = out / f"transfer-{minutes}-{mode}"
            config = BITConfig.from_dict(RunDirectory(src).bit_config)
            config.transfer_selection = "last" if mode == "val-split" else mode
            t0 = time.process_time()
            with selection_on_val_split() if mode == "val-split" else contextlib.nullcontext():
                transfer_module.transfer_subject(ds, subject, minutes, src, run_dir, device="cpu", bit_config=config)
            res[f"{minutes}/{mode}"] = {"cpu_seconds": time.process_time() - t0,
                                        **scores(run_dir, ds, subjects=[subject])}
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--parts", nargs="*", default=list(PARTS), choices=PARTS)
    args = ap.parse_args()
    cpu_threads(args.threads)
    ds = load_dataset(args.data)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for part in args.parts:
        path = out / f"{part}.json"
        if not path.exists():
            t0 = time.process_time()
            res = globals()[f"part_{part}"](ds, out)
            res["part_cpu_seconds"] = time.process_time() - t0
            write_json(path, res)
        print(f"## {part}\n{json.dumps(json.loads(path.read_text()), indent=1)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
