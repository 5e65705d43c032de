"""The report's section on the ceiling: each policy against the planning oracle, and when to hire.

Reads each run's ``summary.json`` (``score_vs_planner``, ``score_vs_planner_se``) and, when present, the
sweep's ``timing.csv`` / ``waits.csv`` (``influmatch timing``).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["ceiling_and_timing", "planner_scores"]


def _e(text: object) -> str:
    return html.escape(str(text))


def _missing_html(text: str) -> str:
    return f'<p class="missing">{_e(text)}</p>'


def planner_scores(runs: pd.DataFrame) -> pd.DataFrame:
    """Per policy (agent, variant): the mean over seeds of ``score_vs_planner`` (from each run's
    summary.json; 0 = random, 1 = the planning oracle), its standard error (the runs' standard errors
    combined, plus the spread between seeds), and the optimality gap ``1 - score``; empty when no run
    has the score (runs written before the planner existed)."""
    rows = []
    for (agent, variant), group in runs.groupby(["agent", "variant"], sort=False):
        scores, errors = [], []
        for run_dir in group["run_dir"]:
            try:
                summary = json.loads((Path(run_dir) / "summary.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            score, se = summary.get("score_vs_planner"), summary.get("score_vs_planner_se")
            if isinstance(score, (int, float)) and math.isfinite(score):
                scores.append(float(score))
                errors.append(float(se) if isinstance(se, (int, float)) and math.isfinite(se) else 0.0)
        if not scores:
            continue
        n = len(scores)
        within = float(np.sqrt(np.mean(np.square(errors)) / n))
        between = float(np.std(scores, ddof=1) / np.sqrt(n)) if n > 1 else 0.0
        mean = float(np.mean(scores))
        rows.append({"agent": agent, "variant": variant, "seeds": n, "score_vs_planner": mean,
                     "std_error": max(within, between), "optimality_gap": 1.0 - mean})  # fmt: skip
    frame = pd.DataFrame(rows)
    return frame.sort_values("score_vs_planner", ascending=False) if not frame.empty else frame


def ceiling_and_timing(
    sweep_dir: Path, runs: pd.DataFrame, draw: Callable[..., str], label: Callable[[str, str], str]
) -> list[str]:
    """The report section's HTML parts: the planner-scale table and, when the sweep has ``timing.csv``,
    the timing figure (``draw(name, make_figure, caption, wide=...)`` embeds a figure)."""
    from experiments.reporting.timing_figure import plot_timing
    from experiments.timing import TIMING_FILE, WAITS_FILE

    parts = [
        "<p>The myopic oracle (score 1 above) takes the best offer of the week; it is not the best policy. "
        "The planning oracle also reads hidden truth and plans by rollouts (it paces the budget and times "
        "hires), a reference that no deployable policy can reach. On its scale 0 is random offers and 1 the "
        "planner; the optimality gap is the part of the way from random to the planner a policy leaves.</p>"
    ]
    scores = planner_scores(runs)
    if scores.empty:
        parts.append(
            _missing_html(
                "No run of this sweep records score_vs_planner (written before the planner existed)."
            )
        )
    else:
        rows = "".join(
            f"<tr><td>{_e(label(str(r['agent']), str(r['variant'])))}</td><td>{r['score_vs_planner']:.3g} ± "
            f"{2 * r['std_error']:.2g}</td><td>{r['optimality_gap']:.0%}</td><td>{r['seeds']}</td></tr>"
            for r in scores.to_dict("records")
        )
        parts.append(
            '<div class="table-wrap"><table><thead><tr><th>policy</th><th>score vs planner (± 2 s.e.)</th>'
            f"<th>optimality gap</th><th>seeds</th></tr></thead><tbody>{rows}</tbody></table></div>"
        )
    timing_csv = sweep_dir / TIMING_FILE
    if timing_csv.is_file():
        timing = pd.read_csv(timing_csv)
        waits = (timing["decision"] == "wait").sum()
        parts.append(
            f"<p>When to hire: in {waits} of {len(timing)} brand-category and start-month cells waiting beats "
            "hiring at the start of the campaign by two standard errors; elsewhere hire now, or it makes no "
            "clear difference. Below the map, where each policy of this sweep waits.</p>"
        )
        parts.append(
            draw(
                "timing.png",
                lambda p: plot_timing(timing_csv, p, sweep_dir / WAITS_FILE),
                "Planned net value of hiring now minus waiting, per 1,000 USD of budget, by brand category and "
                "start month (planning oracle, hidden truth); the panel below: share of hireable weeks each "
                "policy waited, by month.",
                wide=True,
            )
        )
    else:
        parts.append(
            f"<p>For when to hire, run <code>influmatch timing {_e(sweep_dir)}</code> and rebuild this report.</p>"
        )
    return parts
