"""The best-time-to-match figure, drawn from ``timing.csv`` (and ``waits.csv``) of :mod:`experiments.timing`."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from envs.calibration import MONTHS  # noqa: E402

__all__ = ["plot_timing"]


def plot_timing(timing_csv: Path, out: Path, waits_csv: Path | None = None, title: str | None = None) -> Path:
    """Heat map of hire-now minus wait (USD per thousand USD of budget) per brand category (rows) and start month
    (columns); cells where waiting is better by two standard errors are marked "wait", where hiring now
    is, "hire". With ``waits_csv``, a panel below shows, by month, the share of hireable weeks each
    policy waited. The format follows ``out``'s suffix (PNG, PDF, SVG)."""
    table = pd.read_csv(timing_csv)
    categories = list(dict.fromkeys(table["category"]))
    months = sorted(table["month"].unique())
    grid = table.pivot(index="category", columns="month", values="advantage").loc[categories, months]
    decision = table.pivot(index="category", columns="month", values="decision").loc[categories, months]
    waits = pd.read_csv(waits_csv) if waits_csv is not None and Path(waits_csv).is_file() else None
    rows = 2 if waits is not None else 1
    fig, axes = plt.subplots(
        rows, 1, figsize=(9, 0.42 * len(categories) + 1.6 + (2.2 if waits is not None else 0)),
        gridspec_kw={"height_ratios": [len(categories), 4] if waits is not None else [1]}, squeeze=False,
    )  # fmt: skip
    ax = axes[0, 0]
    values = grid.to_numpy(dtype=float)
    limit = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0
    image = ax.imshow(values, cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(len(months)), [MONTHS[m] for m in months])
    ax.set_yticks(range(len(categories)), categories)
    for r, c in np.ndindex(values.shape):
        label = {"wait": "wait", "hire now": "hire"}.get(str(decision.iat[r, c]), "")
        if label:
            ax.text(c, r, label, ha="center", va="center", fontsize=7)
    ax.set_xlabel("campaign start month")
    ax.set_title(title or "Hire now or wait? Planned net value of hiring now minus waiting")
    fig.colorbar(image, ax=ax, fraction=0.03, pad=0.02, label="hire now − wait, USD per 1,000 USD of budget")
    if waits is not None:
        wax = axes[1, 0]
        for policy, group in waits.groupby("policy", sort=False):
            wax.plot(group["month"], group["wait_share"], marker="o", label=str(policy))
        wax.set_xticks(range(12), list(MONTHS))
        wax.set_ylabel("share of weeks waited")
        wax.set_ylim(0, 1)
        wax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
