"""The compiled kernels of the environment against plain numpy references."""

import numpy as np
import pytest

from envs import _kernels


def reference_ranking(key, segment, eligible, n_segments, depth):
    """Per segment, the best `depth` eligible indices by key (descending), ties by lower index."""
    out = np.full((n_segments, depth), -1)
    for s in range(n_segments):
        idx = np.flatnonzero((segment == s) & eligible)
        order = idx[np.lexsort((idx, -key[idx]))][:depth]
        out[s, : len(order)] = order
    return out


@pytest.mark.parametrize(
    "case",
    ["random", "ties", "all_equal", "tiny_segments", "sorted_keys", "reverse_sorted", "unpaid_segment"],
)
@pytest.mark.parametrize("seed", range(3))
def test_rank_segments_matches_a_full_sort(case, seed):
    rng = np.random.default_rng(seed)
    n, n_segments, depth, never, week = 5_000, 6, 64, 27, 3
    key = rng.lognormal(size=n)
    segment = rng.integers(0, n_segments, n)
    if case == "ties":
        key = np.round(key, 1)  # many exact ties
    elif case == "all_equal":
        key = np.ones(n)  # the gathering buffer overflows: the heap fallback ranks by index
    elif case == "tiny_segments":
        segment = np.where(rng.random(n) < 0.99, 0, rng.integers(1, n_segments, n))
    elif case == "sorted_keys":
        key = np.sort(key)
    elif case == "reverse_sorted":
        key = np.sort(key)[::-1].copy()
    elif case == "unpaid_segment":
        segment[segment == 2] = 1  # segment 2 has no members at all
    join = np.where(rng.random(n) < 0.05, never, rng.integers(0, 10, n))
    leave = np.where(rng.random(n) < 0.05, rng.integers(1, 4, n), never)
    hired = rng.random(n) < 0.02
    key[rng.random(n) < 0.01] = np.nan  # a value that cannot be ranked is skipped
    ranked = np.zeros((n_segments, depth), dtype=np.int64)
    n_eligible = np.zeros(n_segments, dtype=np.int64)
    _kernels.rank_segments(key, segment, join, leave, hired, week, never, ranked, n_eligible)
    eligible = (join < never) & (leave > week) & ~hired & np.isfinite(key)
    np.testing.assert_array_equal(ranked, reference_ranking(key, segment, eligible, n_segments, depth))
    np.testing.assert_array_equal(n_eligible, np.bincount(segment[eligible], minlength=n_segments))


def test_cut_prefixes_keeps_rank_order_and_prices():
    rng = np.random.default_rng(0)
    n, n_segments, depth, prefix_len, never = 2_000, 3, 64, 16, 27
    key, segment, price = rng.random(n), rng.integers(0, n_segments, n), rng.lognormal(5, 1, n)
    join, leave, hired = np.zeros(n, dtype=np.int64), np.full(n, never), np.zeros(n, dtype=bool)
    ranked = np.zeros((n_segments, depth), dtype=np.int64)
    n_eligible = np.zeros(n_segments, dtype=np.int64)
    _kernels.rank_segments(key, segment, join, leave, hired, 0, never, ranked, n_eligible)
    thresholds = np.array([400.0, 150.0, 60.0])  # a budget of 1,200 at levels 3, 8 and 20, premium 1
    prefix = np.zeros((n_segments, 3, prefix_len), dtype=np.int64)
    complete = np.zeros((n_segments, 3), dtype=bool)
    levels = np.array([3.0, 8.0, 20.0])
    _kernels.cut_prefixes(ranked, n_eligible, price, leave, hired, 0, 1_200.0, levels, 1.0, prefix, complete)
    for s in range(n_segments):
        for k, t in enumerate(thresholds):
            expected = [i for i in ranked[s] if i >= 0 and price[i] <= t][:prefix_len]
            got = prefix[s, k][prefix[s, k] >= 0]
            np.testing.assert_array_equal(got, expected)
    assert not complete.any()  # every segment has more members than the ranked depth


@pytest.mark.parametrize("case", ["default", "ties", "tiny_segments", "persistent"])
def test_rank_at_start_ranks_exactly_like_rank_segments(case):
    """The bounded ranking of a campaign's start against the full one, on the env's own campaigns (every
    goal, churn, ties of the value per dollar, segments smaller than the ranked depth, a persistent
    market, which ranks in full)."""
    import dataclasses

    from envs.matching_env import InfluencerMatchingEnv
    from envs.outcomes import value_scale

    options: dict = {"n_influencers": 3_000, "n_segments": 5, "churn_rate": 0.01}
    if case == "tiny_segments":
        options = {"n_influencers": 120, "n_segments": 6, "churn_rate": 0.0}
    if case == "persistent":  # the campaign's own coefficients: the full ranking, unbounded
        options = {**options, "persistent_market": True}
    env = InfluencerMatchingEnv(**options)
    market = env._market
    if case == "ties":  # two value coefficients for everyone: the values tie in large groups
        market.value_coef[:] = np.round(market.value_coef, 1)
        env._market = dataclasses.replace(
            market, **env._rank_bounds(market.pool, market.segment, market.value_coef)
        )
        market = env._market
    for seed in range(40):
        env.reset(seed=seed)
        st = env._state
        ranked, n_eligible = np.zeros_like(st.ranked), np.zeros_like(st.n_eligible)
        _kernels.rank_segments(st.value_per_dollar, market.segment, st.join, st.leave, st.hired, 0, env._never,
                               ranked, n_eligible)  # fmt: skip
        np.testing.assert_array_equal(st.ranked, ranked)
        np.testing.assert_array_equal(st.n_eligible, n_eligible)
        if case == "persistent":
            continue
        c = st.campaign
        scale = value_scale(int(c.goal), int(c.start_month), float(c.order_value), float(c.value_per_engagement),
                            float(c.value_per_1k_reach), env.calibration)  # fmt: skip
        finite = np.isfinite(st.value_per_dollar)
        assert np.all(st.value_per_dollar[finite] <= scale * market.rank_bound[int(c.goal)][finite])
