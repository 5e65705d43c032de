"""CQI's ``optimism``: exploiting on Q plus standard errors while learning, so a rarely tried action
with a rare large payoff is not written off on a few unlucky draws."""

from __future__ import annotations

import json
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from agents import CQI
from tests.agents.toy_envs import constant_bandit, xor_bandit


class Lottery(gym.Env):
    """One-step episodes with one constant context: action ``a`` pays ``prizes[a]`` with probability
    ``probs[a]``, else 0 (a zero-inflated payoff, like a deal that is declined or does not convert)."""

    def __init__(self, probs: list[float], prizes: list[float]) -> None:
        self.probs = np.asarray(probs, dtype=np.float64)
        self.prizes = np.asarray(prizes, dtype=np.float64)
        self.observation_space = spaces.Box(0.0, 1.0, (1,), np.float32)
        self.action_space = spaces.Discrete(len(probs))

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        return np.full(1, 0.5, np.float32), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        paid = self.np_random.random() < self.probs[action]
        return np.full(1, 0.5, np.float32), float(self.prizes[action]) if paid else 0.0, True, False, {}


def _lottery() -> Lottery:
    # Seven safe actions worth 0.5 on average; the eighth is worth 0.8 but pays only 4 % of the time.
    return Lottery([0.5] * 7 + [0.04], [1.0] * 7 + [20.0])


LEARN: dict[str, Any] = dict(
    gamma=0.0, step_size="sample_mean", learning_rate=0.001, exploration_fraction=0.1,
    exploration_final_eps=0.02, max_leaves=1,
)  # fmt: skip


def _greedy(agent: CQI) -> int:
    return int(agent.predict(np.full(1, 0.5, np.float32), deterministic=True)[0])


@pytest.mark.slow
def test_optimism_finds_the_rare_big_prize_that_epsilon_greedy_writes_off() -> None:
    plain = [_greedy(CQI(_lottery(), seed=s, **LEARN).learn(8000)) for s in range(10)]
    optimistic = [_greedy(CQI(_lottery(), seed=s, optimism=2.0, **LEARN).learn(8000)) for s in range(10)]
    assert optimistic == [7] * 10
    assert plain.count(7) <= 5  # epsilon-greedy alone locks onto a safe action on most seeds


def test_optimism_only_changes_the_choice_while_learning() -> None:
    agent = CQI(_lottery(), seed=0, optimism=2.0, **LEARN).learn(3000)
    leaf = agent._stats(0)
    bonus = agent._optimistic_q(leaf) - leaf.q
    assert np.all(bonus > 0) and np.all(np.isfinite(bonus))  # every action tried, none certain
    # predict (and so every evaluation) is greedy on the Q-values alone.
    assert _greedy(agent) == int(leaf.q.argmax())
    np.testing.assert_array_equal(agent.q_values(np.full(1, 0.5)), leaf.q)


def test_untried_actions_come_first_and_equal_draws_are_not_taken_for_certain() -> None:
    agent = CQI(_lottery(), seed=0, optimism=1.0, **LEARN)
    leaf = agent._stats(0)
    assert np.all(np.isinf(agent._optimistic_q(leaf)))
    for a, r in [(0, 1.0), (0, 0.0), (7, 0.0), (7, 0.0)]:
        agent.update(np.full(1, 0.5), a, r, np.full(1, 0.5), terminated=True)
    opt = agent._optimistic_q(leaf)
    assert np.all(np.isinf(opt[1:7]))  # never updated
    # Action 7's two zeros have no spread of their own; it borrows the leaf's mean squared error.
    assert leaf.q_m[7] == 0.0 and opt[7] > leaf.q[7]
    np.testing.assert_allclose(opt[7] - leaf.q[7], np.sqrt(leaf.q_m[[0, 7]].mean() / 2))


def test_children_inherit_and_a_prune_pools_the_squared_errors() -> None:
    agent = CQI(constant_bandit(), seed=1, optimism=1.0, step_size="sample_mean", learning_rate=0.01,
                split_threshold=1e9)  # fmt: skip
    rng = np.random.default_rng(0)
    for _ in range(400):
        x = rng.uniform(0, 1, size=2)
        agent.update(x, int(rng.integers(2)), float(rng.normal(x[0], 1.0)), x, terminated=True)
    root = agent._stats(0)
    c = int(np.flatnonzero((root.cand_feature == 0) & np.isclose(root.cand_value, 0.5))[0])
    agent._split(0, c, 1.0)
    left, right = agent._stats(agent._left[0]), agent._stats(agent._right[0])
    np.testing.assert_array_equal(left.q_m, root.cand_mse[:, c, 0])
    np.testing.assert_array_equal(right.q_m, root.cand_mse[:, c, 1])
    v_left, v_right = agent._visits[agent._left[0]], agent._visits[agent._right[0]]
    w = v_left / (v_left + v_right)
    q = w * left.q + (1 - w) * right.q
    expected = w * (left.q_m + (left.q - q) ** 2) + (1 - w) * (right.q_m + (right.q - q) ** 2)
    agent._merge(0, left, right)
    np.testing.assert_allclose(agent._stats(0).q_m, expected, rtol=1e-12)


def test_optimism_round_trips_and_resumes_as_one_run(tmp_path) -> None:
    agent = CQI(xor_bandit(), seed=3, optimism=1.5, step_size="sample_mean", learning_rate=0.01).learn(3000)
    agent.save(tmp_path / "cqi.json")
    loaded = CQI.load(tmp_path / "cqi.json")
    assert loaded.optimism == 1.5 and loaded.to_dict() == agent.to_dict()
    assert all(np.sum(n["mse"]) > 0 for n in loaded.to_dict()["nodes"] if "q" in n)
    old = agent.to_dict()
    del old["params"]["optimism"]  # a file written before optimism existed
    assert CQI.from_dict(json.loads(json.dumps(old))).optimism == 0.0


@pytest.mark.parametrize("value", [-0.5, float("nan"), "high"])
def test_bad_optimism_is_refused_by_name(value: Any) -> None:
    with pytest.raises(ValueError, match="optimism"):
        CQI(xor_bandit(), optimism=value)


def test_optimism_needs_the_lcb_rule() -> None:
    with pytest.raises(ValueError, match="optimism"):
        CQI(xor_bandit(), split_rule="paper", optimism=1.0)
