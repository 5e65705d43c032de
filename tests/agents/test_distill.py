"""DistilledTree (VIPER): recovers a known-optimal tree from its teacher, respects masks, round-trips."""

from __future__ import annotations

import json

import numpy as np
import pytest

from agents.distill import DistilledTree
from tests.agents.toy_envs import threshold_bandit, xor_bandit


class PayoffTeacher:
    """Knows each context's payoffs: acts greedily on them and reports them as its Q-values."""

    def __init__(self, env):
        self.payoff = env.unwrapped.payoff

    def q_values(self, observation):
        return self.payoff(np.asarray(observation, dtype=np.float64))

    def predict(self, observation, deterministic=True):
        return np.asarray(int(np.argmax(self.q_values(observation)))), None


def _accuracy(tree, env, n=2_000, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 1, size=(n, env.observation_space.shape[0])).astype(np.float32)
    best = np.array([np.argmax(env.unwrapped.payoff(x.astype(np.float64))) for x in X])
    return float(np.mean(tree.predict(X)[0] == best))


@pytest.mark.parametrize("max_leaves", [4, 8, 16])
def test_distilling_an_optimal_teacher_recovers_the_optimal_xor_tree(max_leaves):
    env = xor_bandit()
    tree = DistilledTree(env, PayoffTeacher(env), max_leaves=max_leaves, n_iterations=3, seed=0)
    tree.learn(3_000)
    assert tree.num_timesteps == 3_000
    # The optimal tree has four leaves (depth 2); a pure CART stops there whatever max_leaves allows.
    assert 4 <= tree.n_leaves <= 2 * 4
    assert _accuracy(tree, env) >= 0.97
    assert {tree.feature_[n] for n in range(len(tree.left_)) if tree.left_[n] >= 0} <= {0, 1}


def test_one_threshold_teacher_gives_two_leaves_near_the_boundary():
    env = threshold_bandit(boundary=0.3)
    tree = DistilledTree(env, PayoffTeacher(env), max_leaves=16, n_iterations=2, seed=1).learn(2_000)
    assert tree.n_leaves == 2 and tree.depth == 1
    assert tree.threshold_[0] == pytest.approx(0.3, abs=0.02)


def test_q_weighting_ignores_states_where_the_choice_does_not_matter():
    # Action 0 is better by 1 when x[0] < 0.5 and by 0.001 otherwise: with Q-gap weights the states on
    # the right hardly count, so a two-leaf tree must get the left half right.
    def payoff(x):
        return (
            np.array([1.0, 0.0])
            if x[0] < 0.5
            else np.array([0.0, 0.001]) + (x[1] < 0.5) * np.array([0.002, 0])
        )

    from tests.agents.toy_envs import ContextualBandit

    env = ContextualBandit(payoff, n_features=2, n_actions=2)
    tree = DistilledTree(env, PayoffTeacher(env), max_leaves=2, n_iterations=2, seed=0).learn(2_000)
    X = np.random.default_rng(3).uniform(0, 0.5, size=(500, 2)).astype(np.float32)
    assert np.all(tree.predict(X)[0] == 0)


def test_masks_are_respected_and_json_round_trips(tmp_path):
    env = xor_bandit()
    tree = DistilledTree(env, PayoffTeacher(env), max_leaves=4, n_iterations=2, seed=0).learn(1_000)
    X = np.random.default_rng(5).uniform(0, 1, size=(200, 3)).astype(np.float32)
    only_1 = np.tile([False, True], (200, 1))
    assert np.all(tree.predict(X, action_masks=only_1)[0] == 1)
    path = tmp_path / "model.json"
    tree.save(path)
    data = json.loads(path.read_text())
    assert data["format"] == "influmatch.agents.distilled_tree"
    again = DistilledTree.load(path, env=env)
    np.testing.assert_array_equal(again.predict(X)[0], tree.predict(X)[0])
    assert again.n_leaves == tree.n_leaves and again.depth == tree.depth
    assert again.export_text() == tree.export_text()
    # Same seed, same bytes.
    twin = DistilledTree(xor_bandit(), None, max_leaves=4, n_iterations=2, seed=0)
    twin.teacher = PayoffTeacher(twin.env)
    twin.learn(1_000).save(tmp_path / "twin.json")
    assert (tmp_path / "twin.json").read_bytes() == path.read_bytes()


def test_bad_arguments_name_the_field(tmp_path):
    env = xor_bandit()
    with pytest.raises(ValueError, match="max_leaves"):
        DistilledTree(env, PayoffTeacher(env), max_leaves=1)
    with pytest.raises(ValueError, match="n_iterations"):
        DistilledTree(env, PayoffTeacher(env), n_iterations=0)
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(ValueError, match="not a saved DistilledTree"):
        DistilledTree.load(tmp_path / "x.json")


def test_a_teacher_that_takes_masks_is_given_the_valid_actions():
    from agents.distill import _teacher_action

    class MaskedTeacher:
        def predict(self, observation, deterministic=True, action_masks=None):
            preferred = np.array([2.0, 1.0, 0.0])
            if action_masks is not None:
                preferred = np.where(action_masks, preferred, -np.inf)
            return np.asarray(int(np.argmax(preferred))), None

    obs = np.zeros(3, dtype=np.float32)
    assert _teacher_action(MaskedTeacher(), obs, np.array([False, True, True])) == 1
    assert _teacher_action(MaskedTeacher(), obs, np.array([True, True, True])) == 0
    # A teacher whose predict takes no masks is called without them.
    assert _teacher_action(PayoffTeacher(xor_bandit()), np.array([0.1, 0.1, 0.5], dtype=np.float32),
                           np.ones(2, dtype=bool)) in (0, 1)  # fmt: skip


def test_q_leaf_values_take_the_action_worth_most_where_votes_take_the_most_common():
    # Right half (x0 >= 0.5): action 0 is best by 0.1 on 60 % of the states, action 2 by 0.1 on 40 %,
    # and action 1, never the best, earns 0.9 everywhere. A leaf that must take one action there
    # earns 0.6 with the vote winner (0) and 0.9 with action 1. The left half (action 2 worth 5) is the
    # split a two-leaf tree makes.
    def payoff(x):
        if x[0] < 0.5:
            return np.array([0.0, 0.0, 5.0])
        return np.array([1.0, 0.9, 0.0]) if x[1] < 0.6 else np.array([0.0, 0.9, 1.0])

    from tests.agents.toy_envs import ContextualBandit

    right = np.random.default_rng(4).uniform([0.55, 0.0], [1.0, 1.0], size=(500, 2)).astype(np.float32)
    chosen = {}
    for leaf_values in ("votes", "q"):
        env = ContextualBandit(payoff, n_features=2, n_actions=3)
        tree = DistilledTree(env, PayoffTeacher(env), max_leaves=2, n_iterations=2, leaf_values=leaf_values,
                             seed=0).learn(2_000)  # fmt: skip
        assert tree.n_leaves == 2 and tree.feature_[0] == 0
        chosen[leaf_values] = set(tree.predict(right)[0].tolist())
    assert chosen == {"votes": {0}, "q": {1}}


def test_q_leaf_values_round_trip_and_read_as_values(tmp_path):
    env = xor_bandit()
    tree = DistilledTree(env, PayoffTeacher(env), max_leaves=4, n_iterations=2, leaf_values="q", seed=0)
    tree.learn(1_000)
    assert "(q=" in tree.export_text() and "share=" not in tree.export_text()
    assert _accuracy(tree, env) >= 0.97
    tree.save(tmp_path / "q.json")
    again = DistilledTree.load(tmp_path / "q.json", env=env)
    assert again.leaf_values == "q" and again.export_text() == tree.export_text()
    X = np.random.default_rng(6).uniform(0, 1, size=(200, 3)).astype(np.float32)
    np.testing.assert_array_equal(again.predict(X)[0], tree.predict(X)[0])
    with pytest.raises(ValueError, match="leaf_values"):
        DistilledTree(env, PayoffTeacher(env), leaf_values="mean")


def test_season_features_read_the_calendar_from_the_observation():
    from agents.distill import SEASON_FEATURES, season_features, season_spec
    from envs.calibration import CATEGORIES
    from envs.matching_env import InfluencerMatchingEnv

    env = InfluencerMatchingEnv(n_influencers=500, n_segments=2, dynamics="v1")
    spec = season_spec(env)
    demand = np.asarray(env.calibration.category_month_demand)
    obs = np.zeros((3, env.observation_space.shape[0]))
    fitness = CATEGORIES.index("fitness")
    obs[:2, spec["category"][fitness]] = 1.0
    obs[:, spec["month"]] = 10  # November
    obs[:, spec["weeks_left"]] = [1.0, 1 / 26, 1.0]  # all 26 weeks left; the last week; no category
    X = season_features(obs, spec)
    assert X.shape == (3, obs.shape[1] + len(SEASON_FEATURES))
    np.testing.assert_array_equal(X[:, : obs.shape[1]], obs)
    # 26 weeks from November 1st reach the months up to April: the best is January.
    ahead = demand[fitness, [11, 0, 1, 2, 3]]
    assert X[0, -3] == demand[fitness, 10]
    assert X[0, -2] == pytest.approx(ahead.max() / demand[fitness, 10]) and X[0, -1] == 2
    assert X[1, -2] == 0 and X[1, -1] == 0  # no month left
    assert X[2, -3] == 1.0 and X[2, -2] == 1.0  # no category: a flat calendar


def test_minus_infinite_q_values_are_ignored_in_weights_and_leaf_means(tmp_path):
    """A teacher (like the planning oracle) whose Q-values hold -inf for actions it rules out: each
    state's weight is the gap of its finite values, each leaf's "q" value of an action the mean over
    the states where it is finite, and the fitted tree acts, round-trips and never picks an action
    with no value there."""

    def payoff(x):
        return np.array([1.0, 0.0, -5.0]) if x[0] < 0.5 else np.array([-5.0, 0.5, 2.0])

    class RulesOut(PayoffTeacher):
        def q_values(self, observation):
            q = super().q_values(observation)
            return np.where(q == -5.0, -np.inf, q)

    from tests.agents.toy_envs import ContextualBandit

    env = ContextualBandit(payoff, n_features=2, n_actions=3)
    tree = DistilledTree(env, RulesOut(env), max_leaves=2, n_iterations=2, leaf_values="q", seed=0)
    tree.learn(1_000)
    weights = np.asarray(tree._data[2])
    assert np.isfinite(weights).all() and set(np.round(weights, 9)) <= {1.0, 1.5}
    X = np.random.default_rng(1).uniform(0, 1, size=(300, 2)).astype(np.float32)
    np.testing.assert_array_equal(tree.predict(X)[0], np.where(X[:, 0] < 0.5, 0, 2))
    assert np.isneginf(tree.votes_[tree.left_ < 0]).any()  # a leaf without a value for some action
    tree.save(tmp_path / "t.json")  # -inf is written as null (JSON has no infinities) and read back
    again = DistilledTree.load(tmp_path / "t.json", env=env)
    leaves = tree.left_ < 0
    np.testing.assert_array_equal(again.votes_[leaves], tree.votes_[leaves])
    np.testing.assert_array_equal(again.predict(X)[0], tree.predict(X)[0])


def test_a_tree_distilled_from_the_planner_weights_by_its_q_gaps_and_labels_its_argmax(tmp_path):
    """With the planning oracle as teacher every state's weight is the gap between the planner's
    finite Q-values of the valid actions there (PlanningOracle.q_values), and its label, the
    planner's action, is their argmax; the season tree acts on the observation and round-trips."""
    from agents import PlanningOracle
    from envs.matching_env import InfluencerMatchingEnv

    env = InfluencerMatchingEnv(n_influencers=1_000, n_segments=3, dynamics="v1", campaign_weeks=8)
    seen = []

    class Recording(PlanningOracle):
        def q_values(self, observation=None):
            q = super().q_values(observation)
            seen.append((q, self._unwrapped().action_masks()))
            return q

    teacher = Recording(env, n_rollouts=2, seed=0)
    tree = DistilledTree(env, teacher, max_leaves=8, n_iterations=2, leaf_values="q", features="season",
                         seed=0).learn(2 * 4 * 8)  # fmt: skip
    labels, weights = np.asarray(tree._data[1]), np.asarray(tree._data[2])
    assert len(seen) == len(labels) == tree.num_timesteps
    for (q, mask), label, weight in zip(seen, labels, weights, strict=True):
        assert int(np.argmax(q)) == label
        valid = q[mask][np.isfinite(q[mask])]
        assert weight == pytest.approx(valid.max() - valid.min())
    assert weights.max() > 0
    obs, info = env.reset(seed=5)
    assert info["action_mask"][int(tree.predict(obs, action_masks=info["action_mask"])[0])]
    tree.save(tmp_path / "season.json")
    again = DistilledTree.load(tmp_path / "season.json", env=env)
    assert again.features == "season" and again.export_text() == tree.export_text()
    assert int(again.predict(obs)[0]) == int(tree.predict(obs)[0])
    with pytest.raises(ValueError, match="features"):
        DistilledTree(env, teacher, features="calendar")


@pytest.mark.parametrize("teacher", ["planning_oracle", "random"])
def test_a_named_teacher_that_draws_random_numbers_is_seeded_by_the_tree(teacher, tmp_path):
    """``teacher="planning_oracle"`` (or ``"random"``) is made with the tree's seed: the same seed gives
    the same labels and the same saved tree, byte for byte (it used to draw fresh entropy)."""
    from envs.matching_env import InfluencerMatchingEnv

    def distil(seed: int, name: str) -> bytes:
        env = InfluencerMatchingEnv(n_influencers=1_000, n_segments=3, dynamics="v1", campaign_weeks=6)
        tree = DistilledTree(env, teacher, max_leaves=6, n_iterations=2, seed=seed).learn(2 * 3 * 6)
        assert tree.teacher.seed == seed
        tree.save(tmp_path / name)
        return (tmp_path / name).read_bytes()

    assert distil(3, "a.json") == distil(3, "b.json")
