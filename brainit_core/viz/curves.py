"""Training curves of a run's BIT heads (a PNG) and transfer learning curves (plotly)."""
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


def transfer_curve_figure(rows: list[dict], column: str, baselines: dict | None = None,
                          xaxis_title: str = "subject's data", label_at: str | None = "top left", height: int = 360):
    """A score against the amount of the new subject's data, with baselines as dashed lines.

    Parameters
    ----------
    rows : list of dict
        One per amount, in order: ``{"amount": "15 min", column: score, ...}``
        (:func:`brainit_core.models.transfer.curve_rows` or ``benchmark_curve``).
    column : str
        The score to draw.
    baselines : dict, optional
        Line label -> score, drawn as horizontal dashed lines.
    label_at : str or None
        Where a baseline's label sits (plotly's ``annotation_position``; None: plotly's default).

    Returns
    -------
    plotly.graph_objects.Figure
    """
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter(x=[r["amount"] for r in rows], y=[r.get(column) for r in rows],
                               mode="lines+markers", name="Brain-IT transfer"))
    for label, y in (baselines or {}).items():
        where = {"annotation_position": label_at} if label_at else {}
        fig.add_hline(y=y, line_dash="dash", annotation_text=label, **where)
    fig.update_layout(height=height, xaxis_title=xaxis_title, yaxis_title=column, margin=dict(t=30))
    return fig
