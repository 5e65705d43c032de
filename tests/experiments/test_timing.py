"""The timing analysis: hire-now-versus-wait cells from the planner, where policies wait, the figure."""

from __future__ import annotations

import numpy as np

from agents import make_agent
from envs.matching_env import InfluencerMatchingEnv
from experiments.reporting.timing_figure import plot_timing
from experiments.timing import policy_waits, timing_table


def test_timing_table_cells_waits_and_figure(tmp_path):
    env = InfluencerMatchingEnv(n_influencers=1_000, n_segments=3, dynamics="v1", campaign_weeks=10)
    table = timing_table(env, categories=["fitness", "travel"], months=[0, 10], n_campaigns=3, seed=1,
                         planner={"n_rollouts": 2})  # fmt: skip
    assert list(table["category"]) == ["fitness", "fitness", "travel", "travel"]
    assert set(table["decision"]) <= {"hire now", "wait", "either"}
    assert (table["n"] == 3).all() and np.isfinite(table["advantage"]).all()
    # A deterministic rule of the same seed gives the same table.
    again = timing_table(env, categories=["fitness", "travel"], months=[0, 10], n_campaigns=3, seed=1,
                         planner={"n_rollouts": 2})  # fmt: skip
    assert table.equals(again)
    waits = policy_waits(make_agent("random", env, seed=0), env, seeds=[1, 2, 3], label="random")
    assert len(waits) == 12 and waits["weeks"].sum() > 0
    assert ((waits["wait_share"].dropna() >= 0) & (waits["wait_share"].dropna() <= 1)).all()
    never = policy_waits(make_agent("best_fit", env), env, seeds=[1, 2], label="best_fit")
    assert never["waited"].sum() == 0  # the heuristics never wait while a hire is valid
    table.to_csv(tmp_path / "timing.csv", index=False)
    waits.to_csv(tmp_path / "waits.csv", index=False)
    for suffix in (".png", ".svg"):
        out = plot_timing(tmp_path / "timing.csv", tmp_path / f"timing{suffix}", tmp_path / "waits.csv")
        assert out.stat().st_size > 1000
