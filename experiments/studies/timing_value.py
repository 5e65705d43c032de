"""How much of the planner's return comes from being allowed to wait (issue: the best time to match).

``python -m experiments.studies.timing_value --out runs/timing_value [--seeds 5] [--campaigns 100]
[--runs RUN_DIR ...] [--env KEY=VALUE ...]``

For each market seed, plays the same campaigns of seasonal brand categories (fitness, travel, beauty,
fashion, family, gaming, tech; start months uniform) with the planning oracle, with the same planner
without the wait action (``allow_wait=False``), and with the myopic oracle. With ``--runs``, each saved
run's policy also plays the campaigns of its own market, as it is and as a copy whose waits are
replaced by its best hire (:func:`experiments.timing.play_campaign`): how much of the timing value the
learned policy captures. ``--env`` sets options of the studied markets' environment (for example
``launch_week=8``: every campaign launches its product in week 8, see the env's ``launch_week``).

Writes ``campaigns.csv`` (one row per campaign and policy: the return drawn, the expected return, the
weeks waited, the budget, whether the myopic oracle ran out of budget before the last week) and
``summary.csv``: overall, per market, per brand category, and for the campaigns whose budget binds and the others, the
mean expected returns, the timing value ``planner - planner without waiting`` with its paired standard
error, and that value as a share of the planner's return (of the total, and the mean of each
campaign's share, where a campaign's small return no longer counts for less); and the same per 1,000 USD
of each campaign's budget (``timing_value_per_1k_budget`` with its s.e., ``timing_share_per_budget``),
where every campaign counts the same whatever its size: the means in thousands of USD are carried by the
few largest budgets, whose returns are hundreds of times the median's. Expected returns (each
week's expected reward of the action taken, summed) have the same mean as the returns drawn and far
less noise, so the comparisons use them; both are in ``campaigns.csv``. Same seeds, same files.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from experiments.options import add_env_argument, parse_env_options
from experiments.studies import add_overwrite, refuse_existing

SEASONAL = ("fitness", "travel", "beauty", "fashion", "family", "gaming", "tech")


def campaigns_of(env, market_seed: int, n: int) -> list:
    """The study's ``n`` campaigns on ``env``'s market: seasonal categories in turn, start months drawn."""
    from envs.calibration import CATEGORIES
    from envs.campaigns import sample_campaign

    rng = np.random.default_rng([market_seed, 7])
    out = []
    for k in range(n):
        campaign = sample_campaign(rng, env.unwrapped.calibration)
        category = CATEGORIES.index(SEASONAL[k % len(SEASONAL)])
        out.append(dataclasses.replace(campaign, category=category, start_month=int(rng.integers(12))))
    return out


def _rows(
    policy, env, campaigns, market: str, seed: int, name: str, replace_waits: bool = False
) -> list[dict]:
    from envs.calibration import CATEGORIES
    from experiments.timing import play_campaign

    rows = []
    for k, campaign in enumerate(campaigns):
        total, expected, waits = play_campaign(
            policy, env, 10_000 * seed + k, {"campaign": campaign}, replace_waits=replace_waits
        )
        rows.append({"market": market, "campaign": k, "category": CATEGORIES[int(campaign.category)],
                     "start_month": int(campaign.start_month), "budget": float(campaign.budget),
                     "policy": name, "return": total, "expected_return": expected, "waits": waits,
                     "weeks": int(env.unwrapped.week)})  # fmt: skip
    return rows


def _references(env, campaigns, market: str, seed: int) -> list[dict]:
    """The planner, the planner without waiting and the myopic oracle on ``campaigns``."""
    from agents import MyopicOracle, PlanningOracle

    return (
        _rows(PlanningOracle(env, seed=seed), env, campaigns, market, seed, "planner")
        + _rows(
            PlanningOracle(env, seed=seed, allow_wait=False), env, campaigns, market, seed, "planner_no_wait"
        )
        + _rows(MyopicOracle(env), env, campaigns, market, seed, "myopic_oracle")
    )


def market_env(market_seed: int, n_influencers: int, env_options: dict | None = None):
    """The study's environment on market ``market_seed`` (v1, with ``env_options``)."""
    import gymnasium as gym

    import envs

    return gym.make(envs.ENV_ID, n_influencers=n_influencers, market_seed=market_seed, **(env_options or {}))


def run(
    out: Path,
    seeds: int,
    campaigns: int,
    n_influencers: int,
    runs: list[Path] | None = None,
    env_options: dict | None = None,
) -> pd.DataFrame:
    """The study (module docstring); returns the summary it writes."""
    from agents import load_agent
    from experiments.runner import load_run, make_env

    rows: list[dict] = []
    for market_seed in range(seeds):
        env = market_env(market_seed, n_influencers, env_options)
        rows += _references(
            env, campaigns_of(env, market_seed, campaigns), f"market {market_seed}", market_seed
        )
        print(f"market {market_seed}: {campaigns} campaigns", flush=True)
    for run_dir in runs or []:
        info = load_run(run_dir)
        env = make_env(info["spec"])
        agent = load_agent(info["spec"].agent, run_dir / info["config"]["model_file"], env=env)
        seed = int(info["config"].get("env_options", {}).get("market_seed", 0))
        planned = campaigns_of(env, seed, campaigns)
        market, name = f"run {run_dir.name}", info["spec"].agent
        rows += _references(env, planned, market, seed)
        rows += _rows(agent, env, planned, market, seed, name)
        rows += _rows(agent, env, planned, market, seed, f"{name}:no_wait", replace_waits=True)
        print(f"{run_dir}: {campaigns} campaigns", flush=True)
    table = pd.DataFrame(rows)
    full = int(table["weeks"].max())
    myopic = table[table["policy"] == "myopic_oracle"].set_index(["market", "campaign"])["weeks"]
    keys = pd.MultiIndex.from_frame(table[["market", "campaign"]])
    table["budget_binds"] = myopic.reindex(keys).to_numpy() < full
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "campaigns.csv", index=False)
    summary = summarize(table)
    summary.to_csv(out / "summary.csv", index=False)
    return summary


def _gain(wide: pd.DataFrame, with_waits: str, without: str, budget: pd.Series) -> dict:
    both = wide[[with_waits, without]].dropna()
    gain = both[with_waits] - both[without]
    n = len(gain)
    share = gain / both[with_waits].where(both[with_waits].abs() > 1e-9)
    # USD per 1,000 USD of budget (returns are in thousands of USD): every campaign counts the same
    # whatever its size, where a few of the largest budgets otherwise carry the means.
    per_1k = 1e6 / budget.reindex(both.index)
    gain_per_1k = gain * per_1k
    return {
        "campaigns": n,
        "timing_value": gain.mean(),
        "timing_value_se": _se(gain),
        "timing_share_of_total": gain.mean() / both[with_waits].mean(),
        "timing_share_per_campaign": share.mean(),
        "return_per_1k_budget": (both[with_waits] * per_1k).mean(),
        "timing_value_per_1k_budget": gain_per_1k.mean(),
        "timing_value_per_1k_budget_se": _se(gain_per_1k),
        "timing_share_per_budget": gain_per_1k.mean() / (both[with_waits] * per_1k).mean(),
    }


def _se(x: pd.Series) -> float:
    return float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else np.nan


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """One row per group (all campaigns, budget binding or not, the runs' markets pooled, each market,
    each brand category of the studied markets) and policy pair: the mean expected returns and the
    timing value (with waiting minus without) with its paired s.e., in thousands of USD and per 1,000
    USD of budget."""
    wide = table.pivot_table(index=["market", "campaign"], columns="policy", values="expected_return")
    budget = table.groupby(["market", "campaign"])["budget"].first()
    binds = table.groupby(["market", "campaign"])["budget_binds"].first().reindex(wide.index)
    studied = wide.index.get_level_values("market").str.startswith("market ")
    groups = [("all markets", wide[studied]), ("budget binds", wide[studied & binds.to_numpy()]),
              ("budget does not bind", wide[studied & ~binds.to_numpy()])]  # fmt: skip
    if not studied.all():  # the learned policies' markets pooled (each run on its own market)
        groups.append(("all runs", wide[~studied]))
    groups += [(str(m), g) for m, g in wide.groupby(level="market")]
    category = table.groupby(["market", "campaign"])["category"].first().reindex(wide.index).to_numpy()
    groups += [(f"category {c}", wide[studied & (category == c)]) for c in sorted(set(category[studied]))]
    pairs = [("planner", "planner_no_wait")] + [
        (p, f"{p}:no_wait") for p in wide.columns if f"{p}:no_wait" in wide.columns
    ]
    rows = []
    for label, g in groups:
        for with_waits, without in pairs:
            if g[[with_waits, without]].dropna().empty:
                continue
            rows.append({"group": label, "policy": with_waits, "return": g[with_waits].mean(),
                         "return_without_waiting": g[without].mean(),
                         "myopic_oracle": g["myopic_oracle"].mean(), **_gain(g, with_waits, without, budget)})  # fmt: skip
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/timing_value"))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--campaigns", type=int, default=100)
    parser.add_argument("--n-influencers", type=int, default=10_000)
    parser.add_argument("--runs", type=Path, nargs="*", default=[], help="run folders of learned policies")
    add_env_argument(parser, "options of the studied markets' environment (e.g. launch_week=8)")
    add_overwrite(parser)
    args = parser.parse_args()
    try:
        env_options = parse_env_options(args.env)
        for key, flag in (("market_seed", "--seeds"), ("n_influencers", "--n-influencers")):
            if key in env_options:
                raise ValueError(f"--env: {key} is set by {flag}")
        market_env(0, args.n_influencers, env_options)  # a bad option's value stops here, in one line
    except ValueError as e:
        parser.error(str(e))
    refuse_existing(parser, args.out, ["campaigns.csv", "summary.csv"], args.overwrite)
    summary = run(args.out, args.seeds, args.campaigns, args.n_influencers, args.runs, env_options)
    print(summary.to_string(index=False))


if __name__ == "__main__":
    main()
