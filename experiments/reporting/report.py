"""The HTML report of a sweep: one self-contained page a product team can read (``influmatch report``).

(This module is over 600 lines because it is one page: each section's wording, the recommendation it
explains and the caveats beside it read together, top to bottom, as the page does.)

The page answers the sweep's question ("which match policy should we ship?") from the data: the best
deployable policy by interquartile mean (IQM) of the final normalised score, with its 95 % confidence
interval and its probability of improvement over the runner-up (the oracle reads hidden truth and is
never recommended). It then shows the comparison table, the learning curves, the final scores, the CQI
policy as plain-language rules and as a tree, CQI's size-score trade-off, the influencer segments and
the caveats. Anything the sweep lacks (no CQI runs, no segments) is said, not skipped silently.

Figures are PNG embedded as base64 and the CSS is inline, so the file can be mailed on its own. The
statistics are written into the sweep folder first (``stats_*.csv``, :func:`experiments.stats.summarize_sweep`)
and every figure is drawn from those files. The CQI rules read features through their typed specs
(:mod:`experiments.reporting.rules`). The same sweep gives the same bytes: no timestamps, seeded
bootstraps, PNGs without software metadata.
"""

from __future__ import annotations

import base64
import html
import math
import re
import struct
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from experiments import stats
from experiments.files import check_output, write_text_atomic
from experiments.reporting.ceiling import ceiling_and_timing
from experiments.reporting.figures import (
    REFERENCE_AGENTS,
    plot_cqi_tradeoff,
    plot_final_scores,
    plot_learning_curves,
    plot_segment_map,
    plot_segment_profiles,
)
from experiments.reporting.rules import Rule, segment_names_from, tree_rules
from experiments.reporting.trees import plot_cqi_tree, read_cqi_tree

REPORT_FILE = "report.html"
SWEEP_CONFIG = "sweep.yaml"
SEGMENTS_DIR = "segments"
DEFAULT_QUESTION = "Which match policy should we ship?"
#: Agents a product team cannot ship: the oracle reads the simulator's hidden truth.
NOT_DEPLOYABLE = ("oracle",)

SECTIONS = (
    "The question and the short answer",
    "Comparison of the policies",
    "Learning curves",
    "Final scores",
    "The CQI policy in plain language",
    "The CQI tree",
    "Tree size against score",
    "Influencer segments",
    "Against the best policy found, and when to hire",
    "Caveats",
    "About this report",
)

#: The published figures the simulated market is calibrated to (docs/calibration.md), briefly.
CALIBRATION_SOURCES = (
    "follower and engagement distributions fitted to 33,935 Instagram influencers (Kim et al., WWW 2020)",
    "tier shares and fake-follower rates (HypeAuditor 2021-2026; SRF data study 2017)",
    "list prices per post ($10-20 per 1,000 Instagram followers; WebFX, Hashtag Pay Me 2023, Lumanu 2024)",
    "campaign goals and budgets (Influencer Marketing Hub 2020-2021)",
    "nano influencers earn about 5× the revenue per follower of macro influencers "
    "(Beichert et al., Journal of Marketing 2024)",
    "about a quarter of matches lose money (Influencer Marketing Hub)",
    "follower loss after sponsored posts (Cheng & Zhang, Management Science 2025)",
)

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #1d1d1f;
       max-width: 1040px; margin: 2em auto; padding: 0 1.2em; line-height: 1.5; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; }
h2 { font-size: 1.3em; margin-top: 2.2em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.question { font-size: 1.15em; font-style: italic; }
.answer { background: #eef5fb; border-left: 4px solid #1f77b4; padding: 0.8em 1em; }
.missing { color: #8a5a00; background: #fff7e6; border-left: 4px solid #e0a000; padding: 0.5em 0.9em; }
.table-wrap { max-width: 100%; overflow-x: auto; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.92em; max-width: 100%; }
th, td { border: 1px solid #d0d0d0; padding: 0.3em 0.6em; text-align: right; vertical-align: top;
         overflow-wrap: anywhere; }
th { background: #f4f4f4; } td.text, th.text { text-align: left; }
tr.reference td { color: #666; }
figure { margin: 1.2em 0; max-width: 100%; } figure img { max-width: 100%; height: auto; }
figcaption { font-size: 0.88em; color: #555; }
ol.rules li { margin-bottom: 0.45em; } .q { color: #666; font-size: 0.9em; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; max-width: 100%; }
"""


def write_report(sweep_dir: Path, out: Path | None = None, *, overwrite: bool = False) -> Path:
    """Write the report of ``sweep_dir`` atomically to ``out`` (default ``SWEEP_DIR/report.html``); an
    existing report is replaced only with ``overwrite``."""
    sweep_dir = Path(sweep_dir)
    out = Path(out) if out is not None else sweep_dir / REPORT_FILE
    if out.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"--out {out}: expected a file name ending in .html")
    check_output(out, overwrite, folder=False)
    text = build_report(sweep_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, text)
    return out


# ------------------------------------------------------------------------------------------ the answer


@dataclass(frozen=True)
class Recommendation:
    """What the intervals support: the best deployable method, the rivals it beats at 95 % confidence,
    the rivals it cannot be told apart from, and its strongest rival (never ``random``, a reference).

    ``probability`` (with ``ci_low``, ``ci_high``) is P(best > runner-up), NaN when the two were not
    compared; ``beats_random`` says whether the best's score interval lies above 0 (random offers).
    """

    best: pd.Series | None
    runner_up: pd.Series | None
    probability: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    beats: tuple[str, ...] = ()
    tied: tuple[str, ...] = ()
    beats_random: bool = False

    @property
    def verdict(self) -> str:
        """``"none"`` (nothing distinguishable from random), ``"clear"`` (beats every rival),
        ``"some"`` (beats some, tied with others) or ``"tied"`` (tied with every rival)."""
        if self.best is None or not self.beats_random:
            return "none"
        if not self.tied:
            return "clear"
        return "some" if self.beats else "tied"


def _oriented(pairs: pd.DataFrame, a: pd.Series, b: pd.Series) -> tuple[float, float, float] | None:
    """P(a > b) and its interval, or None when the two were not compared."""
    row, flipped = _pair(pairs, a, b)
    if row is None:
        return None
    p, low, high = (float(row[k]) for k in ("probability_of_improvement", "ci_low", "ci_high"))
    return (1.0 - p, 1.0 - high, 1.0 - low) if flipped else (p, low, high)


def recommend(final: pd.DataFrame, pairs: pd.DataFrame) -> Recommendation:
    """Pick the deployable method with the highest IQM and say what the intervals support.

    Parameters
    ----------
    final, pairs : DataFrame
        :func:`experiments.stats.final_scores` and :func:`experiments.stats.improvement_pairs`.

    Returns
    -------
    Recommendation
        The oracle is never picked; ``random`` is the zero of the scale, never a rival. A rival is
        *beaten* when the interval of P(best > rival) lies above 0.5 and *tied* when it contains 0.5
        (or has no interval); rivals whose score interval lies below 0 (worse than random offers) are
        neither.
    """
    ranked = final[~final["agent"].isin(NOT_DEPLOYABLE)].sort_values(
        ["iqm", "agent", "variant"], ascending=[False, True, True], kind="stable"
    )
    ranked = ranked[ranked["agent"] != "random"]
    if ranked.empty:
        return Recommendation(None, None)
    best = ranked.iloc[0]
    beats_random = bool(best["iqm"] > 0 and (pd.isna(best["ci_low"]) or best["ci_low"] > 0))
    if not pd.isna(best["ci_low"]) and best["ci_low"] <= 0:
        beats_random = False
    beaten: list[str] = []
    tied: list[str] = []
    for _, rival in ranked.iloc[1:].iterrows():
        if rival["agent"] == best["agent"]:
            continue  # settings of one agent are not compared (see stats.improvement_pairs)
        below_random = not pd.isna(rival["ci_high"]) and rival["ci_high"] < 0
        compared = _oriented(pairs, best, rival)
        label = _label(rival["agent"], rival["variant"])
        if compared is not None and not math.isnan(compared[1]) and compared[1] > 0.5:
            beaten.append(label)
        elif not below_random:
            tied.append(label)
    rivals = ranked[ranked["agent"] != best["agent"]]
    if rivals.empty:
        return Recommendation(best, None, beats=tuple(beaten), tied=tuple(tied), beats_random=beats_random)
    runner = rivals.iloc[0]
    compared = _oriented(pairs, best, runner)
    p, low, high = compared if compared is not None else (math.nan, math.nan, math.nan)
    return Recommendation(best, runner, p, low, high, tuple(beaten), tuple(tied), beats_random)


def _pair(pairs: pd.DataFrame, a: pd.Series, b: pd.Series) -> tuple[pd.Series | None, bool]:
    """The row of ``pairs`` comparing methods ``a`` and ``b``, and whether ``a`` is its ``y``."""
    for x, y, flipped in ((a, b, False), (b, a, True)):
        match = pairs[
            (pairs["agent_x"] == x["agent"])
            & (pairs["variant_x"] == x["variant"])
            & (pairs["agent_y"] == y["agent"])
            & (pairs["variant_y"] == y["variant"])
        ]
        if not match.empty:
            return match.iloc[0], flipped
    return None, False


# ------------------------------------------------------------------------------------------ formatting


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _score(row: pd.Series) -> str:
    if pd.isna(row["ci_low"]):
        return f"{_num(row['iqm'])} (one run: no interval)"
    return f"{_num(row['iqm'])} (95 % CI {_num(row['ci_low'])} to {_num(row['ci_high'])})"


def _num(value: float) -> str:
    """Two decimals, without a minus sign on zero."""
    text = f"{value:.2f}"
    return "0.00" if text == "-0.00" else text


def _duration(seconds: float) -> str:
    if pd.isna(seconds):
        return "—"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _money_k(value: float) -> str:
    if pd.isna(value):
        return "—"
    text = f"${abs(value):,.2f}k"
    return "−" + text if text != "$0.00k" and value < 0 else text


def _missing(text: str) -> str:
    return f'<p class="missing">{_e(text)}</p>'


def _png_width(data: bytes) -> int:
    return struct.unpack(">I", data[16:20])[0]


def _figure(path: Path, caption: str, *, wide: bool = False) -> str:
    data = path.read_bytes()
    encoded = base64.b64encode(data).decode("ascii")
    style = ""
    cls = ""
    if wide:
        cls = ' class="wide"'
        style = f' style="width: {round(_png_width(data) * 2 / 3)}px; max-width: 100%"'
    return (
        f'<figure{cls}><img alt="{_e(caption)}"{style} src="data:image/png;base64,{encoded}">'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def _draw(tmp: Path, name: str, draw: Callable[[Path], Path], caption: str, *, wide: bool = False) -> str:
    """Draw one figure into ``tmp`` and embed it; a figure that cannot be drawn is said so."""
    try:
        path = draw(tmp / name)
    except (ValueError, OSError) as err:
        return _missing(f"The figure could not be drawn: {str(err).splitlines()[0]}")
    return _figure(path, caption, wide=wide)


def _label(agent: str, variant: str) -> str:
    return stats.method_label(agent, variant)


def _read_config(sweep_dir: Path) -> dict:
    path = sweep_dir / SWEEP_CONFIG
    if not path.is_file():
        return {}
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    return config if isinstance(config, dict) else {}


# ------------------------------------------------------------------------------------------ sections


def _answer(rec: Recommendation, final: pd.DataFrame, pairs: pd.DataFrame, question: str = "") -> str:
    if rec.best is None:
        return _missing(
            "The sweep has no deployable policy (only the references: random offers and the oracle), so "
            "there is nothing to recommend."
        )
    best = rec.best
    name = _label(best["agent"], best["variant"])
    seeds = f"{int(best['n_runs'])} seed{'s' if best['n_runs'] != 1 else ''}"
    if rec.verdict == "none":
        parts = [_no_answer(best, name)]
    else:
        parts = [_lead(rec, best, name, seeds)]
        if rec.runner_up is not None:
            parts.append(_runner_up(rec, name))
        elif not rec.tied and not rec.beats:
            parts.append(
                "<p>No other deployable policy was run, so there is no runner-up to compare with.</p>"
            )
    parts.append(_cqi_note(best, name, final, pairs))
    parts.append(_question_note(question, final, pairs))
    return '<div class="answer">' + "".join(parts) + "</div>"


def _no_answer(best: pd.Series, name: str) -> str:
    if best["iqm"] <= 0:
        return (
            "<p><strong>Do not ship any of these policies yet.</strong> None of them beats random offers on "
            f"the evaluation campaigns (normalised score 0); the highest score is {_e(name)}'s, "
            f"{_e(_score(best))}. Train longer, tune, or revisit the market settings before deciding.</p>"
        )
    return (
        "<p><strong>Nothing here is distinguishable from random offers yet.</strong> The highest score is "
        f"{_e(name)}'s, {_e(_score(best))}, but its interval reaches down to 0, the score of random "
        "offers. Run more seeds (or train longer) before deciding.</p>"
    )


def _lead(rec: Recommendation, best: pd.Series, name: str, seeds: str) -> str:
    if best["iqm"] <= 1:
        gap = (
            f"it closes {100 * best['iqm']:.0f} % of the gap between random offers (0) and a myopic oracle that "
            "reads the simulator's hidden truth (1)"
        )
    else:
        gap = (
            "it beats the myopic oracle (1), which reads the simulator's hidden truth but only looks one week "
            "ahead, and random offers (0)"
        )
    facts = (
        f"Over {seeds}, its normalised score (interquartile mean) is {_e(_score(best))}: {gap}. It earns "
        f"{_money_k(best['mean_return'])} net per campaign on average (± {_money_k(best['mean_return_se'])} "
        "standard error)."
    )
    tied = ", ".join(_e(t) for t in rec.tied)
    beaten = ", ".join(_e(b) for b in rec.beats)
    if rec.verdict == "clear":
        return f'<p><strong>Ship <span class="best">{_e(name)}</span>.</strong> {facts}</p>'
    if rec.verdict == "some":
        return (
            f'<p><strong>Ship <span class="best">{_e(name)}</span> or {tied}: the data cannot tell them '
            f"apart.</strong> {facts} It beats {beaten} at 95 % confidence, but the interval of its "
            f"probability of beating {tied} includes 50 %. Choose among them on other grounds (readable "
            "rules, training cost) or run more seeds.</p>"
        )
    return (
        "<p><strong>No policy is distinguishable from the others yet.</strong> "
        f'<span class="best">{_e(name)}</span> has the highest score and beats random offers, but it cannot '
        f"be told apart from {tied} at 95 % confidence. {facts} Run more seeds before deciding.</p>"
    )


def _runner_up(rec: Recommendation, name: str) -> str:
    runner = rec.runner_up
    if runner is None:  # pragma: no cover - the caller checks
        return ""
    runner_name = _label(runner["agent"], runner["variant"])
    text = f"<p>The runner-up is {_e(runner_name)} (normalised score {_e(_score(runner))}). "
    if math.isnan(rec.probability):
        return text + "The two were not compared on the same market.</p>"
    text += (
        f"A run of {_e(name)} beats a run of {_e(runner_name)} with probability {100 * rec.probability:.0f} %"
    )
    if math.isnan(rec.ci_low):
        return text + " (one of them has a single run: no interval, so the difference cannot be called).</p>"
    text += f" (95 % CI {100 * rec.ci_low:.0f} % to {100 * rec.ci_high:.0f} %). "
    if rec.ci_low > 0.5:
        return text + "The advantage is clear at 95 % confidence.</p>"
    return text + "The advantage is not clear at 95 % confidence; more seeds would settle it.</p>"


def _cqi_note(best: pd.Series, name: str, final: pd.DataFrame, pairs: pd.DataFrame) -> str:
    """The interpretable tree policy beside the best: tied only when the interval says so and the tree
    itself beats random offers; below random offers said as such."""
    cqi = final[final["agent"] == "cqi"].sort_values(
        ["iqm", "variant"], ascending=[False, True], kind="stable"
    )
    if best["agent"] == "cqi" or cqi.empty:
        return ""
    tree = cqi.iloc[0]
    text = (
        f"<p>The interpretable tree policy, {_e(_label('cqi', tree['variant']))}, scores {_e(_score(tree))}"
        + ("" if pd.isna(tree["n_leaves"]) else f" with {tree['n_leaves']:.0f} rules on average")
    )
    below = (tree["ci_high"] < 0) if not pd.isna(tree["ci_high"]) else tree["iqm"] < 0
    above = (tree["ci_low"] > 0) if not pd.isna(tree["ci_low"]) else tree["iqm"] > 0
    if below:
        return text + ": below random offers, so its rules are not worth shipping as they are.</p>"
    compared = _oriented(pairs, best, tree)
    if compared is None:
        return text + ".</p>"
    p, low, _ = compared
    text += f"; {_e(name)} beats it with probability {100 * p:.0f} %"
    if math.isnan(low) or low > 0.5:
        return text + ".</p>"
    if above:
        return (
            text + ". The two are statistically tied, so the readable rules below are a credible choice.</p>"
        )
    return (
        text
        + ", but the tree cannot be told apart from random offers either, so its rules are not yet a safe choice.</p>"
    )


def _question_note(question: str, final: pd.DataFrame, pairs: pd.DataFrame) -> str:
    """When the config's question names policies of the sweep ("Is CQI as good as PPO?"), the answer
    for those: each named policy's best setting against the others named."""
    words = set(re.findall(r"[a-z0-9_]+", question.lower()))
    named = [a for a in dict.fromkeys(final["agent"]) if a in words and a not in NOT_DEPLOYABLE]
    if len(named) < 2:
        return ""
    bests = {
        a: final[final["agent"] == a].sort_values(["iqm", "variant"], ascending=[False, True]).iloc[0]
        for a in named
    }
    sentences = []
    for i, a in enumerate(named):
        for b in named[i + 1 :]:
            compared = _oriented(pairs, bests[a], bests[b])
            if compared is None:
                continue
            p, low, high = compared
            la, lb = _label(a, bests[a]["variant"]), _label(b, bests[b]["variant"])
            if not math.isnan(low) and low > 0.5:
                verdict = f"{_e(la)} is better than {_e(lb)}"
            elif not math.isnan(high) and high < 0.5:
                verdict = f"{_e(lb)} is better than {_e(la)}"
            else:
                verdict = f"{_e(la)} and {_e(lb)} cannot be told apart"
            interval = "" if math.isnan(low) else f", 95 % CI {100 * low:.0f} % to {100 * high:.0f} %"
            sentences.append(f"{verdict} (P({_e(la)} beats {_e(lb)}) = {100 * p:.0f} %{interval})")
    if not sentences:
        return ""
    return f"<p>On the policies the question names: {'; '.join(sentences)}.</p>"


def _comparison_table(final: pd.DataFrame) -> str:
    ranked = final.sort_values(["iqm", "agent", "variant"], ascending=[False, True, True], kind="stable")
    head = (
        '<tr><th class="text">policy</th><th>seeds</th><th>normalised score: IQM (95 % CI)</th>'
        "<th>net return per campaign, $k (mean ± s.e.)</th><th>training time per run</th><th>CQI leaves</th></tr>"
    )
    rows = []
    for _, row in ranked.iterrows():
        name = _label(row["agent"], row["variant"])
        reference = row["agent"] in REFERENCE_AGENTS
        if row["agent"] == "oracle":
            name += " — reference, reads hidden truth"
        elif row["agent"] == "random":
            name += " — reference"
        ci = "" if pd.isna(row["ci_low"]) else f" ({_num(row['ci_low'])} to {_num(row['ci_high'])})"
        ret = "—" if pd.isna(row["mean_return"]) else _num(row["mean_return"])
        if not pd.isna(row["mean_return_se"]) and ret != "—":
            ret += f" ± {_num(row['mean_return_se'])}"
        leaves = "—" if pd.isna(row["n_leaves"]) else f"{row['n_leaves']:.1f}"
        css = ' class="reference"' if reference else ""
        rows.append(
            f'<tr{css}><td class="text">{_e(name)}</td>'
            f"<td>{int(row['n_runs'])}</td><td>{_num(row['iqm'])}{ci}</td><td>{ret}</td>"
            f"<td>{_duration(row['train_seconds'])}</td><td>{leaves}</td></tr>"
        )
    return f'<div class="table-wrap"><table>{head}{"".join(rows)}</table></div>'


def _rules_html(rules: list[Rule]) -> str:
    shown = [r for r in rules if r.reachable]
    items = "".join(
        f'<li>{_e(r.text())} <span class="q">(Q = {_e(f"{r.q:.3g}")} $k)</span></li>' for r in shown
    )
    text = f'<ol class="rules">{items}</ol>'
    hidden = len(rules) - len(shown)
    if hidden == 1:
        text += (
            "<p>One more leaf of the tree can never be reached (its tests contradict each other on a yes/no "
            "or whole-number feature) and is not listed.</p>"
        )
    elif hidden:
        text += (
            f"<p>{hidden} more leaves of the tree can never be reached (their tests contradict each other on a "
            "yes/no or whole-number feature) and are not listed.</p>"
        )
    return text


def _segments_table(profiles: pd.DataFrame) -> str:
    columns: list[tuple[str, str, Callable[[Any], str]]] = [
        ("segment", "segment", lambda v: f"{int(v)}"),
        ("name", "name", str),
        ("size", "influencers", lambda v: f"{int(v):,}"),
        ("share", "share", lambda v: f"{100 * v:.1f} %"),
        ("median_followers", "median followers", lambda v: f"{v:,.0f}"),
        ("median_price", "median price per post", lambda v: f"${v:,.0f}"),
        ("median_engagement_rate", "median engagement rate", lambda v: f"{100 * v:.2f} %"),
        ("value_per_dollar", "engagements per $", lambda v: f"{v:.2f}"),
    ]
    present = [c for c in columns if c[0] in profiles.columns]

    def css(column: str) -> str:
        return ' class="text"' if column == "name" else ""

    head = "".join(f"<th{css(c[0])}>{_e(c[1])}</th>" for c in present)
    body = "".join(
        "<tr>" + "".join(f"<td{css(c[0])}>{_e(c[2](row[c[0]]))}</td>" for c in present) + "</tr>"
        for _, row in profiles.iterrows()
    )
    return f'<div class="table-wrap"><table><tr>{head}</tr>{body}</table></div>'


def _caveats(final: pd.DataFrame, config: dict) -> str:
    items = [
        "The oracle is a reference, not a policy: it reads the simulator's hidden truth (every action's exact "
        "expected reward this week), which no real marketplace can see. It is never recommended.",
        "The market is simulated. Its numbers are calibrated to published figures: "
        + "; ".join(CALIBRATION_SOURCES)
        + ". Real returns will differ; use the ranking of the policies more than their dollar values.",
        "Normalised scores are relative: 0 is a random policy and 1 the myopic oracle, both evaluated on the "
        "same fixed evaluation campaigns as every policy. The oracle is myopic (best action this week), so a "
        "policy that plans ahead can score above 1.",
        "Intervals are 95 % percentile bootstrap intervals over seeds; with few seeds they are wide and "
        "themselves uncertain.",
    ]
    single = final[final["n_runs"] < 2]
    if not single.empty:
        names = ", ".join(_label(a, v) for a, v in zip(single["agent"], single["variant"], strict=True))
        items.append(f"These policies have a single run, so no confidence interval: {names}.")
    episodes = (config.get("eval") or {}).get("episodes") if isinstance(config.get("eval"), dict) else None
    if episodes:
        items.append(f"Each run is evaluated on {episodes} campaigns; returns are per campaign.")
    return "<ul>" + "".join(f"<li>{_e(i)}</li>" for i in items) + "</ul>"


# ------------------------------------------------------------------------------------------ the page


def build_report(sweep_dir: Path) -> str:
    """The report of ``sweep_dir`` as one HTML string (and the ``stats_*.csv`` files written into it)."""
    from experiments.reporting import ope_section

    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"{sweep_dir}: no such folder")
    if not (sweep_dir / stats.RESULTS_FILE).is_file():
        if ope_section.find_ope_results(sweep_dir):  # influmatch ope outputs: the candidates from the logs
            return ope_section.build_ope_page(sweep_dir, CSS)
        raise FileNotFoundError(
            f"{sweep_dir / stats.RESULTS_FILE}: no such file (not a sweep folder), nor influmatch ope outputs in it"
        )
    config = _read_config(sweep_dir)
    runs = stats.read_sweep_runs(sweep_dir)
    tables = stats.summarize_sweep(sweep_dir)
    final, pairs, curves = tables["final"], tables["pairs"], tables["curves"]
    rec = recommend(final, pairs)
    name = str(config.get("name") or sweep_dir.resolve().name)
    question = str(config.get("question") or DEFAULT_QUESTION)
    segments = sweep_dir / SEGMENTS_DIR
    profiles_csv = segments / "profiles.csv"

    body: list[str] = [f"<h1>Match policy report: {_e(name)}</h1>"]
    with tempfile.TemporaryDirectory(prefix="influmatch-report-") as tmp_name:
        tmp = Path(tmp_name)

        def section(index: int, *content: str) -> None:
            body.append(f"<h2>{_e(SECTIONS[index])}</h2>")
            body.extend(content)

        section(0, f'<p class="question">{_e(question)}</p>', _answer(rec, final, pairs, question))
        section(
            1,
            "<p>One row per policy (and setting), best first. The normalised score is 0 for random offers and 1 "
            "for the myopic oracle on the same evaluation campaigns; the interquartile mean (IQM) averages the "
            "middle half of the seeds, so one lucky or unlucky seed does not decide.</p>",
            _comparison_table(final),
        )
        ope_results = ope_section.find_ope_results(sweep_dir / ope_section.OPE_DIR)
        if ope_results:
            body.append("<h2>Judged from your logs</h2>")
            body.extend(ope_section.ope_section(ope_results))
        if curves.empty:
            section(2, _missing("No run of this sweep has an eval.csv, so there are no learning curves."))
        else:
            section(
                2,
                _draw(
                    tmp,
                    "curves.png",
                    lambda p: plot_learning_curves(sweep_dir / stats.CURVES_FILE, p),
                    "Normalised score on the evaluation campaigns during training (IQM over seeds; the band is the "
                    "95 % interval of each agent's best setting).",
                ),
            )
        section(
            3,
            _draw(
                tmp,
                "final.png",
                lambda p: plot_final_scores(
                    sweep_dir / stats.FINAL_FILE, p, runs_csv=sweep_dir / stats.RUNS_FILE
                ),
                "Final normalised score per policy, best on top, with the 95 % interval and every run as a dot.",
            ),
        )
        cqi_run = stats.representative_run(runs, final, "cqi")
        if cqi_run is None:
            message = _missing("This sweep has no CQI runs, so there is no tree policy to show.")
            section(4, message)
            section(5, message)
            section(6, message)
        else:
            section(4, *_cqi_rules(cqi_run, final))
            section(
                5,
                _draw(
                    tmp,
                    "tree.png",
                    lambda p: plot_cqi_tree(
                        Path(cqi_run["run_dir"]),
                        p,
                        title=f"CQI policy tree of run {cqi_run['run_id']}",
                    ),
                    f"The CQI tree of run {cqi_run['run_id']} (seed {cqi_run['seed']}).",
                    wide=True,
                ),
            )
            thresholds = runs.loc[runs["agent"] == "cqi", "split_threshold"].dropna().unique()
            note = (
                "<p>Each point is one CQI run. A higher split threshold makes the tree grow more reluctantly: "
                "fewer rules, easier to read, possibly a lower score.</p>"
                if len(thresholds) > 1
                else "<p>Each point is one CQI run; this sweep tried a single split threshold.</p>"
            )
            section(
                6,
                note,
                _draw(
                    tmp,
                    "tradeoff.png",
                    lambda p: plot_cqi_tradeoff(sweep_dir / stats.RUNS_FILE, p),
                    "Number of rules (leaves) of each CQI run against its final normalised score.",
                ),
            )
        trees = final["agent"].isin(["cqi", "distilled_tree"]) & final["agent"].notna()
        if trees.any() and final["agent"].isin(["ppo", "a2c", "dqn", "maskable_ppo"]).any():
            from experiments.reporting.frontier import plot_frontier, smallest_tree_within

            body.append(f"<p>{_e(smallest_tree_within(final).sentence())}</p>")
            body.append(
                _draw(
                    tmp,
                    "frontier.png",
                    lambda p: plot_frontier(
                        sweep_dir / stats.FINAL_FILE, p, runs_csv=sweep_dir / stats.RUNS_FILE
                    ),
                    "The size-return frontier: normalised score against the number of leaves of every tree "
                    "policy (CQI settings, distilled trees) with 95 % intervals; the neural policies as lines.",
                )
            )
        if profiles_csv.is_file():
            profiles = pd.read_csv(profiles_csv)
            parts = [
                "<p>Influencers are grouped by k-means on observable features (followers, engagement, price, "
                "platform, categories, audience). Policies choose a segment and an offer; the simulator then "
                "offers the deal to that segment's best available influencer for the brand. Every seed draws "
                "its own market; these are the segments of the sweep's first run (the CQI rules above name the "
                "segments of the run that learned them).</p>",
                _segments_table(profiles),
            ]
            labels_csv = segments / "labels.csv"
            if labels_csv.is_file():
                parts.append(
                    _draw(
                        tmp,
                        "segment_map.png",
                        lambda p: plot_segment_map(labels_csv, profiles_csv, p),
                        "The segments on the first two principal components of the influencer features.",
                    )
                )
            parts.append(
                _draw(
                    tmp,
                    "segment_profiles.png",
                    lambda p: plot_segment_profiles(profiles_csv, p),
                    "Size, median list price and engagements per dollar of every segment.",
                )
            )
            section(7, *parts)
        else:
            section(7, _missing(f"No segment profiles in {SEGMENTS_DIR}/profiles.csv of this sweep."))
        section(8, *ceiling_and_timing(sweep_dir, runs, lambda *args, **kw: _draw(tmp, *args, **kw), _label))
        section(9, _caveats(final, config))
        section(10, *_about(sweep_dir, runs, config))
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{_e(name)}: match policy '
        f"report</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body).replace(" %", "\u00a0%")  # keep "42 %" on one line
        + "\n</body>\n</html>\n"
    )


def _cqi_rules(run: pd.Series, final: pd.DataFrame) -> list[str]:
    label = _label("cqi", run["variant"])
    row = final[(final["agent"] == "cqi") & (final["variant"] == run["variant"])].iloc[0]
    setting = "the best CQI setting" if (final["agent"] == "cqi").sum() > 1 else "the only CQI setting"
    intro = (
        f"<p>The rules of run {_e(run['run_id'])} (seed {_e(run['seed'])}), a typical run of {_e(label)}, "
        f"{setting}: the median of its {int(row['n_runs'])} runs by final score "
        f"({_num(run['normalized_score'])}). Every campaign week exactly one rule applies (the rules do not "
        "overlap), and the policy does what it says. Q is the tree's estimate of the rest of the campaign's net value, in "
        "thousands of USD.</p>"
    )
    try:
        nodes = read_cqi_tree(Path(run["run_dir"]))
    except (ValueError, OSError) as err:
        return [intro, _missing(f"The tree of this run cannot be read: {str(err).splitlines()[0]}")]
    # Every seed draws its own market, so segment names come from the run's own actions, never from the
    # sweep's segments/ (the first run's market).
    names = segment_names_from(n.action for n in nodes if n.action is not None)
    parts = [intro, _rules_html(tree_rules(nodes, names))]
    text_path = Path(run["run_dir"]) / "tree.txt"
    if text_path.is_file():
        parts.append(
            "<details><summary>The tree as exported (tree.txt)</summary>"
            f"<pre>{_e(text_path.read_text(encoding='utf-8'))}</pre></details>"
        )
    return parts


def _about(sweep_dir: Path, runs: pd.DataFrame, config: dict) -> list[str]:
    agents = ", ".join(sorted(runs["agent"].unique()))
    text = (
        f"<p>{len(runs)} finished runs of {runs['agent'].nunique()} agents ({_e(agents)}) from "
        f"{_e(stats.RESULTS_FILE)} of the sweep {_e(sweep_dir.resolve().name)}. Statistics: interquartile mean "
        f"over seeds, 95 % percentile bootstrap intervals ({stats.FINAL_RESAMPLES:,} resamples, seeded), "
        "probability of improvement as in Agarwal et al., NeurIPS 2021 (rliable). They are saved beside the "
        f"runs as {stats.FINAL_FILE}, {stats.PAIRS_FILE}, {stats.CURVES_FILE} and {stats.RUNS_FILE}; "
        "<code>influmatch plot</code> redraws any figure from them.</p>"
    )
    parts = [text]
    path = sweep_dir / SWEEP_CONFIG
    if path.is_file():
        parts.append(
            f"<details><summary>The experiment ({SWEEP_CONFIG})</summary><pre>{_e(path.read_text())}</pre></details>"
        )
    return parts
