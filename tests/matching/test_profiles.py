import re

import numpy as np
import pandas as pd
import pytest

from matching.features import CATEGORIES, PLATFORMS, TIER_EDGES, TIERS, check_tier_edges, tier_index
from matching.profiles import segment_profiles
from matching.segmentation import InfluencerSegmenter


def test_tier_boundaries():
    followers = [1, 999, 1_000, 9_999, 10_000, 99_999, 100_000, 499_999, 500_000, 999_999, 1_000_000, 5e8]
    expected = ["nano"] * 4 + ["micro"] * 2 + ["mid"] * 2 + ["macro"] * 2 + ["mega"] * 2
    assert [TIERS[t] for t in tier_index(followers)] == expected
    assert TIERS == ("nano", "micro", "mid", "macro", "mega")
    assert TIER_EDGES == (10_000, 100_000, 500_000, 1_000_000)
    assert tier_index(np.array([[5, 50_000]])).shape == (1, 2)
    # Other edges move the boundaries (a tier still includes its lower edge).
    assert list(tier_index([4_999, 5_000, 60_000], (5_000, 50_000, 300_000, 2_000_000))) == [0, 1, 2]


@pytest.mark.parametrize("edges", [(10_000, 100_000, 500_000), (100_000, 10_000, 500_000, 1_000_000)])
def test_bad_tier_edges_are_refused(edges):
    with pytest.raises(ValueError, match="tier_edges"):
        check_tier_edges(edges)
    with pytest.raises(ValueError, match="tier_edges"):
        segment_profiles(pd.DataFrame({"followers": [1.0]}), np.zeros(1, dtype=int), tier_edges=edges)


def test_profiles_and_names_follow_the_tier_edges():
    frame = pd.DataFrame(
        {
            "platform": ["instagram"] * 3,
            "followers": [20_000] * 3,
            "engagement_rate": [0.03] * 3,
            "primary_category": ["beauty"] * 3,
            "price": [100.0] * 3,
        }
    )
    labels = np.zeros(3, dtype=int)
    assert segment_profiles(frame, labels).loc[0, "name"] == "micro · instagram · beauty"
    moved = segment_profiles(frame, labels, tier_edges=(30_000, 100_000, 500_000, 1_000_000))
    assert moved.loc[0, "name"] == "nano · instagram · beauty"
    assert moved.loc[0, "tier_nano"] == 1.0 and moved.loc[0, "tier_micro"] == 0.0


def test_profiles_of_planted_segments(planted):
    frame, truth = planted
    profiles = segment_profiles(frame, truth)
    assert list(profiles["segment"]) == list(range(6))
    assert profiles["size"].sum() == len(frame)
    np.testing.assert_allclose(profiles["share"].sum(), 1.0)
    tier_columns = [f"tier_{t}" for t in TIERS]
    platform_columns = [f"platform_{p}" for p in PLATFORMS]
    np.testing.assert_allclose(profiles[tier_columns].sum(axis=1), 1.0)
    np.testing.assert_allclose(profiles[platform_columns].sum(axis=1), 1.0)
    # Planted group g is pure in category g and platform g % 3.
    assert list(profiles["category_1"]) == list(CATEGORIES[:6])
    np.testing.assert_allclose(profiles["category_1_share"], 1.0)
    assert (profiles["category_2"] == "").all()
    assert [name.split(" · ")[1] for name in profiles["name"]] == [PLATFORMS[g % 3] for g in range(6)]
    group0 = frame[truth == 0]
    assert profiles.loc[0, "median_followers"] == group0["followers"].median()
    assert profiles.loc[0, "median_price"] == group0["price"].median()
    expected_value = (group0["followers"] * group0["engagement_rate"] / group0["price"]).median()
    np.testing.assert_allclose(profiles.loc[0, "value_per_dollar"], expected_value)


def test_names_are_unique_and_readable():
    from envs.population import InfluencerPool

    frame = InfluencerPool.generate(4_000, np.random.default_rng(1)).to_frame()
    labels = InfluencerSegmenter(10, random_state=0).fit(frame).labels_
    profiles = segment_profiles(frame, labels)
    names = list(profiles["name"])
    assert len(set(names)) == len(names)
    words = "|".join(CATEGORIES + ("mixed",))
    qualifier = r"( · (low|mid|high) (ER|price|followers))?( · \d+)?"
    pattern = rf"^({'|'.join(TIERS)}) · ({'|'.join(PLATFORMS)}) · ({words}){qualifier}$"
    for name in names:
        assert re.match(pattern, name), name
    assert profiles["size"].sum() == len(frame)


def test_colliding_names_are_told_apart():
    def frame_with_prices(prices):
        n = len(prices)
        return pd.DataFrame(
            {
                "platform": ["instagram"] * n,
                "followers": [20_000] * n,
                "engagement_rate": [0.03] * n,
                "primary_category": ["beauty"] * n,
                "price": prices,
            }
        )

    # Two or three segments with one base name: told apart by the median that differs most (price here).
    profiles = segment_profiles(
        frame_with_prices([900.0, 900.0, 100.0, 100.0, 300.0, 300.0]), np.repeat([0, 1, 2], 2)
    )
    assert list(profiles["name"]) == [
        "micro · instagram · beauty · high price",
        "micro · instagram · beauty · low price",
        "micro · instagram · beauty · mid price",
    ]
    # Four or more, or no difference at all: numbered in segment order.
    profiles = segment_profiles(frame_with_prices([100.0, 200.0, 300.0, 400.0]), np.arange(4))
    assert list(profiles["name"]) == [
        "micro · instagram · beauty",
        "micro · instagram · beauty · 2",
        "micro · instagram · beauty · 3",
        "micro · instagram · beauty · 4",
    ]
    profiles = segment_profiles(frame_with_prices([100.0, 100.0]), np.arange(2))
    assert list(profiles["name"]) == ["micro · instagram · beauty", "micro · instagram · beauty · 2"]


def test_mixed_segments_say_so():
    frame = pd.DataFrame(
        {
            "platform": ["tiktok"] * 4,
            "followers": [2_000] * 4,
            "engagement_rate": [0.05] * 4,
            "primary_category": ["food", "pets", "tech", "home"],
            "price": [20.0] * 4,
        }
    )
    profiles = segment_profiles(frame, np.zeros(4, dtype=int))
    assert profiles.loc[0, "name"] == "nano · tiktok · mixed"
    # Ties in the top categories follow the category order.
    assert list(profiles.loc[0, ["category_1", "category_2", "category_3"]]) == ["food", "home", "pets"]


def test_bad_labels_are_refused(planted):
    frame, truth = planted
    with pytest.raises(ValueError, match="shape"):
        segment_profiles(frame, truth[:-1])
    with pytest.raises(ValueError, match="integers"):
        segment_profiles(frame, truth.astype(float))
