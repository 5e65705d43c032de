"""``influmatch ope-backtest CONFIG --out DIR``: the off-policy estimators against the simulator's truth.

Reads a backtest grid (YAML, :class:`experiments.ope.backtest.BacktestConfig`: markets, loggers, log
sizes, targets, seeds), runs every scenario (:func:`experiments.ope.backtest.run_backtest`) and writes
``estimates.csv``, ``metrics.csv`` (bias, RMSE, coverage, rank correlation per estimator and scope),
``goal.csv``, ``backtest.png`` and ``config.json`` into ``--out``; prints the per-campaign metrics.
Every finished scenario is kept in ``--cache`` (default ``OUT.scenarios`` beside ``--out``) as it
ends, so the same command run again after an interruption resumes where it stopped.
"""

from __future__ import annotations

import argparse

from experiments.cli import run_module
from experiments.files import check_output, input_file, output_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "config", type=input_file, help="backtest grid (YAML), e.g. experiments/configs/ope/ope_backtest.yaml"
    )
    parser.add_argument("--out", type=output_path, required=True, help="output folder (new or empty)")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier output in --out")
    parser.add_argument(
        "--cache",
        type=output_path,
        default=None,
        help="folder of finished scenarios (default OUT.scenarios): a rerun of the same grid reads them",
    )


def run(args: argparse.Namespace) -> int:
    from experiments.ope.backtest import (
        BacktestConfig,
        backtest_metrics,
        goal_table,
        run_backtest,
        write_backtest,
    )
    from experiments.strict_yaml import read_yaml

    config = BacktestConfig.from_mapping(read_yaml(args.config), str(args.config))
    check_output(args.out, args.overwrite, folder=True)
    print(f"{len(config.scenarios())} scenarios x {len(config.targets)} targets", flush=True)
    out = args.out.resolve()
    cache = args.cache if args.cache is not None else out.with_name(out.name + ".scenarios")
    if cache.exists() and not cache.is_dir():
        raise NotADirectoryError(f"--cache {cache}: expected a folder, found a file")
    estimates = run_backtest(config, progress=lambda message: print(message, flush=True), cache=cache)
    out = write_backtest(estimates, config, args.out, overwrite=args.overwrite)
    metrics = backtest_metrics(estimates)
    shown = metrics[metrics["scope"] == "per_campaign"]
    columns = ["estimator", "market", "logger", "n_campaigns_logged", "n", "bias", "rmse",
               "mean_abs_relative_error", "within_10pct", "coverage", "rank_correlation", "pairs_correct"]  # fmt: skip
    print("Per campaign (thousands of USD per campaign):")
    print(shown[columns].to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print(goal_table(estimates).to_string(index=False))
    print(f"Wrote {out}/estimates.csv, metrics.csv, goal.csv, backtest.png, config.json")
    return 0


if __name__ == "__main__":
    run_module("ope-backtest")
