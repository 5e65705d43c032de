"""``influmatch fit``: fit the simulated market to your influencers and logged matches.

Reads the pool (``--pool``, the influencer CSV) and the logged matches (``--logs``, the format of
:mod:`experiments.ope.logs`, with its outcome columns and offer facts), fits every outcome parameter the
logs identify (:func:`experiments.market_fit.run_market_fit`) and writes to ``--out``:
``parameters.csv``, ``calibration.yaml`` (loadable by ``--calibration`` and ``calibration=``),
``covariance.csv``, ``checks.csv``, ``checks.png`` and ``fit.json``. An existing non-empty ``--out`` is
refused unless ``--overwrite``; the folder appears whole or not at all.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from envs.fit.likelihoods import ENGAGEMENT_CLUSTERS
from envs.population import InfluencerPool
from experiments.cli import run_module
from experiments.market_fit import FIT_FILES, check_out_dir, run_market_fit, summary_lines, write_fit_folder
from experiments.ope.logs import read_logs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pool", type=Path, required=True, help="influencer CSV the logs refer to")
    parser.add_argument("--logs", type=Path, required=True, help="logged matches (.csv or .parquet)")
    parser.add_argument("--out", type=Path, required=True, help="folder to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing non-empty --out")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of sampled pool columns and the checks (default 0)"
    )
    parser.add_argument(
        "--engagement-clusters",
        choices=ENGAGEMENT_CLUSTERS,
        default="independent",
        help="how the engagement fit weighs one influencer's offers: independent (default, clustered "
        "standard errors) or exchangeable (a GEE: an often-hired influencer weighs less than its "
        "offers, and the fatigue comes from each influencer's engagements as its load moves)",
    )
    parser.add_argument(
        "--fit-slopes",
        action="store_true",
        help="also estimate how engagement and conversions grow with the brand fit (engagement_fit_slope, "
        "conversion_fit_slope; held at their defaults otherwise)",
    )


def run(args: argparse.Namespace) -> int:
    if args.seed < 0:
        raise ValueError(f"--seed: expected a whole number >= 0, got {args.seed}")
    check_out_dir(args.out, overwrite=args.overwrite)
    pool_seed, checks_seed = np.random.SeedSequence(args.seed).spawn(2)
    pool = InfluencerPool.read_csv(args.pool, np.random.default_rng(pool_seed))
    data = read_logs(args.logs)
    clusters = args.engagement_clusters
    result = run_market_fit(data, pool, np.random.default_rng(checks_seed), engagement_clusters=clusters,
                            fit_slopes=args.fit_slopes)  # fmt: skip
    config = {"command": "fit", "pool": str(args.pool), "logs": str(args.logs), "seed": args.seed}
    if clusters != "independent":  # the default run's fit.json stays as it was
        config["engagement_clusters"] = clusters
    if args.fit_slopes:
        config["fit_slopes"] = True
    out = write_fit_folder(result, args.out, overwrite=args.overwrite, config=config)
    print(
        f"Fitted the market to {len(result.offers):,} offers of {data.n_campaigns:,} campaigns "
        f"({data.n_decisions:,} decisions) on {len(pool):,} influencers."
    )
    print("\n".join(summary_lines(result)))
    print(f"Wrote {out}/: {', '.join(FIT_FILES)}")
    return 0


if __name__ == "__main__":
    run_module("fit")
