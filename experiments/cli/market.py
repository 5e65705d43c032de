"""``influmatch market``: generate (or read) an influencer pool and check it against published figures.

Writes to ``--out`` (a new or empty folder; ``--overwrite`` replaces an earlier one, in one rename once
the new one is complete): ``pool.csv`` (the pool, every column of the CSV contract), ``calibration.csv``
(each published target of the calibration beside the simulated value; sources in
``docs/calibration.md``) and ``config.json``; prints the table. Same seed, same files.

Seeding: the pool is the one ``influmatch train --seed S`` (and ``influmatch segment --seed S``) would
build with the same size, mode and calibration (:func:`experiments.segments.market_streams`).

With ``--pool`` only the targets that describe a marketplace pool are checked on your pool (with the
calibration's outcome model for acceptance, revenue and losses); a target that cannot be checked on it
(the share of nano influencers in the whole population; engagement quoted for another vintage than the
calibration's) is listed as not checked, with the reason.

``--dynamics`` (default ``v1``, the env's default): the acceptance, revenue and money-losing targets are
measured under InfluencerMatching-v1's calendar (booking up, brand-category demand), start months
uniform; ``v0`` measures them without it. Both hold every target (``tests/envs/test_population.py``).
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from envs.calibration import POPULATION_MODES
from envs.population import InfluencerPool
from envs.targets import calibration_table
from experiments.cli import run_module
from experiments.files import (
    check_output,
    input_file,
    output_path,
    positive_int,
    seed_argument,
    staged_dir,
    write_json,
)
from experiments.market import load_calibration, market_streams
from experiments.options import check_pool_size


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=positive_int, default=100_000, help="influencers to generate")
    parser.add_argument("--mode", choices=POPULATION_MODES, default="marketplace", help="population mode")
    parser.add_argument("--seed", type=seed_argument, default=0, help="random seed")
    parser.add_argument("--out", type=output_path, required=True, help="output folder (new or empty)")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier output in --out")
    parser.add_argument("--pool", type=input_file, help="your influencer CSV instead of a generated pool")
    parser.add_argument("--calibration", type=input_file, help="YAML file overriding calibration fields")
    parser.add_argument(
        "--dynamics",
        choices=("v0", "v1"),
        default="v1",
        help="the env's dynamics the match-level targets are measured under (default: v1, the calendar)",
    )


def run(args: argparse.Namespace) -> int:
    check_output(args.out, args.overwrite, folder=True)
    cal = load_calibration(args.calibration)
    streams = market_streams(args.seed)
    if args.pool is not None:
        pool = InfluencerPool.read_csv(args.pool, np.random.default_rng(streams.fill), cal)
        source = f"your pool {args.pool} ({len(pool):,} influencers)"
        pools = {"marketplace": pool, "population": pool}
    else:
        check_pool_size(args.n, "--n")
        pool = InfluencerPool.generate(args.n, np.random.default_rng(streams.pool), cal, args.mode)
        source = f"{len(pool):,} generated influencers, {args.mode} mode"
        pools = {args.mode: pool}
    table = calibration_table(
        np.random.default_rng(streams.checks), cal, n=len(pool), pools=pools, dynamics=args.dynamics
    )
    if args.pool is not None:
        table = mark_unchecked(table, cal.engagement_vintage)
    with staged_dir(args.out, args.overwrite) as tmp:
        pool.write_csv(tmp / "pool.csv")
        table.to_csv(tmp / "calibration.csv", index=False)
        write_json(
            tmp / "config.json",
            {
                "command": "market",
                "seed": args.seed,
                "dynamics": args.dynamics,
                "mode": None if args.pool else args.mode,
                "n": len(pool),
                "pool": str(args.pool) if args.pool else None,
                "calibration": cal.to_dict(),
            },
        )
    print(f"Calibration check on {source}:")
    print(format_table(table))
    checked = table[table["inside"].notna()]
    inside = int(checked["inside"].astype(bool).sum())
    print(
        f"\n{inside} of {len(checked)} published targets inside tolerance"
        + (f" ({len(table) - len(checked)} not checked, see 'why not')" if len(checked) < len(table) else "")
        + f". Wrote {args.out}/pool.csv, calibration.csv, config.json"
    )
    return 0


def mark_unchecked(table: pd.DataFrame, vintage: str) -> pd.DataFrame:
    """For a user's pool: the rows that cannot be checked on it get ``inside`` = None and a reason in
    ``not_checked`` (the population-mode share; the 2019 engagement target under another vintage)."""
    table = table.copy()
    table["inside"] = table["inside"].astype(object)
    table["not_checked"] = ""
    population = table["pool"] == "population"
    table.loc[population, "not_checked"] = "describes the whole population, not a marketplace pool"
    if vintage != "2019":
        vintage_rows = table["target"].str.contains("2019 vintage", regex=False)
        table.loc[vintage_rows, "not_checked"] = (
            f"quotes 2019 engagement; your calibration's engagement_vintage is {vintage}"
        )
    unchecked = table["not_checked"] != ""
    table.loc[unchecked, "inside"] = None
    table.loc[unchecked, "simulated"] = "not checked"
    return table


def format_table(table: pd.DataFrame) -> str:
    """The calibration table as aligned text columns."""
    shown = table[["target", "published", "simulated", "tolerance"]].copy()
    ok = [("yes" if v else "NO") if v is not None and not pd.isna(v) else "—" for v in table["inside"]]
    shown.insert(3, "ok", ok)
    if "not_checked" in table and (table["not_checked"] != "").any():
        shown["why not"] = table["not_checked"]
    widths = {c: max(len(c), *(len(str(v)) for v in shown[c])) for c in shown.columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in shown.columns).rstrip()]
    lines.append("  ".join("-" * widths[c] for c in shown.columns))
    for _, row in shown.iterrows():
        lines.append("  ".join(str(row[c]).ljust(widths[c]) for c in shown.columns).rstrip())
    return "\n".join(lines)


if __name__ == "__main__":
    run_module("market")
