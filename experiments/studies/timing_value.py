"""How much of the planner's return comes from being allowed to wait (issue: the best time to match).

``python -m experiments.studies.timing_value --out runs/timing_value [--seeds 5] [--campaigns 100]``

For each market seed, plays the same campaigns of seasonal brand categories (fitness, travel, beauty,
fashion, family, gaming, tech; start months uniform) with the planning oracle, with the same planner
without the wait action (``allow_wait=False``), and with the myopic oracle; writes ``campaigns.csv``
(one row per campaign and policy) and ``summary.csv`` (per seed and overall: mean returns, the timing
value ``planner - planner without waiting`` with its paired standard error, and that value as a share
of the planner's return). Same seeds, same files.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

SEASONAL = ("fitness", "travel", "beauty", "fashion", "family", "gaming", "tech")


def play(policy, env, campaign, seed: int) -> tuple[float, int]:
    obs, info = env.reset(seed=seed, options={"campaign": campaign})
    total, waits, done = 0.0, 0, False
    while not done:
        action = int(policy.predict(obs)[0])
        waits += action == env.unwrapped.wait_action and bool(info["action_mask"][:-1].any())
        obs, reward, terminated, truncated, info = env.step(action)
        total += float(reward)
        done = terminated or truncated
    return total, waits


def run(out: Path, seeds: int, campaigns: int, n_influencers: int) -> pd.DataFrame:
    import gymnasium as gym

    import envs
    from agents import MyopicOracle, PlanningOracle
    from envs.calibration import CATEGORIES
    from envs.campaigns import sample_campaign

    rows = []
    for market_seed in range(seeds):
        env = gym.make(envs.ENV_ID, n_influencers=n_influencers, market_seed=market_seed)
        policies = {
            "planner": PlanningOracle(env, seed=market_seed),
            "planner_no_wait": PlanningOracle(env, seed=market_seed, allow_wait=False),
            "myopic_oracle": MyopicOracle(env),
        }
        rng = np.random.default_rng([market_seed, 7])
        for k in range(campaigns):
            category = SEASONAL[k % len(SEASONAL)]
            campaign = dataclasses.replace(
                sample_campaign(rng, env.unwrapped.calibration),  # type: ignore[attr-defined]
                category=CATEGORIES.index(category),
                start_month=int(rng.integers(12)),
            )
            for name, policy in policies.items():
                total, waits = play(policy, env, campaign, seed=10_000 * market_seed + k)
                rows.append({"market_seed": market_seed, "campaign": k, "category": category,
                             "start_month": int(campaign.start_month), "budget": float(campaign.budget),
                             "policy": name, "return": total, "waits": waits})  # fmt: skip
        print(f"market {market_seed}: {campaigns} campaigns", flush=True)
    table = pd.DataFrame(rows)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "campaigns.csv", index=False)
    summary = summarize(table)
    summary.to_csv(out / "summary.csv", index=False)
    return summary


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    wide = table.pivot_table(index=["market_seed", "campaign"], columns="policy", values="return")
    groups = [("all", wide)] + [(str(s), g) for s, g in wide.groupby(level="market_seed")]
    rows = []
    for label, g in groups:
        gain = g["planner"] - g["planner_no_wait"]
        n = len(gain)
        rows.append({
            "market_seed": label, "campaigns": n,
            "planner": g["planner"].mean(), "planner_no_wait": g["planner_no_wait"].mean(),
            "myopic_oracle": g["myopic_oracle"].mean(),
            "timing_value": gain.mean(), "timing_value_se": gain.std(ddof=1) / np.sqrt(n),
            "timing_share_of_planner": gain.mean() / g["planner"].mean(),
        })  # fmt: skip
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/timing_value"))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--campaigns", type=int, default=100)
    parser.add_argument("--n-influencers", type=int, default=10_000)
    args = parser.parse_args()
    print(run(args.out, args.seeds, args.campaigns, args.n_influencers).to_string(index=False))


if __name__ == "__main__":
    main()
