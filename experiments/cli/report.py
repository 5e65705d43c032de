"""``influmatch report SWEEP_DIR [--out FILE.html]``: the self-contained HTML report of a sweep
(see :mod:`experiments.reporting.report`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from experiments.cli import run_module
from experiments.files import output_path
from experiments.reporting.report import REPORT_FILE, write_report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sweep", type=Path, metavar="SWEEP_DIR", help="a sweep folder (results.csv, runs/)")
    parser.add_argument(
        "--out", type=output_path, help=f"HTML file to write (default SWEEP_DIR/{REPORT_FILE})"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing report at --out")


def run(args: argparse.Namespace) -> int:
    out = write_report(args.sweep, args.out, overwrite=args.overwrite)
    print(f"Wrote {out}")
    return 0


if __name__ == "__main__":
    run_module("report")
