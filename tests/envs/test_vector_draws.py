"""The vector env's compiled draws take numpy's exact streams: what a single env draws at reset, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from envs import _vector_kernels
from envs.campaigns import sample_campaign
from envs.vector import InfluencerMatchingVectorEnv


@pytest.mark.parametrize(
    ("population", "size"),
    [(10_000, 488), (10_000, 0), (10_000, 10_000), (1_576, 488), (20_000, 100), (20_000, 1_000),
     (20_001, 5_000), (5, 3), (1, 1), (1, 0), (300, 7)],
)  # fmt: skip
def test_choice_without_replacement_is_numpys(population, size):
    """Both of numpy's algorithms (Floyd's for small draws, a tail shuffle for large shares of more than
    10,000), and the generator left where numpy leaves it."""
    for seed in range(3):
        theirs, ours = np.random.default_rng(seed), np.random.default_rng(seed)
        expected = theirs.choice(population, size=size, replace=False)
        out = np.empty(max(size, 1), dtype=np.int64)
        _vector_kernels._choice_without_replacement(ours, population, size, out)
        np.testing.assert_array_equal(out[:size], expected)
        assert ours.random() == theirs.random()


@pytest.mark.parametrize("churn_rate", [0.0, 0.05])
def test_draw_starts_are_the_single_envs_reset_draws(churn_rate):
    """The drawn campaigns (kept as arrays, built as Campaign objects when read) and the churn swaps are
    sample_campaign's and _churn_draws' on the same stream, field by field and type by type."""
    vec = InfluencerMatchingVectorEnv(3, n_influencers=1_500, n_segments=4, campaign_weeks=9,
                                      churn_rate=churn_rate, market_seed=1)  # fmt: skip
    single, cal = vec.env, vec.env.calibration
    vec.reset(seed=11)
    for rows in (np.arange(3), np.array([2, 0])):
        for started in (False, True):  # the raw draws, then the campaigns a reset of these rows starts
            references = [np.random.default_rng(s) for s in (21, 22, 23)]
            for i, reference in enumerate(references):
                vec._generators[i].bit_generator.state = reference.bit_generator.state
            if started:
                vec._start_campaigns(rows)
                campaigns = [vec.campaigns[i] for i in rows]
            else:
                (category, goal, month0, target, scalars), (offsets, swaps) = vec._draw_starts(rows)
            for b, i in enumerate(rows):
                expected = sample_campaign(references[i], cal)
                if started:
                    assert campaigns[b].__dict__.keys() == expected.__dict__.keys()
                    for field, value in expected.__dict__.items():
                        np.testing.assert_array_equal(getattr(campaigns[b], field), value, err_msg=field)
                        assert type(getattr(campaigns[b], field)) is type(value), field
                    assert vec.campaigns[i] is campaigns[b]  # built once
                else:
                    assert (category[b], goal[b], month0[b]) == (
                        expected.category,
                        expected.goal,
                        expected.start_month,
                    )
                    np.testing.assert_array_equal(target[b], expected.target_audience)
                    np.testing.assert_array_equal(scalars[b], [
                        expected.annual_budget, expected.budget, expected.order_value,
                        expected.value_per_engagement, expected.value_per_1k_reach,
                    ])  # fmt: skip
                    here = slice(offsets[b], offsets[b + 1])
                    if churn_rate:
                        for got, want in zip(swaps, single._churn_draws(references[i]), strict=True):
                            np.testing.assert_array_equal(got[here], want)
                        assert offsets[b + 1] > offsets[b]
                    else:
                        assert offsets[b + 1] == offsets[b]
                    assert vec._generators[i].random() == references[i].random()  # the streams agree


@pytest.mark.parametrize("lam", [0.0, 0.3, 9.999, 10.0, 10.775047018202292, 13.7, 40.0, 912.5, 2.5e5])
def test_poisson_is_numpys(lam):
    """The step's Poisson draws take numpy's stream, also from lam = 10 where numpy samples by PTRS with
    a floor that numba's own port truncates (numba then returns 0 where numpy draws again, about once in
    ten thousand draws near lam = 10); the generator is left where numpy leaves it."""
    for seed in range(4):
        theirs, ours = np.random.default_rng(seed), np.random.default_rng(seed)
        expected = theirs.poisson(lam, size=25_000)
        got = _vector_kernels.poisson_many(ours, lam, 25_000)
        np.testing.assert_array_equal(got, expected)
        assert ours.random() == theirs.random()
