"""The published figures the simulated market must reproduce, and how far a pool is from each.

:func:`calibration_table` measures every target of ``docs/calibration.md`` ("Targets the generator
reproduces") on simulated data and returns one row per target: the published figure, the
tolerance, the simulated value and whether it is inside the tolerance.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from envs.calibration import PLATFORMS, TIERS, Calibration
from envs.campaigns import Campaign, month_of_week, sample_campaigns
from envs.outcomes import CONVERSION, Matches, expected_outcomes, sample_outcomes
from envs.population import InfluencerPool

INSTAGRAM = PLATFORMS.index("instagram")
NANO, MICRO, MACRO = TIERS.index("nano"), TIERS.index("micro"), TIERS.index("macro")


def pair_matches(
    pool: InfluencerPool,
    campaigns: Campaign,
    influencer: np.ndarray,
    campaign: np.ndarray,
    *,
    offer_ratio: float | np.ndarray = 1.0,
    week: int | np.ndarray = 0,
    demand: np.ndarray | None = None,
) -> Matches:
    """The :class:`~envs.outcomes.Matches` of influencer ``influencer[j]`` with campaign ``campaign[j]``;
    ``demand``: the (category, month) demand table of InfluencerMatching-v1 (None: v0, no demand)."""
    category = np.asarray(campaigns.category)[campaign]
    month = month_of_week(np.asarray(campaigns.start_month)[campaign], week)
    target = np.asarray(campaigns.target_audience)[campaign]
    overlap = np.sum(np.sqrt(pool.audience[influencer] * target), axis=1)
    return Matches(
        platform=pool.platform[influencer],
        followers=pool.followers[influencer],
        true_engagement_rate=pool.true_engagement_rate[influencer],
        fake_share=pool.fake_share[influencer],
        sponsored_load=pool.sponsored_load[influencer],
        list_price=pool.price[influencer],
        category_share=pool.category_mix[influencer, category],
        audience_overlap=overlap,
        goal=np.asarray(campaigns.goal)[campaign],
        order_value=np.asarray(campaigns.order_value)[campaign],
        value_per_engagement=np.asarray(campaigns.value_per_engagement)[campaign],
        value_per_1k_reach=np.asarray(campaigns.value_per_1k_reach)[campaign],
        offer_ratio=np.asarray(offer_ratio, dtype=float),
        month=month,
        response_quality=pool.response_quality[influencer],
        demand=1.0 if demand is None else demand[category, month],
    )


def calendar_calibration(cal: Calibration) -> Calibration:
    """``cal`` with InfluencerMatching-v1's booking calendar folded into the month arrays, as the v1
    environment applies it: acceptance shift plus ``booking_month_shift``, price premium times
    ``booking_month_premium``. With ``Matches.demand`` from ``category_month_demand``, match-level
    outcomes under this calibration are v1's."""
    return cal.replace(
        acceptance_month_shift=tuple(np.add(cal.acceptance_month_shift, cal.booking_month_shift).tolist()),
        price_month_premium=tuple(np.multiply(cal.price_month_premium, cal.booking_month_premium).tolist()),
    )


def calibration_table(
    rng: np.random.Generator,
    calibration: Calibration | None = None,
    *,
    n: int = 100_000,
    pools: dict[str, InfluencerPool] | None = None,
    dynamics: str = "v0",
) -> pd.DataFrame:
    """Measure every published target on simulated pools of ``n`` influencers.

    Parameters
    ----------
    rng : source of the pools (when not given), campaigns and sampled outcomes.
    calibration : the market; its engagement vintage is replaced by 2019 for the engagement target,
        which quotes the 2019 figures.
    n : pool size for pools that are generated here and number of simulated matches.
    pools : ``{"marketplace": pool, "population": pool}`` to measure given pools instead (a user's
        pool may stand for either mode); a missing mode is generated.
    dynamics : "v0" or "v1": the match-level targets (acceptance, revenue per follower, money-losing
        matches) under InfluencerMatching-v1's calendar (:func:`calendar_calibration` and the brand
        category's demand in the campaign's start month; start months are uniform).

    Returns
    -------
    DataFrame with columns ``target``, ``published``, ``tolerance``, ``simulated``, ``value``
    (the simulated number), ``inside`` (bool) and ``pool``.
    """
    cal = calibration or Calibration()
    pools = dict(pools or {})
    for mode in ("population", "marketplace"):
        if mode not in pools:
            pools[mode] = InfluencerPool.generate(n, rng, cal, mode)
    pop, market = pools["population"], pools["marketplace"]
    er_pool = market
    if cal.engagement_vintage != "2019" and "marketplace" not in (pools or {}):
        er_pool = InfluencerPool.generate(n, rng, cal.replace(engagement_vintage="2019"), "marketplace")
    rows = []

    nano_share = float(np.mean(pop.followers < cal.tier_edges[0]))
    rows.append(_row("population mode: nano share", "81.5 %", "±3 points", f"{nano_share:.1%}", nano_share,
                     abs(nano_share - 0.815) <= 0.03, "population"))  # fmt: skip

    median = float(np.median(market.followers))
    rows.append(_row("marketplace mode: median followers", "16,125", "±15 %", f"{median:,.0f}", median,
                     abs(median / 16_125 - 1) <= 0.15, "marketplace"))  # fmt: skip

    tiers = cal.tier_index(er_pool.followers)
    ig = er_pool.platform == INSTAGRAM
    medians = [float(np.median(er_pool.engagement_rate[ig & (tiers == t)])) if np.any(ig & (tiers == t)) else np.nan
               for t in range(len(TIERS))]  # fmt: skip
    ordered = bool(np.all(np.diff(medians) < 0))
    rows.append(_row("instagram median ER, nano vs mega (2019 vintage)", "4.0 % vs 2.2 %",
                     "nano > micro > mid > macro > mega; nano 2.5-5.5 %",
                     f"{medians[0]:.1%} vs {medians[-1]:.1%} ({'ordered' if ordered else 'NOT ordered'})",
                     medians[0], ordered and 0.025 <= medians[0] <= 0.055, "marketplace"))  # fmt: skip

    tiers = cal.tier_index(market.followers)
    ig = market.platform == INSTAGRAM
    nano_price = float(np.median(market.price[ig & (tiers == NANO)]))
    micro_price = float(np.median(market.price[ig & (tiers == MICRO)]))
    rows.append(_row("median list price, instagram nano / micro", "$10-100 / $100-500", "inside the band",
                     f"${nano_price:,.0f} / ${micro_price:,.0f}", nano_price,
                     10 <= nano_price <= 100 and 100 <= micro_price <= 500, "marketplace"))  # fmt: skip

    # Matches between random brands and influencers of their own category, at list price.
    campaigns = sample_campaigns(n, rng, cal)
    influencer = _same_category_influencers(market, np.asarray(campaigns.category), rng)
    if dynamics not in ("v0", "v1"):
        raise ValueError(f"dynamics: expected 'v0' or 'v1', got {dynamics!r}")
    demand = np.asarray(cal.category_month_demand, dtype=float) if dynamics == "v1" else None
    match_cal = calendar_calibration(cal) if dynamics == "v1" else cal
    matches = pair_matches(market, campaigns, influencer, np.arange(n), demand=demand)
    expected = expected_outcomes(matches, match_cal)
    acceptance = float(np.mean(expected.accepted))
    rows.append(_row("acceptance at list price with a category match", "about 40 %", "25-50 %",
                     f"{acceptance:.1%}", acceptance, 0.25 <= acceptance <= 0.50, "marketplace"))  # fmt: skip

    # Revenue per follower by tier, over random brand-influencer pairs (expected, given acceptance).
    pairs = rng.integers(0, len(market), size=n)
    per_follower = expected_outcomes(
        pair_matches(market, campaigns, pairs, np.arange(n), demand=demand), match_cal
    ).revenue
    per_follower = per_follower / market.followers[pairs]
    tiers = cal.tier_index(market.followers[pairs])
    ratio = float(np.mean(per_follower[tiers == NANO]) / np.mean(per_follower[tiers == MACRO]))
    rows.append(_row("revenue per follower, nano ÷ macro", "5.4×", "3-8×", f"{ratio:.1f}×", ratio,
                     3 <= ratio <= 8, "marketplace"))  # fmt: skip

    # Conversion campaigns hiring an affordable influencer of their category at list price: share of
    # accepted matches whose revenue does not cover the cost.
    sampled = sample_outcomes(matches, rng, match_cal)
    conversion = (np.asarray(campaigns.goal) == CONVERSION) & sampled.accepted
    conversion &= market.price[influencer] <= np.asarray(campaigns.budget)
    losing = float(np.mean(sampled.revenue[conversion] <= sampled.cost[conversion]))
    rows.append(_row("share of matches that lose money (conversion goal)", "about 25 %", "15-50 %",
                     f"{losing:.1%}", losing, 0.15 <= losing <= 0.50, "marketplace"))  # fmt: skip
    return pd.DataFrame(rows)


def _row(target, published, tolerance, simulated, value, inside, pool) -> dict:
    return {
        "target": target,
        "published": published,
        "tolerance": tolerance,
        "simulated": simulated,
        "value": value,
        "inside": bool(inside),
        "pool": pool,
    }


def _same_category_influencers(
    pool: InfluencerPool, category: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """For each brand category, a random influencer whose primary category is that category (or any
    influencer when the pool has none of it)."""
    order = np.argsort(pool.primary_category, kind="stable")
    counts = np.bincount(pool.primary_category, minlength=12)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pick = rng.random(len(category))
    has = counts[category] > 0
    within = np.floor(pick * np.maximum(counts[category], 1)).astype(int)
    chosen = order[np.minimum(starts[category] + within, len(pool) - 1)]
    return np.where(has, chosen, rng.integers(0, len(pool), size=len(category)))
