"""``influmatch timing``: the best time to match, on a sweep's market.

``influmatch timing SWEEP_DIR [--campaigns N] [--seed S] [--overwrite]`` writes ``timing.csv`` (per brand
category and start month: the planning oracle's value of hiring now minus waiting, per 1,000 USD of
budget, with its standard error and a decision) and ``waits.csv`` (per policy of the sweep and calendar
month: the share of weeks with a possible hire in which it waited) into the sweep folder (see
:mod:`experiments.timing`). ``influmatch plot SWEEP_DIR --kind timing`` draws them and ``influmatch
report`` shows them. The planner reads hidden truth: this says when hiring pays in the simulated market,
not what a deployable policy can see.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from experiments.cli import run_module
from experiments.files import positive_int, seed_argument, staged_files
from experiments.timing import TIMING_FILE, WAITS_FILE, sweep_timing


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sweep", type=Path, metavar="SWEEP_DIR", help="a sweep folder (results.csv, runs/)")
    parser.add_argument(
        "--campaigns", type=positive_int, default=2, help="campaigns per category and month (default 2)"
    )
    parser.add_argument("--seed", type=seed_argument, default=0, help="seed of the campaigns (default 0)")
    parser.add_argument("--overwrite", action="store_true", help="replace earlier timing.csv / waits.csv")


def run(args: argparse.Namespace) -> int:
    if not args.sweep.is_dir():
        what = "it is a file" if args.sweep.exists() else "no such folder"
        raise ValueError(f"{args.sweep}: not a sweep folder ({what})")
    paths = [args.sweep / TIMING_FILE, args.sweep / WAITS_FILE]
    with staged_files(paths, overwrite=args.overwrite) as tmp:
        timing, waits = sweep_timing(args.sweep, n_campaigns=args.campaigns, seed=args.seed)
        timing.to_csv(tmp / TIMING_FILE, index=False)
        waits.to_csv(tmp / WAITS_FILE, index=False)
    hire = (timing["decision"] == "hire now").sum()
    wait = (timing["decision"] == "wait").sum()
    print(
        f"{len(timing)} category x month cells: hire now in {hire}, wait in {wait}, "
        f"either (within two standard errors) in {len(timing) - hire - wait}."
    )
    print(f"Wrote {paths[0]} and {paths[1]}")
    return 0


if __name__ == "__main__":
    run_module("timing")
