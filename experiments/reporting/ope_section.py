"""The report's logs-based comparison of candidates: each candidate policy judged from the same logged
campaigns (the outputs of ``influmatch ope``), with what the intervals support.

``influmatch report DIR`` builds this page when ``DIR`` is an ``influmatch ope`` output or a folder of
them (one per candidate, e.g. ``ope/best_fit``, ``ope/cqi``); a sweep's report gains the section when
the sweep folder holds such outputs under ``ope/``.

Per candidate, the table shows the recommended per-campaign estimate (the ``recommended`` row of its
``estimates.csv``, see :func:`experiments.ope.pipeline.recommend`) with its 95 % interval, which
estimator it is, and, where the logs were simulated (``influmatch ope --truth``), the true value. The
logging policy's own value per campaign is the reference row. A difference between two candidates is
called supported when the normal interval of the difference, ``d +- 1.96 sqrt(se_a^2 + se_b^2)``, excludes
0; the candidates are judged from the same logs, so their errors are positively correlated and this
test is conservative. Candidates judged from different logs are not compared (the page says so).
"""

from __future__ import annotations

import html
import itertools
import json
import math
from pathlib import Path

import pandas as pd

__all__ = ["OPE_DIR", "build_ope_page", "candidates", "find_ope_results", "ope_section", "supported_pairs"]

#: Where a sweep folder keeps its ``influmatch ope`` outputs, one folder per candidate.
OPE_DIR = "ope"
_Z95 = 1.959963984540054


def _is_ope_output(folder: Path) -> bool:
    return (folder / "estimates.csv").is_file() and (folder / "summary.json").is_file()


def find_ope_results(folder: Path) -> list[Path]:
    """``folder`` itself if it is an ``influmatch ope`` output, else its sub-folders that are (sorted by
    name), else those of ``folder/ope``."""
    folder = Path(folder)
    if _is_ope_output(folder):
        return [folder]
    for root in (folder, folder / OPE_DIR):
        if root.is_dir():
            found = sorted(p for p in root.iterdir() if p.is_dir() and _is_ope_output(p))
            if found:
                return found
    return []


def _read_summary(folder: Path) -> dict:
    path = folder / "summary.json"
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not an influmatch ope summary ({err})") from None
    if not isinstance(summary, dict):
        raise ValueError(f"{path}: not an influmatch ope summary (expected a JSON object)")
    return summary


def candidates(folders: list[Path]) -> tuple[pd.DataFrame, pd.Series | None]:
    """One row per candidate (``candidate``, ``folder``, ``estimator``, ``estimate``, ``low``, ``high``,
    ``std_error``, ``truth``, ``truth_std_error``, ``covered``, ``logs``, ``n_campaigns``), best estimate
    first, and the logging policy's per-campaign value (None when no output has it)."""
    rows, logged = [], None
    for folder in folders:
        path = folder / "estimates.csv"
        table = pd.read_csv(path)
        missing = sorted(
            {"scope", "estimator", "estimate", "low", "high", "recommended"} - set(table.columns)
        )
        if missing:
            raise ValueError(f"{path}: not an influmatch ope estimates table (no column '{missing[0]}')")
        summary = _read_summary(folder)
        per_campaign = table[table["scope"] == "per_campaign"]
        chosen = per_campaign[per_campaign["recommended"].astype(str).str.lower() == "true"]
        if chosen.empty:
            raise ValueError(f"{path}: no recommended per-campaign estimate (column 'recommended')")
        row = chosen.iloc[0]
        own = per_campaign[per_campaign["estimator"] == "logged"]
        if logged is None and len(own):
            logged = own.iloc[0].copy()
            logged["logging_policy"] = summary.get("logging_policy") or "the logging policy"
        rows.append({
            "candidate": str(summary.get("target_policy") or folder.name), "folder": folder.name,
            "estimator": str(row["estimator"]), "estimate": float(row["estimate"]),
            "low": float(row["low"]), "high": float(row["high"]),
            "std_error": float(row.get("std_error", math.nan)),
            "truth": float(row.get("truth", math.nan)), "truth_std_error": float(row.get("truth_std_error", math.nan)),
            "covered": row.get("covered", math.nan), "logs": str(summary.get("logs", "")),
            "n_campaigns": summary.get("n_campaigns"),
        })  # fmt: skip
    frame = pd.DataFrame(rows).sort_values("estimate", ascending=False, kind="stable").reset_index(drop=True)
    return frame, logged


def _se(row: pd.Series) -> float:
    """The standard error of an estimate (from its interval when the column is empty)."""
    se = float(row["std_error"])
    return se if math.isfinite(se) and se > 0 else (float(row["high"]) - float(row["low"])) / (2 * _Z95)


def supported_pairs(frame: pd.DataFrame) -> pd.DataFrame:
    """Every pair of candidates (the higher estimate first): difference, its 95 % interval and whether
    the interval excludes 0 (``supported``); with truths, whether the truth agrees (``truth_agrees``)."""
    out = []
    for i, j in itertools.combinations(range(len(frame)), 2):
        a, b = frame.iloc[i], frame.iloc[j]
        d = float(a["estimate"] - b["estimate"])
        half = _Z95 * math.hypot(_se(a), _se(b))
        truth = float(a["truth"] - b["truth"])
        out.append({"higher": a["candidate"], "lower": b["candidate"], "difference": d, "low": d - half,
                    "high": d + half, "supported": bool(d - half > 0),
                    "truth_difference": truth, "truth_agrees": bool(truth > 0) if math.isfinite(truth) else None})  # fmt: skip
    return pd.DataFrame(out, columns=["higher", "lower", "difference", "low", "high", "supported",
                                      "truth_difference", "truth_agrees"])  # fmt: skip


def _k(value: float) -> str:
    """Thousands of USD, readable."""
    if not math.isfinite(value):
        return "–"
    return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"


def _e(text: object) -> str:
    return html.escape(str(text))


def ope_section(folders: list[Path]) -> list[str]:
    """The HTML of the comparison (paragraphs and tables) of the ``influmatch ope`` outputs ``folders``."""
    frame, logged = candidates(folders)
    sources = sorted(set(frame["logs"]))
    parts = [
        "<p>Each candidate policy judged from the logged campaigns, without running it: the recommended "
        "per-campaign estimate of <code>influmatch ope</code> (net value of one campaign, thousands of USD) "
        "with its 95 % interval. A difference is supported when its 95 % interval excludes zero.</p>"
    ]
    if len(sources) > 1:
        parts.append(
            '<p class="missing">These candidates were judged from different logs ('
            + ", ".join(_e(s) for s in sources)
            + "), so their estimates are not compared with each other.</p>"
        )
    has_truth = bool(frame["truth"].notna().any())
    head = ["candidate", "estimate", "95 % interval", "estimator"] + (
        ["truth (simulated logs)"] if has_truth else []
    )
    rows = ["<tr>" + "".join(f'<th class="{"text" if h in ("candidate", "estimator") else ""}">{_e(h)}</th>'
                             for h in head) + "</tr>"]  # fmt: skip
    for _, r in frame.iterrows():
        cells = [f'<td class="text">{_e(r["candidate"])}</td>', f"<td>{_k(r['estimate'])}</td>",
                 f"<td>[{_k(r['low'])}, {_k(r['high'])}]</td>", f'<td class="text">{_e(r["estimator"])}</td>']  # fmt: skip
        if has_truth:
            mark = "" if pd.isna(r["covered"]) else (" (in the interval)" if str(r["covered"]).lower() == "true"
                                                      else " (outside the interval)")  # fmt: skip
            cells.append(f"<td>{_k(r['truth'])}{mark}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    if logged is not None:
        cells = [f'<td class="text">{_e(logged["logging_policy"])} (the logs, for reference)</td>',
                 f"<td>{_k(float(logged['estimate']))}</td>",
                 f"<td>[{_k(float(logged['low']))}, {_k(float(logged['high']))}]</td>",
                 '<td class="text">logged</td>'] + (["<td>–</td>"] if has_truth else [])  # fmt: skip
        rows.append('<tr class="reference">' + "".join(cells) + "</tr>")
    parts.append('<div class="table-wrap"><table class="ope-candidates">' + "".join(rows) + "</table></div>")
    if len(sources) == 1 and len(frame) > 1:
        pairs = supported_pairs(frame)
        lines = []
        for _, p in pairs.iterrows():
            verdict = ("supported: higher at 95 %" if p["supported"]
                       else "not supported: the interval of the difference includes 0")  # fmt: skip
            truth = ""
            if p["truth_agrees"] is not None:
                truth = f"; true difference {_k(p['truth_difference'])}" + (
                    "" if p["truth_agrees"] else " (the other way)"
                )
            lines.append(f"<li><b>{_e(p['higher'])}</b> over {_e(p['lower'])}: {_k(p['difference'])} "
                         f"[{_k(p['low'])}, {_k(p['high'])}], {verdict}{truth}.</li>")  # fmt: skip
        parts.append('<ul class="ope-pairs">' + "".join(lines) + "</ul>")
        best = frame.iloc[0]
        beaten = pairs[(pairs["higher"] == best["candidate"]) & pairs["supported"]]["lower"].tolist()
        if len(beaten) == len(frame) - 1:
            parts.append(f'<p class="answer">From these logs, {_e(best["candidate"])} earns the most per '
                         "campaign, and the intervals support it against every other candidate.</p>")  # fmt: skip
        else:
            tied = [c for c in frame["candidate"].iloc[1:] if c not in beaten]
            parts.append(f'<p class="answer">From these logs, {_e(best["candidate"])} has the highest estimate, '
                         f"but the intervals cannot tell it apart from {_e(', '.join(tied))}.</p>")  # fmt: skip
    parts.append(
        "<p>What the intervals do not hold: a market the fitted model cannot describe (the fit's predictive "
        "checks flag what they can; see each output's <code>summary.json</code>). <code>influmatch "
        "ope-backtest</code> measures how often such estimates are within 10 % of the truth and cover it.</p>"
    )
    return parts


def build_ope_page(folder: Path, css: str) -> str:
    """A whole report page of the ``influmatch ope`` outputs in ``folder`` (see :func:`find_ope_results`)."""
    folders = find_ope_results(folder)
    if not folders:
        raise FileNotFoundError(f"{folder}: no influmatch ope output (estimates.csv and summary.json)")
    name = Path(folder).resolve().name
    body = [f"<h1>Candidates judged from the logs: {_e(name)}</h1>", "<h2>Logs-based comparison of candidates</h2>",
            *ope_section(folders)]  # fmt: skip
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{_e(name)}: candidates '
        f"judged from the logs</title>\n<style>{css}</style>\n</head>\n<body>\n"
        + "\n".join(body).replace(" %", "\u00a0%")
        + "\n</body>\n</html>\n"
    )
