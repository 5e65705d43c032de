"""The reference policies: valid actions, round trips, the oracle's rule, the random policy's
distribution, and that ``learn`` only plays the environment."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from agents.heuristics import (
    BestFitPolicy,
    BestValuePerDollarPolicy,
    BiggestReachPolicy,
    CheapestPerFollowerPolicy,
)
from agents.references import MyopicOracle, RandomPolicy
from tests.agents.conftest import play

HEURISTICS = (CheapestPerFollowerPolicy, BestFitPolicy, BiggestReachPolicy, BestValuePerDollarPolicy)


@pytest.mark.parametrize("cls", [RandomPolicy, MyopicOracle, *HEURISTICS])
def test_env_state_policies_choose_valid_actions_and_round_trip(cls, env, tmp_path):
    policy = cls(env, seed=3)
    assert policy.learn(100) is policy
    play(policy, env, seed=11)
    policy.save(tmp_path / "p.json")
    loaded = cls.load(tmp_path / "p.json", env=env)
    assert loaded.get_params() == policy.get_params()
    twin = copy.deepcopy(env)
    assert play(loaded, env, seed=12) == play(policy.with_env(twin), twin, seed=12)


def test_oracle_takes_the_best_expected_reward_or_waits(env):
    obs, info = env.reset(seed=8)
    for _ in range(40):
        action = int(MyopicOracle(env).predict(obs)[0])
        expected = np.where(info["action_mask"], info["expected_rewards"], -np.inf)[: env.wait_action]
        if expected.max() > 0:
            assert action == int(np.argmax(expected))
        else:
            assert action == env.wait_action
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            obs, info = env.reset()


def test_random_probabilities_are_uniform_over_valid_actions(env):
    mask = np.array([True, False, True, True, False])
    np.testing.assert_allclose(
        RandomPolicy(env).action_probabilities(np.zeros(3), mask), [1 / 3, 0, 1 / 3, 1 / 3, 0]
    )


def test_env_state_policies_refuse_a_batch_and_need_an_env(env, tmp_path):
    obs, _ = env.reset(seed=1)
    assert MyopicOracle(env).predict(obs[None])[0].shape == (1,)
    with pytest.raises(ValueError, match="one observation at a time"):
        MyopicOracle(env).predict(np.stack([obs, obs]))
    MyopicOracle(None).save(tmp_path / "o.json")
    with pytest.raises(ValueError, match="has no env"):
        MyopicOracle.load(tmp_path / "o.json").predict(obs)
