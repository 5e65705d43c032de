"""Evaluation: fixed seeded campaigns, the normalised score (oracle 1 and random 0 by construction),
cached references, and a training environment left untouched."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from agents import BiggestReachPolicy, MyopicOracle, RandomPolicy
from envs.matching_env import InfluencerMatchingEnv
from experiments import evaluation
from experiments.evaluation import EvaluationResult, Evaluator, episode_seeds, normalized_score

SMALL = {"n_influencers": 2_000, "n_segments": 4, "market_seed": 0}


@pytest.fixture(scope="module")
def market() -> InfluencerMatchingEnv:
    return InfluencerMatchingEnv(**SMALL)


@pytest.fixture(scope="module")
def evaluator(market) -> Evaluator:
    return Evaluator(market, seed=3, n_episodes=30)


def test_oracle_scores_one_and_random_zero_by_construction(evaluator, market):
    oracle = evaluator.evaluate(MyopicOracle(market))
    assert oracle.normalized_score == 1.0
    assert oracle.mean_return == oracle.oracle_return > oracle.random_return
    for seed in (0, 7, None):
        assert evaluator.evaluate(RandomPolicy(market, seed=seed)).normalized_score == 0.0


def test_results_are_reproducible_and_differ_between_agents(evaluator, market):
    a = evaluator.evaluate(BiggestReachPolicy(market))
    b = Evaluator(market, seed=3, n_episodes=30).evaluate(BiggestReachPolicy(market))
    assert a == b
    assert len(a.returns) == a.n_episodes == 30
    assert a.returns != evaluator.evaluate(MyopicOracle(market)).returns
    assert a.std_error == pytest.approx(np.std(a.returns, ddof=1) / math.sqrt(30))
    assert a.mean_return == pytest.approx(np.mean(a.returns))


def test_references_are_computed_once(market, monkeypatch):
    calls = []
    original = evaluation.play_episodes
    monkeypatch.setattr(evaluation, "play_episodes", lambda *a, **k: calls.append(1) or original(*a, **k))
    ev = Evaluator(market, seed=1, n_episodes=5)
    for _ in range(3):
        ev.evaluate(BiggestReachPolicy(market))
    assert len(calls) == 2 + 3  # random and oracle once, then the agent three times (no planner asked)


def test_campaigns_are_seeded_and_prefix_stable():
    assert episode_seeds(4, 10) == episode_seeds(4, 10)
    assert episode_seeds(4, 10)[:5] == episode_seeds(4, 5)
    assert episode_seeds(4, 10) != episode_seeds(5, 10)
    assert len(set(episode_seeds(4, 50))) == 50


def test_evaluation_leaves_the_training_environment_untouched(market):
    env = copy.deepcopy(market)
    ev = Evaluator(env, seed=2, n_episodes=5)
    obs, _ = env.reset(seed=99)
    env.step(0)
    week, budget, state = env.week, env.budget_left, env.np_random.bit_generator.state
    ev.evaluate(BiggestReachPolicy(env))
    assert (env.week, env.budget_left, env.np_random.bit_generator.state) == (week, budget, state)


def test_normalized_score_and_result_fields():
    assert normalized_score(5.0, 1.0, 9.0) == 0.5
    assert math.isnan(normalized_score(1.0, 2.0, 2.0))
    result = EvaluationResult.from_returns([1.0, 3.0], random_return=1.0, oracle_return=3.0)
    assert result.normalized_score == 0.5 and result.std_return == pytest.approx(math.sqrt(2))
    assert set(result.to_dict()) >= {
        "mean_return",
        "std_error",
        "normalized_score",
        "returns",
        "eval_episodes",
    }
    with pytest.raises(ValueError, match="eval_episodes"):
        Evaluator(InfluencerMatchingEnv.__new__(InfluencerMatchingEnv), seed=0, n_episodes=0)


@pytest.mark.slow
def test_planner_returns_are_shared_between_processes_through_a_cache_folder(tmp_path, monkeypatch):
    """A sweep's workers share the planner's returns: the second evaluator of the same options and
    campaigns reads the first one's file (bit for bit) instead of planning; other campaigns or a changed
    planner source use another file."""
    import gymnasium as gym

    env = gym.make("influmatch/InfluencerMatching-v1", **SMALL)
    values = Evaluator(env, seed=4, n_episodes=3, cache_dir=tmp_path).planner_returns()
    other = Evaluator(env, seed=5, n_episodes=3, cache_dir=tmp_path)
    assert values is not None and not np.array_equal(other.planner_returns(), values)
    assert len(list(tmp_path.glob("planner-*.npy"))) == 2

    class NoPlanning:
        def __init__(self, *args, **kwargs):
            raise AssertionError("planned again")

    monkeypatch.setattr(evaluation, "_PLANNER_RETURNS", {})  # another process: nothing in memory
    monkeypatch.setattr(evaluation, "PlanningOracle", NoPlanning)
    again = Evaluator(env, seed=4, n_episodes=3, cache_dir=tmp_path)
    assert again.planner_returns().tobytes() == values.tobytes()
    before = again._shared_planner_file()
    monkeypatch.setattr(evaluation, "_planner_source_digest", lambda: "a changed planner")
    assert again._shared_planner_file() not in (before, None)
    assert Evaluator(env, seed=4, n_episodes=3)._shared_planner_file() is None  # no folder, no file


@pytest.mark.slow
def test_score_vs_planner_and_its_standard_error(market):
    """The planner scale: a policy's paired gain over random as a share of the planner's, with a
    delta-method standard error that shrinks with more campaigns; the planner scores 1 on it."""
    from agents import PlanningOracle
    from experiments.evaluation import ratio_score

    ev = Evaluator(market, seed=2, n_episodes=6)
    planner = ev.planner_returns()
    random_returns, _ = ev.reference_returns()
    assert planner is not None and planner.shape == (6,)
    result = ev.evaluate(BiggestReachPolicy(market), planner=True)
    assert np.isnan(ev.evaluate(BiggestReachPolicy(market)).score_vs_planner)  # only when asked
    score, se = ratio_score(np.asarray(result.returns), random_returns, planner)
    assert result.score_vs_planner == score and result.score_vs_planner_se == se and se > 0
    assert result.planner_return == planner.mean()
    np.testing.assert_allclose(ratio_score(planner, random_returns, planner), (1.0, 0.0), atol=1e-12)
    # Same campaigns, same options: a second evaluator reuses the planner's returns.
    again = Evaluator(market, seed=2, n_episodes=6)
    assert again.planner_returns() is planner or np.array_equal(again.planner_returns(), planner)
    off = Evaluator(market, seed=2, n_episodes=6, planner=False)
    assert np.isnan(off.evaluate(BiggestReachPolicy(market), planner=True).score_vs_planner)
    rng = np.random.default_rng(0)
    a, r, t = rng.normal(2, 1, 400), rng.normal(0, 1, 400), rng.normal(4, 1, 400)
    est, err = ratio_score(a, r, t)
    assert abs(est - 0.5) < 4 * err and 0 < err < 0.05
    assert PlanningOracle(market).reads_env_state
