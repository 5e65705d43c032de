"""``influmatch demo``: the main job. Runs the shipped demo experiment end to end and writes its report.

Every kind of policy (CQI at three split thresholds, MaskablePPO, PPO, the logistic bandit, three
marketer heuristics, and the random and oracle references) learns on one calibrated market with three
seeds; the sweep is resumable, so running the demo again reuses finished runs. The result is a sweep
folder (see :mod:`experiments.sweep`) with ``report.html``: the comparison, learning curves, the CQI
policy as plain-language rules, and the market's segments. About a minute on two cores (65 s measured
with ``time influmatch demo``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from experiments.cli import run_module
from experiments.config import ExperimentConfig
from experiments.files import output_path, positive_int
from experiments.options import add_progress_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=output_path, default=Path("runs/demo"), help="sweep folder (resumed when run again)"
    )
    parser.add_argument(
        "--config",
        default="demo",
        help="experiment config: a shipped config's name (demo, benchmark; a name means the shipped "
        "config even if the current folder holds a file or folder of that name) or a YAML path",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a folder at --out that holds another sweep"
    )
    parser.add_argument("--n-jobs", type=positive_int, default=2, help="parallel runs")
    add_progress_argument(parser, default=True)


def run(args: argparse.Namespace) -> int:
    from experiments.reporting.report import write_report
    from experiments.sweep import run_sweep

    config = ExperimentConfig.from_yaml(args.config)
    n_runs = sum(len(config.variants(entry)) for entry in config.agents) * len(config.seeds)
    print(f"influmatch demo: {n_runs} runs of '{config.name}' into {args.out} ({args.n_jobs} in parallel)")
    start = time.perf_counter()
    table = run_sweep(config, args.out, n_jobs=args.n_jobs, progress=args.progress, overwrite=args.overwrite)
    report = write_report(args.out, overwrite=True)  # the sweep's own report, redrawn from its runs
    print(f"{len(table)} runs finished in {time.perf_counter() - start:.0f} s.")
    shown = (
        table.groupby(["agent", "variant"], sort=False)["normalized_score"]
        .mean()
        .sort_values(ascending=False)
    )
    print("Mean normalised score (0 = random, 1 = myopic oracle, which reads hidden truth):")
    print(shown.round(3).to_string())
    print(f"\nReport: {report.resolve()}")
    return 0


if __name__ == "__main__":
    run_module("demo")
