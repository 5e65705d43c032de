"""The size-return frontier of tree policies, and the smallest tree that is as good as deep RL.

Drawn from a sweep's statistics files (:mod:`experiments.stats`), never from a live experiment:

- :func:`frontier_table`: one row per tree method (CQI at each split setting, distilled trees at each
  ``max_leaves``) with its number of leaves and its final normalised score (IQM over seeds with the
  95 % bootstrap interval of ``stats_final.csv``);
- :func:`smallest_tree_within`: the smallest tree whose IQM is within ``margin`` (0.05 by default) of
  the best neural (Stable-Baselines3) policy's IQM, as a :class:`FrontierFinding` that can say so in
  one sentence (or say that no tree is);
- :func:`plot_frontier`: normalised score against number of leaves, trees as points with their
  intervals (vertical: the score's 95 % interval; horizontal: the range of leaves over seeds when
  ``stats_runs.csv`` is given), the neural policies as horizontal reference lines at their IQM with
  their interval as a band.

"Within 0.05" compares point estimates (IQM against IQM); the intervals are drawn and reported beside
it so that a reader sees when three seeds cannot tell the two apart.
"""

from __future__ import annotations

import dataclasses
import math
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agents.registry import SB3_AGENTS
from experiments.reporting.figures import (
    _NORMALISED_AXIS,
    _read_csv,
    _reference_lines,
    agent_colour,
    plt,
    save_figure,
)
from experiments.stats import method_label

__all__ = [
    "DEFAULT_MARGIN",
    "NEURAL_AGENTS",
    "TREE_AGENTS",
    "FrontierFinding",
    "frontier_table",
    "plot_frontier",
    "seconds_to_score",
    "smallest_tree_within",
]

#: Agents whose policy is a readable tree (they record ``n_leaves``).
TREE_AGENTS: tuple[str, ...] = ("cqi", "distilled_tree")
#: Agents whose policy is a neural network: the reference lines of the frontier.
NEURAL_AGENTS: tuple[str, ...] = tuple(SB3_AGENTS)
#: How far (in normalised score) below the best neural policy a tree may be and still count as "as good".
DEFAULT_MARGIN = 0.05

_FINAL_COLUMNS = ("agent", "variant", "iqm", "ci_low", "ci_high")
_MARKERS = {"cqi": "o", "distilled_tree": "s"}
#: Tree methods of one agent are shades of one colour map, darker for bigger trees.
_COLOUR_MAPS = {"cqi": "Blues", "distilled_tree": "Greens"}


@dataclasses.dataclass(frozen=True)
class FrontierFinding:
    """The smallest tree within ``margin`` of the best neural policy (``tree`` is None when none is).

    Attributes
    ----------
    margin : float
        Allowed shortfall in normalised score (0 = random policy, 1 = myopic oracle).
    neural : pandas.Series or None
        The best neural method's row of ``stats_final.csv`` (highest IQM); None when the sweep has none.
    tree : pandas.Series or None
        The chosen tree method's row of :func:`frontier_table`; None when no tree qualifies.
    """

    margin: float
    neural: pd.Series | None
    tree: pd.Series | None

    def sentence(self) -> str:
        """The finding in one sentence, with the numbers it rests on."""
        if self.neural is None:
            return "No neural policy in this sweep, so no tree can be compared with one."
        best = (
            f"the best neural policy, {self.neural['label']} "
            f"(IQM {_score(self.neural['iqm'])}{_interval(self.neural)})"
        )
        if self.tree is None:
            return f"No tree policy in this sweep is within {self.margin:g} normalised score of {best}."
        tree = self.tree
        return (
            f"The smallest tree within {self.margin:g} normalised score of {best} is {tree['label']}: "
            f"{_leaves(tree['n_leaves'])} leaves, IQM {_score(tree['iqm'])}{_interval(tree)}."
        )


def _score(value: float) -> str:
    text = f"{float(value):.2f}"
    return "0.00" if text == "-0.00" else text


def _interval(row: pd.Series) -> str:
    low, high = float(row["ci_low"]), float(row["ci_high"])
    if math.isnan(low) or math.isnan(high):
        return ", one run: no interval"
    return f", 95 % interval {_score(low)} to {_score(high)}"


def _leaves(value: float) -> str:
    value = float(value)
    return f"{value:.0f}" if value == round(value) else f"{value:.1f}"


def _labelled(final: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in _FINAL_COLUMNS if c not in final.columns]
    if missing:
        raise ValueError(f"final scores: missing column '{missing[0]}'")
    final = final.copy()
    final["agent"] = final["agent"].astype(str)
    final["variant"] = final["variant"].astype(str)
    if "label" not in final.columns:
        final["label"] = [method_label(a, v) for a, v in zip(final["agent"], final["variant"], strict=True)]
    return final


def frontier_table(final: pd.DataFrame, runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """The tree methods of a sweep with their size and final score, smallest first.

    Parameters
    ----------
    final : DataFrame
        ``stats_final.csv`` (:func:`experiments.stats.final_scores`): ``agent``, ``variant``, ``iqm``,
        ``ci_low``, ``ci_high`` and ``n_leaves`` (mean over the method's runs).
    runs : DataFrame, optional
        ``stats_runs.csv`` (one row per run with ``agent``, ``variant``, ``n_leaves``): adds the range of
        leaves over seeds.

    Returns
    -------
    DataFrame
        One row per method of :data:`TREE_AGENTS` with a leaf count: ``agent``, ``variant``, ``label``,
        ``n_leaves`` (mean over runs), ``leaves_min``, ``leaves_max`` (equal to ``n_leaves`` without
        ``runs``), ``iqm``, ``ci_low``, ``ci_high`` (normalised score) and ``n_runs`` when ``final`` has
        it; sorted by ``n_leaves`` then by IQM (highest first).
    """
    final = _labelled(final)
    if "n_leaves" not in final.columns:
        final["n_leaves"] = np.nan
    trees = final[final["agent"].isin(TREE_AGENTS) & pd.to_numeric(final["n_leaves"]).notna()].copy()
    trees["n_leaves"] = trees["n_leaves"].astype(float)
    trees["leaves_min"] = trees["n_leaves"]
    trees["leaves_max"] = trees["n_leaves"]
    if runs is not None and not trees.empty:
        known = runs.dropna(subset=["n_leaves"]).astype({"agent": str, "variant": str})
        spread = known.groupby(["agent", "variant"])["n_leaves"].agg(["min", "max"])
        for index, row in trees.iterrows():
            key = (row["agent"], row["variant"])
            if key in spread.index:
                trees.loc[index, "leaves_min"] = float(spread.loc[key, "min"])
                trees.loc[index, "leaves_max"] = float(spread.loc[key, "max"])
    columns = [
        "agent",
        "variant",
        "label",
        "n_leaves",
        "leaves_min",
        "leaves_max",
        "iqm",
        "ci_low",
        "ci_high",
    ]
    columns += ["n_runs"] if "n_runs" in trees.columns else []
    trees = trees.sort_values(["n_leaves", "iqm", "label"], ascending=[True, False, True], kind="stable")
    return trees[columns].reset_index(drop=True)


def smallest_tree_within(final: pd.DataFrame, margin: float = DEFAULT_MARGIN) -> FrontierFinding:
    """The smallest tree whose IQM is at least the best neural policy's IQM minus ``margin``.

    Parameters
    ----------
    final : DataFrame
        ``stats_final.csv`` of a sweep (see :func:`frontier_table`).
    margin : float
        Allowed shortfall in normalised score, ``>= 0`` (0.05 by default).

    Returns
    -------
    FrontierFinding
        The best neural method (highest IQM among :data:`NEURAL_AGENTS`) and the qualifying tree with
        the fewest leaves (mean over runs; ties go to the higher IQM), either None when absent.
    """
    if not margin >= 0:
        raise ValueError(f"margin: expected a number >= 0, got {margin!r}")
    final = _labelled(final)
    neural = final[final["agent"].isin(NEURAL_AGENTS)]
    if neural.empty:
        return FrontierFinding(margin, None, None)
    best = neural.sort_values(["iqm", "label"], ascending=[False, True], kind="stable").iloc[0]
    trees = frontier_table(final)
    good = trees[trees["iqm"] >= float(best["iqm"]) - margin - 1e-12]
    return FrontierFinding(margin, best, None if good.empty else good.iloc[0])


def plot_frontier(
    final_csv: Path, out_png: Path, *, runs_csv: Path | None = None, margin: float = DEFAULT_MARGIN
) -> Path:
    """Normalised score against number of leaves for the tree policies, neural policies as lines.

    Parameters
    ----------
    final_csv : path
        ``stats_final.csv`` of a sweep.
    out_png : path
        Figure to write (``.png``, ``.pdf`` or ``.svg``).
    runs_csv : path, optional
        ``stats_runs.csv``: horizontal bars show each tree method's range of leaves over seeds.
    margin : float
        The margin of :func:`smallest_tree_within`, whose sentence is the figure's subtitle.

    Returns
    -------
    Path of the figure.
    """
    final = _labelled(_read_csv(final_csv, _FINAL_COLUMNS))
    runs = _read_csv(runs_csv, ("agent", "variant", "n_leaves")) if runs_csv is not None else None
    trees = frontier_table(final, runs)
    if trees.empty:
        raise ValueError(f"{final_csv}: no tree policies (cqi, distilled_tree) with a number of leaves")
    neural = final[final["agent"].isin(NEURAL_AGENTS)].sort_values("iqm", ascending=False)
    finding = smallest_tree_within(final, margin)
    fig, ax = plt.subplots(figsize=(9.0, 5.6), layout="constrained")
    for _, row in neural.iterrows():
        colour = agent_colour(row["agent"])
        ax.axhline(row["iqm"], color=colour, linewidth=1.4, linestyle="--", zorder=2,
                   label=f"{row['label']} (neural, IQM {_score(row['iqm'])})")  # fmt: skip
        if not (math.isnan(float(row["ci_low"])) or math.isnan(float(row["ci_high"]))):
            ax.axhspan(row["ci_low"], row["ci_high"], color=colour, alpha=0.12, linewidth=0, zorder=1)
    for agent, group in trees.groupby("agent", sort=True):
        cmap = plt.get_cmap(_COLOUR_MAPS.get(str(agent), "Purples"))
        for i, (_, row) in enumerate(group.iterrows()):
            _draw_tree_point(ax, row, cmap(0.45 + 0.5 * i / max(len(group) - 1, 1)))
    if finding.tree is not None:
        ax.scatter([finding.tree["n_leaves"]], [finding.tree["iqm"]], s=260, facecolor="none",
                   edgecolor="black", linewidth=1.6, zorder=5, label="smallest tree within the margin")  # fmt: skip
    _reference_lines(ax, vertical=False)
    if trees["leaves_min"].min() >= 1 and trees["leaves_max"].max() / trees["leaves_min"].min() > 20:
        ax.set_xscale("log")
    ax.margins(x=0.08, y=0.1)
    ax.set_xlabel("number of leaves (rules), mean over seeds")
    ax.set_ylabel("final " + _NORMALISED_AXIS)
    title = "Tree size against final score (IQM over seeds, 95 % intervals)"
    ax.set_title(f"{title}\n{textwrap.fill(finding.sentence(), 85)}", fontsize=10)
    ax.grid(alpha=0.3)
    fig.legend(loc="outside right upper", fontsize=8)
    return save_figure(fig, out_png)


def _draw_tree_point(ax: plt.Axes, row: pd.Series, colour: Any) -> None:
    y, x = float(row["iqm"]), float(row["n_leaves"])
    low, high = float(row["ci_low"]), float(row["ci_high"])
    yerr = None if math.isnan(low) else [[y - low], [high - y]]
    xerr = [[x - float(row["leaves_min"])], [float(row["leaves_max"]) - x]]
    ax.errorbar([x], [y], yerr=yerr, xerr=xerr, fmt=_MARKERS.get(row["agent"], "D"), color=colour,
                markersize=7, capsize=3, linewidth=1.2, zorder=4, label=row["label"])  # fmt: skip


def seconds_to_score(runs: pd.DataFrame, target: float = 0.6) -> pd.DataFrame:
    """Training wall-clock until each run's evaluation first reached ``target`` normalised score.

    Parameters
    ----------
    runs : DataFrame
        Per-run table with ``agent``, ``variant``, ``seed`` and ``run_dir`` (a run folder with ``eval.csv``
        and ``progress.csv``), as :func:`experiments.stats.read_sweep_runs` gives.
    target : float
        The normalised score to reach (0 = random policy, 1 = myopic oracle).

    Returns
    -------
    DataFrame
        One row per run: ``agent``, ``variant``, ``label``, ``seed``, ``timesteps`` (environment steps at the
        first evaluation at or above ``target``; NaN when none was) and ``train_seconds`` (training
        wall-clock at that step, evaluations excluded: the first ``progress.csv`` row at or after it).
        Evaluations are every ``eval_every`` steps, so both are upper bounds at that resolution.
    """
    rows = []
    for _, run in runs.iterrows():
        steps = seconds = math.nan
        folder = Path(run["run_dir"])
        if (folder / "eval.csv").is_file() and (folder / "progress.csv").is_file():
            evals = pd.read_csv(folder / "eval.csv")
            reached = evals[evals["normalized_score"] >= target]
            if not reached.empty:
                steps = float(reached["timesteps"].iloc[0])
                progress = pd.read_csv(folder / "progress.csv")
                later = progress[progress["timesteps"] >= steps]
                seconds = float(later["train_seconds"].iloc[0]) if steps > 0 and not later.empty else 0.0
        rows.append({"agent": run["agent"], "variant": run["variant"],
                     "label": method_label(str(run["agent"]), str(run["variant"])), "seed": run["seed"],
                     "timesteps": steps, "train_seconds": seconds})  # fmt: skip
    return pd.DataFrame(rows, columns=["agent", "variant", "label", "seed", "timesteps", "train_seconds"])
