"""When should a brand hire? The hire-now-versus-wait table and figure of the README.

``python -m experiments.studies.best_time --out docs [--campaigns 8] [--budget 3000]``

Runs :func:`experiments.timing.timing_table` on the default market (InfluencerMatching-v1, 10,000
influencers, market seed 0) for every brand category and start month, and writes ``best_time.csv``
and ``best_time.png`` (:func:`experiments.reporting.timing_figure.plot_timing`). With ``--budget`` every
campaign gets that budget (USD): waiting is worth most when the budget binds. Same seed, same files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from experiments.studies import add_overwrite, refuse_existing


def main() -> None:
    import gymnasium as gym

    import envs
    from experiments.reporting.timing_figure import plot_timing
    from experiments.timing import timing_table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--campaigns", type=int, default=8, help="campaigns per category and month")
    parser.add_argument("--budget", type=float, default=None, help="every campaign's budget in USD")
    parser.add_argument("--seed", type=int, default=0)
    add_overwrite(parser)
    args = parser.parse_args()
    refuse_existing(parser, args.out, ["best_time.csv", "best_time.png"], args.overwrite)
    env = gym.make(envs.ENV_ID).unwrapped
    table = timing_table(env, n_campaigns=args.campaigns, budget=args.budget, seed=args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    csv = args.out / "best_time.csv"
    table.to_csv(csv, index=False)
    budget = f"a {args.budget:,.0f} USD budget" if args.budget else "budgets drawn from the market"
    plot_timing(csv, args.out / "best_time.png", title=f"Hire now or wait? ({budget}; planner, v1 market)")
    print(table.pivot(index="category", columns="month_name", values="decision").to_string())


if __name__ == "__main__":
    main()
