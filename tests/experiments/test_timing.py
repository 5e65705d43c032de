"""The timing analysis: hire-now-versus-wait cells from the planner, where policies wait, the figure."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from agents import make_agent
from envs.matching_env import InfluencerMatchingEnv
from experiments.reporting.timing_figure import plot_timing
from experiments.timing import best_hire, play_campaign, policy_waits, timing_table


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


@pytest.mark.slow
def test_timing_command_plot_and_report_section(tmp_path, capsys):
    """influmatch timing on a small real sweep writes timing.csv and waits.csv; plot --kind timing draws
    them; the report's ceiling section shows every policy's score against the planner and the figure."""
    import pandas as pd

    from experiments.cli import main

    config = tmp_path / "small.yaml"
    config.write_text(
        "name: small\ntimesteps: 300\nseeds: 1\neval: {every: 300, episodes: 3}\n"
        "env: {n_influencers: 600, n_segments: 3, campaign_weeks: 6}\n"
        "agents: {best_fit: {}, random: {}, oracle: {}}\n"
    )
    sweep = tmp_path / "sweep"
    assert main(["sweep", str(config), "--out", str(sweep), "--n-jobs", "1", "--no-progress"]) == 0
    assert (
        main(["plot", str(sweep), "--kind", "timing", "--out", str(tmp_path / "t.png")]) == 2
    )  # no timing.csv
    assert "influmatch timing" in capsys.readouterr().err
    assert main(["timing", str(sweep), "--campaigns", "1"]) == 0
    timing, waits = pd.read_csv(sweep / "timing.csv"), pd.read_csv(sweep / "waits.csv")
    assert len(timing) == 144 and set(waits["policy"]) == {"best_fit", "random", "oracle"}
    assert main(["timing", str(sweep)]) == 2  # refuses to replace without --overwrite
    assert main(["plot", str(sweep), "--kind", "timing", "--out", str(tmp_path / "t.png")]) == 0
    assert main(["report", str(sweep)]) == 0
    page = (sweep / "report.html").read_text(encoding="utf-8")
    assert "Against the best policy found, and when to hire" in page and "optimality gap" in page
    assert page.count("data:image/png") >= 3


def test_timing_names_what_is_not_a_sweep_folder(tmp_path, capsys):
    from experiments.cli import main

    (tmp_path / "file.csv").write_text("x\n")
    assert main(["timing", str(tmp_path / "file.csv")]) == 2
    assert "not a sweep folder (it is a file)" in capsys.readouterr().err
    assert main(["timing", str(tmp_path / "missing")]) == 2
    assert "not a sweep folder (no such folder)" in capsys.readouterr().err


class _WaitsOnEvenWeeks:
    """A stand-in learned policy: waits on even weeks, else its favourite hire; ranks by probabilities."""

    def __init__(self, env):
        self.env = env

    def action_probabilities(self, observation, mask):
        probs = np.where(mask, np.arange(1, mask.size + 1, dtype=float), 0.0)
        probs[-1] = probs.max() * 2 if mask[-1] else 0.0  # prefers waiting over every hire
        return probs / probs.sum()

    def predict(self, observation, deterministic=True):
        unwrapped = self.env.unwrapped
        if unwrapped.week % 2 == 0:
            return np.asarray(unwrapped.wait_action), None
        mask = unwrapped.action_masks()
        return np.asarray(
            int(np.flatnonzero(mask[:-1]).max()) if mask[:-1].any() else unwrapped.wait_action
        ), None


def test_timing_table_gives_every_campaign_the_budget_asked_for_and_scales_by_it(monkeypatch):
    import experiments.timing as timing

    env = InfluencerMatchingEnv(n_influencers=1_000, n_segments=3, dynamics="v1", campaign_weeks=8)
    kwargs = {
        "categories": ["fitness"],
        "months": [0],
        "n_campaigns": 2,
        "seed": 4,
        "planner": {"n_rollouts": 2},
    }
    small = timing_table(env, budget=2_000.0, **kwargs)
    assert float(env.campaign.budget) == 2_000.0  # the last campaign played had the budget asked for
    large = timing_table(env, budget=4_000.0, **kwargs)
    assert float(env.campaign.budget) == 4_000.0
    assert np.isfinite(small["advantage"]).all() and np.isfinite(large["advantage"]).all()
    monkeypatch.setattr(timing, "_advantage", lambda env, seed, planner: 1.0)  # 1 thousand USD
    fixed = timing_table(env, budget=4_000.0, **kwargs)
    assert fixed["advantage"].iloc[0] == pytest.approx(250.0)  # USD per 1,000 USD of budget


def test_a_copy_without_waits_hires_its_best_instead():
    env = InfluencerMatchingEnv(n_influencers=1_000, n_segments=3, dynamics="v1", campaign_weeks=8)
    agent = _WaitsOnEvenWeeks(env)
    total, expected, waits = play_campaign(agent, env, seed=3)
    assert waits >= 3 and np.isfinite(total) and np.isfinite(expected)
    total, expected, waits = play_campaign(agent, env, seed=3, replace_waits=True)
    assert waits == 0
    mask = env.action_masks()
    assert best_hire(agent, np.zeros(3), mask) != env.wait_action  # the best *hire*, never the wait
    with pytest.raises(ValueError, match="ranks no actions"):
        best_hire(object(), np.zeros(3), mask)


@pytest.mark.slow
def test_timing_value_study_writes_its_tables(tmp_path):
    from experiments.studies import timing_value

    summary = timing_value.run(tmp_path, seeds=1, campaigns=3, n_influencers=1_500)
    table = __import__("pandas").read_csv(tmp_path / "campaigns.csv")
    assert set(table["policy"]) == {"planner", "planner_no_wait", "myopic_oracle"}
    assert len(table) == 9 and table["budget_binds"].dtype == bool
    row = summary[summary["group"] == "all markets"].iloc[0]
    wide = table.pivot_table(index="campaign", columns="policy", values="expected_return")
    assert row["timing_value"] == pytest.approx((wide["planner"] - wide["planner_no_wait"]).mean())
    budget = table.groupby("campaign")["budget"].first()
    per_1k = (wide["planner"] - wide["planner_no_wait"]) * 1e6 / budget  # USD per 1,000 USD of budget
    assert row["timing_value_per_1k_budget"] == pytest.approx(per_1k.mean())
    assert row["timing_value_per_1k_budget_se"] == pytest.approx(per_1k.std(ddof=1) / np.sqrt(3))
    assert row["timing_share_per_budget"] == pytest.approx(
        per_1k.mean() / (wide["planner"] * 1e6 / budget).mean()
    )
    by_category = summary[summary["group"].str.startswith("category ")]
    assert sorted(by_category["group"]) == [f"category {c}" for c in sorted(set(table["category"]))]
    assert by_category["campaigns"].sum() == 3
    again = timing_value.run(tmp_path / "again", seeds=1, campaigns=3, n_influencers=1_500)
    assert summary.equals(again)  # same seeds, same numbers
    # --env: the markets' option reaches every policy's campaigns (a launch: the oracle waits for it)
    timing_value.run(
        tmp_path / "launch", seeds=1, campaigns=3, n_influencers=1_500, env_options={"launch_week": 4}
    )
    launch = __import__("pandas").read_csv(tmp_path / "launch" / "campaigns.csv")
    assert not launch["expected_return"].equals(table["expected_return"])
    assert (
        launch.loc[launch["policy"] == "planner", "waits"].sum()
        > table.loc[table["policy"] == "planner", "waits"].sum()
    )


@pytest.mark.parametrize(
    ("pairs", "message"),
    [(["launch_week=-1"], "launch_week: expected a whole number >= 0, got -1"),
     (["market_seed=2"], "--env: market_seed is set by --seeds"),
     (["lunch_week=3"], "--env: unknown environment option 'lunch_week'")],
)  # fmt: skip
def test_timing_value_names_a_bad_env_option_in_one_line(pairs, message, tmp_path, monkeypatch, capsys):
    from experiments.studies import timing_value

    monkeypatch.setattr(sys, "argv", ["timing_value", "--out", str(tmp_path), "--n-influencers", "1500",
                                      "--env", *pairs])  # fmt: skip
    with pytest.raises(SystemExit) as stop:
        timing_value.main()
    assert stop.value.code == 2
    assert message in capsys.readouterr().err.strip().splitlines()[-1]
    assert not any(tmp_path.iterdir())


def test_best_hire_reads_a_distilled_trees_leaf_scores():
    """A distilled tree ranks actions by its leaf's scores (action_scores): its best hire is the valid
    hire scored highest there, one scored -inf still beats an invalid action, and never the wait."""
    from agents.distill import DistilledTree

    env = InfluencerMatchingEnv(n_influencers=1_000, n_segments=3, dynamics="v1", campaign_weeks=8)
    tree = DistilledTree(env, None, max_leaves=2)
    n = env.action_space.n
    scores = np.linspace(0.0, 1.0, n)  # the wait (last) scores highest
    tree.votes_ = scores.reshape(1, -1)
    obs, info = env.reset(seed=0)
    np.testing.assert_array_equal(tree.action_scores(obs), scores)
    assert tree.action_scores(np.stack([obs, obs])).shape == (2, n)
    mask = np.ones(n, dtype=bool)
    assert best_hire(tree, obs, mask) == n - 2
    mask[n - 2] = False
    assert best_hire(tree, obs, mask) == n - 3
    tree.votes_ = np.full((1, n), -np.inf)
    only = np.zeros(n, dtype=bool)
    only[[4, n - 1]] = True
    assert best_hire(tree, obs, only) == 4


@pytest.mark.slow
def test_distill_timing_study_writes_its_capture_table(tmp_path):
    import pandas as pd

    from experiments.studies import distill_timing

    capture = distill_timing.run(tmp_path, seeds=1, campaigns=3, n_influencers=1_000, train_campaigns=2,
                                 iterations=2, max_leaves=4, planner={"n_rollouts": 2})  # fmt: skip
    table = pd.read_csv(tmp_path / "campaigns.csv")
    assert set(table["policy"]) == {"planner", "planner_no_wait", "myopic_oracle", "distilled_tree",
                                    "distilled_tree:no_wait"}  # fmt: skip
    row = capture[capture["group"] == "all markets"].iloc[0]
    wide = table.pivot_table(index="campaign", columns="policy", values="expected_return")
    tree_value = (wide["distilled_tree"] - wide["distilled_tree:no_wait"]).mean()
    assert row["tree_timing_value"] == pytest.approx(tree_value)
    assert row["planner_timing_value"] == pytest.approx((wide["planner"] - wide["planner_no_wait"]).mean())
    assert (tmp_path / "tree_0.json").is_file() and (tmp_path / "tree_0.txt").read_text().strip()
    assert (table.loc[table["policy"] == "distilled_tree:no_wait", "waits"] == 0).all()


@pytest.mark.slow
def test_timing_value_runs_a_trees_run_folder_and_its_copy_without_waits(tmp_path):
    """``--runs`` with a tree distilled from the planner: the tree plays its own market's campaigns, as it
    is and with its waits replaced by its best hire (through its leaf scores)."""
    import pandas as pd

    from experiments.cli import main
    from experiments.studies import timing_value

    run_dir = tmp_path / "tree"
    code = main(["train", "--agent", "distilled_tree", "--hp", "teacher=planning_oracle", "features=season",
                 "leaf_values=q", "n_iterations=1", "--timesteps", "150", "--seed", "0", "--out", str(run_dir),
                 "--env", "n_influencers=1500", "--eval-episodes", "2", "--no-planner", "--no-progress"])  # fmt: skip
    assert code == 0
    summary = timing_value.run(tmp_path / "study", seeds=1, campaigns=3, n_influencers=1_500, runs=[run_dir])
    table = pd.read_csv(tmp_path / "study" / "campaigns.csv")
    mine = table[table["policy"].str.startswith("distilled_tree")]
    assert len(mine) == 6 and mine["policy"].nunique() == 2  # the tree and its copy, 3 campaigns each
    assert np.isfinite(mine["expected_return"]).all()
    pooled = summary[(summary["group"] == "all runs") & (summary["policy"] == "distilled_tree")].iloc[0]
    run = summary[(summary["group"] == "run tree") & (summary["policy"] == "distilled_tree")].iloc[0]
    assert pooled["campaigns"] == 3 and pooled["timing_value"] == pytest.approx(run["timing_value"])
    assert "all runs" not in set(
        timing_value.summarize(table[~table["market"].str.startswith("run ")])["group"]
    )
