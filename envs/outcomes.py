"""The outcome of a brand offering a deal to an influencer, as pure vectorised functions.

Every function works on numpy arrays that broadcast together (one element per match), so a batch of a
million matches costs a handful of array operations. Money is in USD here; the environment reports
rewards in thousands of dollars.

The model (``docs/calibration.md``, "Outcome of one match"), for brand b, influencer i, month m and
offer = ratio x list price, with fit = 0.6 category_mix[i, c_b] + 0.4 sum(sqrt(audience_i * target_b)):

* acceptance: P = logistic(-0.9 + 2 ln ratio + 1.2 (category_mix[i, c_b] - 0.3) - 0.15 load + shift[m]);
* unique reach: (1 - fake share) followers reach_rate(F) exp(0.4 z) x overlap factor;
* engagements: Poisson(true ER A 0.93 e^(-0.05 load) month_ER[m] (0.7 + 0.6 fit) LogN(0, 0.40)), where the
  audience A is the followers on Instagram (engagement per follower) and the views, followers x reach
  rate, on TikTok and YouTube (whose engagement rates are quoted per view);
* clicks: Poisson(reach 2 % (0.5 + fit) (ER / typical ER)^0.3);
* conversions: Poisson(reach 0.2 % (F/10k)^-0.25 (0.2 + 1.6 fit) (ER / typical ER)^0.5 month_conv[m]);
* cost: offer x month premium[m], paid only when accepted; revenue = conversions x order value;
* value to the brand by goal: awareness reach/1000 x value per 1k reach (x platform multiplier),
  engagement engagements x value per engagement, conversion revenue.

A refused offer costs nothing and yields nothing. :func:`expected_outcomes` gives exact expectations
(conditional on acceptance, plus the acceptance probability and the unconditional expected reward);
:func:`sample_outcomes` draws one realisation.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from envs.calibration import Calibration
from envs.population import typical_engagement

AWARENESS, ENGAGEMENT, CONVERSION = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class Matches:
    """The inputs of a batch of matches; every field is an array (or scalar) broadcasting to one shape.

    Influencer side: ``platform``, ``followers``, ``true_engagement_rate``, ``fake_share``,
    ``sponsored_load``, ``list_price`` (USD). Brand side: ``category_share`` (the influencer's category
    mix at the brand's category), ``audience_overlap`` (Bhattacharyya coefficient of audience and
    target), ``goal``, ``order_value``, ``value_per_engagement``, ``value_per_1k_reach``. Deal:
    ``offer_ratio`` (offer / list price), ``month`` (0-11), ``overlap_factor`` (share of the reach that
    is new to the brand, 1 for the first hire in a niche), ``response_quality`` (the influencer's hidden
    multiplier of reach and engagements, mean 1), ``demand`` (the brand category's demand in the month,
    ``Calibration.category_month_demand``: multiplies conversions and the value of reach and engagement,
    as InfluencerMatching-v1 does; 1, the default, is v0).
    """

    platform: np.ndarray
    followers: np.ndarray
    true_engagement_rate: np.ndarray
    fake_share: np.ndarray
    sponsored_load: np.ndarray
    list_price: np.ndarray
    category_share: np.ndarray
    audience_overlap: np.ndarray
    goal: np.ndarray
    order_value: np.ndarray
    value_per_engagement: np.ndarray
    value_per_1k_reach: np.ndarray
    offer_ratio: np.ndarray
    month: np.ndarray
    overlap_factor: np.ndarray | float = 1.0
    response_quality: np.ndarray | float = 1.0
    demand: np.ndarray | float = 1.0

    def shape(self) -> tuple[int, ...]:
        return np.broadcast_shapes(*(np.shape(getattr(self, f.name)) for f in dataclasses.fields(self)))


@dataclasses.dataclass(frozen=True)
class Outcomes:
    """Outcomes of a batch of matches (arrays of one shape).

    From :func:`sample_outcomes`: ``accepted`` is 0/1 and the counts are realised (0 when refused).
    From :func:`expected_outcomes`: ``accepted`` is the acceptance probability, the other fields are
    expectations *given acceptance*, and ``reward`` is the unconditional expectation
    ``P(accept) x (value - cost)``. ``reward`` is always value - cost in USD.
    """

    accepted: np.ndarray
    reach: np.ndarray
    engagements: np.ndarray
    clicks: np.ndarray
    conversions: np.ndarray
    cost: np.ndarray
    revenue: np.ndarray
    value: np.ndarray
    reward: np.ndarray


# ----------------------------------------------------------------------------------- components
def brand_fit(category_share: np.ndarray, audience_overlap: np.ndarray, cal: Calibration) -> np.ndarray:
    """Fit of an influencer to a brand in [0, 1]: 0.6 x category share + 0.4 x audience overlap."""
    return cal.fit_category_weight * category_share + cal.fit_audience_weight * audience_overlap


def acceptance_probability(
    offer_ratio: np.ndarray,
    category_share: np.ndarray,
    sponsored_load: np.ndarray,
    month: np.ndarray,
    cal: Calibration,
) -> np.ndarray:
    """Probability that the influencer accepts the offer (a logistic model, see the module docstring)."""
    logit = (
        cal.acceptance_intercept
        + cal.acceptance_offer_slope * np.log(offer_ratio)
        + cal.acceptance_category_slope * (category_share - cal.acceptance_category_pivot)
        + cal.acceptance_load_slope * sponsored_load
        + cal.array("acceptance_month_shift")[month]
    )
    return 1.0 / (1.0 + np.exp(-logit))


def reach_rate(followers: np.ndarray, platform: np.ndarray, cal: Calibration) -> np.ndarray:
    """Share of real followers who see a post: rate at 10k x (F/10k)^slope, at most 1."""
    lf = np.log(np.asarray(followers, dtype=float) / 1e4)
    rate = cal.array("reach_rate_at_10k")[platform] * np.exp(cal.array("reach_rate_slope")[platform] * lf)
    return np.minimum(rate, 1.0)


def offer_cost(
    list_price: np.ndarray, offer_ratio: np.ndarray, month: np.ndarray, cal: Calibration
) -> np.ndarray:
    """What an accepted offer costs in USD: offer ratio x list price x the month's price premium."""
    return offer_ratio * list_price * cal.array("price_month_premium")[month]


@dataclasses.dataclass(frozen=True)
class Rates:
    """Per-match means before post-level noise, free of the month, the overlap and the offer.

    ``reach``: unique reach at overlap factor 1; ``engagements``: at month multiplier 1;
    ``clicks_per_reach``; ``conversions_per_reach``: at month multiplier 1. The environment computes
    these once per campaign for every influencer and applies the week's month and overlap per step.
    """

    reach: np.ndarray
    engagements: np.ndarray
    clicks_per_reach: np.ndarray
    conversions_per_reach: np.ndarray


@dataclasses.dataclass(frozen=True)
class FitFreeRates:
    """The parts of :class:`Rates` that do not depend on the brand: each rate is ``base x (a + b fit)``
    with the calibrated (a, b), so a campaign only has to supply the fit (see :meth:`with_fit`)."""

    reach: np.ndarray
    engagements: np.ndarray  # before the (0.7 + 0.6 fit) factor
    clicks_per_reach: np.ndarray  # before the (0.5 + fit) factor
    conversions_per_reach: np.ndarray  # before the (0.2 + 1.6 fit) factor

    def with_fit(self, fit: np.ndarray, cal: Calibration) -> Rates:
        """The :class:`Rates` of these influencers for a brand they fit by ``fit``."""
        return Rates(
            reach=self.reach,
            engagements=self.engagements * (cal.engagement_fit_base + cal.engagement_fit_slope * fit),
            clicks_per_reach=self.clicks_per_reach * (cal.click_fit_base + fit),
            conversions_per_reach=self.conversions_per_reach
            * (cal.conversion_fit_base + cal.conversion_fit_slope * fit),
        )


def fit_free_rates(
    platform: np.ndarray,
    followers: np.ndarray,
    true_engagement_rate: np.ndarray,
    fake_share: np.ndarray,
    sponsored_load: np.ndarray,
    cal: Calibration,
    response_quality: np.ndarray | float = 1.0,
) -> FitFreeRates:
    """The brand-independent parts of the outcome rates (see the module docstring); the hidden
    ``response_quality`` multiplies reach and engagements (and so clicks and conversions)."""
    followers = np.asarray(followers, dtype=float)
    quality = true_engagement_rate / typical_engagement(followers, platform, cal)
    rate = reach_rate(followers, platform, cal)
    # Instagram quotes engagement per follower; TikTok and YouTube per view (followers x reach rate).
    audience = followers * np.where(cal.array("engagement_per_view")[platform], rate, 1.0)
    return FitFreeRates(
        reach=(1.0 - fake_share) * followers * rate * response_quality,
        engagements=(
            response_quality
            * true_engagement_rate
            * audience
            * cal.sponsored_engagement_multiplier
            * np.exp(-cal.engagement_fatigue * sponsored_load)
        ),
        clicks_per_reach=cal.click_rate * quality**cal.click_engagement_exponent,
        conversions_per_reach=(
            cal.conversion_rate
            * (followers / 1e4) ** cal.conversion_follower_exponent
            * quality**cal.conversion_engagement_exponent
        ),
    )


def base_rates(
    platform: np.ndarray,
    followers: np.ndarray,
    true_engagement_rate: np.ndarray,
    fake_share: np.ndarray,
    sponsored_load: np.ndarray,
    category_share: np.ndarray,
    audience_overlap: np.ndarray,
    cal: Calibration,
    response_quality: np.ndarray | float = 1.0,
) -> Rates:
    """The month-, overlap- and offer-free :class:`Rates` of matches (see the module docstring)."""
    parts = fit_free_rates(
        platform, followers, true_engagement_rate, fake_share, sponsored_load, cal, response_quality
    )
    return parts.with_fit(brand_fit(category_share, audience_overlap, cal), cal)


def _match_rates(m: Matches, cal: Calibration) -> Rates:
    rates = base_rates(m.platform, m.followers, m.true_engagement_rate, m.fake_share, m.sponsored_load,
                       m.category_share, m.audience_overlap, cal, m.response_quality)  # fmt: skip
    if np.all(np.asarray(m.demand) == 1.0):
        return rates
    return dataclasses.replace(rates, conversions_per_reach=rates.conversions_per_reach * m.demand)


def brand_value(
    goal: np.ndarray | int,
    platform: np.ndarray,
    reach: np.ndarray,
    engagements: np.ndarray,
    revenue: np.ndarray,
    value_per_engagement: np.ndarray | float,
    value_per_1k_reach: np.ndarray | float,
    cal: Calibration,
) -> np.ndarray:
    """The brand's value of an outcome in USD, by goal: reach for awareness (YouTube reach worth more),
    engagements for engagement, revenue for conversion."""
    if np.ndim(goal) == 0:  # one campaign: compute only its goal's value
        if goal == AWARENESS:
            return (
                reach / 1000.0 * value_per_1k_reach * cal.array("platform_reach_value_multiplier")[platform]
            )
        return engagements * value_per_engagement if goal == ENGAGEMENT else np.asarray(revenue, dtype=float)
    reach_value = reach / 1000.0 * value_per_1k_reach * cal.array("platform_reach_value_multiplier")[platform]
    engagement_value = engagements * value_per_engagement
    goal = np.asarray(goal)
    return np.where(goal == AWARENESS, reach_value, np.where(goal == ENGAGEMENT, engagement_value, revenue))


def post_noise_means(cal: Calibration) -> tuple[float, float]:
    """Mean multipliers of the log-normal post noise of reach and of engagements: E[exp(s z)] = exp(s^2/2)."""
    return math.exp(cal.reach_post_sd**2 / 2), math.exp(cal.engagement_post_sd**2 / 2)


def value_coefficients(rates: FitFreeRates, platform: np.ndarray, cal: Calibration) -> np.ndarray:
    """The expected value of a match, given acceptance, as a line in the brand fit, per goal.

    Returns ``coef`` of shape (3 goals, 2, n) such that, at overlap factor 1,
    ``E[value] = value_scale(...) * (coef[goal, 0] + coef[goal, 1] * fit)``: awareness value does not
    depend on the fit, engagements grow with ``0.7 + 0.6 fit`` and conversions with ``0.2 + 1.6 fit``.
    The environment ranks a whole pool for a brand with this: one fit per influencer, no outcome model.
    """
    reach_noise, engagement_noise = post_noise_means(cal)
    reach = rates.reach * reach_noise
    engagements = rates.engagements * engagement_noise
    conversions = reach * rates.conversions_per_reach
    coef = np.zeros((3, 2, len(reach)))
    coef[AWARENESS, 0] = reach / 1000.0 * cal.array("platform_reach_value_multiplier")[platform]
    coef[ENGAGEMENT] = engagements * np.array([[cal.engagement_fit_base], [cal.engagement_fit_slope]])
    coef[CONVERSION] = conversions * np.array([[cal.conversion_fit_base], [cal.conversion_fit_slope]])
    return coef


def value_scale(
    goal: int | np.ndarray, month: int | np.ndarray, order_value: float | np.ndarray,
    value_per_engagement: float | np.ndarray, value_per_1k_reach: float | np.ndarray, cal: Calibration,
) -> float | np.ndarray:  # fmt: skip
    """The brand's side of :func:`value_coefficients`: USD per unit of reach, engagement or conversion
    value, with the month's engagement or conversion multiplier; elementwise over arrays of campaigns
    (the same products as campaign by campaign), a float for one."""
    scale = np.where(
        np.equal(goal, AWARENESS),
        value_per_1k_reach,
        np.where(
            np.equal(goal, ENGAGEMENT),
            np.multiply(value_per_engagement, cal.array("month_engagement")[month]),
            np.multiply(order_value, cal.array("month_conversion")[month]),
        ),
    )
    return float(scale) if scale.ndim == 0 else scale


def _value(m: Matches, reach, engagements, revenue, cal: Calibration) -> np.ndarray:
    value = brand_value(m.goal, m.platform, reach, engagements, revenue, m.value_per_engagement,
                        m.value_per_1k_reach, cal)  # fmt: skip
    if np.all(np.asarray(m.demand) == 1.0):
        return value
    # Demand reaches a conversion goal's value through its conversions; the others' directly.
    return value * np.where(np.asarray(m.goal) == CONVERSION, 1.0, m.demand)


def expected_counts(
    rates: Rates, month: np.ndarray | int, overlap: np.ndarray | float, cal: Calibration
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Expected (reach, engagements, clicks, conversions) given acceptance, for the month and overlap.

    Uses E[exp(s z)] = exp(s^2 / 2) for the log-normal post noise of reach and engagements; clicks and
    conversions are linear in reach, so their expectations follow from the expected reach.
    """
    reach_noise, engagement_noise = post_noise_means(cal)
    reach = rates.reach * overlap * reach_noise
    engagements = rates.engagements * cal.array("month_engagement")[month] * engagement_noise
    clicks = reach * rates.clicks_per_reach
    conversions = reach * rates.conversions_per_reach * cal.array("month_conversion")[month]
    return reach, engagements, clicks, conversions


def sample_counts(
    rates: Rates,
    month: np.ndarray | int,
    overlap: np.ndarray | float,
    rng: np.random.Generator,
    shape: tuple[int, ...] | None,
    cal: Calibration,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One draw of (reach, engagements, clicks, conversions) as if every match were accepted.

    Five variates per match (two normals, three Poissons), drawn in a fixed order. ``shape=None`` draws
    one match from scalar rates (numpy scalars: far cheaper than arrays of one element).
    """
    reach = np.rint(rates.reach * overlap * np.exp(cal.reach_post_sd * rng.standard_normal(shape)))
    engagements = rng.poisson(
        rates.engagements
        * cal.array("month_engagement")[month]
        * np.exp(cal.engagement_post_sd * rng.standard_normal(shape))
    )
    clicks = rng.poisson(reach * rates.clicks_per_reach)
    conversions = rng.poisson(reach * rates.conversions_per_reach * cal.array("month_conversion")[month])
    return reach.astype(np.int64), engagements, clicks, conversions


# ---------------------------------------------------------------------------------- expectation
def expected_outcomes(m: Matches, cal: Calibration | None = None) -> Outcomes:
    """Exact expected outcomes (see :class:`Outcomes` for which are conditional on acceptance)."""
    cal = cal or Calibration()
    p = acceptance_probability(m.offer_ratio, m.category_share, m.sponsored_load, m.month, cal)
    reach, engagements, clicks, conversions = expected_counts(
        _match_rates(m, cal), m.month, m.overlap_factor, cal
    )
    revenue = conversions * m.order_value
    cost = offer_cost(m.list_price, m.offer_ratio, m.month, cal)
    value = _value(m, reach, engagements, revenue, cal)
    shape = m.shape()
    fields = {"accepted": p, "reach": reach, "engagements": engagements, "clicks": clicks,
              "conversions": conversions, "cost": cost, "revenue": revenue, "value": value,
              "reward": p * (value - cost)}  # fmt: skip
    return Outcomes(**{k: np.broadcast_to(v, shape) for k, v in fields.items()})


# ------------------------------------------------------------------------------------- sampling
def sample_outcomes(m: Matches, rng: np.random.Generator, cal: Calibration | None = None) -> Outcomes:
    """Draw one realisation of every match.

    The draws are made for every match whether or not it is accepted (a fixed number of variates per
    match), so the stream of random numbers does not depend on who accepts.
    """
    cal = cal or Calibration()
    shape = m.shape()
    p = acceptance_probability(m.offer_ratio, m.category_share, m.sponsored_load, m.month, cal)
    accepted = rng.random(shape) < p
    counts = sample_counts(_match_rates(m, cal), m.month, m.overlap_factor, rng, shape, cal)
    keep = accepted.astype(np.int64)
    reach, engagements, clicks, conversions = (c * keep for c in counts)
    revenue = conversions * np.asarray(m.order_value, dtype=float)
    cost = offer_cost(m.list_price, m.offer_ratio, m.month, cal) * keep
    value = _value(m, reach, engagements, revenue, cal)
    fields = {"accepted": accepted, "reach": reach, "engagements": engagements, "clicks": clicks,
              "conversions": conversions, "cost": cost, "revenue": revenue, "value": value,
              "reward": value - cost}  # fmt: skip
    return Outcomes(**{k: np.broadcast_to(v, shape) for k, v in fields.items()})


# ---------------------------------------------------------------------------------- state updates
# What a sponsored post does to the market; the environment applies these (one home per update).

#: Sponsored load one sponsored post adds; it then halves every ``load_half_life_days`` (ASM).
SPONSORED_POST_LOAD = 1.0


def load_decay_factor(days: float, cal: Calibration) -> float:
    """Factor by which sponsored load shrinks over ``days`` without a new sponsored post:
    ``0.5 ** (days / load_half_life_days)`` (halves every 14 days by default)."""
    return 0.5 ** (days / cal.load_half_life_days)


def burn_followers(followers: float, cal: Calibration) -> float:
    """An influencer's followers after one more sponsored post: ``x (1 - reputation_burn)`` (0.19 % lost
    per post by default, Cheng & Zhang 2025)."""
    return followers * (1.0 - cal.reputation_burn)


def overlap_factor(
    candidate_mix: np.ndarray,
    earlier_mix: np.ndarray,
    cal: Calibration | None = None,
    same_niche: np.ndarray | None = None,
    unit: bool = False,
) -> np.ndarray:
    """Share of a candidate's reach that is new, given earlier hires in the same segment.

    Each earlier hire j in the niche removes a share lo + (hi - lo) x cos(mix_candidate, mix_j) of the
    remaining reach (10-40 % by default), so the factor is the product over earlier hires.

    Parameters
    ----------
    candidate_mix : (k, 12) category mixes of the candidates.
    earlier_mix : (h, 12) category mixes of the earlier hires in the same segment (h may be 0).
    same_niche : optional (k, h) booleans; where given, only earlier hires marked True count for a
        candidate (the environment passes "same segment" so one call serves every segment).
    unit : the mixes are already scaled to unit length (skips the normalisation).

    Returns
    -------
    (k,) factors in (0, 1]; 1 when there is no earlier hire.
    """
    cal = cal or Calibration()
    candidate_mix = np.atleast_2d(candidate_mix)
    earlier_mix = np.asarray(earlier_mix, dtype=float).reshape(-1, candidate_mix.shape[1])
    if len(earlier_mix) == 0:
        return np.ones(len(candidate_mix))
    a, b = candidate_mix, earlier_mix
    if not unit:
        a = a / np.linalg.norm(a, axis=1, keepdims=True)
        b = b / np.linalg.norm(b, axis=1, keepdims=True)
    lo, hi = cal.overlap_range
    kept = 1.0 - (lo + (hi - lo) * np.clip(a @ b.T, 0.0, 1.0))
    if same_niche is not None:
        kept = np.where(same_niche, kept, 1.0)
    return np.prod(kept, axis=1)
