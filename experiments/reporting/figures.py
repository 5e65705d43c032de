"""Figures, each drawn from saved CSV files so it can be redrawn without re-running an experiment.

Segment figures (from ``influmatch segment``):

- :func:`plot_segment_map`: the influencers on the first two principal components, coloured by segment;
- :func:`plot_segment_profiles`: size, median price and estimated engagements per dollar per segment.

Experiment figures (from the statistics files of :mod:`experiments.stats` and CQI run folders):

- :func:`plot_learning_curves`: normalised score (or return) vs environment steps, IQM over seeds with
  95 % bootstrap bands, one line per agent and variant (``stats_curves.csv``);
- :func:`plot_final_scores`: final IQM with its 95 % interval per agent and variant, best on top, with
  the random (0) and oracle (1) reference lines (``stats_final.csv``, optionally ``stats_runs.csv``);
- :func:`plot_cqi_tradeoff`: CQI's number of leaves vs final score, coloured by split threshold
  (``stats_runs.csv``);
- :func:`plot_estimates`: off-policy estimates with their intervals (``estimates.csv`` of
  ``influmatch ope``).

The CQI tree figure is :func:`experiments.reporting.trees.plot_cqi_tree`, and the plain-language reading
of a tree is :mod:`experiments.reporting.rules`. Every agent has one colour in every figure
(:func:`agent_colour`).
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.layout_engine import ConstrainedLayoutEngine  # noqa: E402
from matplotlib.ticker import PercentFormatter  # noqa: E402

from experiments.ope.config import SCOPES  # noqa: E402

DPI = 120
#: Points drawn at most on a segment map (a fixed, seeded sample of the influencers).
MAP_MAX_POINTS = 20_000


def _read_csv(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    frame = pd.read_csv(path)
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column '{missing[0]}'")
    if frame.empty:
        raise ValueError(f"{path}: no rows")
    return frame


def segment_colours(n_segments: int) -> list:
    cmap = plt.get_cmap("tab10" if n_segments <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n_segments)]


#: The figure formats every plot writes, by the file name's suffix.
FIGURE_FORMATS = (".png", ".pdf", ".svg")


def savefig(fig: plt.Figure, out: Path, dpi: float) -> None:
    """``fig.savefig`` in the format of ``out``'s suffix (PNG, PDF or SVG), without the metadata that
    would make the same figure's bytes differ (software version, creation date, SVG ids' salt)."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in FIGURE_FORMATS:
        raise ValueError(f"{out}: expected a figure file ending in {', '.join(FIGURE_FORMATS)}")
    metadata: dict[str, Any] = {
        ".png": {"Software": None},
        ".pdf": {"Creator": None, "Producer": None, "CreationDate": None},
        ".svg": {"Creator": None, "Date": None},
    }[suffix]
    with plt.rc_context({"svg.hashsalt": "influmatch", "pdf.compression": 6}):
        fig.savefig(out, dpi=dpi, metadata=metadata, format=suffix[1:])


def _save(fig: plt.Figure, out_png: Path) -> Path:
    out_png = Path(out_png)
    savefig(fig, out_png, DPI)
    plt.close(fig)
    return out_png


def plot_segment_map(
    labels_csv: Path, profiles_csv: Path, out_png: Path, *, max_points: int = MAP_MAX_POINTS
) -> Path:
    """Scatter of the influencers on (pc1, pc2), coloured by segment, names in the legend.

    Parameters
    ----------
    labels_csv : path
        CSV with ``segment``, ``pc1``, ``pc2`` (``labels.csv`` of ``influmatch segment``).
    profiles_csv : path
        CSV with ``segment``, ``name``, ``share`` (``profiles.csv``).
    out_png : path
        Figure to write.
    max_points : int
        At most this many influencers are drawn: a sample fixed by seed 0, so the figure is reproducible.

    Returns
    -------
    Path of the figure.
    """
    labels = _read_csv(labels_csv, ("segment", "pc1", "pc2"))
    profiles = _read_csv(profiles_csv, ("segment", "name", "share"))
    sampled = len(labels) > max_points
    if sampled:
        rows = np.sort(np.random.default_rng(0).choice(len(labels), size=max_points, replace=False))
        labels = labels.iloc[rows]
    segments = profiles["segment"].to_numpy()
    colours = segment_colours(len(segments))
    fig, ax = plt.subplots(figsize=(9.0, 6.5))
    for colour, (_, profile) in zip(colours, profiles.iterrows(), strict=True):
        points = labels[labels["segment"] == profile["segment"]]
        ax.scatter(
            points["pc1"],
            points["pc2"],
            s=4,
            alpha=0.5,
            color=colour,
            linewidths=0,
            label=f"{profile['segment']}: {profile['name']} ({profile['share']:.0%})",
            rasterized=True,
        )
    shown = f"a sample of {len(labels):,} influencers" if sampled else f"all {len(labels):,} influencers"
    ax.set_title(f"Influencer segments on the first two principal components\n{shown}")
    ax.set_xlabel("principal component 1 (standardised features)")
    ax.set_ylabel("principal component 2")
    legend = ax.legend(title="segment (share)", fontsize=8, title_fontsize=9, markerscale=3, loc="best")
    for handle in legend.legend_handles:
        if handle is not None:
            handle.set_alpha(1.0)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, out_png)


def plot_segment_profiles(profiles_csv: Path, out_png: Path) -> Path:
    """Three bar panels per segment: share of influencers, median list price, engagements per dollar.

    Parameters
    ----------
    profiles_csv : path
        CSV with ``segment``, ``name``, ``share``, ``median_price``, ``value_per_dollar``
        (``profiles.csv`` of ``influmatch segment``).
    out_png : path
        Figure to write.

    Returns
    -------
    Path of the figure.
    """
    profiles = _read_csv(profiles_csv, ("segment", "name", "share", "median_price", "value_per_dollar"))
    names = [f"{s}: {n}" for s, n in zip(profiles["segment"], profiles["name"], strict=True)]
    y = np.arange(len(profiles))
    colours = segment_colours(len(profiles))
    panels = (
        ("share", "share of influencers (%)", lambda v: f"{v:.0%}", False),
        ("median_price", "median list price per post (USD, log scale)", lambda v: f"${v:,.0f}", True),
        ("value_per_dollar", "median expected engagements per dollar", lambda v: f"{v:.2f}", False),
    )
    fig, axes = plt.subplots(1, 3, figsize=(14.0, 0.45 * len(profiles) + 2.0), sharey=True)
    for ax, (column, title, fmt, log) in zip(axes, panels, strict=True):
        values = profiles[column].to_numpy(dtype=float)
        ax.barh(y, values, color=colours)
        if log:
            ax.set_xscale("log")
        if column == "share":
            ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        for yi, value in zip(y, values, strict=True):
            ax.annotate(
                fmt(value), (value, yi), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8
            )
        ax.set_title(title, fontsize=10)
        ax.margins(x=0.25)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, names, fontsize=9)
    axes[0].invert_yaxis()
    fig.suptitle("Segment profiles (engagements per dollar = followers × engagement rate ÷ list price)")
    fig.tight_layout()
    return _save(fig, out_png)


# ================================================================================================
# Experiment figures: learning curves, final scores, CQI's size-score trade-off.
#
# Each is drawn from the statistics files of experiments.stats (stats_curves.csv, stats_final.csv,
# stats_runs.csv), never from a live experiment.
# ================================================================================================

#: Resolution of the experiment figures (dots per inch).
FIGURE_DPI = 150

#: One colour per agent, the same in every figure (matplotlib's tab10/tab20 hues).
AGENT_COLOURS: dict[str, str] = {
    "cqi": "#1f77b4",
    "ppo": "#ff7f0e",
    "maskable_ppo": "#d62728",
    "a2c": "#2ca02c",
    "dqn": "#9467bd",
    "logistic_bandit": "#8c564b",
    "best_value_per_dollar": "#e377c2",
    "cheapest_per_follower": "#bcbd22",
    "best_fit": "#17becf",
    "biggest_reach": "#98df8a",
    "random": "#7f7f7f",
    "oracle": "#000000",
}
#: Agents that are references, not policies one could ship.
REFERENCE_AGENTS = ("oracle", "random")
_LINESTYLES = ("-", "--", "-.", ":")
_NORMALISED_AXIS = "normalised score (0 = random policy, 1 = myopic oracle)"
_METRIC_AXES = {
    "normalized_score": _NORMALISED_AXIS,
    "mean_return": "mean net return per evaluation campaign (thousands of USD)",
}


def agent_colour(agent: str) -> str:
    """The colour of ``agent`` in every figure: fixed for known agents, a stable hash otherwise."""
    if agent in AGENT_COLOURS:
        return AGENT_COLOURS[agent]
    cmap = plt.get_cmap("tab20b")
    match = re.fullmatch(r"segment_(\d+)", agent)
    index = int(match.group(1)) if match else zlib.crc32(agent.encode("utf-8"))
    return matplotlib.colors.to_hex(cmap(index % cmap.N))


def method_styles(methods: list[tuple[str, str]]) -> dict[tuple[str, str], dict]:
    """Colour and line style of every (agent, variant): the agent's colour, one line style per variant.

    Variants of one agent are numbered in sorted order, so the same sweep gets the same styles in every
    figure.
    """
    styles = {}
    by_agent: dict[str, list[str]] = {}
    for agent, variant in sorted(set(methods)):
        by_agent.setdefault(agent, []).append(variant)
    for agent, variants in by_agent.items():
        base = np.asarray(matplotlib.colors.to_rgb(agent_colour(agent)))
        for i, variant in enumerate(variants):
            # Variants of one agent run from a dark to a light shade of its colour (told apart at a
            # glance, still the agent's hue), each with its own line style.
            t = -0.6 + 1.2 * i / (len(variants) - 1) if len(variants) > 1 else 0.0
            shade = base * (1.0 + t) if t < 0 else base + (1.0 - base) * t
            styles[(agent, variant)] = {
                "color": matplotlib.colors.to_hex((float(shade[0]), float(shade[1]), float(shade[2]))),
                "linestyle": _LINESTYLES[i % len(_LINESTYLES)],
            }
    return styles


def save_figure(fig: plt.Figure, out_png: Path) -> Path:
    out_png = Path(out_png)
    savefig(fig, out_png, FIGURE_DPI)
    plt.close(fig)
    return out_png


def _label(agent: str, variant: str) -> str:
    label = agent if variant == "default" else f"{agent} ({variant})"
    if agent == "oracle":
        label += " [reference, reads hidden truth]"
    elif agent == "random":
        label += " [reference]"
    return label


def _reference_lines(ax: plt.Axes, *, vertical: bool) -> None:
    """Dashed lines at 0 (random policy) and 1 (myopic oracle), named on a secondary axis."""
    line = ax.axvline if vertical else ax.axhline
    for value in (0.0, 1.0):
        line(value, color="0.35", linewidth=0.9, linestyle=(0, (4, 3)), zorder=1)
    secondary = ax.secondary_xaxis("top") if vertical else ax.secondary_yaxis("right")
    secondary.set_ticks([0.0, 1.0], ["random", "myopic oracle"])
    secondary.tick_params(labelsize=8, colors="0.3", length=0)


def _two_decimals(value: float) -> str:
    text = f"{value:.2f}"
    return "0.00" if text == "-0.00" else text


def plot_learning_curves(curves_csv: Path, out_png: Path, *, metric: str = "normalized_score") -> Path:
    """Learning curves: IQM across seeds of each method's evaluation score vs environment steps.

    Parameters
    ----------
    curves_csv : path
        ``stats_curves.csv`` of :func:`experiments.stats.learning_curves` (``agent``, ``variant``,
        ``metric``, ``timesteps``, ``n_runs``, ``iqm``, ``ci_low``, ``ci_high``).
    out_png : path
        Figure to write.
    metric : {"normalized_score", "mean_return"}
        Which evaluation metric to draw (``mean_return`` in thousands of USD per campaign).

    Returns
    -------
    Path of the figure. A method evaluated at a single timestep (an untrained reference or heuristic) is a
    dotted horizontal line; the shaded band of each agent is the 95 % bootstrap confidence interval of
    the IQM of its best setting (one band per agent, so the lines stay readable).
    """
    curves = _read_csv(
        curves_csv, ("agent", "variant", "metric", "timesteps", "n_runs", "iqm", "ci_low", "ci_high")
    )
    curves = curves[curves["metric"] == metric]
    if curves.empty:
        raise ValueError(f"{curves_csv}: no rows of metric '{metric}'")
    curves = curves.assign(variant=curves["variant"].astype(str), agent=curves["agent"].astype(str))
    curves = curves.sort_values(["agent", "variant", "timesteps"], kind="stable")
    methods = sorted({(a, v) for a, v in zip(curves["agent"], curves["variant"], strict=True)})
    styles = method_styles(methods)
    last = {
        m: curves[(curves["agent"] == m[0]) & (curves["variant"] == m[1])].iloc[-1]["iqm"] for m in methods
    }
    order = sorted(methods, key=lambda m: (-last[m], m))
    # One band per agent (its best setting's): eleven overlapping bands would hide every line.
    banded = {next(m for m in order if m[0] == agent) for agent in {m[0] for m in methods}}
    fig, ax = plt.subplots(figsize=(10.0, 5.8), layout="constrained")
    x_max = float(curves["timesteps"].max())
    for method in order:
        rows = curves[(curves["agent"] == method[0]) & (curves["variant"] == method[1])].sort_values(
            "timesteps"
        )
        style = styles[method]
        n_runs = int(rows["n_runs"].max())
        label = f"{_label(*method)}, {n_runs} run{'s' if n_runs != 1 else ''}"
        if len(rows) == 1:
            ax.axhline(
                rows["iqm"].iloc[0],
                color=style["color"],
                linewidth=1.4,
                linestyle=":",
                label=label + " (no training)",
            )
            continue
        x = rows["timesteps"].to_numpy(dtype=float)
        ax.plot(
            x, rows["iqm"], color=style["color"], linestyle=style["linestyle"], linewidth=1.8, label=label
        )
        ax.plot(x, rows["iqm"], "o", color=style["color"], markersize=3)
        if method in banded and rows["ci_low"].notna().any():
            ax.fill_between(x, rows["ci_low"], rows["ci_high"], color=style["color"], alpha=0.15, linewidth=0)
    if metric == "normalized_score":
        _reference_lines(ax, vertical=False)
    ax.set_xlim(0, x_max * 1.02 if x_max > 0 else 1.0)
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_xlabel("environment steps (one step = one campaign week)")
    ax.set_ylabel(_METRIC_AXES.get(metric, metric))
    ax.set_title(
        "Learning curves on the fixed evaluation campaigns\n"
        "line: interquartile mean over seeds; band: 95 % bootstrap confidence interval"
    )
    ax.grid(alpha=0.3)
    fig.legend(
        loc="outside right upper",
        fontsize=8,
        title="policy (legend ordered by final score)",
        title_fontsize=8,
    )
    return save_figure(fig, out_png)


def plot_final_scores(final_csv: Path, out_png: Path, *, runs_csv: Path | None = None) -> Path:
    """Final normalised score per method: IQM over seeds with its 95 % confidence interval, best on top.

    Parameters
    ----------
    final_csv : path
        ``stats_final.csv`` (``agent``, ``variant``, ``n_runs``, ``iqm``, ``ci_low``, ``ci_high``).
    out_png : path
        Figure to write.
    runs_csv : path, optional
        ``stats_runs.csv``: every run's own final score is drawn as a small dot.

    Returns
    -------
    Path of the figure.
    """
    final = _read_csv(final_csv, ("agent", "variant", "n_runs", "iqm", "ci_low", "ci_high"))
    final = final.assign(agent=final["agent"].astype(str), variant=final["variant"].astype(str))
    runs = None if runs_csv is None else _read_csv(runs_csv, ("agent", "variant", "normalized_score"))
    final = final.sort_values(["iqm", "agent", "variant"], ascending=[True, True, True], kind="stable")
    styles = method_styles(list(zip(final["agent"], final["variant"], strict=True)))
    y = np.arange(len(final))
    fig, ax = plt.subplots(figsize=(10.0, 0.42 * len(final) + 2.0), layout="constrained")
    labels = []
    for yi, (_, row) in zip(y, final.iterrows(), strict=True):
        method = (row["agent"], row["variant"])
        colour = styles[method]["color"]
        if runs is not None:
            scores = runs[
                (runs["agent"].astype(str) == method[0]) & (runs["variant"].astype(str) == method[1])
            ]
            ax.scatter(
                scores["normalized_score"],
                np.full(len(scores), yi - 0.22),
                s=9,
                color=colour,
                alpha=0.5,
                lw=0,
            )
        if pd.notna(row["ci_low"]):
            ax.plot(
                [row["ci_low"], row["ci_high"]], [yi, yi], color=colour, linewidth=2.5, solid_capstyle="butt"
            )
            text = f"{_two_decimals(row['iqm'])} [{_two_decimals(row['ci_low'])}, {_two_decimals(row['ci_high'])}]"
        else:
            text = f"{_two_decimals(row['iqm'])} (1 run, no interval)"
        ax.plot(row["iqm"], yi, "D", color=colour, markersize=6, markeredgecolor="white", markeredgewidth=0.7)
        ax.annotate(
            text,
            (1.0, yi),
            xycoords=("axes fraction", "data"),
            xytext=(6, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
            annotation_clip=False,
        )
        labels.append(f"{_label(*method)} (n={int(row['n_runs'])})")
    _reference_lines(ax, vertical=True)
    ax.set_yticks(y, labels, fontsize=9)
    ax.set_ylim(-0.7, len(final) - 0.3)
    low = np.nanmin(np.r_[final["ci_low"].to_numpy(dtype=float), final["iqm"].to_numpy(dtype=float), 0.0])
    high = np.nanmax(np.r_[final["ci_high"].to_numpy(dtype=float), final["iqm"].to_numpy(dtype=float), 1.0])
    if runs is not None and len(runs):
        low = min(low, float(runs["normalized_score"].min()))
        high = max(high, float(runs["normalized_score"].max()))
    pad = 0.05 * (high - low)
    ax.set_xlim(low - pad, high + pad)
    ax.set_xlabel("final " + _NORMALISED_AXIS)
    ax.set_title(
        "Final score per policy: interquartile mean over seeds (diamond) with its 95 % bootstrap interval (bar)"
        + ("\ndots: individual runs" if runs is not None else ""),
        fontsize=10,
    )
    ax.grid(axis="x", alpha=0.3)
    engine = fig.get_layout_engine()
    if isinstance(engine, ConstrainedLayoutEngine):
        engine.set(w_pad=0.3)
    return save_figure(fig, out_png)


def plot_cqi_tradeoff(runs_csv: Path, out_png: Path) -> Path:
    """CQI's tree size against its final score: one point per CQI run, coloured by split threshold.

    Parameters
    ----------
    runs_csv : path
        ``stats_runs.csv`` (``agent``, ``n_leaves``, ``normalized_score``, ``split_threshold``); only rows
        of agent ``cqi`` with a leaf count are drawn.
    out_png : path
        Figure to write.

    Returns
    -------
    Path of the figure.
    """
    runs = _read_csv(runs_csv, ("agent", "n_leaves", "normalized_score"))
    cqi = runs[(runs["agent"].astype(str) == "cqi") & runs["n_leaves"].notna()]
    if cqi.empty:
        raise ValueError(f"{runs_csv}: no CQI runs with a number of leaves")
    thresholds = (
        cqi["split_threshold"] if "split_threshold" in cqi.columns else pd.Series(np.nan, index=cqi.index)
    )
    known = sorted(thresholds.dropna().unique())
    cmap = plt.get_cmap("viridis")
    fig, ax = plt.subplots(figsize=(8.0, 5.2), layout="constrained")
    groups = [(t, cqi[thresholds == t]) for t in known]
    if thresholds.isna().any():
        groups.append((None, cqi[thresholds.isna()]))
    for i, (threshold, group) in enumerate(groups):
        colour = "0.5" if threshold is None else cmap(i / max(len(known) - 1, 1) * 0.9)
        label = "not recorded" if threshold is None else f"{threshold:g}"
        ax.scatter(
            group["n_leaves"],
            group["normalized_score"],
            s=46,
            color=colour,
            edgecolor="white",
            lw=0.6,
            label=f"{label} ({len(group)} run{'s' if len(group) != 1 else ''})",
            zorder=3,
        )
    _reference_lines(ax, vertical=False)
    leaves = cqi["n_leaves"].to_numpy(dtype=float)
    if leaves.min() >= 1 and leaves.max() / leaves.min() > 20:
        ax.set_xscale("log")
    ax.margins(x=0.08, y=0.1)
    ax.set_xlabel("number of leaves of the CQI tree (rules)")
    ax.set_ylabel("final " + _NORMALISED_AXIS)
    ax.set_title("CQI: tree size against final score, one point per run")
    ax.grid(alpha=0.3)
    fig.legend(loc="outside right upper", title="split threshold", fontsize=8, title_fontsize=9)
    return save_figure(fig, out_png)


# ------------------------------------------------------------------------------ off-policy estimates
def plot_estimates(estimates_csv: str | Path, out_png: str | Path) -> Path:
    """Every overall estimate with its interval, one panel per scope; the true value (when the table
    has one) as a dashed line and the logging policy's value as a dotted one. Drawn from the CSV
    written by ``influmatch ope``."""
    table = pd.read_csv(estimates_csv)
    if "group_by" in table.columns:
        table = table[table["group_by"] == "all"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    units = {"per_decision": "thousand USD per decision", "per_campaign": "thousand USD per campaign"}
    for ax, scope in zip(axes, SCOPES, strict=True):
        part = table[table["scope"] == scope]
        shown = part[part["estimator"] != "logged"]
        x = np.arange(len(shown))
        est = shown["estimate"].to_numpy()
        err = np.vstack([est - shown["low"].to_numpy(), shown["high"].to_numpy() - est])
        ax.errorbar(
            x, est, yerr=np.abs(err), fmt="o", capsize=4, color="tab:blue", label="estimate, interval"
        )
        ax.set_xticks(x, shown["estimator"])
        if "truth" in shown and shown["truth"].notna().any():
            ax.axhline(float(shown["truth"].dropna().iloc[0]), color="tab:red", ls="--", label="true value")
        logged = part[part["estimator"] == "logged"]
        if len(logged):
            ax.axhline(float(logged["estimate"].iloc[0]), color="grey", ls=":", label="logging policy")
        ax.set_title(scope.replace("_", " "))
        ax.set_ylabel(units[scope])
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(loc="best", fontsize=8)
    fig.tight_layout()
    out_png = Path(out_png)
    savefig(fig, out_png, 120)
    plt.close(fig)
    return out_png
