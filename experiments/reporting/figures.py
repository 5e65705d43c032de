"""Figures, each drawn from saved CSV files so it can be redrawn without re-running an experiment.

Segment figures (from ``influmatch segment``):

- :func:`plot_segment_map`: the influencers on the first two principal components, coloured by segment;
- :func:`plot_segment_profiles`: size, median price and estimated engagements per dollar per segment.

Experiment figures (from the statistics files of :mod:`experiments.stats` and CQI run folders):

- :func:`plot_learning_curves`: normalised score (or return) vs environment steps, IQM over seeds with
  95 % bootstrap bands, one line per agent and variant (``stats_curves.csv``);
- :func:`plot_final_scores`: final IQM with its 95 % interval per agent and variant, best on top, with
  the random (0) and oracle (1) reference lines (``stats_final.csv``, optionally ``stats_runs.csv``);
- :func:`plot_cqi_tree`: a CQI tree with its tests in plain words (``model.json`` / ``tree.txt``);
- :func:`plot_cqi_tradeoff`: CQI's number of leaves vs final score, coloured by split threshold
  (``stats_runs.csv``).

Every agent has one colour in every figure (:func:`agent_colour`). The plain-language reading of a CQI
tree (:func:`tree_rules`, :func:`describe_condition`, :func:`describe_action`) lives here too, beside the
tree figure, and is shared with the HTML report.
"""

from __future__ import annotations

import json
import math
import re
import textwrap
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import PercentFormatter  # noqa: E402

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


def _segment_colours(n_segments: int) -> list:
    cmap = plt.get_cmap("tab10" if n_segments <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n_segments)]


def _save(fig: plt.Figure, out_png: Path) -> Path:
    out_png = Path(out_png)
    fig.savefig(out_png, dpi=DPI, metadata={"Software": None})
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
    colours = _segment_colours(len(segments))
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
    colours = _segment_colours(len(profiles))
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
# Experiment figures: learning curves, final scores, the CQI tree, CQI's size-score trade-off.
#
# Each is drawn from the statistics files of experiments.stats (stats_curves.csv, stats_final.csv,
# stats_runs.csv) or from a CQI run's model.json / tree.txt, never from a live experiment.
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
            # Later variants are darker shades of the agent's colour, with another line style.
            shade = base * (1.0 - 0.5 * i / max(len(variants), 2)) if len(variants) > 1 else base
            styles[(agent, variant)] = {
                "color": matplotlib.colors.to_hex(shade),
                "linestyle": _LINESTYLES[i % len(_LINESTYLES)],
            }
    return styles


def _save_figure(fig: plt.Figure, out_png: Path) -> Path:
    out_png = Path(out_png)
    fig.savefig(out_png, dpi=FIGURE_DPI, metadata={"Software": None})
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
    dotted horizontal line; shaded bands are 95 % bootstrap confidence intervals of the IQM.
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
        if rows["ci_low"].notna().any():
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
    return _save_figure(fig, out_png)


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
    fig.get_layout_engine().set(w_pad=0.3)
    return _save_figure(fig, out_png)


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
    return _save_figure(fig, out_png)


# ------------------------------------------------------------------------------------------ CQI trees
# A CQI run writes model.json (CQI.to_dict: nodes by id; an internal node tests x[feature] < threshold,
# true going left; a leaf holds one Q-value per action) and tree.txt (CQI.export_text, the same tree
# in pre-order with feature and action names). The names come from tree.txt (or from config.json's
# feature_names / action_names), the structure and the numbers from model.json.

MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_ACTION = re.compile(r"^seg (\d+) · (.+) · ([0-9.]+)×$")
_SEGMENT_FEATURE = re.compile(r"^seg (\d+) (value per \$|hires|mean load|affordable)$")
_LEAF_LINE = re.compile(r"^→ (.*)  \(Q=(.*)\)$")
_TEST_LINE = re.compile(r"^if (.*) < ([^ ]+):$")


@dataclass(frozen=True)
class TreeNode:
    """One node of a CQI tree: a test ``feature < threshold`` (yes: ``left``) or a leaf ``action``."""

    id: int
    depth: int
    feature: str | None = None
    threshold: float = math.nan
    left: int = -1
    right: int = -1
    action: str | None = None
    q: float = math.nan

    @property
    def is_leaf(self) -> bool:
        return self.action is not None


def parse_tree_text(text: str, source: str = "tree.txt") -> list[TreeNode]:
    """The nodes of a tree written by ``CQI.export_text`` (ids in pre-order, root 0)."""
    lines = [line for line in text.splitlines() if line.strip()]
    nodes: dict[int, TreeNode] = {}
    position = 0

    def parse(indent: int, depth: int) -> int:
        nonlocal position
        if position >= len(lines):
            raise ValueError(f"{source}: the tree ends early")
        line = lines[position]
        body = line[indent:]
        if line[:indent].strip() or body.startswith(" "):
            raise ValueError(f"{source}: line {position + 1}: unexpected indentation")
        node = len(nodes)
        position += 1
        leaf = _LEAF_LINE.match(body)
        if leaf:
            nodes[node] = TreeNode(node, depth, action=leaf.group(1), q=float(leaf.group(2)))
            return node
        test = _TEST_LINE.match(body)
        if not test:
            raise ValueError(
                f"{source}: line {position}: expected 'if FEATURE < VALUE:' or '→ ACTION  (Q=...)'"
            )
        nodes[node] = TreeNode(node, depth)  # placeholder, keeps pre-order ids
        left = parse(indent + 4, depth + 1)
        if position >= len(lines) or lines[position] != " " * indent + "else:":
            raise ValueError(f"{source}: line {position + 1}: expected 'else:'")
        position += 1
        right = parse(indent + 4, depth + 1)
        nodes[node] = TreeNode(
            node, depth, feature=test.group(1), threshold=float(test.group(2)), left=left, right=right
        )
        return node

    parse(0, 0)
    if position != len(lines):
        raise ValueError(f"{source}: line {position + 1}: text after the end of the tree")
    return [nodes[i] for i in range(len(nodes))]


def _preorder(nodes: dict[int, dict], root: int = 0) -> list[int]:
    order, stack = [], [root]
    while stack:
        node = stack.pop()
        order.append(node)
        if "left" in nodes[node]:
            stack += [nodes[node]["right"], nodes[node]["left"]]
    return order


def read_cqi_tree(run_dir: Path) -> list[TreeNode]:
    """The named tree of a CQI run folder, from ``model.json`` and ``tree.txt`` (either alone suffices).

    With ``model.json``, thresholds and Q-values are exact and the greedy action of a leaf is the argmax
    of its Q-values; names come from ``config.json`` (``feature_names``, ``action_names``) or from
    ``tree.txt`` matched node by node, else ``x[i]`` / ``action i``. Nodes are returned by id.
    """
    run_dir = Path(run_dir)
    model_path, text_path = run_dir / "model.json", run_dir / "tree.txt"
    if not model_path.is_file():
        if not text_path.is_file():
            raise FileNotFoundError(f"{run_dir}: no model.json or tree.txt (not a CQI run folder)")
        return parse_tree_text(text_path.read_text(encoding="utf-8"), str(text_path))
    try:
        model = json.loads(model_path.read_text(encoding="utf-8"))
        raw = {int(n["id"]): n for n in model["nodes"]}
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{model_path}: not a CQI model file ({type(err).__name__}: {err})") from None
    if 0 not in raw:
        raise ValueError(f"{model_path}: the tree has no root node 0")
    feature_names: dict[int, str] = {}
    action_names: dict[int, str] = {}
    config_path = run_dir / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    if isinstance(config.get("feature_names"), list):
        feature_names = dict(enumerate(map(str, config["feature_names"])))
    if isinstance(config.get("action_names"), list):
        action_names = dict(enumerate(map(str, config["action_names"])))
    greedy = {i: int(np.argmax([float(v) for v in n["q"]])) for i, n in raw.items() if "q" in n}
    if text_path.is_file() and not (feature_names and action_names):
        named = parse_tree_text(text_path.read_text(encoding="utf-8"), str(text_path))
        order = _preorder(raw)
        if len(named) != len(order) or any(
            t.is_leaf != ("q" in raw[i]) for t, i in zip(named, order, strict=True)
        ):
            raise ValueError(f"{text_path}: does not describe the tree of {model_path.name}")
        for text_node, i in zip(named, order, strict=True):
            if text_node.is_leaf:
                action_names.setdefault(greedy[i], text_node.action)
            else:
                feature_names.setdefault(int(raw[i]["feature"]), text_node.feature)
    nodes = []
    for i in sorted(raw):
        n = raw[i]
        depth = int(n.get("depth", 0))
        if "q" in n:
            q = [float(v) for v in n["q"]]
            a = greedy[i]
            nodes.append(TreeNode(i, depth, action=action_names.get(a, f"action {a}"), q=q[a]))
        else:
            f = int(n["feature"])
            nodes.append(
                TreeNode(
                    i,
                    depth,
                    feature=feature_names.get(f, f"x[{f}]"),
                    threshold=float(n["threshold"]),
                    left=int(n["left"]),
                    right=int(n["right"]),
                )
            )
    return nodes


def segment_names_from(actions: Iterable[str], profiles_csv: Path | None = None) -> dict[int, str]:
    """Segment index -> name, from ``profiles.csv`` and the action names (``seg 3 · NAME · 1×``)."""
    names: dict[int, str] = {}
    if profiles_csv is not None and Path(profiles_csv).is_file():
        profiles = pd.read_csv(profiles_csv)
        if {"segment", "name"} <= set(profiles.columns):
            names.update({int(s): str(n) for s, n in zip(profiles["segment"], profiles["name"], strict=True)})
    for action in actions:
        match = _ACTION.match(action)
        if match:
            names[int(match.group(1))] = match.group(2)
    return names


def _percent(value: float) -> str:
    return f"{100 * value:.0f} %"


def _money(dollars: float) -> str:
    if dollars >= 1e6:
        return f"${dollars / 1e6:.3g}M"
    if dollars >= 1e3:
        return f"${dollars / 1e3:.3g}k"
    return f"${dollars:.3g}"


def _segment(index: int, names: dict[int, str]) -> str:
    return f"segment {index} ({names[index]})" if index in names else f"segment {index}"


def _integers(low: float | None, high: float | None, smallest: int, largest: int) -> tuple[int, int]:
    """The whole numbers n in [smallest, largest] with low <= n < high: (first, last), empty if first > last."""
    first = smallest if low is None else max(smallest, math.ceil(low))
    last = largest if high is None else min(largest, math.ceil(high) - 1)
    return first, last


def _is_binary(feature: str) -> bool:
    return feature.startswith(("brand is ", "goal is ")) or feature.endswith(" affordable")


def feasible(feature: str, low: float | None, high: float | None) -> bool:
    """Whether some observation has ``low <= feature < high`` (binary and whole-number features)."""
    if low is not None and high is not None and low >= high:
        return False
    if _is_binary(feature):
        first, last = _integers(low, high, 0, 1)
    elif feature == "month":
        first, last = _integers(low, high, 0, 11)
    elif feature.endswith(" hires"):
        first, last = _integers(low, high, 0, 10**6)
    else:
        return True
    return first <= last


def describe_condition(
    feature: str, low: float | None, high: float | None, segment_names: dict[int, str] | None = None
) -> str:
    """``low <= feature < high`` (either bound may be None) in plain words, for a marketer.

    Knows the features of ``InfluencerMatchingEnv`` (``brand is beauty``, ``share of budget left``,
    ``seg 3 hires``, ...); any other feature reads as ``name < value``.
    """
    names = segment_names or {}

    def span(fmt, below: str, above: str, between: str) -> str:
        if low is None:
            return below.format(fmt(high))
        if high is None:
            return above.format(fmt(low))
        return between.format(fmt(low), fmt(high))

    is_true = low is not None  # a 0/1 feature tested at a value in (0, 1)
    if feature.startswith("brand is "):
        category = feature[len("brand is ") :]
        return f"the brand sells {category}" if is_true else f"the brand does not sell {category}"
    if feature.startswith("goal is "):
        goal = feature[len("goal is ") :]
        return f"the campaign goal is {goal}" if is_true else f"the campaign goal is not {goal}"
    if feature == "share of budget left":
        return span(
            _percent,
            "less than {} of the budget is left",
            "at least {} of the budget is left",
            "between {} and {} of the budget is left",
        )
    if feature == "share of weeks left":
        return span(
            _percent,
            "less than {} of the campaign's weeks are left",
            "at least {} of the campaign's weeks are left",
            "between {} and {} of the campaign's weeks are left",
        )
    if feature == "log10 budget":
        return span(
            lambda v: _money(10.0**v),
            "the campaign budget is under {}",
            "the campaign budget is {} or more",
            "the campaign budget is between {} and {}",
        )
    if feature == "month":
        first, last = _integers(low, high, 0, 11)
        if low is None:
            return f"it is before {MONTHS[last + 1]}" if last < 11 else "it is any month"
        if high is None:
            return f"it is {MONTHS[first]} or later in the year"
        return f"it is {MONTHS[first]} to {MONTHS[last]}" if first != last else f"it is {MONTHS[first]}"
    match = _SEGMENT_FEATURE.match(feature)
    if match:
        who = _segment(int(match.group(1)), names)
        kind = match.group(2)
        if kind == "affordable":
            return (
                f"some influencer of {who} is affordable"
                if is_true
                else f"no influencer of {who} is affordable"
            )
        if kind == "hires":
            first, last = _integers(low, high, 0, 10**6)
            if high is not None and last == 0:
                return f"no influencer of {who} has been hired yet"
            if low is None:
                return f"at most {last} influencers of {who} have been hired"
            if high is None:
                return f"at least {first} influencer{'s' if first != 1 else ''} of {who} have been hired"
            return f"{first} to {last} influencers of {who} have been hired"
        if kind == "mean load":
            return span(
                lambda v: f"{v:.2g}",
                f"{who}'s mean sponsored load is below {{}} recent posts",
                f"{who}'s mean sponsored load is {{}} recent posts or more",
                f"{who}'s mean sponsored load is between {{}} and {{}} recent posts",
            )
        return span(
            lambda v: f"{v:.3g}",
            f"the best available influencer of {who} offers an estimated value per $ below {{}}",
            f"the best available influencer of {who} offers an estimated value per $ of {{}} or more",
            f"the best available influencer of {who} offers an estimated value per $ between {{}} and {{}}",
        )
    return span(lambda v: f"{v:.4g}", f"{feature} < {{}}", f"{feature} ≥ {{}}", f"{{}} ≤ {feature} < {{}}")


def describe_action(action: str, segment_names: dict[int, str] | None = None) -> str:
    """An action name (``seg 3 · micro · instagram · beauty · 1×`` or ``wait``) as an instruction."""
    if action == "wait":
        return "wait a week (make no offer)"
    match = _ACTION.match(action)
    if not match:
        return f"take action '{action}'"
    segment, name, ratio = int(match.group(1)), match.group(2), match.group(3)
    name = (segment_names or {}).get(segment, name)
    return f"offer {ratio}× list price to the best available {name} influencer (segment {segment})"


def _short_action(action: str) -> str:
    if action == "wait":
        return "wait a week"
    match = _ACTION.match(action)
    if not match:
        return action
    return f"offer {match.group(3)}× list price to\n{match.group(2)} (seg {match.group(1)})"


@dataclass(frozen=True)
class Rule:
    """One leaf of a tree as a rule: the conditions on its path, what it does, and its Q-value."""

    leaf: int
    conditions: tuple[str, ...]
    action: str
    q: float
    reachable: bool

    def text(self) -> str:
        """``If A and B → do X``."""
        if not self.conditions:
            return f"Always → {self.action}"
        return "If " + " and ".join(self.conditions) + f" → {self.action}"


def tree_rules(nodes: list[TreeNode], segment_names: dict[int, str] | None = None) -> list[Rule]:
    """Every leaf of the tree as a plain-language rule, in the tree's top-to-bottom order.

    The tests on a leaf's path are merged per feature into one interval. A rule whose interval contains no
    possible value of a whole-number feature (``brand is beauty`` between 0.01 and 0.1) is marked
    ``reachable=False``. When the brand's category (or the goal) is known, the negative tests on the other
    categories (goals) are dropped.
    """
    by_id = {n.id: n for n in nodes}
    names = (
        segment_names
        if segment_names is not None
        else segment_names_from(n.action for n in nodes if n.is_leaf)
    )
    rules: list[Rule] = []

    def walk(node_id: int, bounds: dict[str, list]) -> None:
        node = by_id[node_id]
        if node.is_leaf:
            reachable = all(feasible(f, lo, hi) for f, (lo, hi) in bounds.items())
            positive = {
                f.split(" is ")[0]
                for f, (lo, _) in bounds.items()
                if f.startswith(("brand is ", "goal is ")) and lo is not None
            }
            conditions = tuple(
                describe_condition(f, lo, hi, names)
                for f, (lo, hi) in bounds.items()
                if not (
                    f.startswith(("brand is ", "goal is ")) and lo is None and f.split(" is ")[0] in positive
                )
            )
            rules.append(Rule(node.id, conditions, describe_action(node.action, names), node.q, reachable))
            return
        for child, side in ((node.left, "high"), (node.right, "low")):
            lo, hi = bounds.get(node.feature, [None, None])
            if side == "high":
                hi = node.threshold if hi is None else min(hi, node.threshold)
            else:
                lo = node.threshold if lo is None else max(lo, node.threshold)
            walk(child, {**bounds, node.feature: [lo, hi]})

    walk(0, {})
    return rules


def _tree_layout(by_id: dict[int, TreeNode]) -> tuple[dict[int, tuple[float, float]], int, int]:
    """(x = depth, y = minus the row) of every node: leaves on rows top to bottom, parents centred."""
    position: dict[int, tuple[float, float]] = {}
    rows = 0

    def place(node_id: int, depth: int) -> float:
        nonlocal rows
        node = by_id[node_id]
        if node.is_leaf:
            y = -float(rows)
            rows += 1
        else:
            y = 0.5 * (place(node.left, depth + 1) + place(node.right, depth + 1))
        position[node_id] = (float(depth), y)
        return y

    place(0, 0)
    depth = int(max(x for x, _ in position.values()))
    return position, rows, depth


def plot_cqi_tree(
    run_dir: Path, out_png: Path, *, profiles_csv: Path | None = None, title: str | None = None
) -> Path:
    """The CQI tree of a run folder as a figure: questions in boxes, yes/no branches, leaves with actions.

    Drawn left to right (the root on the left, one row per leaf), which stays readable for trees of
    up to about 30 leaves. An internal node shows its test in plain words ("less than 42 % of the budget
    is left?"); a leaf shows the greedy action and its Q-value (thousands of USD); leaves no campaign can
    reach are greyed.

    Parameters
    ----------
    run_dir : path
        A CQI run folder with ``model.json`` and/or ``tree.txt`` (see :func:`read_cqi_tree`).
    out_png : path
        Figure to write.
    profiles_csv : path, optional
        Segment profiles of the *same market* as the run, for the names of segments that appear in tests
        but in no leaf's action (by default those come from the action names only).
    title : str, optional
        Title; default names the run folder.

    Returns
    -------
    Path of the figure.
    """
    nodes = read_cqi_tree(run_dir)
    by_id = {n.id: n for n in nodes}
    names = segment_names_from((n.action for n in nodes if n.is_leaf), profiles_csv)
    reachable = {rule.leaf: rule.reachable for rule in tree_rules(nodes, names)}
    position, n_leaves, depth = _tree_layout(by_id)
    column, row, header = 2.9, 0.62, 1.0
    fig_width = max(8.0, column * (depth + 1) + 0.4)
    fig_height = max(3.0, row * n_leaves + header)
    fig, ax = plt.subplots(figsize=(fig_width, fig_height))
    fig.subplots_adjust(left=0.005, right=0.995, bottom=0.2 / fig_height, top=1 - header / fig_height)
    segment_colours = _segment_colours(max([*names, 0]) + 1)
    for node in nodes:
        x, y = position[node.id]
        if not node.is_leaf:
            # A yes/no feature asks "does the brand sell beauty?" (yes: the right child, value 1);
            # any other asks about the left child ("less than 42 % of the budget is left?").
            binary = _is_binary(node.feature)
            question = (
                describe_condition(node.feature, node.threshold, None, names)
                if binary
                else describe_condition(node.feature, None, node.threshold, names)
            )
            words = ("no", "yes") if binary else ("yes", "no")
            for child, word in zip((node.left, node.right), words, strict=True):
                cx, cy = position[child]
                ax.plot([x, x + 0.5, x + 0.5, cx], [y, y, cy, cy], color="0.55", linewidth=0.9, zorder=1)
                ax.annotate(
                    word,
                    (x + 0.5, cy),
                    xytext=(3, 1.5),
                    textcoords="offset points",
                    fontsize=7,
                    color="0.25",
                    va="bottom",
                    zorder=2,
                )
            box = {
                "boxstyle": "round,pad=0.35",
                "facecolor": "#f2f2f2",
                "edgecolor": "0.45",
                "linewidth": 0.8,
            }
            text = textwrap.fill(question[0].upper() + question[1:] + "?", 32)
            ax.text(x, y, text, ha="center", va="center", fontsize=7.5, bbox=box, zorder=3)
            continue
        match = _ACTION.match(node.action)
        colour = segment_colours[int(match.group(1)) % len(segment_colours)] if match else (0.6, 0.6, 0.6)
        face = 0.75 + 0.25 * np.asarray(matplotlib.colors.to_rgb(colour))  # opaque: lines stay behind
        text = f"{_short_action(node.action)}\nQ = {node.q:.3g} $k"
        ink = "black"
        if not reachable.get(node.id, True):
            face, ink, text = (0.96, 0.96, 0.96, 1.0), "0.5", text + " · never reached"
        box = {"boxstyle": "round,pad=0.35", "facecolor": face, "edgecolor": colour, "linewidth": 1.1}
        ax.text(x, y, text, ha="center", va="center", fontsize=7.5, bbox=box, zorder=3, color=ink)
    ax.set_xlim(-0.55, depth + 0.6)
    ax.set_ylim(-(n_leaves - 1) - 0.55, 0.55)
    ax.axis("off")
    if title is None:
        title = f"CQI policy tree of run {Path(run_dir).resolve().name}"
    explanation = (
        "Start at the left. Each grey box asks about the current campaign week; follow 'yes' or 'no' to the "
        "action on the right. Q: the tree's estimate of the rest of the campaign's net value (thousands of USD)."
    )
    fig.suptitle(
        f"{title}: {n_leaves} leaves, depth {depth}\n" + textwrap.fill(explanation, int(fig_width * 15)),
        fontsize=9,
        y=1 - 0.1 / fig_height,
        va="top",
    )
    return _save_figure(fig, out_png)
