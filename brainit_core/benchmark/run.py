"""The benchmark: Brain-IT against its ablations, two baselines and oracles, through the same generators.

Methods (rows of the table), each decoded by the SAME generators (``BrainITPipeline``):

========================  ===================================================================
``brainit_fused``         Brain-IT, both branches fused (BIT features -> inverter -> fusion)
``brainit_low_level``     the low-level branch alone (the inverted image)
``brainit_semantic``      the semantic branch alone (diffusion from pure noise)
``ridge``                 ridge regression betas -> semantic tokens and low-level maps, fused
``global_embedding``      MLP betas -> one global semantic vector (broadcast to every token)
                          and a blurry image (its low-level pyramid is inverted), fused
``oracle``                the true features of the seen image, fused
``oracle_noiseless``      twin only: the noiseless responses through BIT, fused
========================  ===================================================================

Everything is cached under ``OUT/cache/<subject>/<method>.{npz,json}`` (images, seconds per
image, scores) with a key made of the checkpoints, the image ids and the settings, and baselines
under ``OUT/baselines/<subject>/``: a second call with the same settings only reads them.

This module is the orchestration (:func:`run_benchmark`, the transfer curve). The methods are
declared in :mod:`.methods`, decoded and scored by :class:`.bench.Bench`, cached by :mod:`.cache`;
:mod:`.baselines` fits the baselines, :mod:`.claims` judges the claims, :mod:`.report` writes
``results.md`` and reads results back.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from brainit_core.benchmark.bench import DIP_IMAGES, RESULTS_VERSION, Bench
from brainit_core.benchmark.categories import COLUMN as CATEGORY_COLUMN
from brainit_core.benchmark.categories import LAYER as CATEGORY_LAYER
from brainit_core.benchmark.categories import N_TRAIN
from brainit_core.benchmark.categories import NETWORK as CATEGORY_NETWORK
from brainit_core.benchmark.cache import JSON_LAYOUT
from brainit_core.benchmark.claims import compute_claims, finite
from brainit_core.benchmark.methods import BASELINES, LABELS, TRANSFER_AMOUNTS, get_method, table_methods
from brainit_core.benchmark.report import results_markdown
from brainit_core.errors import BrainITError
from brainit_core.fileio import write_json
from brainit_core.progress import report, track


def parse_transfer_runs(items) -> dict[str, str]:
    """``["15=DIR", "60=DIR", "all=DIR"]`` -> ``{"15": DIR, ...}``."""
    out = {}
    for item in items or []:
        amount, sep, path = str(item).partition("=")
        amount = amount.strip().lower().removesuffix("min")
        if not sep or amount not in TRANSFER_AMOUNTS or not path:
            raise BrainITError(f"--transfer-runs expects AMOUNT=DIR with AMOUNT in 15/60/all, got {item!r}")
        out[amount] = path
    return out


def _mean_scores(per_subject: dict) -> dict:
    cols: dict[str, list] = {}
    for scores in per_subject.values():
        for c, v in scores.items():
            cols.setdefault(c, []).append(v)
    return {c: (float(np.mean(v)) if all(finite(x) for x in v) else "unavailable") for c, v in cols.items()}


def run_benchmark(data, run, generators, out, subjects=None, limit: int | None = None,
                  transfer_runs: dict | None = None, transfer: bool = False, heldout: str | None = None,
                  networks="auto", weights=None, device="auto", seed: int = 0, batch_size: int = 8,
                  mode: str | None = None, steps: int | None = None, plots: bool = True, stage2=None,
                  dip_images: int = DIP_IMAGES, categories: bool = True, category_train: int = N_TRAIN) -> dict:
    """Run the whole benchmark and write ``results.json``, ``results.md`` and PNG plots to ``out``.

    Parameters
    ----------
    data : str, PathLike or Dataset
        The dataset (a twin adds the oracle-noiseless row and the pRF checks).
    run : str, PathLike or BrainITRun
        The trained run (decodes ``subjects``).
    generators : str, PathLike or Generators
        The generators every method is decoded with.
    out : str or PathLike
        Output directory (also the cache: rerunning with the same settings only reads it).
    subjects : list of str, optional
        Default: the run's subjects that are in the dataset and not held out.
    limit : int, optional
        Only the first N test images of each subject.
    transfer_runs : dict, optional
        ``{"15": DIR, "60": DIR, "all": DIR}``: runs transferred to the held-out subject.
    transfer : bool
        Train missing transfer runs under ``out/transfer/`` with :func:`transfer_subject`.
    heldout : str, optional
        The transfer subject (default: the dataset's first held-out subject).
    networks : str or list
        Metric networks (``"auto"``: every column, unavailable ones say so; ``"offline"``:
        PixCorr, SSIM and the bundled Lite1/Lite2 columns).
    weights : str or PathLike, optional
        Where protocol network weights are looked for first.
    device : str
    seed : int
        Image i uses seed + its image id, in every method.
    batch_size : int
    mode, steps : optional
        Reconstruction overrides (default: the generators' settings).
    plots : bool
    stage2 : str or PathLike, optional
        A ``stage2`` output folder: adds the rows ``stage2_fused`` and ``stage2_semantic``, decoded
        with its fine-tuned run and generators (compare them with ``brainit_fused`` / ``brainit_semantic``).
    dip_images : int
        The DIP rows (the paper's Deep Image Prior, demo preset, and the inverter on the same images)
        decode the first ``dip_images`` test images of each subject; 0 leaves them out.
    categories : bool
        Add the category-accuracy column when the dataset has category labels (a twin).
    category_train : int
        Training images the category classifier learns from.

    Returns
    -------
    dict
        What ``results.json`` holds (see ``docs/benchmark.md``).
    """
    t_start = time.perf_counter()
    recon_kw = {k: v for k, v in {"mode": mode, "steps": steps}.items() if v is not None}
    b = Bench(data, run, generators, out, limit, networks, weights, device, seed, batch_size, recon_kw, stage2,
              dip_images=dip_images, categories=categories, category_train=category_train)
    ds, notes = b.ds, b.notes
    if subjects is None:
        subjects = [s for s in b.run.subjects if s in ds.subjects and s not in ds.heldout_subjects]
    unknown = [s for s in subjects if s not in b.run.subjects or s not in ds.subjects]
    if unknown:
        raise BrainITError(f"subjects {unknown} are not decodable by {getattr(b.run, 'path', 'the run')} on "
                           f"{ds.path} (run subjects: {b.run.subjects}; dataset subjects: {ds.subjects})")
    if not subjects:
        raise BrainITError(f"no subject of the run {b.run.subjects} is in the dataset {ds.path}")
    methods = table_methods(is_twin=b.twin_dir is not None, stage2=b.stage2 is not None, dip=b.dip_images > 0)
    if b.twin_dir is None:
        notes.append("not a twin dataset: the oracle-noiseless row and the pRF / category-patch checks are skipped")

    scores: dict = {m: {} for m in methods}
    seconds: dict = {m: {} for m in methods}
    attention: dict = {}
    n_images, method_images, category = {}, {m: {} for m in methods}, {}
    test_sets = {s: b.test_set(s) for s in subjects}  # read once: every method decodes the same betas
    work = [(s, m) for s in subjects for m in methods]
    for s, m in track(work, desc="benchmark: subjects x methods"):
        betas, ids = test_sets[s]
        n_images[s] = len(ids)
        meta = b.scored(s, m, betas, ids)
        scores[m][s], seconds[m][s], method_images[m][s] = meta["scores"], meta["seconds_per_image"], meta["n"]
    for s in subjects:
        ids = test_sets[s][1]
        att = b.attention(s, ids)
        if att is not None:
            attention[s] = att
        if b.categories is not None:
            category[s] = b.category_summary(ids)
    for m in methods:
        scores[m]["mean"] = _mean_scores({s: scores[m][s] for s in subjects})
        seconds[m]["mean"] = float(np.mean([seconds[m][s] for s in subjects]))

    results = {
        "version": RESULTS_VERSION,
        "dataset": str(ds.path), "run": str(getattr(b.run, "path", "")), "generators": str(getattr(b.gens, "path", "")),
        "run_sha256": getattr(b.run, "checkpoint_sha256", None), "generators_sha256": b.gens.sha256,
        "is_twin": b.twin_dir is not None, "subjects": list(subjects), "n_images": n_images,
        "methods": methods, "method_labels": {m: _label(m, method_images[m]) for m in methods},
        "method_images": {m: int(min(v.values())) for m, v in method_images.items()},
        "columns": _columns(b.evaluator, weights, b.categories),
        "settings": {"limit": limit, "seed": seed, "networks": networks, "device": str(b.device),
                     "batch_size": batch_size, "reconstruction": {**b.gens.reconstruction.__dict__, **recon_kw},
                     "torch_threads": torch.get_num_threads()},
        "scores": scores, "seconds_per_image": seconds, "attention": attention,
        "notes": notes,
    }
    if category:
        results["categories"] = _category_results(category, subjects)
    if b.dip_images > 0:
        results["dip"] = {"preset": b.dip_preset, "n_images": results["method_images"]["brainit_dip"],
                          "seconds_per_image": seconds["brainit_dip"]["mean"],
                          "note": "the DIP rows decode the first n_images test images of each subject; compare the DIP "
                                  "row with the inverter row on the same images"}
    if b.stage2 is not None:
        s2_run, s2_gens = b.stage2
        results["stage2"] = {"path": str(Path(stage2).expanduser().resolve()), "run_sha256": s2_run.checkpoint_sha256,
                             "generators_sha256": s2_gens.sha256,
                             "training": (getattr(s2_run, "config", None) or {}).get("stage2")}
    results["attention_summary"] = _attention_summary(attention)
    results["transfer"] = _transfer(b, transfer_runs, transfer, heldout, notes)
    results["claims"] = compute_claims(results)
    results["wall_seconds"] = time.perf_counter() - t_start
    # compact views the app's Benchmark page reads
    results["mean"] = {m: {c: v for c, v in scores[m]["mean"].items() if finite(v)} for m in methods}
    results["setup"] = {"data": results["dataset"], "run": results["run"], "generators": results["generators"],
                        "subjects": list(subjects), "n_images": int(min(n_images.values())), "seed": seed,
                        "networks": networks, "twin": results["is_twin"], "run_sha256": results["run_sha256"],
                        "generators_sha256": results["generators_sha256"], "not_covered": list(notes),
                        "wall_seconds": results["wall_seconds"]}
    out = b.out
    write_json(out / "results.json", results, **JSON_LAYOUT)
    (out / "results.md").write_text(results_markdown(results))
    if plots:
        from brainit_core.benchmark.plots import make_plots

        results["plots"] = [str(p) for p in make_plots(results, out)]
        write_json(out / "results.json", results, **JSON_LAYOUT)
        (out / "results.md").write_text(results_markdown(results))
    return results


def _label(method: str, counts: dict) -> str:
    """The row label; a subset row says on how many images it was measured."""
    if not get_method(method).subset:
        return LABELS[method]
    return f"{LABELS[method]}, {min(counts.values())} images"


def _columns(evaluator, weights, categories=None) -> dict:
    from brainit_core.metrics import describe_columns

    desc = describe_columns(weights)
    cols = {c.name: {"higher_is_better": c.higher_is_better, "network": desc[c.name]["network"],
                     "protocol": desc[c.name]["protocol"], "metric": c.metric}
            for c in evaluator.columns()}
    if categories is not None:
        cols[CATEGORY_COLUMN] = {"higher_is_better": True, "protocol": False, "metric": "category accuracy",
                                 "network": f"{CATEGORY_NETWORK} {CATEGORY_LAYER} + logistic regression"}
    return cols


def _category_results(per_subject: dict, subjects) -> dict:
    """One summary: the classifier's and the definition (the same for every subject), the seen
    images' accuracy and chance per subject and their means."""
    first = per_subject[subjects[0]]
    out = {k: v for k, v in first.items() if k not in ("ground_truth", "chance", "n_labelled", "n_images")}
    for k in ("ground_truth", "chance"):
        out[k] = {s: per_subject[s][k] for s in subjects}
        out[k]["mean"] = _nanmean([per_subject[s][k] for s in subjects])
    out["n_labelled"] = {s: per_subject[s]["n_labelled"] for s in subjects}
    return out


def _attention_summary(attention: dict) -> dict:
    if not attention:
        return {}
    contra = [a["contralaterality"] for a in attention.values()]
    out = {"contralaterality_index": _nanmean([c["index"] for c in contra]),
           "contralaterality_signed_mean": _nanmean([c["signed_mean"] for c in contra]),
           "contralaterality_weighted": _nanmean([c["weighted"] for c in contra]),
           "contralaterality_lateralised": _nanmean([c.get("index_lateralised") for c in contra])}
    prf = [a["prf_agreement"] for a in attention.values() if "prf_agreement" in a]
    if prf:
        for k in ("voxel_r_x", "voxel_r_y", "token_r_x", "token_r_y"):
            out[f"prf_{k}"] = _nanmean([p[k] for p in prf])
    return out


def _nanmean(values) -> float:
    v = np.asarray([x for x in values if finite(x)], dtype=np.float64)
    return float(v.mean()) if len(v) else float("nan")


# ---------------------------------------------------------------------------------------------
# transfer curve


def _transfer(b: Bench, transfer_runs, train: bool, heldout, notes) -> dict:
    from brainit_core.models.run import BrainITRun

    transfer_runs = dict(transfer_runs or {})
    heldout = heldout or (b.ds.heldout_subjects[0] if b.ds.heldout_subjects else None)
    if heldout is None:
        notes.append("transfer curve skipped: the dataset has no held-out subject")
        return {"skipped": "no held-out subject"}
    if not transfer_runs and not train:
        notes.append("transfer curve skipped: pass --transfer-runs 15=DIR 60=DIR all=DIR or --transfer")
        return {"skipped": "no transfer runs given", "subject": heldout}
    if train:
        from brainit_core.models.transfer import transfer_subject

        for amount in TRANSFER_AMOUNTS:
            if amount not in transfer_runs:
                dest = b.out / "transfer" / (f"{amount}min" if amount != "all" else "all")
                minutes = "all" if amount == "all" else int(amount)
                report(0.0, f"transfer {heldout}: {amount} min")
                transfer_runs[amount] = str(transfer_subject(b.ds, heldout, minutes, b.run.path, dest,
                                                             device=str(b.device), resume=True))
    betas, ids = b.test_set(heldout)
    curve, seconds, runs = {}, {}, {}
    for amount in [a for a in TRANSFER_AMOUNTS if a in transfer_runs]:
        r = BrainITRun.load(transfer_runs[amount], device=b.device)
        if heldout not in r.subjects:
            raise BrainITError(f"{transfer_runs[amount]} does not decode {heldout} (subjects {r.subjects})")
        with b.using_run(r):
            meta = b.scored(heldout, f"transfer_{amount}", betas, ids)
        curve[amount], seconds[amount] = meta["scores"], meta["seconds_per_image"]
        runs[amount] = {"path": str(transfer_runs[amount]), "sha256": r.checkpoint_sha256,
                        "n_trials": (r.config.get("transfer") or {}).get("n_trials")}
    base_scores = {}
    for m in BASELINES:
        meta = b.scored(heldout, m, betas, ids)
        base_scores[m] = meta["scores"]
        seconds[m] = meta["seconds_per_image"]
    return {"subject": heldout, "amounts": list(curve), "runs": runs, "scores": curve,
            "baselines": base_scores, "seconds_per_image": seconds, "n_images": len(ids),
            "note": "baselines are fitted on the held-out subject's full training data"}
