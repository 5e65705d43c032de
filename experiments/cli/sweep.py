"""``influmatch sweep CONFIG --out DIR``: run an experiment config's agents x variants x seeds, in
parallel (joblib or Ray), resumably; see :mod:`experiments.sweep` for the sweep folder."""

from __future__ import annotations

import argparse
import time

from experiments.cli import run_module
from experiments.config import ExperimentConfig
from experiments.files import output_path, positive_int
from experiments.options import add_progress_argument
from experiments.sweep import BACKENDS, run_sweep


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="experiment YAML (or the name of a shipped config: demo, benchmark)")
    parser.add_argument(
        "--out", type=output_path, required=True, help="sweep folder (resumes if it holds this sweep)"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a folder that holds another sweep (or anything else), once the new sweep is complete",
    )
    parser.add_argument("--backend", choices=BACKENDS, default="joblib", help="where runs execute")
    parser.add_argument("--address", help="Ray cluster address ('auto', 'ray://host:10001'); default: local")
    parser.add_argument("--n-jobs", type=positive_int, default=2, help="parallel runs")
    parser.add_argument(
        "--tensorboard",
        type=output_path,
        default=None,
        metavar="DIR",
        help="also log each run's training scalars to TensorBoard in DIR/<run id> (needs tensorboard); "
        "a run's events appear when it finishes",
    )
    add_progress_argument(parser, default=True)


def run(args: argparse.Namespace) -> int:
    config = ExperimentConfig.from_yaml(args.config)
    start = time.perf_counter()
    table = run_sweep(config, args.out, backend=args.backend, n_jobs=args.n_jobs, address=args.address,
                      progress=args.progress, overwrite=args.overwrite,
                      tensorboard=args.tensorboard)  # fmt: skip
    print(
        f"{len(table)} runs finished in {args.out} ({time.perf_counter() - start:.0f} s); results in results.csv"
    )
    if len(table):
        shown = table.groupby(["agent", "variant"], sort=False)["normalized_score"].agg(["mean", "count"])
        print(shown.round(3).to_string())
    if args.tensorboard is not None:
        print(f"TensorBoard events in {args.tensorboard} (tensorboard --logdir {args.tensorboard})")
    return 0


if __name__ == "__main__":
    run_module("sweep")
