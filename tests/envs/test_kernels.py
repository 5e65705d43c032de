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
