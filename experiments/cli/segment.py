"""``influmatch segment``: segment an influencer pool with k-means and profile the segments.

The pool is generated (``--n``, ``--mode``) or read from your CSV (``--pool``). Writes to ``--out``
``labels.csv``, ``profiles.csv``, ``segment_map.png`` and ``segment_profiles.png`` (see
:mod:`experiments.segments`) and ``config.json``: the arguments, the number of segments used and, with
``--k auto``, the silhouette score of every k tried.

Seeding: ``--seed S`` builds the market of ``influmatch train --seed S`` (the same pool as
``influmatch market --seed S`` of that size and mode, segmented as that run's environment segments it:
:func:`experiments.market.market_streams`), so the segments named here are the segments a policy trained
with that seed chooses among. Same seed, same files. ``--out`` must be new or empty (``--overwrite``
replaces an earlier output, in one rename once the new one is complete).
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from envs.calibration import POPULATION_MODES
from envs.population import InfluencerPool
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
from experiments.segments import LABELS_FILE, MAP_FILE, PROFILES_FIGURE, PROFILES_FILE, write_segment_files
from matching.segmentation import InfluencerSegmenter


def segments_argument(text: str) -> int | str:
    """argparse type for ``--k``: a whole number >= 2, or ``auto``."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 2 or 'auto', got '{text}'") from None
    if value < 2:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 2 or 'auto', got '{text}'")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--pool", type=input_file, help="your influencer CSV instead of a generated pool")
    source.add_argument("--n", type=positive_int, default=10_000, help="influencers to generate")
    parser.add_argument(
        "--k",
        type=segments_argument,
        default=8,
        help="number of segments, or 'auto' to choose 4..12 by silhouette",
    )
    parser.add_argument("--mode", choices=POPULATION_MODES, default="marketplace", help="population mode")
    parser.add_argument("--seed", type=seed_argument, default=0, help="the run seed whose market to segment")
    parser.add_argument("--out", type=output_path, required=True, help="output folder (new or empty)")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier output in --out")
    parser.add_argument("--calibration", type=input_file, help="YAML file overriding calibration fields")


def run(args: argparse.Namespace) -> int:
    check_output(args.out, args.overwrite, folder=True)
    cal = load_calibration(args.calibration)
    streams = market_streams(args.seed)
    if args.pool is not None:
        pool = InfluencerPool.read_csv(args.pool, np.random.default_rng(streams.fill), cal)
        source = f"your pool {args.pool}"
    else:
        check_pool_size(args.n, "--n")
        pool = InfluencerPool.generate(args.n, np.random.default_rng(streams.pool), cal, args.mode)
        source = f"generated pool, {args.mode} mode"
    if isinstance(args.k, int) and args.k > len(pool):
        raise ValueError(f"--k {args.k} exceeds the number of influencers ({len(pool)})")
    frame = pool.to_frame()
    segmenter = InfluencerSegmenter(args.k, random_state=streams.segmentation_seed).fit(frame)
    with staged_dir(args.out, args.overwrite) as tmp:
        profiles = write_segment_files(frame, segmenter, tmp, tier_edges=cal.tier_edges)
        write_json(
            tmp / "config.json",
            {
                "command": "segment",
                "seed": args.seed,
                "market_seed": streams.market_seed,
                "k": args.k,
                "n_segments": segmenter.n_segments_,
                "silhouette_scores": {str(k): v for k, v in segmenter.silhouette_scores_.items()},
                "mode": None if args.pool else args.mode,
                "n": len(pool),
                "pool": str(args.pool) if args.pool else None,
                "calibration": cal.to_dict(),
            },
        )
    chosen = " (chosen by silhouette from 4..12)" if args.k == "auto" else ""
    print(f"{segmenter.n_segments_} segments{chosen} of {len(pool):,} influencers ({source}):")
    print(format_profiles(profiles))
    print(f"\nWrote {args.out}/{LABELS_FILE}, {PROFILES_FILE}, {MAP_FILE}, {PROFILES_FIGURE}, config.json")
    return 0


def format_profiles(profiles: pd.DataFrame) -> str:
    """A short text table of the segment profiles."""
    shown = pd.DataFrame(
        {
            "seg": profiles["segment"].astype(str),
            "name": profiles["name"],
            "size": profiles["size"].map("{:,}".format),
            "share": profiles["share"].map("{:.1%}".format),
            "median followers": profiles["median_followers"].map("{:,.0f}".format),
            "median price $": profiles["median_price"].map("{:,.0f}".format),
            "median ER": profiles["median_engagement_rate"].map("{:.2%}".format),
            "engagements/$": profiles["value_per_dollar"].map("{:.2f}".format),
        }
    )
    widths = {c: max(len(c), *(len(v) for v in shown[c])) for c in shown.columns}
    left = {"seg", "name"}

    def cell(column: str, value: str) -> str:
        return value.ljust(widths[column]) if column in left else value.rjust(widths[column])

    lines = ["  ".join(cell(c, c) for c in shown.columns)]
    lines.append("  ".join("-" * widths[c] for c in shown.columns))
    lines += ["  ".join(cell(c, row[c]) for c in shown.columns) for _, row in shown.iterrows()]
    return "\n".join(line.rstrip() for line in lines)


if __name__ == "__main__":
    run_module("segment")
