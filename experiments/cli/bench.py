"""``influmatch bench --out FILE.json``: run every benchmark in one process (see
:mod:`experiments.bench.benchmarks`), write the records and print them as a table.

Each benchmark's result is printed to stderr as soon as it is measured. The exit code is 0 when every
goal is met, 1 when one is missed (the table marks it ``NO``; with ``--quick`` the sizes are too small
for the goals to mean anything, so a miss is only reported), 2 on bad input. A benchmark this machine
cannot run (``vector_threads`` where numba has one thread) is marked ``skipped``, with the reason, and
counts as neither.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from experiments.bench.benchmarks import BENCHMARKS, check_names, format_results, load_average, results_of
from experiments.cli import run_module
from experiments.files import check_output, output_path, staged_files, write_json

GOAL_MISSED = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=output_path, required=True, help="JSON file to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing file at --out")
    parser.add_argument("--only", nargs="+", metavar="NAME", help=f"run only these ({', '.join(BENCHMARKS)})")
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test, not the goals)")


def run(args: argparse.Namespace) -> int:
    if args.out.suffix != ".json":
        raise ValueError(f"{args.out}: --out must name a .json file")
    names = args.only or list(BENCHMARKS)
    check_names(names)
    check_output(args.out, args.overwrite, folder=False)
    records, before = [], load_average()
    for i, name in enumerate(names, start=1):
        start = time.perf_counter()
        record = BENCHMARKS[name](args.quick)
        records.append(record)
        if record.get("skipped"):
            status = f"skipped ({record['reference']})"
        else:
            status = (f"ratio {record['ratio']:.2f}, goal {record['goal']:.2f} "
                      f"({'met' if record['passed'] else 'MISSED'}; {time.perf_counter() - start:.0f} s)")  # fmt: skip
        print(f"[{i}/{len(names)}] {name}: {status}", file=sys.stderr, flush=True)
    results = results_of(records, args.quick, before)
    with staged_files([args.out], args.overwrite) as tmp:
        write_json(tmp / args.out.name, results)
    print(format_results(results))
    print(f"\nMachine: {json.dumps(results['machine'])}\nWrote {args.out}")
    missed = [r["name"] for r in records if r["passed"] is False]
    if missed and not args.quick:
        print(f"{len(missed)} of {len(records)} goals missed: {', '.join(missed)}", file=sys.stderr)
        return GOAL_MISSED
    return 0


if __name__ == "__main__":
    run_module("bench")
