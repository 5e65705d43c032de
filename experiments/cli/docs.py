"""``influmatch docs``: rerun what the README quotes about the demo and write it back (``make docs``).

Runs the shipped demo config from scratch (in a temporary sweep folder unless ``--out`` is given, so
the time is a fresh run's), then writes

* the table of mean normalised scores and the wall-clock time of the run, with the mean training and
  numba compile seconds per agent, into ``README.md`` between the markers ``<!-- docs:demo -->`` and
  ``<!-- /docs:demo -->``;
* ``docs/demo_final_scores.png`` and ``docs/demo_learning_curves.png``, drawn from the sweep's saved
  statistics.

So every number the README gives about the demo is one a user can reproduce with one command.
"""

from __future__ import annotations

import argparse
import platform
import re
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd

from experiments.cli import run_module
from experiments.files import output_path, positive_int, write_text_atomic
from experiments.options import add_progress_argument

START, END = "<!-- docs:demo -->", "<!-- /docs:demo -->"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--readme", type=Path, default=Path("README.md"), help="README to update")
    parser.add_argument("--figures", type=Path, default=Path("docs"), help="folder of the README's figures")
    parser.add_argument("--config", default="demo", help="the experiment config the README quotes")
    parser.add_argument(
        "--out", type=output_path, help="keep the sweep in this folder (default: a temporary one, removed)"
    )
    parser.add_argument("--n-jobs", type=positive_int, default=2, help="parallel runs")
    add_progress_argument(parser, default=True)


def run(args: argparse.Namespace) -> int:
    from experiments.config import ExperimentConfig

    readme = Path(args.readme)
    _read_with_markers(readme)  # refuse a README without markers before the demo runs
    config = ExperimentConfig.from_yaml(args.config)
    folder = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="influmatch-docs-"))
    try:
        block = _run_demo(config, folder, args)
    finally:
        if not args.out:
            shutil.rmtree(folder, ignore_errors=True)
    # Read again: the demo takes minutes, and edits made to the README meanwhile must survive.
    text = _read_with_markers(readme)
    new = re.sub(
        re.escape(START) + ".*?" + re.escape(END), lambda _: f"{START}\n{block}\n{END}", text, flags=re.S
    )
    write_text_atomic(readme, new)
    print(block)
    print(f"\nWrote {readme} and {args.figures}/demo_final_scores.png, demo_learning_curves.png")
    return 0


def _read_with_markers(readme: Path) -> str:
    text = readme.read_text(encoding="utf-8")
    if START not in text or END not in text:
        raise ValueError(f"{readme}: no {START} ... {END} markers to write the demo's numbers between")
    return text


def _run_demo(config, folder: Path, args: argparse.Namespace) -> str:
    from experiments import stats
    from experiments.reporting.figures import plot_final_scores, plot_learning_curves
    from experiments.reporting.report import write_report
    from experiments.sweep import run_sweep

    start = time.perf_counter()
    table = run_sweep(config, folder, n_jobs=args.n_jobs, progress=args.progress)
    seconds = time.perf_counter() - start
    write_report(folder, overwrite=True)  # writes the statistics the figures are drawn from
    figures = Path(args.figures)
    figures.mkdir(parents=True, exist_ok=True)
    plot_final_scores(
        folder / stats.FINAL_FILE, figures / "demo_final_scores.png", runs_csv=folder / stats.RUNS_FILE
    )
    plot_learning_curves(folder / stats.CURVES_FILE, figures / "demo_learning_curves.png")
    return format_block(table, seconds, args.n_jobs)


def format_block(table: pd.DataFrame, seconds: float, n_jobs: int) -> str:
    """The README's demo block: the command, the score table, the time and the per-agent seconds."""
    scores = (
        table.groupby(["agent", "variant"], sort=False)["normalized_score"]
        .mean()
        .sort_values(ascending=False)
    )
    lines = [
        "```",
        f"$ influmatch demo     # {len(table)} runs, {n_jobs} in parallel: {seconds:.0f} s on this machine "
        f"({platform.machine()}, Python {platform.python_version()})",
        "Mean normalised score (0 = random, 1 = myopic oracle, which reads hidden truth):",
        scores.round(3).to_string(),
        "```",
    ]
    columns = [c for c in ("train_seconds", "compile_seconds") if c in table.columns]
    if columns:
        per_agent = table.groupby("agent", sort=False)[columns].mean()
        cells = [
            f"{agent} {row['train_seconds']:.1f} s" + (
                f" (+{row['compile_seconds']:.1f} s compiling)" if row.get("compile_seconds", 0) >= 0.05 else ""
            )
            for agent, row in per_agent.iterrows()
        ]  # fmt: skip
        lines.append("")
        lines.append("Mean training time per run: " + ", ".join(cells) + ".")
    return "\n".join(lines)


if __name__ == "__main__":
    run_module("docs")
