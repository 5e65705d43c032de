"""The figure of a market fit's predictive checks, drawn from its saved ``checks.csv``.

One panel per statistic (acceptance rate, then mean reach, engagements, clicks, conversions, cost and
revenue per accepted offer); along the x axis every checked group (overall, each segment, each offer
level). The simulated mean is a grey bar with its interval as a whisker; the logged value is a dot,
red when it lies outside the interval. The acceptance rate is drawn as it is; the outcome panels are
divided by the simulated mean (1 = the model's mean), so segments of very different size share an
axis. Groups with too few offers are left out.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from envs.fit import CHECK_COLUMNS, STATISTICS  # noqa: E402

__all__ = ["group_label", "plot_checks"]

_TITLES = {
    "acceptance_rate": "acceptance rate (all offers)",
    "reach": "reach per accepted offer",
    "engagements": "engagements per accepted offer",
    "clicks": "clicks per accepted offer",
    "conversions": "conversions per accepted offer",
    "cost": "cost per accepted offer (USD)",
    "revenue": "revenue per accepted offer (USD)",
}


def group_label(row: pd.Series) -> str:
    """Short x-axis label of a checked group: "all", "seg 3", "0.8x"."""
    if row["group"] == "segment":
        return f"seg {int(row['segment'])}"
    if row["group"] == "offer level":
        return f"{float(row['offer_ratio']):g}x"
    return "all"


def plot_checks(checks_csv: str | Path, out: str | Path) -> Path:
    """Draw the predictive checks of ``checks_csv`` (columns of :data:`envs.fit.CHECK_COLUMNS`) to ``out``.

    Returns
    -------
    pathlib.Path
        ``out`` (a PNG).

    Raises
    ------
    ValueError
        The CSV lacks a column of the checks table (named).
    """
    checks = pd.read_csv(checks_csv)
    lacking = [c for c in CHECK_COLUMNS if c not in checks.columns]
    if lacking:
        raise ValueError(f"{checks_csv}: missing columns {', '.join(lacking)} (not a checks table)")
    checks = checks[checks["verdict"] != "too few offers"]
    fig, axes = plt.subplots(len(STATISTICS), 1, figsize=(10, 2.1 * len(STATISTICS)), layout="constrained")
    for ax, statistic in zip(np.atleast_1d(axes), STATISTICS, strict=True):
        rows = checks[checks["statistic"] == statistic]
        x = np.arange(len(rows))
        mean = rows["simulated_mean"].to_numpy(float)
        scale = np.ones(len(rows)) if statistic == "acceptance_rate" else np.where(mean > 0, mean, 1.0)
        low, high = (
            rows["simulated_low"].to_numpy(float) / scale,
            rows["simulated_high"].to_numpy(float) / scale,
        )
        logged, mean = rows["logged"].to_numpy(float) / scale, mean / scale
        flagged = rows["verdict"].str.startswith("logged").to_numpy()
        ax.bar(x, mean, color="0.85", width=0.6, label="simulated mean")
        ax.vlines(x, low, high, color="0.35", label="simulated 95 % interval")
        ax.hlines(np.r_[low, high], np.r_[x, x] - 0.12, np.r_[x, x] + 0.12, color="0.35")
        ax.scatter(x[~flagged], logged[~flagged], color="tab:blue", zorder=3, s=18, label="logged")
        ax.scatter(x[flagged], logged[flagged], color="tab:red", zorder=3, s=24, label="logged, outside")
        ax.set_xticks(x, [group_label(r) for _, r in rows.iterrows()], fontsize=7)
        relative = "" if statistic == "acceptance_rate" else ", relative to the simulated mean"
        ax.set_title(
            f"{_TITLES[statistic]}{relative}: {int(flagged.sum())} of {len(rows)} groups outside", fontsize=9
        )
        ax.tick_params(axis="y", labelsize=7)
    handles, labels = np.atleast_1d(axes)[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, ncol=4, loc="outside lower center")
    fig.suptitle("Predictive checks: the logs simulated again under the fitted market", fontsize=11)
    out = Path(out)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
