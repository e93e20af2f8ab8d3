"""PNG figures of the benchmark (matplotlib, Agg): scores, timing, transfer curve, contralaterality."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def _num(v) -> float:
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else np.nan


def _grid(n: int, w: float, h: float):
    plt = _plt()
    ncol = min(4, max(1, n))
    nrow = max(1, math.ceil(n / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(w * ncol, h * nrow), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    return plt, fig, axes.ravel()


def plot_scores(results: dict, path) -> Path:
    """One panel per available metric: a bar per method (mean), a dot per subject (``scores.png``)."""
    methods, subjects = results["methods"], results["subjects"]
    cols = [c for c in results["columns"]
            if any(np.isfinite(_num(results["scores"][m]["mean"].get(c))) for m in methods)]
    plt, fig, axes = _grid(len(cols), 3.4, 3.0)
    x = np.arange(len(methods))
    for ax, c in zip(axes, cols):
        ax.bar(x, [_num(results["scores"][m]["mean"].get(c)) for m in methods],
               color=[f"C{i}" for i in range(len(methods))])
        for k, s in enumerate(subjects):
            ax.scatter(x + (k - (len(subjects) - 1) / 2) * 0.12,
                       [_num(results["scores"][m][s].get(c)) for m in methods], s=9, color="k", zorder=3)
        better = "higher" if results["columns"][c]["higher_is_better"] else "lower"
        cat = results.get("categories") or {}
        if c == cat.get("column"):  # the seen images' accuracy and chance as reference lines
            ax.axhline(_num(cat["ground_truth"]["mean"]), color="0.3", ls="--", lw=0.8, label="seen images")
            ax.axhline(_num(cat["chance"]["mean"]), color="C3", ls=":", lw=0.8, label="chance")
            ax.legend(fontsize=6)
        ax.set_title(f"{c} ({better} is better)", fontsize=8)
        ax.set_xticks(x)
        ax.set_xticklabels([results["method_labels"][m] for m in methods], rotation=60, ha="right", fontsize=6)
        ax.tick_params(axis="y", labelsize=7)
    fig.suptitle("Mean over subjects (bars) and each subject (dots)", fontsize=9)
    return _save(plt, fig, path)


def plot_timing(results: dict, path) -> Path:
    """Seconds per image of each method (``timing.png``)."""
    plt = _plt()
    methods = results["methods"]
    fig, ax = plt.subplots(figsize=(5.5, 3.0))
    ax.barh(np.arange(len(methods)), [results["seconds_per_image"][m]["mean"] for m in methods], color="C0")
    ax.set_yticks(np.arange(len(methods)))
    ax.set_yticklabels([results["method_labels"][m] for m in methods], fontsize=7)
    ax.invert_yaxis()
    s = results["settings"]
    ax.set_xlabel(f"seconds per image ({s['device']}, {s['torch_threads']} threads; baseline fitting excluded)",
                  fontsize=7)
    return _save(plt, fig, path)


def plot_transfer(results: dict, path) -> Path | None:
    """Held-out subject's scores vs amount of its data; baselines trained on all of it as lines."""
    tr = results.get("transfer") or {}
    if not tr.get("scores"):
        return None
    cols = [c for c in results["columns"] if any(np.isfinite(_num(v.get(c))) for v in tr["scores"].values())]
    plt, fig, axes = _grid(len(cols), 3.2, 2.8)
    amounts = tr["amounts"]
    for ax, c in zip(axes, cols):
        ax.plot(range(len(amounts)), [_num(tr["scores"][a].get(c)) for a in amounts], "o-", label="Brain-IT transfer")
        for k, m in enumerate(tr["baselines"]):
            ax.axhline(_num(tr["baselines"][m].get(c)), color=f"C{k + 1}", ls="--",
                       label=f"{results['method_labels'].get(m, m)}, all data")
        ax.set_xticks(range(len(amounts)))
        ax.set_xticklabels([f"{a} min" if a != "all" else "all" for a in amounts], fontsize=7)
        ax.set_title(c, fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
    if cols:
        axes[0].legend(fontsize=6)
    fig.suptitle(f"Transfer to {tr['subject']}", fontsize=9)
    return _save(plt, fig, path)


def plot_contralaterality(results: dict, path) -> Path | None:
    """Per brain token: hemisphere balance of its voxels vs the x of its attention centroid."""
    att = results.get("attention") or {}
    if not att:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(att), figsize=(3.2 * len(att), 3.0), squeeze=False)
    for ax, (s, a) in zip(axes[0], att.items()):
        c = a["contralaterality"]
        toks = [t for t in c["per_token"] if t["balance"] is not None]
        ax.axhline(0, color="0.7", lw=0.8)
        ax.axvline(0, color="0.7", lw=0.8)
        ax.scatter([t["balance"] for t in toks], [t["centroid_x"] for t in toks],
                   c=["C2" if t["contralateral"] else "C3" for t in toks], s=18)
        ax.set_xlabel("voxels: right (-1) ... left (+1) hemisphere", fontsize=7)
        ax.set_ylabel("attention centroid x (right +)", fontsize=7)
        ax.set_title(f"{s}: index {_num(c['index']):.2f}", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle("Contralaterality of brain tokens (green: contralateral)", fontsize=9)
    return _save(plt, fig, path)


def make_plots(results: dict, out) -> list[Path]:
    """Write every figure into ``out``; returns the paths written."""
    out = Path(out)
    made = [plot_scores(results, out / "scores.png"), plot_timing(results, out / "timing.png"),
            plot_transfer(results, out / "transfer.png"), plot_contralaterality(results, out / "contralaterality.png")]
    return [p for p in made if p is not None]
