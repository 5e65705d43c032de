"""Posterior-predictive checks of a market fit: the logged offers simulated again under the fit.

:func:`predictive_checks` replays every logged offer (the same influencer, brand, month, offer ratio,
load, fit and overlap) ``n_sims`` times under the fitted calibration and compares, per segment, per offer
level and overall, the logged statistic with the distribution of the simulated one: the acceptance rate
over all offers, and the mean reach, engagements, clicks, conversions, cost and revenue over the offers
the logs show accepted (outcomes are simulated given acceptance, so the two parts of the model are
checked apart and the overlap factors stay those of the logged hires).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from envs.calibration import Calibration
from envs.fit.offers import calendar_terms, validate_offers
from envs.fit.result import MarketFit
from envs.outcomes import acceptance_probability, fit_free_rates, offer_cost, sample_counts
from envs.population import InfluencerPool, quality_given_price

#: Statistics compared, in order: the acceptance rate (all offers) and mean outcomes (accepted offers).
STATISTICS: tuple[str, ...] = (
    "acceptance_rate", "reach", "engagements", "clicks", "conversions", "cost", "revenue",
)  # fmt: skip

#: Columns of the checks table.
CHECK_COLUMNS: tuple[str, ...] = (
    "group", "segment", "offer_ratio", "statistic", "n_offers", "logged", "simulated_mean",
    "simulated_low", "simulated_high", "tail_probability", "verdict",
)  # fmt: skip


def predictive_checks(
    fit: MarketFit,
    offers: pd.DataFrame,
    pool: InfluencerPool,
    rng: np.random.Generator,
    n_sims: int = 200,
    *,
    level: float = 0.95,
    parameter_uncertainty: bool = True,
    min_offers: int = 20,
) -> pd.DataFrame:
    """Compare logged statistics with their distribution under the fitted market.

    Parameters
    ----------
    fit : MarketFit
        The fit to check.
    offers : pandas.DataFrame
        The offers it was fitted to (or held-out offers of the same market).
    pool : InfluencerPool
        The influencers; their true engagement rate and fake share as the pool holds them, and a hidden
        quality drawn given the list price under the fitted calibration in every simulation.
    rng : numpy.random.Generator
        The only source of randomness.
    n_sims : int
        Simulated replays of the logs.
    level : float
        Coverage of the simulated interval (0.95: the 2.5 % and 97.5 % quantiles).
    parameter_uncertainty : bool
        Draw a calibration per simulation from the estimates' normal (:meth:`MarketFit.draw_calibrations`)
        rather than replaying the point estimates only.
    min_offers : int
        Groups with fewer offers (accepted offers, for outcome statistics) are reported as
        "too few offers" without a verdict.

    Returns
    -------
    pandas.DataFrame
        One row per group and statistic, with the columns of :data:`CHECK_COLUMNS`; ``group`` is
        "overall", "segment" or "offer level"; money in USD, counts per offer.
    """
    if n_sims < 2:
        raise ValueError(f"n_sims: expected at least 2 simulations, got {n_sims!r}")
    if not 0 < level < 1:
        raise ValueError(f"level: expected a coverage in (0, 1), got {level!r}")
    off = validate_offers(offers, pool)
    groups = _groups(off)
    accepted = off["accepted"].to_numpy() == 1
    logged = _statistics(off["accepted"].to_numpy(float), _outcomes_of(off, accepted), accepted, groups)
    calibrations = fit.draw_calibrations(n_sims, rng) if parameter_uncertainty else [fit.calibration] * n_sims
    sims = np.stack([_simulate(off, pool, accepted, cal, rng, groups, fit.dynamics) for cal in calibrations])
    low, high = np.quantile(sims, [(1 - level) / 2, (1 + level) / 2], axis=0)
    above = (sims >= logged - 1e-9 * np.abs(logged)).mean(axis=0)
    below = (sims <= logged + 1e-9 * np.abs(logged)).mean(axis=0)
    tail = np.minimum(1.0, 2 * np.minimum(above, below))
    rows = []
    pct = f"{100 * level:g} %"
    for g, (kind, segment, ratio, n_all, n_acc) in enumerate(groups.labels):
        for k, stat in enumerate(STATISTICS):
            n = n_all if k == 0 else n_acc
            tol = 1e-9 * max(abs(logged[g, k]), 1.0)
            if n < min_offers:
                verdict = "too few offers"
            elif logged[g, k] > high[g, k] + tol:
                verdict = f"logged above the model's {pct} interval"
            elif logged[g, k] < low[g, k] - tol:
                verdict = f"logged below the model's {pct} interval"
            else:
                verdict = "consistent"
            rows.append((kind, segment, ratio, stat, n, logged[g, k], sims[:, g, k].mean(), low[g, k],
                         high[g, k], tail[g, k], verdict))  # fmt: skip
    return pd.DataFrame(rows, columns=list(CHECK_COLUMNS))


class _Groups:
    """Membership of every offer in the checked groups (overall, each segment, each offer level)."""

    def __init__(self, member: np.ndarray, labels: list[tuple]) -> None:
        self.member = member  # (n_groups, n_offers) float 0/1
        self.labels = labels  # (group, segment, offer ratio, offers, accepted offers) per group


def _groups(off: pd.DataFrame) -> _Groups:
    segment = off["segment"].to_numpy()
    ratio = off["offer_ratio"].to_numpy()
    accepted = off["accepted"].to_numpy() == 1
    masks = [("overall", np.nan, np.nan, np.ones(len(off), dtype=bool))]
    masks += [("segment", int(s), np.nan, segment == s) for s in np.unique(segment)]
    masks += [("offer level", np.nan, float(r), ratio == r) for r in np.unique(ratio)]
    member = np.stack([m for *_, m in masks]).astype(float)
    labels = [(k, s, r, int(m.sum()), int((m & accepted).sum())) for k, s, r, m in masks]
    return _Groups(member, labels)


def _outcomes_of(off: pd.DataFrame, accepted: np.ndarray) -> np.ndarray:
    """(6, n_accepted) logged outcomes of the accepted offers, in the order of ``STATISTICS[1:]``."""
    return np.stack([off[name].to_numpy(dtype=float)[accepted] for name in STATISTICS[1:]])


def _statistics(acc: np.ndarray, outcomes: np.ndarray, accepted: np.ndarray, groups: _Groups) -> np.ndarray:
    """(n_groups, 7): acceptance rate over offers and mean outcomes over accepted offers, per group."""
    member = groups.member
    rate = member @ acc / np.maximum(member.sum(axis=1), 1.0)
    on_accepted = member[:, accepted]
    means = on_accepted @ outcomes.T / np.maximum(on_accepted.sum(axis=1), 1.0)[:, None]
    return np.column_stack([rate, means])


def _simulate(
    off: pd.DataFrame,
    pool: InfluencerPool,
    accepted: np.ndarray,
    cal: Calibration,
    rng: np.random.Generator,
    groups: _Groups,
    dynamics: str,
) -> np.ndarray:
    """One replay of the logs under ``cal`` and the ``dynamics``' calendar: the statistics of
    :func:`_statistics`."""
    if dynamics != "v0":  # the month-only calendar terms fold into the calibration exactly
        cal = cal.replace(
            acceptance_month_shift=tuple(
                np.add(cal.acceptance_month_shift, cal.booking_month_shift).tolist()
            ),
            price_month_premium=tuple(
                np.multiply(cal.price_month_premium, cal.booking_month_premium).tolist()
            ),
        )
    demand = calendar_terms(off, cal, dynamics).conversion_factor
    index = pd.Index(pool.influencer_id).get_indexer(off["influencer_id"])
    ratio, month = off["offer_ratio"].to_numpy(), off["month"].to_numpy()
    load = off["sponsored_load"].to_numpy(dtype=float)
    p = acceptance_probability(ratio, off["category_share"].to_numpy(), load, month, cal)
    acc = (rng.random(len(off)) < p).astype(float)
    quality = quality_given_price(pool.followers, pool.platform, pool.engagement_rate, pool.price, rng, cal)
    i, a = index[accepted], accepted
    rates = fit_free_rates(pool.platform[i], pool.followers[i].astype(float), pool.true_engagement_rate[i],
                           pool.fake_share[i], load[a], cal, quality[i])  # fmt: skip
    rates_fit = rates.with_fit(off["fit"].to_numpy()[a], cal)
    rates_fit = dataclasses.replace(
        rates_fit, conversions_per_reach=rates_fit.conversions_per_reach * demand[a]
    )
    reach, engagements, clicks, conversions = sample_counts(
        rates_fit, month[a], off["overlap_factor"].to_numpy()[a], rng, (int(a.sum()),), cal
    )
    cost = offer_cost(pool.price[i], ratio[a], month[a], cal)
    revenue = conversions * off["order_value"].to_numpy()[a]
    outcomes = np.stack([reach, engagements, clicks, conversions, cost, revenue]).astype(float)
    return _statistics(acc, outcomes, accepted, groups)
