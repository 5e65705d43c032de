"""Accuracy of the per-campaign estimate, pinned so a regression fails: repeated paths allocated by a
pilot (experiments.ope.paths), the truth over several paths, and a small fixed-seed backtest of the
model-based estimate against it."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.ope import model_based
from experiments.ope.backtest import BacktestConfig, run_backtest
from experiments.ope.config import OPEConfig
from experiments.ope.generation import generate_logs
from experiments.ope.logs import LoggedData
from experiments.ope.paths import MAX_PATHS, allocate_paths, campaign_values
from experiments.ope.pipeline import prepare_market
from experiments.ope.policies import build_policy, policy_source
from experiments.ope.truth import simulate_target
from tests.experiments.helpers import ENV_OPTIONS


def test_paths_are_allocated_by_the_pilot_at_least_one_each():
    pilot = np.array([0.0, 1.0, -3.0, 100.0, 0.5])
    paths = allocate_paths(pilot, 4.0)
    assert paths.min() >= 1 and paths.sum() <= 20 and paths.max() <= MAX_PATHS
    assert paths[3] == paths.max() and paths[2] > paths[1] >= paths[0]  # by |pilot|
    np.testing.assert_array_equal(allocate_paths(pilot, 1.0), np.ones(5))
    np.testing.assert_array_equal(allocate_paths(np.zeros(3), 8.0), np.ones(3))


def test_campaign_values_repeat_paths_and_estimate_their_noise(env):
    """The value of a campaign is the mean of its fresh paths; the standard error shrinks with paths and
    is 0 for a campaign that cannot vary (nothing affordable: every path is the same)."""
    target = build_policy(policy_source("best_value_per_dollar"), env, 0.0)
    sim = env.unwrapped
    campaigns = []
    for seed in range(12):
        sim.reset(seed=seed)
        campaigns.append(sim.campaign)
    pilot = np.ones(12)
    few = campaign_values(env, target, campaigns, pilot, 1.0, np.random.SeedSequence(1))
    many = campaign_values(env, target, campaigns, pilot, 6.0, np.random.SeedSequence(1))
    assert (few.paths == 1).all() and (many.paths == 6).all()
    assert many.std_error() < few.std_error()
    again = campaign_values(env, target, campaigns, pilot, 6.0, np.random.SeedSequence(1))
    np.testing.assert_array_equal(again.value, many.value)  # same seed, same numbers


@pytest.fixture(scope="module")
def logs(env):
    policy = build_policy(policy_source("random"), env, None, seed=5)
    frame, meta = generate_logs(env, policy, 300, 5)
    meta["env"] = ENV_OPTIONS
    return LoggedData.from_frame(frame, env.feature_names, env.action_names, meta)


CONFIG = OPEConfig(n_bootstrap=50, n_simulations=900, n_subset=60, n_draws=4, n_check_simulations=10,
                   max_iter=30, fitted_q=False)  # fmt: skip


@pytest.mark.slow
def test_model_based_estimate_is_within_tolerance_of_the_multi_path_truth(env, logs):
    """300 uniform campaigns of the small market (6-week campaigns, fixed seeds): for two heuristics the
    model-based estimate is within 20 % of the truth averaged over 4 paths per campaign, inside its
    interval, and orders them as the truth does (measured with the joint hidden posterior: -4 % for
    best_value_per_dollar, -9 % for cheapest_per_follower; +7 % and -13 % with the reach-only quality
    posterior; the single-path estimate of before missed by more)."""
    market = prepare_market(logs, env, ENV_OPTIONS, CONFIG)
    assert market.fitted is not None, market.reason
    found = {}
    for name in ("best_value_per_dollar", "cheapest_per_follower"):
        target = build_policy(policy_source(name), env, 0.0)
        values = model_based.simulate_target(
            market.fitted, market.campaigns, target, CONFIG, markets=market.markets
        )
        est, low, high, se = values.summary(np.ones(logs.n_campaigns), 0.95)
        truth = simulate_target(env, target, logs, seed=0, n_paths=4)["value"].mean()
        assert abs(est - truth) <= 0.20 * abs(truth), (name, est, truth)
        assert low <= truth <= high and se > 0, (name, low, high, truth)
        found[name] = (est, truth)
    (a_est, a_true), (b_est, b_true) = found.values()
    assert np.sign(a_est - b_est) == np.sign(a_true - b_true)


@pytest.mark.slow
def test_a_small_backtest_meets_its_pinned_accuracy(tmp_path):
    """One scenario end to end through run_backtest (the cache too): the recommended per-campaign
    estimate is within 25 % of the truth for both targets and covers it (measured before the fit's
    fatigue bound: -4 % for best_value_per_dollar, -19 % for best_fit on this small market)."""
    config = BacktestConfig(sizes=(300,), loggers=("uniform",), targets=("best_value_per_dollar", "best_fit"),
                            seeds=(0,), env=dict(ENV_OPTIONS),
                            ope={"n_bootstrap": 50, "n_simulations": 1200, "n_subset": 40, "n_draws": 3,
                                 "n_check_simulations": 10, "max_iter": 20, "fitted_q": False},
                            truth_paths=3)  # fmt: skip
    table = run_backtest(config, cache=tmp_path / "cache")
    chosen = table[(table["scope"] == "per_campaign") & table["recommended"].astype(bool)]
    assert len(chosen) == 2
    assert (chosen["relative_error"].abs() <= 0.25).all(), chosen[["target", "estimator", "relative_error"]]
    assert chosen["covered"].astype(bool).all()
    again = run_backtest(config, cache=tmp_path / "cache")  # read back from the cache, same numbers
    np.testing.assert_array_equal(again["estimate"].to_numpy(), table["estimate"].to_numpy())


@pytest.mark.slow
def test_pool_per_seed_gives_every_seed_its_own_market(tmp_path):
    """With ``pool_per_seed`` the scenarios of seed s run on the pool of market_seed s: seed 0's are those
    of the default grid to the byte, seed 1's come from another pool (other truths); the rows say which."""
    options = dict(sizes=(60,), loggers=("uniform",), targets=("best_value_per_dollar", "best_fit"),
                   seeds=(0, 1), env=dict(ENV_OPTIONS),
                   ope={"n_bootstrap": 20, "n_simulations": 200, "n_subset": 20, "n_draws": 2,
                        "n_check_simulations": 5, "max_iter": 20, "fitted_q": False},
                   truth_paths=1)  # fmt: skip
    shared = run_backtest(BacktestConfig(**options))
    own = run_backtest(BacktestConfig(**options, pool_per_seed=True))
    assert set(shared["market_seed"]) == {0} and set(own["market_seed"]) == {0, 1}
    columns = ["estimate", "truth"]
    seed0 = [t[t["seed"] == 0][columns].to_numpy() for t in (shared, own)]
    np.testing.assert_array_equal(*seed0)
    seed1 = [t[t["seed"] == 1]["truth"].to_numpy() for t in (shared, own)]
    assert not np.allclose(*seed1)
    config = BacktestConfig(**options, pool_per_seed=True)
    assert config.env_options(3)["market_seed"] == 3 and "market_seed" not in BacktestConfig(
        **options
    ).env_options(3)
    assert config.scenario_key(config.scenarios()[0]) != BacktestConfig(**options).scenario_key(
        config.scenarios()[0]
    )
    with pytest.raises(ValueError, match="pool_per_seed: expected true or false"):
        BacktestConfig.from_mapping({"pool_per_seed": "yes"})


def test_the_shipped_backtest_grids_are_valid():
    from pathlib import Path

    from experiments.strict_yaml import read_yaml

    folder = Path(__file__).resolve().parents[2] / "experiments" / "configs" / "ope"
    grids = sorted(folder.glob("*.yaml"))
    assert {p.name for p in grids} >= {
        "ope_backtest.yaml",
        "ope_backtest_full.yaml",
        "ope_backtest_goal.yaml",
    }
    for path in grids:
        config = BacktestConfig.from_mapping(read_yaml(path), str(path))
        assert len(config.scenarios()) >= 1
    goal = BacktestConfig.from_mapping(read_yaml(folder / "ope_backtest_goal.yaml"))
    assert len([s for s in goal.scenarios() if s[2] == 3000]) >= 20  # the 20 scenarios


def test_backtest_options_are_refused_in_one_line(tmp_path, capsys):
    from experiments.cli import main

    with pytest.raises(ValueError, match="truth_paths: expected a number from 1 to 64, got 0"):
        BacktestConfig(truth_paths=0)
    grid = tmp_path / "grid.yaml"
    grid.write_text("targets: [random, best_fit]\n", encoding="utf-8")
    (tmp_path / "file").write_text("x", encoding="utf-8")
    assert (
        main(["ope-backtest", str(grid), "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "file")])
        == 2
    )
    err = capsys.readouterr().err
    assert "--cache" in err and "expected a folder" in err and "Traceback" not in err
    assert (
        main(
            [
                "ope",
                "--logs",
                str(grid),
                "--policy",
                "random",
                "--out",
                str(tmp_path / "o"),
                "--truth-paths",
                "0",
            ]
        )
        == 2
    )
    assert "--truth-paths: expected a number from 1 to 64, got '0'" in capsys.readouterr().err
