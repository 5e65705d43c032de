"""Off-policy estimators checked against the simulator's truth, and the ``log`` -> ``ope`` commands."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from agents import RandomPolicy, make_agent
from experiments.cli import main
from experiments.evaluation import episode_seeds
from experiments.ope.config import OPEConfig
from experiments.ope.estimators import action_segments, estimate, importance_weights, target_probabilities
from experiments.ope.generation import generate_logs, rollouts
from experiments.ope.logs import LoggedData, read_logs, write_logs
from experiments.ope.models import cross_fitted_reward_model, fitted_q_evaluation
from experiments.ope.policies import StochasticPolicy
from experiments.ope.truth import TruthError, replay_expected_rewards
from tests.experiments.helpers import ENV_OPTIONS, GreedyOnValue

N_LOGS, N_CAMPAIGNS = 30, 50
FAST = OPEConfig(n_bootstrap=200)


def _data(env, policy, n_campaigns, seed):
    frame, meta = generate_logs(env, policy, n_campaigns, seed)
    meta["env"] = ENV_OPTIONS
    return LoggedData.from_frame(frame, env.feature_names, env.action_names, meta)


@pytest.fixture(scope="module")
def uniform(env):
    return StochasticPolicy(RandomPolicy(env), None, wait_action=env.wait_action, label="random")


@pytest.fixture(scope="module")
def repeated(env, uniform):
    """N_LOGS uniform logs of N_CAMPAIGNS campaigns with the exact expected rewards of every decision."""
    out = []
    for seed in range(N_LOGS):
        data = _data(env, uniform, N_CAMPAIGNS, seed=1000 + seed)
        out.append((data, replay_expected_rewards(env, data)))
    return out


def _value(table, scope, estimator, column="estimate"):
    row = table[(table.scope == scope) & (table.estimator == estimator) & (table.group_by == "all")]
    assert len(row) == 1
    return float(row[column].iloc[0])


def _population_value(env, policy, n=800):
    """The target's value per campaign on n fresh campaigns (expected rewards along the path)."""
    sim = rollouts(env, policy, episode_seeds(424242, n), np.random.SeedSequence(5).spawn(n), expected=True)
    per = np.bincount(
        sim["campaign"], weights=(sim["probabilities"] * sim["expected_rewards"]).sum(1), minlength=n
    )
    return per.mean(), per.std(ddof=1) / np.sqrt(n)


def test_ips_is_unbiased_over_repeated_logs(env, repeated):
    """Per decision: mean over logs of (IPS - the log's true value) is within 4 standard errors of 0;
    per campaign: the mean of per-decision IS over logs is within 4 standard errors of the target's value."""
    target = StochasticPolicy(GreedyOnValue(env), 0.8, wait_action=env.wait_action)
    per_decision, per_campaign = [], []
    for data, q_true in repeated:
        probs = target_probabilities(target, data)
        table = estimate(data, probs, config=FAST)
        truth = (probs * q_true).sum(axis=1).mean()
        per_decision.append(_value(table, "per_decision", "IPS") - truth)
        per_campaign.append(_value(table, "per_campaign", "IPS"))
    diffs = np.array(per_decision)
    assert abs(diffs.mean()) <= 4 * diffs.std(ddof=1) / np.sqrt(N_LOGS)
    value, value_se = _population_value(env, target)
    estimates = np.array(per_campaign)
    bound = 4 * np.sqrt(estimates.var(ddof=1) / N_LOGS + value_se**2)
    assert abs(estimates.mean() - value) <= bound
    assert bound < 0.75 * abs(value)  # the check has power: it tells the value from 0


def test_dr_has_lower_variance_than_ips_with_a_good_reward_model(env, repeated):
    target = StochasticPolicy(GreedyOnValue(env), 0.3, wait_action=env.wait_action)
    rng = np.random.default_rng(0)
    ips, dr, dr_noisy, dm_error = [], [], [], []
    for data, q_true in repeated:
        probs = target_probabilities(target, data)
        noisy = q_true + rng.normal(0, 0.1 * q_true.std(), q_true.shape)  # good, not perfect
        table = estimate(data, probs, q_hat=q_true, config=FAST)
        truth = (probs * q_true).sum(axis=1).mean()
        ips.append(_value(table, "per_decision", "IPS") - truth)
        dr.append(_value(table, "per_decision", "DR") - truth)
        dm_error.append(_value(table, "per_decision", "DM") - truth)
        dr_noisy.append(_value(estimate(data, probs, q_hat=noisy, config=FAST), "per_decision", "DR") - truth)
    ips, dr, dr_noisy = np.array(ips), np.array(dr), np.array(dr_noisy)
    # the rewards are noisy (a refusal earns 0, conversions are counts), so the noise left in DR is large
    assert dr.var() < 0.8 * ips.var()
    assert dr_noisy.var() < ips.var()
    assert abs(dr.mean()) <= 4 * dr.std(ddof=1) / np.sqrt(N_LOGS)  # still unbiased
    np.testing.assert_allclose(dm_error, 0.0, atol=1e-9)  # with the true rewards DM is the truth itself


def test_target_equal_to_logging_policy_is_the_logged_mean(env):
    policy = StochasticPolicy(GreedyOnValue(env), 0.3, wait_action=env.wait_action)
    data = _data(env, policy, 60, seed=7)
    probs = target_probabilities(policy, data)
    np.testing.assert_allclose(importance_weights(data, probs), 1.0, rtol=1e-12)
    table = estimate(data, probs, config=FAST)
    returns = data.per_campaign(data.reward)
    for estimator in ("IPS", "SNIPS", "logged"):
        assert _value(table, "per_decision", estimator) == pytest.approx(data.reward.mean(), rel=1e-12)
        assert _value(table, "per_campaign", estimator) == pytest.approx(returns.mean(), rel=1e-12)
    assert _value(table, "per_decision", "IPS", "ess") == pytest.approx(data.n_decisions)
    assert _value(table, "per_campaign", "IPS", "ess") == pytest.approx(data.n_campaigns)
    low, high = _value(table, "per_campaign", "IPS", "low"), _value(table, "per_campaign", "IPS", "high")
    assert low < returns.mean() < high
    # intervals come from resampled campaigns: the bootstrap spread matches the standard error of the mean
    se = _value(table, "per_campaign", "IPS", "std_error")
    assert se == pytest.approx(returns.std(ddof=1) / np.sqrt(data.n_campaigns), rel=0.25)


def test_breakdowns_add_up_and_clipping_caps_weights(env, repeated):
    data, q_true = repeated[0]
    target = StochasticPolicy(GreedyOnValue(env), 0.3, wait_action=env.wait_action)
    probs = target_probabilities(target, data)
    segments = action_segments(data.n_actions, env.n_segments)
    table = estimate(data, probs, q_hat=q_true, config=FAST, segments=segments, breakdown=True)
    seg = table[table.group_by == "segment"]
    assert set(seg.group) == {"seg 0", "seg 1", "seg 2", "seg 3", "wait"}
    for scope, estimator in [("per_decision", "IPS"), ("per_decision", "DM"), ("per_decision", "DR"),
                             ("per_campaign", "IPS"), ("per_campaign", "logged")]:  # fmt: skip
        parts = seg[(seg.scope == scope) & (seg.estimator == estimator)]["estimate"].sum()
        assert parts == pytest.approx(_value(table, scope, estimator), rel=1e-9, abs=1e-12)
    shares = seg[(seg.scope == "per_decision") & (seg.estimator == "IPS")]["target_share"]
    assert shares.sum() == pytest.approx(1.0)
    for group_by in ("brand", "goal"):
        part = table[
            (table.group_by == group_by) & (table.scope == "per_decision") & (table.estimator == "IPS")
        ]
        weighted = (part.estimate * part.n_decisions).sum() / part.n_decisions.sum()
        assert weighted == pytest.approx(_value(table, "per_decision", "IPS"))
        assert part.n_campaigns.sum() == data.n_campaigns
    clipped = estimate(data, probs, config=OPEConfig(n_bootstrap=50, clip=2.0))
    w = importance_weights(data, probs, clip=2.0)
    assert w.max() == 2.0 and importance_weights(data, probs).max() > 2.0
    assert _value(clipped, "per_decision", "IPS") == pytest.approx(np.mean(w * data.reward))


def test_models_are_cross_fitted_and_fitted_q_tracks_the_return(env, uniform):
    data = _data(env, uniform, 200, seed=11)
    probs = target_probabilities(uniform, data)
    q_hat = cross_fitted_reward_model(data, probs, FAST)
    assert np.isfinite(q_hat[probs > 0]).all()
    q_logged, v = fitted_q_evaluation(data, probs, FAST)
    # on-policy (target = logging), V at the first week estimates the mean return
    returns = data.per_campaign(data.reward)
    first = data.campaign_first_rows()
    se = returns.std(ddof=1) / np.sqrt(data.n_campaigns)
    assert abs(v[first].mean() - returns.mean()) < 4 * se
    table = estimate(data, probs, q_hat=q_hat, fqe=(q_logged, v), config=FAST)
    assert np.isfinite(table.estimate).all()


def test_truth_replay_refuses_logs_the_simulator_does_not_reproduce(env, uniform, tmp_path):
    frame, meta = generate_logs(env, uniform, 5, seed=3)
    meta["env"] = ENV_OPTIONS
    frame.loc[4, "reward"] += 1.0
    data = LoggedData.from_frame(frame, env.feature_names, env.action_names, meta, source="tampered.csv")
    with pytest.raises(TruthError, match="row 4, column 'reward': the simulator gives"):
        replay_expected_rewards(env, data)
    data = LoggedData.from_frame(frame, env.feature_names, env.action_names, None, source="bare.csv")
    with pytest.raises(TruthError, match="needs bare.json beside the logs"):
        replay_expected_rewards(env, data)


def test_truth_replay_on_the_vector_env_equals_the_single_envs(env, uniform, monkeypatch):
    """Replayed in blocks on the vector env (two blocks of 16 here), the expected rewards and every
    refusal (a context, a reward, a campaign that goes on or ends early) are the single env's."""
    from experiments.ope import generation

    monkeypatch.setattr(generation, "VECTOR_BLOCK", 16)
    frame, meta = generate_logs(env, uniform, 30, seed=4)
    meta["env"] = ENV_OPTIONS
    data = LoggedData.from_frame(frame, env.feature_names, env.action_names, meta, source="logs.csv")
    np.testing.assert_array_equal(
        replay_expected_rewards(env, data), replay_expected_rewards(env, data, vectorized=False)
    )
    last_of_21 = int(frame.index[frame["campaign_id"] == 21][-1])
    feature = env.feature_names[15]
    changes = {
        "context": (lambda f: f.assign(**{feature: f[feature].where(f.index != 40, f[feature] + 1.0)}),
                    f"column '{feature}': the simulator gives"),
        "reward": (lambda f: f.assign(reward=f["reward"].where(f.index < 100, f["reward"] + 1.0)),
                   "column 'reward': the simulator gives"),
        "goes on": (lambda f: f.drop(index=last_of_21), "the simulated campaign goes on here"),
    }  # fmt: skip
    for kind, (change, expected) in changes.items():
        bad = change(frame).reset_index(drop=True)
        tampered = LoggedData.from_frame(bad, env.feature_names, env.action_names, meta, source="logs.csv")
        messages = []
        for vectorized in (True, False):
            with pytest.raises(TruthError) as err:
                replay_expected_rewards(env, tampered, vectorized=vectorized)
            messages.append(str(err.value))
        assert messages[0] == messages[1], kind
        assert expected in messages[0], messages[0]


# --------------------------------------------------------------------------------------- command
@pytest.fixture(scope="module")
def cqi_run(env, tmp_path_factory):
    """A briefly trained CQI run folder (config.json + model.json), as influmatch train writes."""
    run = tmp_path_factory.mktemp("cqi_run")
    agent = make_agent("cqi", env, seed=0)
    agent.learn(300)
    agent.save(run / "model.json")
    config = {"agent": "cqi", "seed": 0, "env": ENV_OPTIONS, "hyperparameters": {}}
    (run / "config.json").write_text(json.dumps(config))
    return run


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A run folder written by ``influmatch train`` (the runner's config.json layout)."""
    run = tmp_path_factory.mktemp("trained") / "cqi"
    argv = ["train", "--agent", "cqi", "--timesteps", "300", "--eval-episodes", "2", "--out", str(run)]
    for key, value in ENV_OPTIONS.items():
        argv += ["--env", f"{key}={value}"]
    assert main(argv) == 0
    return run


@pytest.mark.slow
def test_log_then_ope_end_to_end(trained_run, tmp_path, capsys, caplog):
    logs = tmp_path / "logs.csv"
    argv = ["log", "--policy", str(trained_run), "--epsilon", "0.6", "--campaigns", "40", "--out", str(logs)]
    assert main(argv) == 0
    meta = json.loads(logs.with_suffix(".json").read_text())
    assert (
        meta["env"]["market_seed"]
        == json.loads((trained_run / "config.json").read_text())["env_options"]["market_seed"]
    )
    out = tmp_path / "ope"
    argv = ["ope", "--logs", str(logs), "--policy", str(trained_run), "--epsilon", "0.2", "--out", str(out)]
    assert main([*argv, "--truth", "--bootstrap", "200"]) == 0
    assert "other options" not in caplog.text  # same environment as the logs
    printed = capsys.readouterr().out
    assert "per campaign  DR" in printed and "truth" in printed
    table = pd.read_csv(out / "estimates.csv")
    assert {"IPS", "SNIPS", "DM", "DR", "DM-AF", "DR-AF", "logged"} <= set(table.estimator)
    assert table.groupby("scope").recommended.sum().eq(1).all()
    assert {"truth", "error", "relative_error", "covered"} <= set(table.columns)
    target_rows = table[table.estimator != "logged"]
    assert target_rows.truth.notna().all() and np.isfinite(target_rows.estimate).all()
    assert (target_rows.low <= target_rows.high).all()
    # the truth is the same for every estimator of a scope
    assert target_rows.groupby("scope").truth.nunique().eq(1).all()
    breakdown = pd.read_csv(out / "breakdown.csv")
    assert set(breakdown.group_by) == {"brand", "goal", "segment"}
    assert (out / "estimates.png").stat().st_size > 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_campaigns"] == 40 and summary["n_decisions"] == read_logs(logs).n_decisions


def test_ope_bad_input_is_one_line_and_exit_2(cqi_run, env, uniform, tmp_path, capsys):
    frame, meta = generate_logs(env, uniform, 3, seed=0)
    meta["env"] = ENV_OPTIONS
    write_logs(frame, tmp_path / "good.csv", meta)
    bad = frame.copy()
    bad.loc[2, "propensity"] = np.nan
    write_logs(bad, tmp_path / "bad.csv", meta)
    frame.to_csv(tmp_path / "bare.csv", index=False)
    cases = [
        (
            ["--logs", str(tmp_path / "bad.csv"), "--policy", str(cqi_run)],
            "row 2 (line 4), column 'propensity'",
        ),
        (["--logs", str(tmp_path / "good.csv"), "--policy", "oracle"], "cannot be evaluated from logs"),
        (
            ["--logs", str(tmp_path / "bare.csv"), "--policy", str(cqi_run), "--truth"],
            "--truth needs bare.json",
        ),
        (
            ["--logs", str(tmp_path / "good.csv"), "--policy", str(cqi_run), "--epsilon", "own"],
            "no stochastic policy",
        ),
        (["--logs", str(tmp_path / "none.csv"), "--policy", str(cqi_run)], "none.csv: no such file"),
    ]
    for argv, message in cases:
        assert main(["ope", *argv, "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "o" / "estimates.csv").exists()


@pytest.mark.slow
def test_ope_module_runs_as_a_command(cqi_run, tmp_path):
    """``python -m experiments.cli.ope``: bad input is one line on stderr and exit code 2."""
    argv = ["--logs", str(tmp_path / "none.csv"), "--policy", str(cqi_run), "--out", str(tmp_path / "o")]
    result = subprocess.run(
        [sys.executable, "-m", "experiments.cli.ope", *argv], capture_output=True, text=True
    )
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "none.csv: no such file" in result.stderr


def test_breakdown_finds_brand_and_goal_by_their_spec_not_their_name(env, uniform):
    """Renaming every context feature (a new env version could) leaves the breakdown as it was: the
    brand and goal columns are found by their spec's field, not by their names."""
    data = _data(env, uniform, 20, seed=7)
    probs = target_probabilities(uniform, data)
    config = OPEConfig(n_bootstrap=20)
    before = estimate(data, probs, config=config, breakdown=True)
    specs = tuple(dataclasses.replace(spec, name=f"x{i}") for i, spec in enumerate(env.feature_specs))
    frame = data.to_frame().rename(
        columns=dict(zip(data.feature_names, (f.name for f in specs), strict=True))
    )
    renamed = LoggedData.from_frame(frame, [f.name for f in specs], env.action_names)
    after = estimate(renamed, probs, config=config, breakdown=True, feature_specs=specs)
    pd.testing.assert_frame_equal(before, after)
    assert {"brand", "goal"} <= set(after.group_by)


@pytest.mark.parametrize("name", ["best_fit", "best_value_per_dollar", "cheapest_per_follower", "biggest_reach",
                                  "segment_1"])  # fmt: skip
def test_heuristic_decides_a_batch_as_it_decides_each_row(env, name):
    """The heuristics' batched greedy actions (one ``choose`` for all envs of a lockstep) equal their
    row-by-row ``predict``, on campaigns at different weeks, budgets and churn."""
    import copy

    from experiments.ope.policies import build_policy, policy_source

    policy = build_policy(policy_source(name), env, 0.0)
    rng = np.random.default_rng(3)
    envs, observations = [], []
    for k in range(40):
        copy_env = copy.deepcopy(env)
        obs, info = copy_env.reset(seed=100 + k)
        for _ in range(int(rng.integers(0, 5))):
            valid = np.flatnonzero(info["action_mask"])
            obs, _, terminated, truncated, info = copy_env.step(int(rng.choice(valid)))
            if terminated or truncated:
                obs, info = copy_env.reset(seed=200 + k)
        envs.append(copy_env)
        observations.append(obs)
    obs = np.stack(observations).astype(np.float64)
    batched = policy._heuristic_batch(envs)
    assert batched is not None
    rowwise = [int(policy._bind(e).predict(o, deterministic=True)[0]) for o, e in zip(obs, envs, strict=True)]
    assert batched.tolist() == rowwise
    if name != "segment_1":  # a fixed segment picks the same action in every state with a candidate
        assert len(set(rowwise)) > 1  # the states differ in what the rule picks


@pytest.mark.parametrize("name", ["random", "best_fit", "greedy_on_value"])
@pytest.mark.parametrize("given", [False, True], ids=["drawn", "given campaigns"])
def test_rollouts_on_the_vector_env_equal_those_on_single_envs(name, given, monkeypatch):
    """The native vector env's rollouts (two blocks, campaigns ending early among them) give the single
    envs' numbers bit for bit: decisions, probabilities, rewards, the expected rewards, the outcomes, the
    offer facts and the candidate facts (what a log records), in a churning market whose newcomers are
    hired too (their facts are NaN on both paths)."""
    from envs.campaigns import sample_campaign
    from envs.matching_env import InfluencerMatchingEnv
    from experiments.ope import generation
    from experiments.ope.policies import build_policy, policy_source

    monkeypatch.setattr(generation, "VECTOR_BLOCK", 64)  # two blocks of 64, the second of 56

    # long enough to spend budgets; a churn high enough that newcomers are hired
    env = InfluencerMatchingEnv(**{**ENV_OPTIONS, "campaign_weeks": 26, "churn_rate": 0.02})

    if name == "greedy_on_value":
        policy = StochasticPolicy(GreedyOnValue(env), 0.2, wait_action=env.wait_action, label=name)
    else:
        policy = build_policy(policy_source(name), env, 0.3)
    n = 120
    reset_seeds = episode_seeds(5, n)
    draws = np.random.SeedSequence(6).spawn(n)
    rng = np.random.default_rng(7)
    campaigns = [sample_campaign(rng, env.calibration) for _ in range(n)] if given else None
    fast = rollouts(env, policy, reset_seeds, draws, expected=True, candidates=True, campaigns=campaigns)
    slow = rollouts(env, policy, reset_seeds, draws, expected=True, candidates=True, campaigns=campaigns,
                    vectorized=False)  # fmt: skip
    assert sorted(fast) == sorted(slow)
    for key in slow:
        np.testing.assert_array_equal(fast[key], slow[key], err_msg=key)
        assert fast[key].dtype == slow[key].dtype, key
    offers = slow["influencer_id"] != ""
    assert np.isfinite(slow["overlap_factor"][offers]).mean() > 0.5
    assert np.isnan(slow["sponsored_load"][offers]).any()  # newcomers: not in the public pool
    assert (slow["overlap_factor"][offers] < 1).any()  # hires in the same segment overlap
    bare = rollouts(env, policy, reset_seeds, draws, outcomes=False, campaigns=campaigns)
    for key in bare:
        np.testing.assert_array_equal(bare[key], slow[key], err_msg=key)
    lengths = np.bincount(slow["campaign"], minlength=n)
    assert lengths.min() < lengths.max() == env.campaign_weeks  # some campaigns end early
    assert len(np.unique(slow["action"])) > 3
