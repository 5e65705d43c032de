"""``influmatch report SWEEP_DIR [--out FILE.html]``: the self-contained HTML report of a sweep
(see :mod:`experiments.reporting.report`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from experiments.cli import run_module
from experiments.reporting.report import REPORT_FILE, write_report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sweep", type=Path, metavar="SWEEP_DIR", help="a sweep folder (results.csv, runs/)")
    parser.add_argument("--out", type=Path, help=f"HTML file to write (default SWEEP_DIR/{REPORT_FILE})")


def run(args: argparse.Namespace) -> int:
    out = write_report(args.sweep, args.out)
    print(f"Wrote {out}")
    return 0


if __name__ == "__main__":
    run_module("report")
