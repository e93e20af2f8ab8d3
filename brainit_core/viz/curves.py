"""Training curves of a run's BIT heads, drawn to a PNG."""
from __future__ import annotations

import os
from pathlib import Path


def plot_curves(curves: dict, path: Path) -> None:
    """Validation (and training) loss per epoch of each head, saved as a PNG."""
    from matplotlib.figure import Figure

    heads = [h for h in curves if curves[h]]
    if not heads:
        return
    fig = Figure(figsize=(4.5 * len(heads), 3.2))
    for k, h in enumerate(heads):
        ax = fig.add_subplot(1, len(heads), k + 1)
        ep = [c["epoch"] for c in curves[h]]
        ax.plot(ep, [c["val_loss"] for c in curves[h]], "o-", label="validation")
        tr = [(c["epoch"], c["train_loss"]) for c in curves[h] if c.get("train_loss") is not None]
        if tr:
            ax.plot(*zip(*tr), "s--", label="train")
        ax.set_title(f"BIT {h}")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.legend()
        ax2 = ax.twinx()
        ax2.plot(ep, [c["val_corr"] for c in curves[h]], "g:", label="val token r")
        ax2.set_ylabel("val token r", color="g")
    fig.tight_layout()
    tmp = Path(path).with_name(Path(path).name + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    os.replace(tmp, path)
