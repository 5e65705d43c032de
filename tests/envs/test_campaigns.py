import dataclasses

import numpy as np
import pytest

from envs.calibration import CATEGORIES, GOALS
from envs.campaigns import month_of_week, sample_campaign, sample_campaigns


def test_campaign_marginals_follow_the_calibration(cal):
    c = sample_campaigns(200_000, np.random.default_rng(0), cal)
    np.testing.assert_allclose(np.bincount(c.goal, minlength=3) / len(c), cal.goal_mix, atol=0.005)
    np.testing.assert_allclose(
        np.bincount(c.category, minlength=12) / len(c), cal.probabilities("brand_category_mix"), atol=0.005
    )
    bins = np.searchsorted(cal.budget_bin_edges, c.annual_budget, side="right") - 1
    np.testing.assert_allclose(
        np.bincount(bins, minlength=5) / len(c), cal.probabilities("budget_bin_shares"), atol=0.005
    )
    np.testing.assert_allclose(c.budget, np.round(c.annual_budget * cal.campaign_budget_share, 2))
    assert np.median(c.order_value) == pytest.approx(50.0, rel=0.02)
    assert c.value_per_engagement.min() >= 0.10 and c.value_per_engagement.max() <= 0.50
    np.testing.assert_allclose(c.target_audience.sum(axis=1), 1.0)


def test_sample_campaign_is_scalar_and_reproducible():
    a = sample_campaign(np.random.default_rng(3))
    b = sample_campaign(np.random.default_rng(3))
    assert a.describe() == b.describe()
    assert isinstance(a.goal, int) and a.target_audience.shape == (12,)
    assert CATEGORIES[a.category] in a.describe() and GOALS[a.goal] in a.describe()


@pytest.mark.parametrize("seed", range(20))
def test_one_campaign_is_the_first_of_a_batch(seed):
    """The scalar path draws what the array path draws for one campaign."""
    a = sample_campaign(np.random.default_rng(seed))
    b = sample_campaigns(1, np.random.default_rng(seed)).take(0)
    for field in dataclasses.fields(a):
        np.testing.assert_allclose(
            getattr(a, field.name), getattr(b, field.name), rtol=1e-12, err_msg=field.name
        )
    rng = np.random.default_rng(seed)
    sample_campaign(rng)
    after = np.random.default_rng(seed)
    sample_campaigns(1, after)
    assert rng.random() == after.random()  # both consumed the same stream


def test_month_of_week():
    assert month_of_week(0, 0) == 0
    assert month_of_week(0, 4) == 0  # day 28
    assert month_of_week(0, 5) == 1  # day 35
    assert month_of_week(11, 5) == 0  # December rolls into January
    assert month_of_week(2, 25) == 7  # 175 days after March 1st is late August
