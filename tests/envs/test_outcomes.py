import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envs.calibration import Calibration
from envs.campaigns import sample_campaigns
from envs.outcomes import (
    CONVERSION,
    Matches,
    acceptance_probability,
    burn_followers,
    expected_outcomes,
    load_decay_factor,
    offer_cost,
    overlap_factor,
    sample_outcomes,
)
from envs.targets import pair_matches

CAL = Calibration()


def _matches(small_pool, n=40, seed=0, **changes):
    rng = np.random.default_rng(seed)
    campaigns = sample_campaigns(n, rng, CAL)
    influencers = rng.integers(0, len(small_pool), size=n)
    m = pair_matches(
        small_pool, campaigns, influencers, np.arange(n), offer_ratio=rng.choice([0.8, 1.0, 1.25], n)
    )
    return dataclasses.replace(m, **changes) if changes else m


def test_expected_values_agree_with_sampled_means(small_pool):
    """For each of 40 matches, the mean of 20,000 draws lies within 5 standard errors of the expectation."""
    m = _matches(small_pool, overlap_factor=0.8)
    reps = 20_000
    tiled = Matches(
        **{f.name: np.broadcast_to(getattr(m, f.name), (reps, 40)) for f in dataclasses.fields(m)}
    )
    draws = sample_outcomes(tiled, np.random.default_rng(1), CAL)
    exp = expected_outcomes(m, CAL)
    accepted = draws.accepted
    assert np.all(
        np.abs(accepted.mean(0) - exp.accepted) <= 5 * np.sqrt(exp.accepted * (1 - exp.accepted) / reps)
    )
    for name in ("reach", "engagements", "clicks", "conversions", "revenue", "value"):
        sampled = getattr(draws, name).astype(float)
        cond_mean = sampled.sum(0) / accepted.sum(0)
        se = np.sqrt(np.var(np.where(accepted, sampled, np.nan), axis=0, where=accepted) / accepted.sum(0))
        err = np.abs(cond_mean - getattr(exp, name))
        assert np.all(err <= 5 * se + 1e-9 * np.abs(getattr(exp, name)) + 1e-6), name
    reward_se = draws.reward.std(0) / np.sqrt(reps)
    assert np.all(np.abs(draws.reward.mean(0) - exp.reward) <= 5 * reward_se + 1e-9)


match_inputs = st.fixed_dictionaries(
    {
        "platform": st.integers(0, 2),
        "followers": st.integers(1_000, 50_000_000),
        "true_engagement_rate": st.floats(1e-4, 0.5),
        "fake_share": st.floats(0.0, 0.99),
        "sponsored_load": st.floats(0.0, 20.0),
        "list_price": st.floats(1.0, 1e6),
        "category_share": st.floats(0.0, 1.0),
        "audience_overlap": st.floats(0.0, 1.0),
        "goal": st.integers(0, 2),
        "order_value": st.floats(1.0, 1000.0),
        "value_per_engagement": st.floats(0.1, 0.5),
        "value_per_1k_reach": st.floats(25.0, 42.0),
        "offer_ratio": st.sampled_from([0.5, 0.8, 1.0, 1.25, 2.0]),
        "month": st.integers(0, 11),
        "overlap_factor": st.floats(0.05, 1.0),
    }
)


@settings(max_examples=200, deadline=None)
@given(inputs=match_inputs, seed=st.integers(0, 2**31))
def test_sampled_outcome_invariants(inputs, seed):
    m = Matches(**{k: np.full(64, v) for k, v in inputs.items()})
    out = sample_outcomes(m, np.random.default_rng(seed), CAL)
    for name in ("reach", "engagements", "clicks", "conversions"):
        assert np.all(getattr(out, name) >= 0)
        assert getattr(out, name).dtype.kind == "i"
    refused = ~out.accepted
    for name in ("reach", "engagements", "clicks", "conversions", "cost", "revenue", "value", "reward"):
        assert np.all(getattr(out, name)[refused] == 0), name
    premium = CAL.price_month_premium[inputs["month"]]
    expected_cost = inputs["offer_ratio"] * inputs["list_price"] * premium
    np.testing.assert_allclose(out.cost[out.accepted], expected_cost)
    np.testing.assert_allclose(out.reward, out.value - out.cost)


@settings(max_examples=100, deadline=None)
@given(days=st.floats(0.0, 365.0), half_life=st.floats(1.0, 60.0))
def test_load_decay_halves_every_half_life(days, half_life):
    cal = CAL.replace(load_half_life_days=half_life)
    factor = load_decay_factor(days, cal)
    assert 0.0 < factor <= 1.0
    assert load_decay_factor(half_life, cal) == pytest.approx(0.5)
    assert load_decay_factor(days + half_life, cal) == pytest.approx(factor / 2)
    assert load_decay_factor(0.0, cal) == 1.0


def test_burn_followers():
    assert burn_followers(10_000.0, CAL) == pytest.approx(10_000 * (1 - 0.0019))
    assert burn_followers(10_000.0, CAL.replace(reputation_burn=0.0)) == 10_000.0


def test_acceptance_rises_with_offer_and_falls_in_the_holidays():
    p = acceptance_probability(np.array([0.8, 1.0, 1.25]), 0.7, 0.0, 5, CAL)
    assert np.all(np.diff(p) > 0)
    june, nov, dec = acceptance_probability(1.0, 0.7, 0.0, np.array([5, 10, 11]), CAL)
    assert june > nov > dec


def test_holiday_prices_and_conversions(small_pool):
    m = _matches(small_pool, month=np.int64(5))
    june = expected_outcomes(m, CAL)
    dec = expected_outcomes(dataclasses.replace(m, month=np.int64(11)), CAL)
    np.testing.assert_allclose(dec.cost / june.cost, 1.12)
    np.testing.assert_allclose(dec.conversions / june.conversions, 1.35 / 0.95)
    np.testing.assert_allclose(offer_cost(100.0, 1.25, 10, CAL), 140.0)


def test_overlap_factor_range():
    mix = np.eye(12)[[0]]
    assert overlap_factor(mix, np.zeros((0, 12)), CAL)[0] == 1.0
    assert overlap_factor(mix, np.eye(12)[[0]], CAL)[0] == pytest.approx(0.6)  # same niche: 40 % overlap
    assert overlap_factor(mix, np.eye(12)[[3]], CAL)[0] == pytest.approx(0.9)  # orthogonal mix: 10 %
    assert overlap_factor(mix, np.eye(12)[[0, 0]], CAL)[0] == pytest.approx(0.36)


def test_value_depends_on_goal(small_pool):
    m = _matches(small_pool)
    out = expected_outcomes(m, CAL)
    conversion = np.asarray(m.goal) == CONVERSION
    np.testing.assert_allclose(out.value[conversion], out.revenue[conversion])
    engagement = np.asarray(m.goal) == 1
    np.testing.assert_allclose(out.value[engagement], (out.engagements * m.value_per_engagement)[engagement])
