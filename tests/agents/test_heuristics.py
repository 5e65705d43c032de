"""A marketer's heuristics: the offer-level rule, each rule on the observable features, the fixed-segment
policy, and that the best heuristic beats the random policy."""

from __future__ import annotations

import numpy as np
import pytest

from agents.heuristics import (
    BestFitPolicy,
    BestValuePerDollarPolicy,
    BiggestReachPolicy,
    CheapestPerFollowerPolicy,
    FixedSegmentPolicy,
    offer_level_preference,
)
from agents.references import RandomPolicy
from tests.agents.conftest import play

HEURISTICS = (CheapestPerFollowerPolicy, BestFitPolicy, BiggestReachPolicy, BestValuePerDollarPolicy)


def test_fixed_segment_policy_offers_only_to_its_segment(env, tmp_path):
    n_levels = len(env.offer_levels)
    actions = play(FixedSegmentPolicy(env, 2), env, seed=5, steps=120)
    assert all(a == env.wait_action or a // n_levels == 2 for a in actions)
    assert any(a != env.wait_action for a in actions)
    with pytest.raises(ValueError, match="segment: expected a segment in \\[0, 3\\], got 4"):
        FixedSegmentPolicy(env, 4)
    FixedSegmentPolicy(env, 1).save(tmp_path / "s.json")
    assert FixedSegmentPolicy.load(tmp_path / "s.json").segment == 1
    with pytest.raises(ValueError, match="holds a FixedSegmentPolicy, not a RandomPolicy"):
        RandomPolicy.load(tmp_path / "s.json")


def test_offer_level_preference_is_list_price_then_nearest_on_a_log_scale():
    assert offer_level_preference([0.8, 1.0, 1.25]).tolist() == [1, 0, 2]
    assert offer_level_preference([0.5, 0.9, 1.5]).tolist() == [1, 2, 0]
    assert offer_level_preference([0.5, 2.0]).tolist() == [0, 1]  # a tie goes to the cheaper level


def test_heuristics_follow_their_rule_on_the_observable_features(env):
    env.reset(seed=21)
    features, mask = env.candidate_features(), env.action_masks()
    n_levels = len(env.offer_levels)
    list_price = n_levels // 2  # 1.0 in (0.8, 1.0, 1.25)
    assert env.offer_levels[list_price] == 1.0
    at_list = np.arange(env.n_segments) * n_levels + list_price
    assert mask[at_list].all(), "pick a seed whose start has every segment affordable"
    expected = {
        CheapestPerFollowerPolicy: at_list[
            np.argmin(features["cost"][at_list] / features["followers"][at_list])
        ],
        BestFitPolicy: at_list[np.argmax(features["fit"][at_list])],
        BiggestReachPolicy: at_list[np.argmax(features["followers"][at_list])],
        BestValuePerDollarPolicy: at_list[np.argmax(features["value_per_dollar"][at_list])],
    }
    for cls, action in expected.items():
        assert int(cls(env).predict(np.zeros(3))[0]) == action, cls.__name__


@pytest.mark.slow
def test_best_heuristic_beats_random(market, evaluator):
    scores = {cls.__name__: evaluator.evaluate(cls(market)).normalized_score for cls in HEURISTICS}
    assert max(scores.values()) > 0.5, scores
