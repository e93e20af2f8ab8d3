"""Transfer-lab bookkeeping (no streamlit): where transfer runs live, their scores, time estimates."""
from __future__ import annotations

import json
from pathlib import Path

from brainit_core.utils import default_data_dir

AMOUNTS = (15, 60, "all")
TRIALS_PER_HOUR = 750


def heldout_candidates(dataset_meta: dict, run_subjects) -> list[str]:
    """Dataset subjects the run cannot decode yet (the twin's held-out subject first)."""
    held = list(dataset_meta.get("heldout_subjects", []))
    rest = [s for s in dataset_meta.get("subjects", []) if s not in run_subjects and s not in held]
    return [s for s in held if s in dataset_meta.get("subjects", [])] + rest


def transfer_dir(run, subject: str, minutes, root=None) -> Path:
    """``<data dir>/runs/<run name>-<subject>-<minutes>min`` (``-all`` for all data)."""
    tag = "all" if minutes == "all" else f"{int(minutes)}min"
    return Path(root or default_data_dir()) / "runs" / f"{Path(run).name}-{subject}-{tag}"


def is_finished(path) -> bool:
    return (Path(path) / "bit.safetensors").is_file() and (Path(path) / "run.json").is_file()


def estimate_minutes(n_trials: int, epochs: int, seconds_per_sample: float = 0.01) -> float:
    """Rough wall time: encoder embeddings + (1 real + 3 synthetic) samples per real one x epochs x 2 heads."""
    return (n_trials * 4 * epochs * 2 * seconds_per_sample + 60 + n_trials * 0.05) / 60


def trials_for(minutes, n_train_trials: int) -> int:
    return n_train_trials if minutes == "all" else min(n_train_trials, int(minutes) * TRIALS_PER_HOUR // 60)


def scores_path(path) -> Path:
    return Path(path) / "eval_features.json"


def read_scores(path) -> dict | None:
    p = scores_path(path)
    return json.loads(p.read_text()) if p.is_file() else None


def curve_rows(run, subject: str, root=None) -> list[dict]:
    """One row per finished transfer run with scores: amount, Brain-IT and ridge (same data / full data)."""
    rows = []
    for m in AMOUNTS:
        scores = read_scores(transfer_dir(run, subject, m, root))
        if not scores or subject not in scores.get("subjects", {}):
            continue
        s = scores["subjects"][subject]
        rows.append({"amount": "all" if m == "all" else f"{m} min", **_flatten(s)})
    return rows


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        elif isinstance(v, (int, float)):
            out[key] = float(v)
    return out


def benchmark_curve(results: dict) -> tuple[list[dict], dict] | None:
    """The transfer curve a finished benchmark measured (image-level scores), or ``None``.

    Returns
    -------
    rows : list of dict
        One per amount: ``{"amount": "15 min" | "60 min" | "all", column: score, ...}`` (numeric columns only).
    baselines : dict
        Baseline name -> {column: score} (fitted on all of the subject's data).
    """
    tr = (results or {}).get("transfer") or {}
    if not tr.get("scores"):
        return None

    def numeric(d: dict) -> dict:
        return {k: float(v) for k, v in d.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}

    rows = [{"amount": "all" if a == "all" else f"{a} min", **numeric(tr["scores"][a])}
            for a in tr.get("amounts", []) if a in tr["scores"]]
    return rows, {m: numeric(v) for m, v in (tr.get("baselines") or {}).items()}


def run_identities(run) -> set:
    """The sha256s a run directory answers to: its checkpoint's, and for a bundled (float16) copy the
    sha256 of the run it was made from (what a benchmark of that run recorded)."""
    record = json.loads((Path(run) / "bit.json").read_text())
    return {v for v in (record.get("sha256"), (record.get("meta") or {}).get("bundled_from_sha256")) if v}
