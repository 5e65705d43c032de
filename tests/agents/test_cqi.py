"""Conservative Q-Improvement with the paper's split rule: known optimal trees, invariants, round trips,
and the authors' defects.

The tree-shape tests use one-step contextual bandits (``toy_envs``) whose optimal trees are known
exactly; their hyperparameters were checked on 40 seeds each (all gave the asserted tree).
"""

from __future__ import annotations

import json
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from hypothesis import given, settings
from hypothesis import strategies as st
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, EvalCallback
from stable_baselines3.common.logger import KVWriter, Logger
from stable_baselines3.common.monitor import Monitor

from agents import cqi
from agents.cqi import INITIAL_SIDE_VISITS
from agents.seeding import seed_streams
from tests.agents.toy_envs import (
    ContextualBandit,
    Corridor,
    constant_bandit,
    threshold_bandit,
    unbounded_threshold_bandit,
    xor_bandit,
)

# Bandit settings: uniform exploration throughout, slow learning rate, smooth visit frequencies.
BANDIT = dict(
    learning_rate=0.02,
    visit_decay=0.999,
    split_threshold=1.0,
    split_threshold_decay=0.999,
    exploration_initial_eps=1.0,
    exploration_final_eps=1.0,
)
GRID = np.linspace(0.005, 0.995, 100)


class CQI(cqi.CQI):
    """CQI with the paper's split rule: this file tests Roth et al.'s algorithm as published (the
    conservative default rule has its own tests in test_cqi_split_rule.py)."""

    def __init__(self, env: Any, **kwargs: Any) -> None:
        super().__init__(env, **{"split_rule": "paper", **kwargs})


def splits(agent: CQI) -> list[tuple[int, float]]:
    """(feature, threshold) of every internal node, in node-id order (root first)."""
    return [(n["feature"], n["threshold"]) for n in agent.to_dict(False)["nodes"] if "feature" in n]


def leaves(agent: CQI, include_candidates: bool = True) -> list[dict[str, Any]]:
    return [n for n in agent.to_dict(include_candidates)["nodes"] if "q" in n]


def contexts(n_features: int, n: int = 2000, seed: int = 123) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, 1.0, size=(n, n_features))


# ---------------------------------------------------------------------- known optimal trees


def test_reward_that_ignores_the_state_keeps_one_leaf() -> None:
    agent = CQI(constant_bandit(noise=0.1), seed=0, **{**BANDIT, "split_threshold_decay": 0.998}).learn(3000)
    assert agent.n_leaves == 1 and agent.depth == 0
    # The threshold decayed far below any real gain (a threshold split scores ~0.3), so the test is
    # not passing merely because the threshold stayed high.
    assert agent.split_threshold_ < 0.01
    actions, _ = agent.predict(contexts(2), deterministic=True)
    assert (actions == 0).all()


def test_one_threshold_gives_exactly_one_split_at_the_nearest_candidate() -> None:
    # Payoff switches at x0 = 0.29; the candidates are 0.1, 0.2, ..., 0.9, the nearest being 0.3.
    agent = CQI(threshold_bandit(boundary=0.29, n_features=3), seed=1, **BANDIT).learn(5000)
    assert agent.n_leaves == 2 and agent.depth == 1
    [(feature, threshold)] = splits(agent)
    assert feature == 0
    assert threshold == pytest.approx(0.3, abs=1e-12)
    x = contexts(3)
    actions, _ = agent.predict(x, deterministic=True)
    np.testing.assert_array_equal(actions, np.where(x[:, 0] < 0.3, 0, 1))


def test_a_feature_that_carries_no_information_is_never_split() -> None:
    # Noisy rewards and a threshold decayed to ~0 give the noise features every chance to be split.
    env = threshold_bandit(boundary=0.29, n_features=3, noise=0.3)
    agent = CQI(env, seed=2, **{**BANDIT, "split_threshold_decay": 0.998}).learn(6000)
    assert agent.split_threshold_ < 1e-3
    assert splits(agent), "the informative feature should have been split"
    assert all(feature == 0 for feature, _ in splits(agent))


def test_xor_of_two_features_gives_a_depth_two_four_leaf_tree() -> None:
    agent = CQI(xor_bandit(b0=0.5, b1=0.3), seed=3, **BANDIT).learn(8000)
    assert agent.n_leaves == 4 and agent.depth == 2
    tree = agent.to_dict(False)["nodes"]
    root = tree[0]
    assert (root["feature"], root["threshold"]) == (0, pytest.approx(0.5))
    for child in (tree[root["left"]], tree[root["right"]]):
        assert (child["feature"], child["threshold"]) == (1, pytest.approx(0.3))
    x = contexts(3)
    actions, _ = agent.predict(x, deterministic=True)
    np.testing.assert_array_equal(actions, np.where((x[:, 0] < 0.5) != (x[:, 1] < 0.3), 0, 1))


def test_corridor_learns_the_optimal_two_leaf_tree() -> None:
    agent = CQI(
        Corridor(max_steps=10),
        gamma=0.9,
        learning_rate=0.05,
        visit_decay=0.999,
        split_threshold=1.0,
        split_threshold_decay=0.999,
        exploration_initial_eps=1.0,
        exploration_final_eps=0.3,
        exploration_fraction=0.5,
        seed=4,
    ).learn(6000)
    assert agent.n_leaves == 2
    [(feature, threshold)] = splits(agent)
    assert feature == 0 and 1 / 3 < threshold <= 2 / 3
    # Optimal: step left (0) in cell 1, right (1) in cell 2, whatever the noise feature says.
    noise = np.linspace(0.0, 1.0, 11)
    cell1 = np.column_stack([np.full(11, 1 / 3), noise]).astype(np.float32)
    cell2 = np.column_stack([np.full(11, 2 / 3), noise]).astype(np.float32)
    assert (agent.predict(cell1, deterministic=True)[0] == 0).all()
    assert (agent.predict(cell2, deterministic=True)[0] == 1).all()
    # Bootstrapped values: an exit one step away is worth 1; in the wrong direction, 0.9**2.
    q1 = agent.q_values(cell1[0])
    assert q1[0] == pytest.approx(1.0, abs=0.05)
    assert q1[1] == pytest.approx(0.81, abs=0.1)


def test_unbounded_dimensions_use_the_observed_range() -> None:
    env = unbounded_threshold_bandit(boundary=2.9)  # Box(-inf, inf), contexts ~ U[0, 10]
    agent = CQI(env, seed=5, **BANDIT)
    assert leaves(agent)[0]["candidates"]["feature"] == []  # nothing observed: no grid yet
    agent.learn(5000)
    np.testing.assert_allclose(agent.obs_min_, [0.0, 0.0], atol=0.01)
    np.testing.assert_allclose(agent.obs_max_, [10.0, 10.0], atol=0.01)
    root_feature, root_threshold = splits(agent)[0]
    assert root_feature == 0
    assert abs(root_threshold - 2.9) < 0.6  # a grid step is ~1.0 wide
    for _, threshold in splits(agent):
        assert agent.obs_min_[0] < threshold < agent.obs_max_[0]
    x = np.random.default_rng(0).uniform(0, 10, size=(2000, 2))
    far = np.abs(x[:, 0] - 2.9) > 0.6
    actions, _ = agent.predict(x[far], deterministic=True)
    np.testing.assert_array_equal(actions, np.where(x[far, 0] < 2.9, 0, 1))
    # Every leaf's grid on feature 0 lies inside its interval clipped to the observed range.
    for leaf in leaves(agent):
        cand = leaf["candidates"]
        values = np.array(cand["value"])[np.array(cand["feature"]) == 0]
        low = max(float(leaf["low"][0]), agent.obs_min_[0])
        high = min(float(leaf["high"][0]), agent.obs_max_[0])
        assert ((values > low) & (values < high)).all()


def test_max_leaves_caps_the_tree() -> None:
    agent = CQI(xor_bandit(), seed=3, max_leaves=2, **BANDIT).learn(8000)
    assert agent.n_leaves == 2


# ---------------------------------------------------------------------- invariants


def test_visit_frequencies_root_is_one_and_siblings_sum_to_one() -> None:
    agent = CQI(xor_bandit(), seed=3, **BANDIT).learn(8000)
    nodes = agent.to_dict()["nodes"]
    assert nodes[0]["visits"] == 1.0
    internal = [n for n in nodes if "feature" in n]
    assert internal
    for node in internal:
        total = nodes[node["left"]]["visits"] + nodes[node["right"]]["visits"]
        assert total == pytest.approx(1.0, abs=1e-9)
    for leaf in leaves(agent):
        visits = np.array(leaf["candidates"]["visits"])
        np.testing.assert_allclose(visits.sum(axis=1), 1.0, atol=1e-9)
        assert ((visits >= 0) & (visits <= 1)).all()


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_candidates=st.integers(1, 5),
    reading=st.sampled_from(["paper", "parent_q"]),
)
def test_invariants_hold_on_random_transitions(seed: int, n_candidates: int, reading: str) -> None:
    # A threshold of 0 that barely recovers makes the tree split often on arbitrary data.
    env = ContextualBandit(lambda x: np.zeros(3), n_features=3, n_actions=3, low=-1.0, high=2.0)
    agent = CQI(
        env,
        learning_rate=0.3,
        visit_decay=0.8,
        split_threshold=0.0,
        split_threshold_decay=0.5,
        n_split_candidates=n_candidates,
        split_score=reading,
        seed=0,
    )
    rng = np.random.default_rng(seed)
    states = rng.uniform(-1.0, 2.0, size=(301, 3))
    for t in range(300):
        agent.update(
            states[t], int(rng.integers(3)), float(rng.normal()), states[t + 1], bool(rng.random() < 0.3)
        )
    nodes = agent.to_dict()["nodes"]
    assert nodes[0]["visits"] == 1.0
    assert sum("q" in n for n in nodes) == agent.n_leaves
    for node in nodes:
        if "feature" in node:
            left, right = nodes[node["left"]], nodes[node["right"]]
            assert left["visits"] + right["visits"] == pytest.approx(1.0, abs=1e-9)
            assert left["depth"] == right["depth"] == node["depth"] + 1
        else:
            low, high = np.array(node["low"], dtype=float), np.array(node["high"], dtype=float)
            cand = node["candidates"]
            np.testing.assert_allclose(np.sum(cand["visits"], axis=1), 1.0, atol=1e-9)
            f, v = np.array(cand["feature"], dtype=int), np.array(cand["value"])
            assert ((v > low[f]) & (v < high[f])).all()
    # Every state is routed to a leaf whose interval contains it; batch and single predictions agree.
    for state, node in zip(states, agent.apply(states), strict=True):
        low, high = np.array(nodes[node]["low"], dtype=float), np.array(nodes[node]["high"], dtype=float)
        assert ((state >= low) & (state < high)).all()
    assert agent.n_leaves > 1
    batch, _ = agent.predict(states, deterministic=True)
    assert [int(agent.predict(s, deterministic=True)[0]) for s in states[:50]] == batch[:50].tolist()


def test_tree_size_history_tracks_every_split() -> None:
    agent = CQI(xor_bandit(), seed=3, **BANDIT).learn(8000)
    history = agent.tree_size_history_
    assert history[0] == (0, 1)
    assert history[-1][1] == agent.n_leaves == 4
    assert [n for _, n in history] == [1, 2, 3, 4]
    steps = [t for t, _ in history]
    assert steps == sorted(steps) and steps[-1] <= 8000


def test_same_seed_same_tree_and_different_seeds_differ() -> None:
    def train(seed: int) -> dict[str, Any]:
        return CQI(xor_bandit(), seed=seed, **BANDIT).learn(3000).to_dict()

    first = train(7)
    assert train(7) == first
    assert train(8)["nodes"] != first["nodes"]


def test_first_reset_is_seeded_from_the_agent_seed_and_later_ones_are_not() -> None:
    class Recorder(gym.Wrapper):
        def __init__(self, env: gym.Env) -> None:
            super().__init__(env)
            self.seeds: list[int | None] = []

        def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
            self.seeds.append(seed)
            return self.env.reset(seed=seed, options=options)

    env = Recorder(constant_bandit())
    CQI(env, seed=11, **BANDIT).learn(5)
    assert env.seeds[0] == seed_streams(11)[1]  # the env's own stream, derived from the agent seed
    assert env.seeds[1:] == [None] * (len(env.seeds) - 1) and len(env.seeds) >= 5


def test_truncation_bootstraps_and_termination_does_not() -> None:
    class Endless(ContextualBandit):
        """Reward 1 every step; every step is cut by a time limit, none terminates."""

        def step(self, action: int):
            obs, reward, _, _, info = super().step(action)
            return obs, reward, False, True, info

    env = Endless(lambda x: np.array([1.0]), n_features=1, n_actions=1)
    agent = CQI(env, gamma=0.5, learning_rate=0.1, seed=0).learn(400)
    assert agent.q_values(np.array([0.5]))[0] == pytest.approx(2.0, abs=0.01)  # 1 / (1 - gamma)

    agent = CQI(constant_bandit(), gamma=0.5, learning_rate=0.5, seed=0)
    s = np.array([0.5, 0.5])
    agent.update(s, 0, 1.0, s, terminated=True)
    assert agent.q_values(s)[0] == pytest.approx(0.5)
    agent.update(s, 1, 0.0, s, terminated=False)  # y = 0 + 0.5 * max Q = 0.25
    assert agent.q_values(s)[1] == pytest.approx(0.125)
    agent.update(s, 2, 0.0, s, terminated=True)  # y = 0
    assert agent.q_values(s)[2] == 0.0


# ---------------------------------------------------------------------- the authors' defects


def test_defect1_threshold_is_the_chosen_candidate_not_the_interval_midpoint() -> None:
    agent = CQI(threshold_bandit(boundary=0.69), seed=6, **BANDIT).learn(5000)
    [(feature, threshold)] = splits(agent)
    assert feature == 0
    assert threshold == pytest.approx(0.7, abs=1e-12)
    assert threshold != pytest.approx(0.5)  # the midpoint of the root's interval [0, 1]
    x = np.array([[0.6, 0.5], [0.65, 0.5], [0.75, 0.5]])
    np.testing.assert_array_equal(agent.predict(x, deterministic=True)[0], [0, 0, 1])


def test_defect2_observation_space_bounds_are_never_mutated_or_aliased() -> None:
    env = xor_bandit()
    low, high = env.observation_space.low.copy(), env.observation_space.high.copy()
    agent = CQI(env, seed=3, **BANDIT)
    assert not np.shares_memory(agent.observation_low_, env.observation_space.low)
    assert not np.shares_memory(agent.observation_high_, env.observation_space.high)
    agent.learn(8000)
    assert agent.n_leaves == 4
    np.testing.assert_array_equal(env.observation_space.low, low)
    np.testing.assert_array_equal(env.observation_space.high, high)
    np.testing.assert_array_equal(agent.observation_low_, low)
    np.testing.assert_array_equal(agent.observation_high_, high)
    # Later grids come from the true intervals: the right child of the root (x0 >= 0.5) keeps the
    # full deciles of [0, 1] on x1 and gets a refined grid inside [0.5, 1] on x0.
    nodes = agent.to_dict()["nodes"]
    right = nodes[nodes[nodes[0]["right"]]["right"]]
    assert right["low"] == [0.5, 0.3, 0.0] and right["high"] == [1.0, 1.0, 1.0]
    cand = right["candidates"]
    x0 = np.array(cand["value"])[np.array(cand["feature"]) == 0]
    np.testing.assert_allclose(x0, 0.5 + 0.5 * np.arange(1, 10) / 10)
    x1 = np.array(cand["value"])[np.array(cand["feature"]) == 1]
    np.testing.assert_allclose(x1, 0.3 + 0.7 * np.arange(1, 10) / 10)


def test_defect3_fractional_rewards_and_thresholds_survive() -> None:
    agent = CQI(threshold_bandit(boundary=0.29, scale=0.3), seed=1, **{**BANDIT, "split_threshold": 0.3})
    agent.learn(5000)
    [(_, threshold)] = splits(agent)
    assert threshold == pytest.approx(0.3, abs=1e-12)
    q_left = agent.q_values(np.array([0.1, 0.5]))
    q_right = agent.q_values(np.array([0.9, 0.5]))
    assert q_left[0] == pytest.approx(0.3, abs=0.02) and q_left[1] == pytest.approx(0.0, abs=0.02)
    assert q_right[1] == pytest.approx(0.3, abs=0.02) and q_right[0] == pytest.approx(0.0, abs=0.02)
    # And through a JSON round trip.
    again = CQI.from_dict(json.loads(json.dumps(agent.to_dict())))
    assert splits(again) == splits(agent)
    np.testing.assert_array_equal(again.q_values(np.array([0.1, 0.5])), q_left)


def test_defect4_the_two_sides_of_a_root_candidate_do_not_share_an_array() -> None:
    agent = CQI(threshold_bandit(), seed=0, **BANDIT)
    agent.update(np.array([0.05, 0.05]), 1, 2.0, np.array([0.5, 0.5]), terminated=True)
    cand = leaves(agent)[0]["candidates"]
    q = np.array(cand["q"])  # (C, 2, A); x = 0.05 is left of every candidate value (0.1 ... 0.9)
    assert q.shape == (18, 2, 2)
    np.testing.assert_allclose(q[:, 0, 1], 0.02 * 2.0)  # the side containing s learned
    np.testing.assert_array_equal(q[:, 1, :], 0.0)  # the other side did not
    np.testing.assert_array_equal(q[:, 0, 0], 0.0)  # nor did the other action


def test_defect5_every_visit_frequency_is_initialised_and_split_children_inherit() -> None:
    d, alpha = 0.9, 0.5
    agent = CQI(threshold_bandit(), learning_rate=alpha, visit_decay=d, split_threshold=0.0, seed=0)
    fresh = agent.to_dict()["nodes"]
    assert fresh[0]["visits"] == 1.0
    np.testing.assert_array_equal(fresh[0]["candidates"]["visits"], INITIAL_SIDE_VISITS)
    assert INITIAL_SIDE_VISITS == 0.5

    left, right = np.array([0.15, 0.5]), np.array([0.95, 0.5])
    assert not agent.update(left, 0, 1.0, right, terminated=True)  # no side beats the leaf yet
    assert agent.update(right, 1, 1.0, left, terminated=True)  # now x0 splits the actions apart
    assert agent.n_leaves == 2
    nodes = agent.to_dict()["nodes"]
    # All x0 candidates in (0.15, 0.95] separate the two contexts equally well: the first, 0.2, wins.
    assert (nodes[0]["feature"], nodes[0]["threshold"]) == (0, pytest.approx(0.2))
    assert nodes[0]["visits"] == 1.0
    child_left, child_right = nodes[nodes[0]["left"]], nodes[nodes[0]["right"]]
    # Side visits: 0.5 -> (0.5 d + (1 - d)) -> * d for the left; 0.5 -> 0.5 d -> 0.5 d^2 + (1 - d).
    assert child_left["visits"] == pytest.approx((0.5 * d + (1 - d)) * d)
    assert child_right["visits"] == pytest.approx(0.5 * d * d + (1 - d))
    assert child_left["visits"] + child_right["visits"] == pytest.approx(1.0)
    assert child_left["q"] == pytest.approx([alpha, 0.0])
    assert child_right["q"] == pytest.approx([0.0, alpha])
    for child in (child_left, child_right):
        cand = child["candidates"]
        np.testing.assert_array_equal(cand["visits"], INITIAL_SIDE_VISITS)
        q = np.array(cand["q"])
        np.testing.assert_array_equal(q, np.broadcast_to(child["q"], q.shape))
    # The left child's refined grid on x0 lies inside [0, 0.2).
    cand = child_left["candidates"]
    x0 = np.array(cand["value"])[np.array(cand["feature"]) == 0]
    np.testing.assert_allclose(x0, 0.2 * np.arange(1, 10) / 10)


# ---------------------------------------------------------------------- the split score option


def test_split_score_readings_on_a_hand_computed_example() -> None:
    low, high = np.array([0.05, 0.05]), np.array([0.95, 0.95])
    scores = {}
    for reading in ("paper", "parent_q"):
        agent = CQI(threshold_bandit(), learning_rate=0.1, visit_decay=0.9, split_score=reading, seed=0)
        # Action 1 costs 2 on both sides of every candidate; the leaf's Q becomes [0, -0.2], then
        # [0, -0.38]; every candidate side sees one update: side Q = [0, -0.2]; side visits
        # 0.5 -> (0.55, 0.45) -> (0.495, 0.505), adding to 1.
        agent.update(low, 1, -2.0, low, terminated=True)
        agent.update(high, 1, -2.0, high, terminated=True)
        scores[reading] = agent.split_scores(low, action=1)
    # paper: every side's best action is the leaf's greedy one (Q 0), so no candidate gains.
    np.testing.assert_allclose(scores["paper"], 0.0)
    # parent_q: each side's max (0) minus the leaf's Q of the action taken (-0.38), times its visits
    # (which add to 1): 0.38 for every candidate.
    np.testing.assert_allclose(scores["parent_q"], 0.38)


def test_candidates_without_data_on_both_sides_cannot_split() -> None:
    """Regression: a side that no observation reaches keeps its initial statistics and would score a
    gain that does not exist (refined grids on one-hot features made unreachable leaves)."""
    agent = CQI(threshold_bandit(), learning_rate=0.1, visit_decay=0.9, split_score="parent_q", seed=0)
    agent.update(np.array([0.05, 0.05]), 1, -2.0, np.array([0.05, 0.05]), terminated=True)
    assert np.all(agent.split_scores(np.array([0.05, 0.05]), action=1) == -np.inf)
    # A binary feature: once split at a grid value, neither child can split on it again.
    env = threshold_bandit()
    binary = CQI(
        env, learning_rate=0.2, visit_decay=0.99, split_threshold=0.05, split_score="parent_q", seed=1
    )
    rng = np.random.default_rng(0)
    for _ in range(3_000):
        x = np.array([float(rng.integers(2)), rng.random()])
        a = int(rng.integers(2))
        binary.update(x, a, float(a == x[0]) + 0.1 * rng.standard_normal(), x, terminated=True)
    nodes = binary.to_dict()["nodes"]
    on_binary = [n for n in nodes if "feature" in n and n["feature"] == 0]
    assert len(on_binary) <= 1


def test_parent_q_reading_grows_a_tree_where_the_paper_reading_does_not() -> None:
    params = {**BANDIT, "split_threshold_decay": 0.998}
    paper = CQI(constant_bandit(noise=0.1), seed=0, **params).learn(3000)
    parent_q = CQI(constant_bandit(noise=0.1), seed=0, split_score="parent_q", **params).learn(3000)
    assert paper.n_leaves == 1
    assert parent_q.n_leaves > 2


# ---------------------------------------------------------------------- protocol and round trips


def test_predict_single_and_batch() -> None:
    agent = CQI(xor_bandit(), seed=3, **BANDIT).learn(8000)
    x = contexts(3, n=300)
    batch, state = agent.predict(x, deterministic=True)
    assert state is None and batch.shape == (300,) and np.issubdtype(batch.dtype, np.integer)
    singles = []
    for row in x:
        action, _ = agent.predict(row, deterministic=True)
        assert action.shape == () and np.issubdtype(action.dtype, np.integer)
        singles.append(int(action))
    np.testing.assert_array_equal(batch, singles)
    # Exploration: with epsilon 1 (as trained) about half the actions are not the greedy ones.
    explored, _ = agent.predict(x, deterministic=False)
    assert 0.3 < np.mean(explored != batch) < 0.7
    with pytest.raises(ValueError, match="observation must have shape"):
        agent.predict(np.zeros(2))


def test_save_load_round_trip(tmp_path) -> None:
    env = unbounded_threshold_bandit()  # infinite bounds must survive strict JSON too
    agent = CQI(env, seed=5, **BANDIT).learn(3000)
    path = tmp_path / "cqi.json"
    agent.save(path)

    def no_constants(name: str) -> None:
        raise AssertionError(f"non-standard JSON constant {name}")

    json.loads(path.read_text(), parse_constant=no_constants)
    loaded = CQI.load(path)
    assert loaded.to_dict() == agent.to_dict()
    x = np.random.default_rng(1).uniform(-1, 11, size=(500, 2))
    np.testing.assert_array_equal(
        loaded.predict(x, deterministic=True)[0], agent.predict(x, deterministic=True)[0]
    )
    assert loaded.export_text() == agent.export_text()
    # With an env, training continues; a policy-only file is smaller and predicts the same.
    CQI.load(path, env=unbounded_threshold_bandit()).learn(100, reset_num_timesteps=False)
    small = tmp_path / "policy.json"
    agent.save(small, include_candidates=False)
    assert small.stat().st_size < path.stat().st_size
    np.testing.assert_array_equal(
        CQI.load(small).predict(x, deterministic=True)[0], agent.predict(x, deterministic=True)[0]
    )
    with pytest.raises(ValueError, match="do not match"):
        CQI.load(path, env=xor_bandit())


def test_export_text_reads_as_rules() -> None:
    agent = CQI(threshold_bandit(boundary=0.29), seed=1, **BANDIT).learn(5000)
    text = agent.export_text(
        feature_names=["share of budget left", "month"], action_names=["seg 3 · micro beauty · 1.0×", "wait"]
    )
    lines = text.splitlines()
    assert lines[0] == "if share of budget left < 0.3:"
    assert lines[1].startswith("    → seg 3 · micro beauty · 1.0×  (Q=")
    assert lines[2] == "else:"
    assert lines[3].startswith("    → wait  (Q=")
    assert "x[0] < 0.3" in agent.export_text()
    with pytest.raises(ValueError, match="feature_names"):
        agent.export_text(feature_names=["one"])


def test_export_text_defaults_to_the_env_names() -> None:
    env = threshold_bandit(boundary=0.29)
    env.feature_names, env.action_names = ["budget", "month"], ["hire", "wait"]
    agent = CQI(env, seed=1, **BANDIT).learn(5000)
    assert agent.export_text().splitlines()[0] == "if budget < 0.3:"
    assert "→ hire" in agent.export_text()


def test_discrete_action_space_with_a_start_offset() -> None:
    env = threshold_bandit(boundary=0.29)

    class Shifted(gym.ActionWrapper):
        def __init__(self, env: gym.Env) -> None:
            super().__init__(env)
            self.action_space = spaces.Discrete(2, start=5)

        def action(self, action: int) -> int:
            return int(action) - 5

    agent = CQI(Shifted(env), seed=1, **BANDIT).learn(5000)
    actions, _ = agent.predict(np.array([[0.1, 0.5], [0.9, 0.5]]), deterministic=True)
    np.testing.assert_array_equal(actions, [5, 6])


class _Recorder(BaseCallback):
    def __init__(self, stop_at: int | None = None) -> None:
        super().__init__()
        self.stop_at = stop_at
        self.events: list[str] = []
        self.dones = 0

    def _on_training_start(self) -> None:
        self.events.append("training_start")
        assert self.locals["total_timesteps"] == 200

    def _on_rollout_start(self) -> None:
        self.events.append("rollout_start")

    def _on_step(self) -> bool:
        self.events.append("step")
        assert self.locals["new_obs"].shape == (1, 2) and self.locals["dones"].shape == (1,)
        if self.locals["dones"][0]:
            self.dones += 1
            assert "terminal_observation" in self.locals["infos"][0]
        return self.stop_at is None or self.num_timesteps < self.stop_at

    def _on_rollout_end(self) -> None:
        self.events.append("rollout_end")

    def _on_training_end(self) -> None:
        self.events.append("training_end")


def test_sb3_callbacks_are_driven_like_sb3_does() -> None:
    env = Corridor()
    recorder = _Recorder()
    agent = CQI(env, seed=0).learn(200, callback=[recorder])
    assert recorder.model is agent and recorder.training_env.num_envs == 1
    events = recorder.events
    assert events[0] == "training_start" and events[-1] == "training_end"
    assert events.count("step") == 200 == agent.num_timesteps == recorder.num_timesteps
    assert events.count("rollout_start") == events.count("rollout_end") >= recorder.dones > 0
    # Every step happens inside a rollout (one rollout per episode).
    depth = 0
    for event in events[1:-1]:
        depth += {"rollout_start": 1, "rollout_end": -1, "step": 0}[event]
        assert depth in (0, 1)
        if event == "step":
            assert depth == 1


def test_callback_returning_false_stops_training() -> None:
    recorder = _Recorder(stop_at=37)
    agent = CQI(Corridor(), seed=0).learn(200, callback=CallbackList([recorder]))
    assert agent.num_timesteps == 37
    assert recorder.events[-2:] == ["rollout_end", "training_end"]


@pytest.mark.filterwarnings("ignore:rich is experimental")
def test_eval_callback_and_progress_bar_work(tmp_path) -> None:
    eval_env = Monitor(Corridor())
    eval_cb = EvalCallback(eval_env, n_eval_episodes=3, eval_freq=100, log_path=str(tmp_path), verbose=0)
    agent = CQI(Corridor(), seed=0).learn(300, callback=eval_cb, progress_bar=True)
    assert agent.num_timesteps == 300
    assert eval_cb.evaluations_timesteps == [100, 200, 300]
    assert 0.0 <= eval_cb.best_mean_reward <= 1.0


def test_logger_records_tree_size_and_returns() -> None:
    class Collect(KVWriter):
        def __init__(self) -> None:
            self.rows: list[dict[str, Any]] = []

        def write(self, key_values: dict[str, Any], key_excluded: Any, step: int = 0) -> None:
            self.rows.append(dict(key_values, step=step))

    writer = Collect()
    agent = CQI(xor_bandit(), seed=3, **BANDIT)
    agent.set_logger(Logger(folder=None, output_formats=[writer]))
    agent.learn(8000, log_interval=1000)
    assert len(writer.rows) == 8
    last = writer.rows[-1]
    assert last["step"] == 8000
    assert last["cqi/n_leaves"] == 4 and last["cqi/depth"] == 2
    assert last["rollout/exploration_rate"] == 1.0
    assert 0.3 < last["rollout/ep_rew_mean"] < 0.7  # uniformly random actions earn 0.5 on average


# ---------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("learning_rate", 0.0),
        ("learning_rate", 1.5),
        ("gamma", -0.1),
        ("gamma", 1.01),
        ("visit_decay", 0.0),
        ("visit_decay", 1.0),
        ("split_threshold", -1.0),
        ("split_threshold_decay", 0.0),
        ("split_threshold_decay", 1.1),
        ("n_split_candidates", 0),
        ("n_split_candidates", 2.5),
        ("exploration_initial_eps", 1.5),
        ("exploration_final_eps", -0.5),
        ("exploration_fraction", 2.0),
        ("max_leaves", 0),
        ("split_score", "gini"),
        ("seed", -1),
        ("learning_rate", float("nan")),
    ],
)
def test_invalid_arguments_are_refused_by_name_and_value(name: str, value: Any) -> None:
    with pytest.raises(ValueError, match=name) as err:
        CQI(constant_bandit(), **{name: value})
    assert repr(value) in str(err.value)


def test_unsupported_spaces_are_refused() -> None:
    class DiscreteObs(gym.Env):
        observation_space = spaces.Discrete(4)
        action_space = spaces.Discrete(2)

    class BoxActions(gym.Env):
        observation_space = spaces.Box(0, 1, (2,))
        action_space = spaces.Box(-1, 1, (1,))

    with pytest.raises(ValueError, match="observation_space"):
        CQI(DiscreteObs())
    with pytest.raises(ValueError, match="action_space"):
        CQI(BoxActions())


@pytest.mark.parametrize("reading", ["paper", "parent_q"])
def test_compiled_candidate_update_agrees_with_split_scores(monkeypatch, reading: str) -> None:
    """The compiled per-transition pass picks the candidate, and the score, that the numpy
    split_scores gives for the same leaf after the same update."""
    import agents.cqi as cqi_module

    returned = []
    kernel = cqi_module.update_candidates

    def recording(*args):
        result = kernel(*args)
        returned.append(result)
        return result

    monkeypatch.setattr(cqi_module, "update_candidates", recording)
    agent = CQI(threshold_bandit(), learning_rate=0.2, visit_decay=0.95, split_score=reading,
                split_threshold=1e300, n_split_candidates=5, seed=0)  # fmt: skip
    rng = np.random.default_rng(1)
    for _ in range(300):
        x = rng.random(2)
        a = int(rng.integers(2))
        agent.update(x, a, float(rng.normal(x[0] > 0.5)), x, terminated=True)
        best, score = returned[-1]
        numpy_scores = agent.split_scores(x, action=a)
        if np.isfinite(numpy_scores).any():
            assert best == int(np.argmax(numpy_scores))
            assert score == pytest.approx(float(numpy_scores.max()), rel=1e-12, abs=1e-15)
        else:
            assert best == -1
        # The kernel's running best and second-best Q-values per candidate side match a full sort.
        (leaf,) = [stats for stats in agent._leaves if stats is not None]
        ranked = np.sort(leaf.cand_q, axis=0)
        np.testing.assert_array_equal(leaf.cand_top[:, :, 0], ranked[-1])
        np.testing.assert_array_equal(leaf.cand_top[:, :, 1], ranked[-2])
        np.testing.assert_array_equal(np.take_along_axis(leaf.cand_q, leaf.cand_arg[None], 0)[0], ranked[-1])
    assert agent.n_leaves == 1
