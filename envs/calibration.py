"""Every number of the simulated influencer market, with its source.

One frozen dataclass, :class:`Calibration`, holds every parameter of the market; ``docs/calibration.md``
lists each field with its default and source, and each field here carries a comment with its kind and
source:

* ``IND`` industry report or vendor benchmark (an order of magnitude),
* ``ACA`` peer-reviewed work,
* ``FIT`` a fit to a public academic data set,
* ``ASM`` a modelling assumption (no published number; a knob to turn).

Two vintages of engagement are available: ``"2019"`` (Kim et al., WWW 2020, posts of 2018-19; the
default, because the academic fit is preferred for shapes and slopes) and ``"2025"`` (industry reports of
2025-26, where Instagram engagement has fallen to about 1 % and the size slope steepened to -0.25).

Any field can be overridden from a YAML (or JSON) mapping of field names to values::

    cal = Calibration.from_yaml("my_market.yaml")
    cal = Calibration().replace(engagement_vintage="2025")
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, overload

import numpy as np
import yaml

from matching.features import (
    AUDIENCE_BANDS,
    AUDIENCE_GENDERS,
    BRAND_FIT_AUDIENCE_WEIGHT,
    BRAND_FIT_CATEGORY_WEIGHT,
    CATEGORIES,
    PLATFORMS,
    TIER_EDGES,
    TIERS,
    check_tier_edges,
    tier_index,
)

# The vocabulary (platforms, categories, audience cells, tiers) has one home, the lowest layer
# (matching.features); these names re-export it for the modules of envs.
GENDERS, AGE_BANDS = AUDIENCE_GENDERS, AUDIENCE_BANDS
#: Audience cells, female bands first, then male bands (the CSV column order).
AUDIENCE_CELLS: tuple[str, ...] = tuple(f"{g}_{a}" for g in GENDERS for a in AGE_BANDS)
GOALS: tuple[str, ...] = ("awareness", "engagement", "conversion")
POPULATION_MODES: tuple[str, ...] = ("marketplace", "population")
ENGAGEMENT_VINTAGES: tuple[str, ...] = ("2019", "2025")
MONTHS: tuple[str, ...] = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class CalibrationError(ValueError):
    """A calibration value or file is invalid; the message names the field or file."""


@dataclasses.dataclass(frozen=True)
class Calibration:
    """Parameters of the simulated market. Per-platform tuples follow :data:`PLATFORMS`, per-category
    tuples :data:`CATEGORIES`, per-tier tuples :data:`TIERS`, per-month tuples January..December."""

    # ----------------------------------------------------------------------------------- influencers
    # Tier edges in followers: nano <10k, micro <100k, mid <500k, macro <1M, mega. Later x Fohr 2021 (IND).
    # The default lives with the tier names in matching.features; segment names use these edges too.
    tier_edges: tuple[float, ...] = TIER_EDGES
    # Smallest account in the market (both published follower fits truncate at 1,000; FIT).
    min_followers: float = 1_000.0
    # "population" mode: ln followers ~ N(3.72, 2.76) truncated at 1,000; reproduces 81.5 % nano,
    # 14.4 % 10k-50k and 0.1 % above 1M. FIT to HypeAuditor 2026 tier shares (IND).
    population_log_followers_mean: float = 3.72
    population_log_followers_sd: float = 2.76
    # "marketplace" mode (default): Kim et al. WWW 2020, 33,935 Instagram influencers (ACA) report
    # ln followers with mean 9.81 and sd 1.74, median 16,125 and 2.2 % above 1M. Those are moments of the
    # *data*; a generator with location 9.81 has a median near 20k. The generator is therefore a
    # log-normal body truncated at 1,000 whose location and scale are solved so that, with the Pareto
    # tail below, the median is 16,125 and 2.2 % exceed 1M (FIT; tests/envs/test_calibration.py solves
    # it again). The generated ln followers then have mean 9.87 and sd 1.78, close to the reported
    # 9.81 and 1.74, which supports this reading of the published moments.
    marketplace_log_followers_mean: float = 9.316
    marketplace_log_followers_sd: float = 2.186
    marketplace_reported_log_mean: float = 9.81  # the published sample moments, kept for the report
    marketplace_reported_log_sd: float = 1.74
    # Pareto tail above 500k with pdf exponent 2.1 (survival exponent 1.1). FIT Kim et al. (ACA).
    marketplace_tail_start: float = 500_000.0
    marketplace_tail_pdf_exponent: float = 2.1
    # The tail is truncated at the largest accounts on the platforms, about 650M followers (ASM).
    max_followers: float = 650_000_000.0
    # Platform mix instagram / tiktok / youtube. Nielsen 2022; Lumanu 2024 spend split 71/19/10 (IND).
    platform_mix: tuple[float, ...] = (0.55, 0.35, 0.10)
    # Engagement vintage used by the generator: "2019" (FIT Kim et al.) or "2025" (IND).
    engagement_vintage: str = "2019"
    # Engagement rate at 10k followers: instagram 3.0 % (per follower), tiktok 6.0 % and youtube 2.0 %
    # (per view). FIT Kim et al. posts 2018-19; IMH 2021 (IND).
    engagement_at_10k_2019: tuple[float, ...] = (0.030, 0.060, 0.020)
    # Which platforms quote engagement per view (tiktok, youtube) rather than per follower (instagram):
    # their expected engagements are ER x views, with views = followers x reach rate. IMH 2021 (IND).
    engagement_per_view: tuple[bool, ...] = (False, True, True)
    # Slope of ln ER on ln followers. FIT Kim et al. (instagram); IMH 2021 (tiktok, youtube; IND).
    engagement_slope_2019: tuple[float, ...] = (-0.124, -0.15, -0.25)
    # 2025-26 vintage: instagram about 1.0 % with the recent industry slope -0.25 (HypeAuditor 2026, IND);
    # tiktok and youtube keep their IMH 2021 values (no newer published fit).
    engagement_at_10k_2025: tuple[float, ...] = (0.010, 0.060, 0.020)
    engagement_slope_2025: tuple[float, ...] = (-0.25, -0.15, -0.25)
    # Spread of ln ER between influencers (sd 0.86) and post to post (sd 0.40, range 0.37-0.46). FIT Kim.
    engagement_between_sd: float = 0.86
    engagement_post_sd: float = 0.40
    # Observed ER is the mean over the last posts a marketer can see (ASM: 12 posts), so it differs from
    # the true rate by post noise / sqrt(12); bought engagement inflates it for the fraud group (ASM).
    observed_posts: int = 12
    fraud_engagement_inflation: float = 0.3
    # Engagement rates are clipped into this band (ASM: keeps the 0.1 % of extreme draws plausible).
    engagement_rate_bounds: tuple[float, ...] = (1e-4, 0.5)
    # Fake-follower share: clean group Beta(2, 16) (mean 0.11); fraud group uniform 0.25-0.75.
    # SRF Data 2017 study, CC BY-SA (ACA-grade data journalism).
    fake_share_clean_beta: tuple[float, ...] = (2.0, 16.0)
    fake_share_fraud_range: tuple[float, ...] = (0.25, 0.75)
    # Probability of the fraud group by tier nano..mega. SRF 2017; HypeAuditor 2021/2023 (IND).
    fraud_probability_by_tier: tuple[float, ...] = (0.20, 0.24, 0.28, 0.32, 0.40)
    # Reach per real follower at 10k followers and its elasticity on F/10k (log-log): instagram 0.30,
    # -0.08; tiktok 0.30, -0.05; youtube 0.20, -0.12. Median IG reach 37.7 % (0-20k) to 19.1 % (>1M).
    # minter.io, brightbean (IND).
    reach_rate_at_10k: tuple[float, ...] = (0.30, 0.30, 0.20)
    reach_rate_slope: tuple[float, ...] = (-0.08, -0.05, -0.12)
    # Post-to-post spread of reach: reach x exp(0.4 z). minter.io, brightbean (IND).
    reach_post_sd: float = 0.4
    # List price per post at 10k followers: instagram $100, tiktok $60, youtube $250 ($10-20 per 1k IG,
    # $20-25 per 1k YT). WebFX rule, Hashtag Pay Me 2023 (IND).
    price_at_10k: tuple[float, ...] = (100.0, 60.0, 250.0)
    # Price elasticity on followers 0.9 with log-sd 0.6 (follower-price correlation only 0.56; median
    # payment $800). Lumanu 2024, 250k payments (IND).
    price_follower_exponent: float = 0.9
    price_log_sd: float = 0.6
    # Nobody posts for less than about $10: list prices are floored there (ASM).
    min_price: float = 10.0
    # Hidden response quality of an influencer's audience (how much of it actually sees, engages and buys
    # for a given profile): a log-normal multiplier exp(sd q - sd^2 / 2) with mean 1 on reach, engagements,
    # clicks and conversions. The market prices part of it: the price noise correlates with q. Without
    # this, list-price noise independent of value makes the cheapest-for-its-size influencer a free lunch
    # worth 7-15x its cost (ASM; "you get what you pay for", within reason).
    response_quality_sd: float = 0.6
    price_quality_correlation: float = 0.8
    # Price premium for high engagement: (ER / typical ER) ** 0.15 (IND).
    price_engagement_exponent: float = 0.15
    # Category mix: Dirichlet(0.15 everywhere + 3 on the primary), primary holds about 70 % (ASM).
    category_mix_base_alpha: float = 0.15
    category_mix_primary_alpha: float = 3.0
    # Primary-category shares. FIT Kim et al. shares reweighted; Meta creator study 2022 (IND);
    # gaming/tech ASM.
    influencer_category_mix: tuple[float, ...] = (
        0.22, 0.08, 0.14, 0.05, 0.08, 0.08, 0.08, 0.03, 0.02, 0.06, 0.06, 0.10,
    )  # fmt: skip
    # Audience: 6 age bands 13-17 .. 55+ with base shares 8.5, 30.1, 31.5, 16.1, 8.0, 5.7 % and 50.7 %
    # male. Hootsuite 2022 (IND).
    audience_age_shares: tuple[float, ...] = (0.085, 0.301, 0.315, 0.161, 0.080, 0.057)
    audience_male_share: float = 0.507
    # Female share tilted by +0.25 for beauty/fashion/family and -0.25 for gaming/tech (ASM).
    audience_female_tilt: float = 0.25
    audience_female_categories: tuple[str, ...] = ("beauty", "fashion", "family")
    audience_male_categories: tuple[str, ...] = ("gaming", "tech")
    # Dirichlet concentration of an influencer's audience around its category-tilted base (ASM).
    audience_concentration: float = 20.0
    # Sponsored load of a new influencer: Gamma(shape, scale), in sponsored posts of recent weight (ASM).
    sponsored_load_gamma: tuple[float, ...] = (1.0, 1.0)

    # ------------------------------------------------------------------------------ brands, campaigns
    # Brand categories. Socialbakers 2019, CreatorIQ x TikTok (IND); rest ASM.
    brand_category_mix: tuple[float, ...] = (
        0.18, 0.18, 0.08, 0.09, 0.11, 0.05, 0.05, 0.06, 0.03, 0.06, 0.08, 0.03,
    )  # fmt: skip
    # Annual influencer budget bins (USD) and shares: <$10k 49 %, $10-50k 23 %, $50-100k 12 %,
    # $100-500k 7.5 %, >$500k 8.6 % (IMH 2021, IND; the shares add to 100.1 % and are normalised).
    # Log-uniform inside a bin; the outer edges $1k and $5M are ASM.
    budget_bin_edges: tuple[float, ...] = (1_000.0, 10_000.0, 50_000.0, 100_000.0, 500_000.0, 5_000_000.0)
    budget_bin_shares: tuple[float, ...] = (0.49, 0.23, 0.12, 0.075, 0.086)
    # Share of the annual budget a 26-week campaign may spend (ASM: half a year of a year's budget).
    campaign_budget_share: float = 0.5
    # Campaign goal awareness / engagement / conversion. IMH 2020 (IND).
    goal_mix: tuple[float, ...] = (0.27, 0.34, 0.39)
    # Average order value: log-normal, median $50, log-sd 0.6. ASM; $50 in Beichert et al. 2024 (ACA).
    order_value_median: float = 50.0
    order_value_log_sd: float = 0.6
    # Target audience: Dirichlet concentration 10 around the brand category's tilted base (ASM).
    target_concentration: float = 10.0
    # Value of an engagement: cost-per-engagement benchmark $0.10-0.50, log-uniform per brand (inzpire, IND).
    value_per_engagement_range: tuple[float, ...] = (0.10, 0.50)
    # Value of 1k unique reach: CPM $25-42 (Instagram/TikTok), log-uniform per brand (inzpire, IND);
    # YouTube reach is worth the ratio of CPM midpoints, $56 / $33.5 = 1.67x (inzpire, IND).
    value_per_1k_reach_range: tuple[float, ...] = (25.0, 42.0)
    platform_reach_value_multiplier: tuple[float, ...] = (1.0, 1.0, 1.67)

    # --------------------------------------------------------------------------- outcome of a match
    # Brand fit = 0.6 category share + 0.4 Bhattacharyya overlap of audiences (ASM; the defaults live in
    # matching.features, whose brand-fit embedding uses them too).
    fit_category_weight: float = BRAND_FIT_CATEGORY_WEIGHT
    fit_audience_weight: float = BRAND_FIT_AUDIENCE_WEIGHT
    # Acceptance: logistic(-0.9 + 2.0 ln(offer ratio) + 1.2 (category share - 0.3) - 0.15 load + month
    # shift). About 40 % respond (Heepsy), 20-35 % opt in (IND); slopes ASM.
    acceptance_intercept: float = -0.9
    acceptance_offer_slope: float = 2.0
    acceptance_category_slope: float = 1.2
    acceptance_category_pivot: float = 0.3
    acceptance_load_slope: float = -0.15
    # Month shift of acceptance: -0.4 in November, -0.6 in December (holiday refusals, Fohr, IND).
    acceptance_month_shift: tuple[float, ...] = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -0.4, -0.6)
    # Engagements on a sponsored post: x 0.93 (FIT) and fatigue exp(-0.05 load) (ASM), x (0.7 + 0.6 fit).
    sponsored_engagement_multiplier: float = 0.93
    engagement_fatigue: float = 0.05
    engagement_fit_base: float = 0.7
    engagement_fit_slope: float = 0.6
    # Clicks: reach x 2 % x (0.5 + fit) x (ER / typical ER) ** 0.3. CTR 1-5 % (IND).
    click_rate: float = 0.02
    click_fit_base: float = 0.5
    click_engagement_exponent: float = 0.3
    # Conversions: reach x 0.20 % x (F/10k) ** -0.25 x (0.2 + 1.6 fit) x (ER / typical ER) ** 0.5 x month.
    # Calibrated so nano earn about 5x the revenue per follower of macro (Beichert et al., J. Marketing
    # 2024: EUR 0.265 vs 0.049, ACA) and about a quarter of matches lose money (IMH, IND).
    conversion_rate: float = 0.002
    conversion_follower_exponent: float = -0.25
    conversion_fit_base: float = 0.2
    conversion_fit_slope: float = 1.6
    conversion_engagement_exponent: float = 0.5
    # Cost = offer x month price premium (x 1.12 in November and December). Fohr (IND).
    price_month_premium: tuple[float, ...] = (1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1.12, 1.12)
    # Fatigue: sponsored load += 1 per sponsored post, halving every 14 days (ASM).
    load_half_life_days: float = 14.0
    # Reputation burn: followers x (1 - 0.0019) per sponsored post. Cheng & Zhang, Mgmt Sci 2025 (ACA).
    reputation_burn: float = 0.0019
    # Audience overlap: unique reach of a hire shrinks by 10-40 % per earlier hire in the same niche
    # (segment), about 0 across niches. SRF 2017; Influencity (IND). Inside the range, the overlap grows
    # with the cosine similarity of the two category mixes (ASM).
    overlap_range: tuple[float, ...] = (0.10, 0.40)
    # Month multipliers of engagement, January..December. FIT Kim et al.
    month_engagement: tuple[float, ...] = (
        1.05,
        1.02,
        1.03,
        0.99,
        0.97,
        0.955,
        0.985,
        0.98,
        0.98,
        0.99,
        1.02,
        1.0,
    )
    # Month multipliers of conversions. ASM, direction from Later 2025 (IND).
    month_conversion: tuple[float, ...] = (0.9, 0.9, 0.95, 0.95, 0.95, 0.95, 0.95, 1, 1, 1, 1.25, 1.35)

    # ------------------------------------------------------------- the calendar (InfluencerMatching-v1)
    # Read by the v1 dynamics only (``dynamics="v1"``); v0 ignores these fields, so v0 runs stay the same.
    # Demand for the brand's category by month, rows in CATEGORIES order, columns January..December:
    # multiplies conversions and the value of reach and engagement. Each row averages 1, so it moves
    # value across the year without changing its total. ASM (no published per-category table); the
    # peaks follow the directions of consumer search and spend seasonality: fitness in January
    # (New-Year resolutions), travel bookings from January to June, beauty, fashion, family, gaming and
    # tech in the holiday quarter (NRF: November-December hold about a fifth of US retail sales), home
    # in spring (IND).
    category_month_demand: tuple[tuple[float, ...], ...] = (
        (0.90, 0.85, 0.95, 1.00, 1.00, 0.95, 0.90, 1.00, 1.05, 1.05, 1.20, 1.15),  # fashion
        (0.90, 0.95, 0.95, 0.95, 1.00, 0.95, 0.90, 0.90, 0.95, 1.00, 1.25, 1.30),  # beauty
        (1.00, 1.00, 1.00, 1.00, 1.00, 1.00, 1.00, 1.00, 1.00, 1.00, 1.00, 1.00),  # lifestyle
        (1.60, 1.30, 1.10, 1.00, 1.00, 0.95, 0.85, 0.85, 0.95, 0.85, 0.75, 0.80),  # fitness
        (0.95, 0.95, 1.00, 1.00, 1.00, 1.00, 0.95, 0.95, 1.00, 1.00, 1.10, 1.10),  # food
        (1.20, 1.25, 1.25, 1.20, 1.15, 1.10, 1.00, 0.85, 0.85, 0.75, 0.70, 0.70),  # travel
        (0.90, 0.90, 0.95, 0.95, 1.00, 0.95, 0.95, 1.05, 1.00, 1.00, 1.15, 1.20),  # family
        (0.95, 0.95, 1.10, 1.15, 1.10, 1.00, 0.95, 0.90, 0.95, 0.95, 1.00, 1.00),  # home
        (0.95, 0.95, 1.00, 1.00, 1.00, 1.00, 1.00, 1.00, 1.00, 1.00, 1.05, 1.05),  # pets
        (0.85, 0.80, 0.85, 0.85, 0.90, 0.95, 0.95, 0.95, 1.00, 1.05, 1.35, 1.50),  # gaming
        (0.85, 0.85, 0.90, 0.90, 0.90, 0.95, 0.95, 1.00, 1.05, 1.00, 1.35, 1.30),  # tech
        (0.95, 0.95, 1.00, 1.00, 1.05, 1.10, 1.10, 1.05, 0.95, 0.95, 0.95, 0.95),  # entertainment
    )
    # Creators book up ahead of the holidays: an acceptance shift and a price multiplier by month, on top
    # of acceptance_month_shift and price_month_premium, so refusals and prices rise from September, not
    # only in the peak; January is the post-holiday slack (more acceptances, 5 % lower prices). ASM;
    # direction from agency reports that Q4 creator calendars fill by September (Fohr, Later; IND).
    booking_month_shift: tuple[float, ...] = (0.1, 0, 0, 0, 0, 0, 0, 0, -0.15, -0.3, -0.15, 0)
    booking_month_premium: tuple[float, ...] = (0.95, 1, 1, 1, 1, 1, 1, 1, 1.03, 1.08, 1.03, 1.0)
    # In v1 an influencer's sponsored load recovers towards the pool's mean with load_half_life_days
    # (their other brand deals age and new ones arrive at the average rate), so a fatigued candidate is
    # worth waiting for: acceptance and engagement follow the load of the week (ASM).
    load_recovers: bool = True

    # -------------------------------------------------------------------------------- validation
    def __post_init__(self) -> None:
        self._check_lengths()
        try:
            check_tier_edges(self.tier_edges)
        except ValueError:
            raise CalibrationError(
                "calibration field 'tier_edges': expected 4 increasing follower counts"
            ) from None
        if len(self.budget_bin_edges) != len(self.budget_bin_shares) + 1:
            raise CalibrationError("calibration field 'budget_bin_edges': expected one more edge than shares")
        if list(self.budget_bin_edges) != sorted(self.budget_bin_edges) or self.budget_bin_edges[0] <= 0:
            raise CalibrationError("calibration field 'budget_bin_edges': expected positive increasing edges")
        self._check_values()
        if self.engagement_vintage not in ENGAGEMENT_VINTAGES:
            raise CalibrationError(
                f"calibration field 'engagement_vintage': expected one of {list(ENGAGEMENT_VINTAGES)}, "
                f"got {self.engagement_vintage!r}"
            )
        if not 0 <= self.price_quality_correlation <= 1 or self.response_quality_sd < 0:
            raise CalibrationError(
                "calibration fields 'price_quality_correlation' (0-1), 'response_quality_sd' (>= 0)"
            )
        if not self.marketplace_tail_pdf_exponent > 1:
            raise CalibrationError("calibration field 'marketplace_tail_pdf_exponent': expected a value > 1")
        unknown = set(self.audience_female_categories + self.audience_male_categories) - set(CATEGORIES)
        if unknown:
            raise CalibrationError(f"calibration audience tilt names unknown categories {sorted(unknown)}")

    def _check_lengths(self) -> None:
        """Every tuple field that follows a vocabulary has one value per member."""
        for length, names in _FIELDS_BY_LENGTH:
            for name in names:
                value = getattr(self, name)
                if len(value) != length:
                    raise CalibrationError(
                        f"calibration field '{name}': expected {length} values, got {len(value)}"
                    )

    def _check_values(self) -> None:
        """Shares add to 1, probabilities lie in [0, 1], and scales and rates are positive."""
        for name in _SHARE_FIELDS:
            shares = np.asarray(getattr(self, name), dtype=float)
            if np.any(shares < 0) or not math.isclose(shares.sum(), 1.0, abs_tol=0.01):
                raise CalibrationError(
                    f"calibration field '{name}': expected non-negative shares adding to 1, got sum {shares.sum():.4f}"
                )
        for name in _UNIT_INTERVAL_FIELDS:
            values = np.asarray(getattr(self, name), dtype=float)
            if np.any(values < 0) or np.any(values > 1):
                raise CalibrationError(f"calibration field '{name}': expected values in [0, 1]")
        for name in _POSITIVE_FIELDS:
            if not getattr(self, name) > 0:
                raise CalibrationError(f"calibration field '{name}': expected a positive number")
        demand = np.asarray(self.category_month_demand, dtype=float)
        if demand.shape != (len(CATEGORIES), len(MONTHS)) or not np.all(demand > 0):
            raise CalibrationError(
                "calibration field 'category_month_demand': expected 12 rows (one per category) of 12 "
                "positive monthly multipliers"
            )
        for name in _POSITIVE_TUPLE_FIELDS:
            if min(getattr(self, name)) <= 0:
                raise CalibrationError(f"calibration field '{name}': expected positive values")

    # ----------------------------------------------------------------------------- vintage views
    @property
    def engagement_at_10k(self) -> np.ndarray:
        """Engagement rate at 10k followers per platform, for the selected vintage."""
        return np.asarray(getattr(self, f"engagement_at_10k_{self.engagement_vintage}"), dtype=float)

    @property
    def engagement_slope(self) -> np.ndarray:
        """Slope of ln ER on ln followers per platform, for the selected vintage."""
        return np.asarray(getattr(self, f"engagement_slope_{self.engagement_vintage}"), dtype=float)

    def array(self, name: str) -> np.ndarray:
        """A tuple field as a read-only numpy array, converted once per instance (hot paths use this)."""
        return self._cached_array(name, lambda: np.asarray(getattr(self, name), dtype=float))

    def _cached_array(self, key: str, make: Any) -> np.ndarray:
        """``make()`` as a read-only array, computed once per instance (frozen: fields cannot change, so
        caching is safe)."""
        cache = self.__dict__.setdefault("_arrays", {})
        if key not in cache:
            value = make()
            value.setflags(write=False)
            cache[key] = value
        return cache[key]

    def probabilities(self, name: str) -> np.ndarray:
        """A share field (e.g. ``"platform_mix"``) as probabilities adding exactly to 1."""
        shares = np.asarray(getattr(self, name), dtype=float)
        return shares / shares.sum()

    @overload
    def draw(self, name: str, rng: np.random.Generator, size: None = None) -> np.intp: ...

    @overload
    def draw(self, name: str, rng: np.random.Generator, size: int) -> np.ndarray: ...

    def draw(self, name: str, rng: np.random.Generator, size: int | None = None) -> np.ndarray | np.intp:
        """Category indices drawn with the probabilities of share field ``name`` (inverse CDF: one
        uniform per draw, much cheaper than ``Generator.choice`` with ``p=`` for small draws)."""
        cache = self.__dict__.setdefault("_cdfs", {})
        if name not in cache:
            cdf = np.cumsum(self.probabilities(name))
            cdf[-1] = np.inf  # rounding can leave the last cumulative share just below 1
            cache[name] = cdf
        return np.searchsorted(cache[name], rng.random(size), side="right")

    def tier_index(self, followers: np.ndarray) -> np.ndarray:
        """Tier of each follower count as an index into :data:`TIERS`, at this calibration's
        ``tier_edges`` (see :func:`matching.features.tier_index`)."""
        return tier_index(followers, self.tier_edges)

    def base_audience(self) -> np.ndarray:
        """Category-tilted base audience, shape (12 categories, 12 cells), rows adding to 1 (read-only,
        computed once per instance: every campaign draw uses it)."""
        return self._cached_array("_base_audience", self._compute_base_audience)

    def _compute_base_audience(self) -> np.ndarray:
        ages = np.asarray(self.audience_age_shares, dtype=float)
        ages = ages / ages.sum()
        base = np.empty((len(CATEGORIES), len(AUDIENCE_CELLS)))
        for c, name in enumerate(CATEGORIES):
            female = 1.0 - self.audience_male_share
            if name in self.audience_female_categories:
                female += self.audience_female_tilt
            elif name in self.audience_male_categories:
                female -= self.audience_female_tilt
            female = min(max(female, 0.01), 0.99)
            base[c] = np.concatenate([female * ages, (1.0 - female) * ages])
        return base

    # ------------------------------------------------------------------------------- overrides
    def replace(self, **changes: Any) -> Calibration:
        """A copy with some fields changed (validated like the constructor)."""
        return Calibration.from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON-serialisable values (tuples, nested ones too, become lists)."""
        return {k: _plain(v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, source: str = "calibration") -> Calibration:
        """Build from a mapping of field names; unknown names and wrong types are refused by name."""
        if not isinstance(values, Mapping):
            raise CalibrationError(
                f"{source}: expected a mapping of calibration fields, got {type(values).__name__}"
            )
        fields = {f.name: f for f in dataclasses.fields(cls)}
        defaults = cls()
        kwargs: dict[str, Any] = {}
        for key, value in values.items():
            if key not in fields:
                raise CalibrationError(f"{source}: unknown calibration field '{key}'")
            default = getattr(defaults, key)
            kwargs[key] = _coerce(value, default, f"{source}: field '{key}'")
        return cls(**kwargs)

    @classmethod
    def from_yaml(cls, path: str | Path) -> Calibration:
        """Defaults overridden by the fields in a YAML (or JSON) file."""
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise CalibrationError(f"{path}: cannot read calibration file ({exc.strerror})") from None
        try:
            values = yaml.safe_load(text) if path.suffix != ".json" else json.loads(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise CalibrationError(f"{path}: not valid YAML{where} ({problem})") from None
        except json.JSONDecodeError as exc:
            raise CalibrationError(f"{path}: not valid JSON at line {exc.lineno} ({exc.msg})") from None
        return cls.from_dict(values or {}, source=str(path))


#: Tuple fields with one value per platform, category, tier, month, age band, goal, or a (low, high) pair.
_FIELDS_BY_LENGTH: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        len(PLATFORMS),
        (
            "platform_mix", "engagement_at_10k_2019", "engagement_slope_2019", "engagement_at_10k_2025",
            "engagement_slope_2025", "reach_rate_at_10k", "reach_rate_slope", "price_at_10k",
            "platform_reach_value_multiplier",
        ),
    ),
    (len(CATEGORIES), ("influencer_category_mix", "brand_category_mix")),
    (len(TIERS), ("fraud_probability_by_tier",)),
    (
        len(MONTHS),
        (
            "acceptance_month_shift", "price_month_premium", "month_engagement", "month_conversion",
            "booking_month_shift", "booking_month_premium",
        ),
    ),
    (len(CATEGORIES), ("category_month_demand",)),
    (len(AGE_BANDS), ("audience_age_shares",)),
    (len(GOALS), ("goal_mix",)),
    (
        2,
        (
            "fake_share_clean_beta", "fake_share_fraud_range", "engagement_rate_bounds",
            "value_per_engagement_range", "value_per_1k_reach_range", "overlap_range", "sponsored_load_gamma",
        ),
    ),
)  # fmt: skip
#: Share fields (non-negative, adding to 1 within 0.01; :meth:`Calibration.probabilities` normalises).
_SHARE_FIELDS: tuple[str, ...] = (
    "platform_mix", "influencer_category_mix", "brand_category_mix", "audience_age_shares", "goal_mix",
    "budget_bin_shares",
)  # fmt: skip
#: Fields of probabilities or shares, each value in [0, 1].
_UNIT_INTERVAL_FIELDS: tuple[str, ...] = (
    "fraud_probability_by_tier",
    "fake_share_fraud_range",
    "overlap_range",
)
#: Scalar fields that must be positive.
_POSITIVE_FIELDS: tuple[str, ...] = (
    "min_followers", "population_log_followers_sd", "marketplace_log_followers_sd", "marketplace_tail_start",
    "max_followers", "engagement_between_sd", "engagement_post_sd", "observed_posts", "order_value_median",
    "audience_concentration", "target_concentration", "load_half_life_days", "campaign_budget_share",
    "conversion_rate", "click_rate",
)  # fmt: skip
#: Tuple fields whose every value must be positive.
_POSITIVE_TUPLE_FIELDS: tuple[str, ...] = (
    "price_at_10k", "reach_rate_at_10k", "engagement_at_10k_2019", "engagement_at_10k_2025",
    "booking_month_premium",
)  # fmt: skip


def _plain(value: Any) -> Any:
    """Tuples (nested ones too) as lists."""
    return [_plain(v) for v in value] if isinstance(value, tuple) else value


def _coerce(value: Any, default: Any, where: str) -> Any:
    """Convert a YAML value to the type of the field's default, or raise naming the field."""
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)):
            raise CalibrationError(f"{where}: expected a list, got {value!r}")
        inner = default[0] if default else 0.0
        return tuple(_coerce(v, inner, where) for v in value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise CalibrationError(f"{where}: expected true or false, got {value!r}")
        return value
    if isinstance(default, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise CalibrationError(f"{where}: expected a number, got {value!r}")
        return type(default)(value) if isinstance(default, float) or float(value).is_integer() else value
    if isinstance(default, str):
        if not isinstance(value, (str, int)):
            raise CalibrationError(f"{where}: expected a string, got {value!r}")
        return str(value)
    return value
