"""The backtest's figure, drawn from its saved ``metrics.csv`` (so it can be redrawn without a rerun)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

__all__ = ["plot_backtest"]

#: Panels: (column of metrics.csv, title, reference line).
PANELS = (
    ("mean_abs_relative_error", "mean |relative error|", 0.10),
    ("coverage", "interval coverage", 0.95),
    ("pairs_correct", "pairs ordered correctly (true values >= 10 % apart)", 0.90),
)


def plot_backtest(metrics_csv: str | Path, out_png: str | Path) -> Path:
    """Per-campaign mean relative error, coverage and ranking of every estimator (the recommended one
    included), one bar per logger and size, averaged over markets."""
    table = pd.read_csv(metrics_csv)
    table = table[table["scope"] == "per_campaign"]
    table = table.assign(setting=table["logger"] + ", " + table["n_campaigns_logged"].astype(str))
    estimators = list(dict.fromkeys(table["estimator"]))
    settings = list(dict.fromkeys(table["setting"]))
    fig, axes = plt.subplots(1, len(PANELS), figsize=(5 * len(PANELS), 4.2))
    width = 0.8 / max(len(settings), 1)
    x = np.arange(len(estimators))
    for ax, (column, title, reference) in zip(axes, PANELS, strict=True):
        for k, setting in enumerate(settings):
            part = table[table["setting"] == setting].groupby("estimator")[column].mean()
            ax.bar(x + k * width, [part.get(e, np.nan) for e in estimators], width, label=setting)
        ax.axhline(reference, color="grey", ls=":")
        ax.set_xticks(x + width * (len(settings) - 1) / 2, estimators, rotation=45, ha="right")
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_yscale("log")
    axes[0].legend(fontsize=7, loc="best")
    fig.suptitle("Per-campaign estimates against the simulator's truth")
    fig.tight_layout()
    out_png = Path(out_png)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png
