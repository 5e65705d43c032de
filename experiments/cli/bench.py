"""``influmatch bench --out FILE.json``: run every benchmark in one process (see
:mod:`experiments.bench.benchmarks`), write the records and print them as a table."""

from __future__ import annotations

import argparse
import json

from experiments.bench.benchmarks import BENCHMARKS, check_names, format_results, run_benchmarks
from experiments.cli import run_module
from experiments.files import check_output, output_path, staged_files, write_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=output_path, required=True, help="JSON file to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing file at --out")
    parser.add_argument("--only", nargs="+", metavar="NAME", help=f"run only these ({', '.join(BENCHMARKS)})")
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test, not the goals)")


def run(args: argparse.Namespace) -> int:
    if args.out.suffix != ".json":
        raise ValueError(f"{args.out}: --out must name a .json file")
    check_names(args.only or [])
    check_output(args.out, args.overwrite, folder=False)
    results = run_benchmarks(args.only, args.quick)
    with staged_files([args.out], args.overwrite) as tmp:
        write_json(tmp / args.out.name, results)
    print(format_results(results))
    print(f"\nMachine: {json.dumps(results['machine'])}\nWrote {args.out}")
    return 0


if __name__ == "__main__":
    run_module("bench")
