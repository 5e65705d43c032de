"""Per-campaign evaluation in the market fitted to the logs, targets that decide from what is logged,
markets that differ, and the recommended estimate."""

from __future__ import annotations

import dataclasses
import json
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from agents import RandomPolicy
from experiments.cli import main
from experiments.ope import model_based
from experiments.ope import posterior as posterior_module
from experiments.ope.config import OPEConfig
from experiments.ope.estimators import target_probabilities
from experiments.ope.generation import generate_logs
from experiments.ope.logs import LoggedData, read_logs, write_logs
from experiments.ope.pipeline import estimate_target, prepare_market
from experiments.ope.policies import (
    MarketMismatchError,
    PolicyError,
    StochasticPolicy,
    build_policy,
    check_same_market,
    policy_source,
)
from experiments.ope.truth import simulate_target
from tests.experiments.helpers import ENV_OPTIONS

CONFIG = OPEConfig(n_bootstrap=100, n_simulations=900, n_draws=6, n_check_simulations=20, max_iter=30)


def _logs(env, n_campaigns, seed, logger="random", epsilon=None):
    policy = build_policy(policy_source(logger), env, epsilon, seed=seed)
    frame, meta = generate_logs(env, policy, n_campaigns, seed)
    meta["env"] = ENV_OPTIONS
    return LoggedData.from_frame(frame, env.feature_names, env.action_names, meta)


@pytest.fixture(scope="module")
def uniform_logs(env):
    return _logs(env, 600, seed=11)


@pytest.fixture(scope="module")
def market(env, uniform_logs):
    return prepare_market(uniform_logs, env, ENV_OPTIONS, CONFIG)


def _model_based(env, data, market, name, config=CONFIG):
    target = build_policy(policy_source(name), env, 0.0)
    values = model_based.simulate_target(
        market.fitted, market.campaigns, target, config, markets=market.markets
    )
    truth = simulate_target(env, target, data, seed=0)["value"]
    return values.summary(np.ones(data.n_campaigns), 0.95), truth


def test_logged_campaigns_are_read_back_from_the_context(env, uniform_logs):
    """Brand, goal, budget and start month of every logged campaign are those the simulator drew; the
    values of an engagement / of 1k reach inferred from outcomes are the campaign's own."""
    campaigns = model_based.logged_campaigns(uniform_logs, env)
    sim = env.unwrapped
    seeds = uniform_logs.metadata["campaign_seeds"]
    for c in range(0, uniform_logs.n_campaigns, 37):
        sim.reset(seed=seeds[c])
        truth = sim.campaign
        assert campaigns.category[c] == truth.category and campaigns.goal[c] == truth.goal
        assert campaigns.start_month[c] == truth.start_month
        assert campaigns.budget[c] == pytest.approx(truth.budget, rel=1e-5)
        for field in ("value_per_engagement", "value_per_1k_reach", "order_value"):
            inferred = getattr(campaigns, field)[c]
            if np.isfinite(inferred):
                assert inferred == pytest.approx(getattr(truth, field), rel=1e-6), field
    assert "target audience" in campaigns.notes


def test_model_based_estimate_is_near_the_truth_of_a_heuristic(env, uniform_logs, market):
    """Logs of a known market, the target a heuristic: the model-based value of the logged campaigns is
    within 15 % of the simulator's truth (and within its interval), where per-campaign IPS is not.
    3,000 simulated campaigns: at 900 the estimate's own Monte Carlo noise moved it from +8 % to +18 %
    of the truth when the hidden posterior changed, though the two point markets agree within 1 % with
    common random numbers (measured: +4 % at 3,000)."""
    assert market.fitted is not None, market.reason
    config = dataclasses.replace(CONFIG, n_simulations=3000)
    (est, low, high, se), truth = _model_based(env, uniform_logs, market, "best_value_per_dollar", config)
    assert abs(est - truth.mean()) <= 0.15 * abs(truth.mean())
    assert low <= truth.mean() <= high and se > 0


@pytest.mark.slow
def test_model_based_intervals_cover_the_truth_over_seeds(env):
    covered = []
    for seed in range(4):
        data = _logs(env, 500, seed=100 + seed)
        market = prepare_market(data, env, ENV_OPTIONS, CONFIG)
        (_, low, high, _), truth = _model_based(env, data, market, "cheapest_per_follower")
        covered.append(low <= truth.mean() <= high)
    assert sum(covered) >= 3, covered


def test_heuristics_are_targets_from_the_logged_candidates(env):
    """A heuristic decides from the logged candidate facts exactly as it did in the simulator: evaluated
    at the logged contexts, an epsilon-greedy heuristic's probability of the logged action is the
    propensity it logged."""
    data = _logs(env, 30, seed=3, logger="best_fit", epsilon=0.2)
    assert set(data.candidates) == {"followers", "cost", "fit", "value_per_dollar"}
    target = build_policy(policy_source("best_fit"), env, 0.2)
    probs = target_probabilities(target, data)
    np.testing.assert_allclose(probs[np.arange(data.n_decisions), data.action], data.propensity)
    without = LoggedData.from_frame(data.to_frame().drop(columns=[c for c in data.to_frame() if c.startswith("candidate_fit")]),
                                    env.feature_names, env.action_names)  # fmt: skip
    with pytest.raises(PolicyError, match="candidate_fit_"):
        target_probabilities(target, without)
    oracle = build_policy(policy_source("oracle"), env, 0.0)
    with pytest.raises(PolicyError, match="reads the simulator"):
        target_probabilities(oracle, data)


@pytest.mark.slow
def test_a_teams_rule_as_module_function_is_a_target(env, tmp_path, monkeypatch, capsys):
    (tmp_path / "team_rule.py").write_text(
        textwrap.dedent("""
        import numpy as np

        def always_wait(observations, masks):
            out = np.zeros(masks.shape)
            out[:, -1] = 1.0
            return out

        def uniform_one(observation, mask):
            return mask / mask.sum()

        def broken(observations, masks):
            return np.ones(3)
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    data = _logs(env, 20, seed=5)
    wait = target_probabilities(build_policy(policy_source("team_rule:always_wait"), env, 0.0), data)
    assert (wait[:, -1] == 1).all()
    uniform = target_probabilities(build_policy(policy_source("team_rule:uniform_one"), env, 0.0), data)
    np.testing.assert_allclose(uniform, data.action_mask / data.action_mask.sum(axis=1, keepdims=True))
    with pytest.raises(PolicyError, match="team_rule:broken"):
        target_probabilities(build_policy(policy_source("team_rule:broken"), env, 0.0), data)
    with pytest.raises(ValueError, match="no function 'nothing'"):
        build_policy(policy_source("team_rule:nothing"), env, 0.0)
    logs = tmp_path / "logs.csv"
    frame, meta = generate_logs(
        env, StochasticPolicy(RandomPolicy(env), None, wait_action=env.wait_action), 20, 0
    )
    meta["env"] = ENV_OPTIONS
    write_logs(frame, logs, meta)
    out = tmp_path / "ope"
    argv = ["ope", "--logs", str(logs), "--policy", "team_rule:always_wait", "--out", str(out), "--bootstrap", "50",
            "--truth"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    table = pd.read_csv(out / "estimates.csv")
    truth = table[table.estimator == "IPS"].truth
    assert np.allclose(truth, 0.0)  # waiting every week earns nothing
    del sys.modules["team_rule"]


def test_logs_and_a_policy_from_different_markets_are_refused(env, tmp_path, capsys):
    with pytest.raises(MarketMismatchError, match=r"market_seed 0 in the logs, 3 for the policy"):
        check_same_market({"market_seed": 0}, {"market_seed": 3}, "the policy p", "the logs l")
    with pytest.raises(MarketMismatchError, match=r"dynamics 'v1' in the logs, 'v0' for the policy"):
        check_same_market({"dynamics": "v1"}, {}, "the policy p", "the logs l")
    assert check_same_market({"market_seed": 0}, {"market_seed": 3}, "p", "l", allow=True) == ["market_seed"]
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(
        json.dumps({"agent": "best_fit", "env": {**ENV_OPTIONS, "market_seed": 3}})
    )
    (run / "model.json").write_text("{}")
    logs = tmp_path / "logs.csv"
    frame, meta = generate_logs(
        env, StochasticPolicy(RandomPolicy(env), None, wait_action=env.wait_action), 5, 0
    )
    meta["env"] = ENV_OPTIONS
    write_logs(frame, logs, meta)
    argv = ["ope", "--logs", str(logs), "--policy", str(run), "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1
        and "different markets" in err
        and "market_seed 0 in the logs, 3 for the policy" in err
    )
    assert "--allow-different-market" in err


@pytest.mark.slow
def test_recommended_estimate_one_per_scope(env, uniform_logs, market):
    target = build_policy(policy_source("best_fit"), env, 0.0)
    result = estimate_target(uniform_logs, env, target, CONFIG, market, truth=True)
    overall = result.overall
    assert {"MB", "MB-DR", "DM-AF", "DR-AF", "IPS", "DR", "logged"} <= set(overall.estimator)
    chosen = overall[overall.recommended]
    assert sorted(chosen.scope) == ["per_campaign", "per_decision"]
    assert chosen.set_index("scope").estimator["per_decision"] == "DR"
    assert chosen.set_index("scope").estimator["per_campaign"] in {"MB", "MB-DR", "DR-AF"}
    assert result.summary["recommended"]["per_campaign"]["why"]
    assert {"truth", "covered"} <= set(overall.columns)


@pytest.mark.slow
def test_fitted_q_beside_the_simulation_gives_the_same_estimates(env, uniform_logs, market):
    """``n_jobs`` 2 (fitted-Q in a second process) and 1 give the same tables, bit for bit."""
    target = build_policy(policy_source("best_fit"), env, 0.1)
    assert CONFIG.n_jobs == 2
    beside = estimate_target(uniform_logs, env, target, CONFIG, market)
    alone = estimate_target(uniform_logs, env, target, dataclasses.replace(CONFIG, n_jobs=1), market)
    pd.testing.assert_frame_equal(beside.table, alone.table, check_exact=True)
    assert {"DM-AF", "DR-AF", "DM", "MB-DR"} <= set(beside.overall.estimator)


@pytest.mark.slow
def test_estimates_csv_keeps_its_columns_and_gains_recommended(tmp_path, env, capsys):
    logs = tmp_path / "logs.csv"
    frame, meta = generate_logs(
        env, StochasticPolicy(RandomPolicy(env), None, wait_action=env.wait_action), 60, 1
    )
    meta["env"] = ENV_OPTIONS
    write_logs(frame, logs, meta)
    assert read_logs(logs).candidates  # the candidate facts round-trip through the CSV
    out = tmp_path / "ope"
    argv = ["ope", "--logs", str(logs), "--policy", "cheapest_per_follower", "--out", str(out), "--bootstrap", "50",
            "--truth"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    table = pd.read_csv(out / "estimates.csv")
    columns = ["scope", "estimator", "estimate", "low", "high", "std_error", "ess", "truth", "covered"]
    assert all(c in table.columns for c in columns) and "recommended" in table.columns
    assert table.groupby("scope").recommended.sum().eq(1).all()
    assert "Recommended per campaign" in capsys.readouterr().out


def test_backtest_config_is_validated():
    from experiments.ope.backtest import BacktestConfig

    with pytest.raises(ValueError, match="unknown key 'sises'"):
        BacktestConfig.from_mapping({"sises": [500]})
    with pytest.raises(ValueError, match="loggers: expected 'uniform' or 'epsilon:<e>:<agent>'"):
        BacktestConfig.from_mapping({"loggers": ["greedy"]})
    with pytest.raises(ValueError, match="targets: expected at least two"):
        BacktestConfig.from_mapping({"targets": ["best_fit"]})
    with pytest.raises(ValueError, match="n_draws"):
        BacktestConfig.from_mapping({"ope": {"n_draws": 1}})
    with pytest.raises(ValueError, match="engagement_clusters: expected one of independent, exchangeable"):
        BacktestConfig.from_mapping({"ope": {"engagement_clusters": "gee"}})
    assert BacktestConfig.from_mapping({"ope": {"engagement_clusters": "exchangeable"}}).ope
    assert len(BacktestConfig().scenarios()) == 2


@pytest.mark.slow
def test_backtest_writes_metrics_goal_and_figure(tmp_path, capsys):
    config = tmp_path / "grid.yaml"
    config.write_text(
        "sizes: [200]\nloggers: [uniform]\ntargets: [best_value_per_dollar, best_fit]\nseeds: [0]\n"
        f"env: {json.dumps(ENV_OPTIONS)}\n"
        "ope: {n_bootstrap: 50, n_simulations: 300, n_draws: 3, n_check_simulations: 10, max_iter: 20}\n"
    )
    out = tmp_path / "bt"
    assert main(["ope-backtest", str(config), "--out", str(out)]) == 0, capsys.readouterr().err
    metrics = pd.read_csv(out / "metrics.csv")
    assert {"bias", "rmse", "coverage", "rank_correlation", "pairs_correct"} <= set(metrics.columns)
    assert {"MB", "recommended", "IPS"} <= set(metrics.estimator)
    assert set(metrics.scope) == {"per_decision", "per_campaign"}
    estimates = pd.read_csv(out / "estimates.csv")
    assert estimates.groupby(["target", "scope"]).recommended.sum().eq(1).all()
    assert (out / "backtest.png").stat().st_size > 0 and (out / "goal.csv").is_file()


def test_hidden_posterior_learns_quality_times_engagement_from_the_logged_outcomes(env, market):
    """The joint posterior of the hidden quality and engagement rate: for influencers hired at least
    three times in the logs, the posterior's E[q ER] is closer to the truth (log scale) than what the
    observables alone say (measured on these 600 uniform campaigns, 37 such influencers: mean |log error|
    0.10 against 0.32); at the price floor the prior is that of the censored residual (lower)."""
    pool, cal = market.fitted.pool, market.fitted.fit.calibration
    offers = market.fitted.run.offers
    posterior = posterior_module.hidden_posterior(offers, pool, cal)
    prior = posterior_module.hidden_posterior(offers.iloc[:0], pool, cal)
    hired = offers[(offers["accepted"] == 1) & (offers["reach"] > 0)]
    counts = hired["influencer_id"].astype(str).value_counts()
    often = pd.Index(pool.influencer_id.astype(str)).get_indexer(counts.index[counts >= 3])
    assert len(often) >= 20
    truth = np.log(pool.response_quality * pool.true_engagement_rate)[often]

    def error(p):
        rate, quality = p.point(cal)
        return np.abs(np.log(quality * rate)[often] - truth).mean()

    assert error(posterior) < 0.8 * error(prior), (error(posterior), error(prior))
    assert (posterior.var_u[often] < prior.var_u[often]).all()
    assert (posterior.var_x[often] < prior.var_x[often]).all()
    floor = pool.price <= cal.min_price * (1 + 1e-9)
    if floor.any():
        rho = cal.price_quality_correlation
        untruncated = (
            rho * np.log(pool.price / posterior_module._typical_price_of(pool, cal)) / cal.price_log_sd
        )
        assert (prior.mean_u[floor] < untruncated[floor]).all()
    draws = np.stack([posterior.draw(cal, np.random.default_rng(k))[1] for k in range(200)])
    np.testing.assert_allclose(draws.mean(axis=0)[often], posterior.point(cal)[1][often], rtol=0.2)


def test_simulated_markets_show_and_rank_as_the_logs_market_did(env, market):
    """The point market and a drawn market take the fit's outcomes but keep the logs' market's own
    estimate: reset with the logs' seeds and campaigns, they show the observations the logs' env shows
    (the same value per $ features, so each action reaches the same influencer), with other expected
    rewards."""
    fitted = market.fitted
    point = model_based.point_market(fitted)
    drawn = model_based.simulated_market(fitted, fitted.calibrations[0], np.random.default_rng(0))
    for simulated, calibration in ((point, fitted.fit.calibration), (drawn, fitted.calibrations[0])):
        assert simulated.unwrapped.calibration == calibration
        assert simulated.unwrapped.estimate_calibration == env.calibration
    differ = 0
    for seed in range(8):
        obs, info = env.reset(seed=seed)
        campaign = {"campaign": env.campaign}
        for simulated in (point, drawn):
            simulated_obs, simulated_info = simulated.reset(seed=seed, options=campaign)
            np.testing.assert_array_equal(simulated_obs, obs)
            differ += not np.allclose(simulated_info["expected_rewards"], info["expected_rewards"])
    assert differ >= 8
