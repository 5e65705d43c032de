"""The fit's bounds: a fatigue cannot be negative, so a negative estimate is replaced by the constrained
maximum (the engagement block refitted with the fatigue at 0), reported with the reason."""

from __future__ import annotations

import numpy as np
import pytest

from envs.calibration import Calibration
from envs.fit import fit_market
from envs.fit.simulate import simulate_offers


@pytest.fixture(scope="module")
def rising_logs():
    """Offers from a market whose engagement rises with the sponsored load (fatigue -0.3): the
    unconstrained estimate is negative."""
    truth = Calibration().replace(engagement_fatigue=-0.3)
    return simulate_offers(truth, 2_000, 300, logger_policy="uniform", seed=4, market_seed=2)


@pytest.mark.slow
def test_a_negative_fatigue_is_refitted_at_its_bound(rising_logs):
    offers, pool = rising_logs
    fit = fit_market(offers, pool, min_influencers=20)
    row = fit.estimate("engagement_fatigue")
    assert not row["identified"] and row["estimate"] == 0.0
    assert fit.calibration.engagement_fatigue == 0.0
    assert "held at its bound 0" in fit.notes["engagement_fatigue"]
    # the multiplier was refitted with the fatigue at 0, so it is not the one of the negative fatigue
    free = fit_market(offers, pool, min_influencers=20, fixed={"engagement_fatigue": 0.0})
    assert fit.calibration.sponsored_engagement_multiplier == pytest.approx(
        free.calibration.sponsored_engagement_multiplier, rel=1e-9
    )
    assert all(c.engagement_fatigue == 0.0 for c in fit.draw_calibrations(5, np.random.default_rng(0)))
