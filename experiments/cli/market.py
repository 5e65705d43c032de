"""``influmatch market``: generate (or read) an influencer pool and check it against published figures.

Writes to ``--out``: ``pool.csv`` (the pool, every column of the CSV contract), ``calibration.csv``
(each published target of the calibration beside the simulated value; sources in
``docs/calibration.md``) and ``config.json``; prints the table. Same seed, same files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from envs.calibration import POPULATION_MODES, Calibration
from envs.population import InfluencerPool
from envs.targets import calibration_table
from experiments.cli import run_module
from experiments.files import positive_int, prepare_out_dir, write_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--n", type=positive_int, default=100_000, help="influencers to generate (default 100000)"
    )
    parser.add_argument("--mode", choices=POPULATION_MODES, default="marketplace", help="population mode")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--pool", type=Path, help="your influencer CSV instead of a generated pool")
    parser.add_argument("--calibration", type=Path, help="YAML file overriding calibration fields")


def run(args: argparse.Namespace) -> int:
    cal = Calibration.from_yaml(args.calibration) if args.calibration else Calibration()
    pool_seed, table_seed = np.random.SeedSequence(args.seed).spawn(2)
    pool_rng = np.random.default_rng(pool_seed)
    if args.pool is not None:
        pool = InfluencerPool.read_csv(args.pool, pool_rng, cal)
        source = f"your pool {args.pool} ({len(pool):,} influencers)"
    else:
        pool = InfluencerPool.generate(args.n, pool_rng, cal, args.mode)
        source = f"{len(pool):,} generated influencers, {args.mode} mode"
    out = prepare_out_dir(args.out)
    table = calibration_table(np.random.default_rng(table_seed), cal, n=len(pool), pools={args.mode: pool})
    pool.write_csv(out / "pool.csv")
    table.to_csv(out / "calibration.csv", index=False)
    write_json(
        out / "config.json",
        {
            "command": "market",
            "seed": args.seed,
            "mode": args.mode,
            "n": len(pool),
            "pool": str(args.pool) if args.pool else None,
            "calibration": cal.to_dict(),
        },
    )
    print(f"Calibration check on {source}:")
    print(format_table(table))
    inside = int(table["inside"].sum())
    print(
        f"\n{inside} of {len(table)} published targets inside tolerance. Wrote {out}/pool.csv, calibration.csv"
    )
    return 0


def format_table(table) -> str:
    """The calibration table as aligned text columns."""
    shown = table[["target", "published", "simulated", "tolerance"]].copy()
    shown.insert(3, "ok", np.where(table["inside"], "yes", "NO"))
    widths = {c: max(len(c), *(len(str(v)) for v in shown[c])) for c in shown.columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in shown.columns).rstrip()]
    lines.append("  ".join("-" * widths[c] for c in shown.columns))
    for _, row in shown.iterrows():
        lines.append("  ".join(str(row[c]).ljust(widths[c]) for c in shown.columns).rstrip())
    return "\n".join(lines)


if __name__ == "__main__":
    run_module("market")
