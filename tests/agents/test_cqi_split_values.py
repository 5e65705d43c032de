"""CQI's ``split_values="quantile"``: candidate split values from the quantiles of what a leaf has seen,
so a heavy-tailed feature is split where its data are rather than across its empty tail."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from agents import CQI
from agents.cqi import QUANTILE_SAMPLE, _quantile_values
from tests.agents.toy_envs import constant_bandit


class HeavyTailThreshold(gym.Env):
    """One-step episodes: ``x ~ lognormal(1, 1)`` (median 2.7, unbounded above); action 1 pays 1 when
    ``x >= 3`` and action 0 pays 1 below, plus normal noise. The optimal tree has 2 leaves."""

    def __init__(self, noise: float = 0.3) -> None:
        self.observation_space = spaces.Box(0.0, np.inf, (1,), np.float32)
        self.action_space = spaces.Discrete(2)
        self.noise = noise
        self._x = np.zeros(1, np.float32)

    def _draw(self) -> np.ndarray:
        return np.array([self.np_random.lognormal(1.0, 1.0)], np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._x = self._draw()
        return self._x, {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        reward = float(action == int(self._x[0] >= 3.0)) + self.noise * self.np_random.normal()
        self._x = self._draw()
        return self._x, reward, True, False, {}


UNIFORM: dict[str, Any] = dict(gamma=0.0, exploration_initial_eps=1.0, exploration_final_eps=1.0)


def test_quantile_values_split_the_sample_where_it_is() -> None:
    assert _quantile_values(np.array([0.0, 1.0, 0.0, 0.0, 1.0]), 9).tolist() == [0.5]  # a one-hot
    assert _quantile_values(np.arange(27.0) % 5, 9).tolist() == [0.5, 1.5, 2.5, 3.5]  # few values
    assert _quantile_values(np.full(10, 2.0), 9).shape == (0,)  # nothing to split
    sample = np.random.default_rng(0).lognormal(1.0, 1.0, 200)
    values = _quantile_values(sample, 9)
    assert values.shape == (9,)
    # Each value sits between two observed values, with k / 10 of the sample below it.
    below = np.array([(sample < v).mean() for v in values])
    np.testing.assert_allclose(below, np.arange(1, 10) / 10, atol=1 / 200)
    assert not np.isin(values, sample).any()


def test_a_leaf_adds_the_quantiles_of_its_first_observations_then_keeps_its_candidates() -> None:
    agent = CQI(HeavyTailThreshold(), seed=0, split_values="quantile", split_threshold=1e9, **UNIFORM)
    xs = np.random.default_rng(0).lognormal(1.0, 1.0, size=(QUANTILE_SAMPLE, 1))
    for x in xs[:-1]:
        agent.update(x, 0, 1.0, x, terminated=True)
    leaf = agent._stats(0)
    assert leaf.sample is not None and leaf.sample_count == QUANTILE_SAMPLE - 1
    even = leaf.cand_value.copy()  # the evenly spaced grid over the range observed so far
    agent.update(xs[-1], 0, 1.0, xs[-1], terminated=True)
    assert leaf.sample is None and leaf.n_updates == 0  # maturity counts from the new candidates
    expected = np.unique(np.concatenate([_quantile_values(xs[:, 0], 9), even]))
    np.testing.assert_array_equal(leaf.cand_value, expected)
    # Fresh statistics: only the transition that completed the sample has updated them.
    assert leaf.cand_n.sum() == leaf.cand_value.shape[0]
    first = leaf.cand_value.copy()
    agent.learn(3000, reset_num_timesteps=False)  # the observed range keeps growing
    np.testing.assert_array_equal(agent._stats(0).cand_value, first)


def test_the_even_grid_spends_its_candidates_on_the_empty_tail() -> None:
    # The contrast that motivates the option: on the same data the even grid puts most of its
    # candidates in the top fifth of the sample; the quantile values add candidates through it.
    even = CQI(HeavyTailThreshold(), seed=0, split_threshold=1e9, **UNIFORM).learn(QUANTILE_SAMPLE)
    quantile = CQI(HeavyTailThreshold(), seed=0, split_values="quantile", split_threshold=1e9, **UNIFORM)
    quantile.learn(QUANTILE_SAMPLE)
    sample = np.random.default_rng(1).lognormal(1.0, 1.0, 5000)
    share_below = [float((sample < v).mean()) for v in even._stats(0).cand_value]
    assert sum(s > 0.8 for s in share_below) >= 6
    share_below = [float((sample < v).mean()) for v in quantile._stats(0).cand_value]
    assert min(share_below) < 0.2 and max(share_below) > 0.8


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_heavy_tailed_threshold_within_twice_the_optimal_tree(seed: int) -> None:
    agent = CQI(HeavyTailThreshold(), seed=seed, split_values="quantile", **UNIFORM).learn(20_000)
    xs = np.random.default_rng(1).lognormal(1.0, 1.0, 4000).astype(np.float32)[:, None]
    accuracy = float(np.mean(agent.predict(xs, deterministic=True)[0] == (xs[:, 0] >= 3.0)))
    assert agent.n_leaves <= 4 and accuracy >= 0.95


def test_a_pruned_node_collects_a_new_sample() -> None:
    agent = CQI(constant_bandit(), seed=0, split_values="quantile", split_threshold=1e9, **UNIFORM)
    agent.learn(QUANTILE_SAMPLE + 10)
    agent._split(0, 0, 1.0)
    left, right = agent._stats(agent._left[0]), agent._stats(agent._right[0])
    assert left.sample is not None and left.sample_count == 0  # children collect their own
    agent._merge(0, left, right)
    assert agent._stats(0).sample is not None and agent._stats(0).sample_count == 0


def test_a_saved_leaf_that_is_still_collecting_resumes_its_sample(tmp_path) -> None:
    agent = CQI(HeavyTailThreshold(), seed=0, split_values="quantile", **UNIFORM).learn(QUANTILE_SAMPLE // 2)
    agent.save(tmp_path / "cqi.json")
    loaded = CQI.load(tmp_path / "cqi.json")
    assert loaded.split_values == "quantile" and loaded.to_dict() == agent.to_dict()
    np.testing.assert_array_equal(
        loaded._stats(0).sample[: QUANTILE_SAMPLE // 2], agent._stats(0).sample[: QUANTILE_SAMPLE // 2]
    )


def test_bad_split_values_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="split_values"):
        CQI(constant_bandit(), split_values="deciles")
