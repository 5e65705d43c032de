"""Brand campaigns: who the brand is, what it wants, what it can spend and what an outcome is worth to it.

One campaign is one episode of the environment. :func:`sample_campaigns` draws many at once (arrays);
:func:`sample_campaign` draws one (scalars).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from envs.calibration import CATEGORIES, GOALS, MONTHS, Calibration
from envs.population import sample_audience

#: Average days per month, used to map a campaign week to a calendar month.
DAYS_PER_MONTH = 365.25 / 12


@dataclasses.dataclass(frozen=True)
class Campaign:
    """A brand campaign (fields are scalars for one campaign, arrays of length n for a batch).

    Attributes
    ----------
    category : index into :data:`~envs.calibration.CATEGORIES`, the brand's category.
    goal : index into :data:`~envs.calibration.GOALS` (awareness, engagement, conversion).
    target_audience : (12,) or (n, 12) shares over gender x age cells, adding to 1.
    annual_budget : the brand's annual influencer budget in USD.
    budget : what this campaign may spend in USD (``campaign_budget_share`` of the annual budget).
    order_value : average order value in USD (revenue per conversion).
    start_month : 0 (January) to 11 (December), the month of week 0.
    value_per_engagement : USD the brand gets from one engagement (engagement goal).
    value_per_1k_reach : USD the brand gets from 1,000 unique people reached (awareness goal).
    """

    category: np.ndarray | int
    goal: np.ndarray | int
    target_audience: np.ndarray
    annual_budget: np.ndarray | float
    budget: np.ndarray | float
    order_value: np.ndarray | float
    start_month: np.ndarray | int
    value_per_engagement: np.ndarray | float
    value_per_1k_reach: np.ndarray | float

    def __len__(self) -> int:
        return int(np.size(self.category))

    def take(self, i: int) -> Campaign:
        """Campaign ``i`` of a batch, with scalar fields."""
        return Campaign(
            category=int(np.asarray(self.category)[i]),
            goal=int(np.asarray(self.goal)[i]),
            target_audience=np.asarray(self.target_audience)[i].copy(),
            annual_budget=float(np.asarray(self.annual_budget)[i]),
            budget=float(np.asarray(self.budget)[i]),
            order_value=float(np.asarray(self.order_value)[i]),
            start_month=int(np.asarray(self.start_month)[i]),
            value_per_engagement=float(np.asarray(self.value_per_engagement)[i]),
            value_per_1k_reach=float(np.asarray(self.value_per_1k_reach)[i]),
        )

    def describe(self) -> str:
        """One line a marketer can read, e.g. 'beauty brand, conversion goal, $12,400 from Mar'."""
        return (
            f"{CATEGORIES[int(self.category)]} brand, {GOALS[int(self.goal)]} goal, "
            f"${float(self.budget):,.0f} budget from {MONTHS[int(self.start_month)]}"
        )


def sample_campaigns(n: int, rng: np.random.Generator, calibration: Calibration | None = None) -> Campaign:
    """Draw ``n`` brand campaigns from the calibrated market (array fields of length n).

    Budgets: an annual influencer budget from the published bins (log-uniform inside a bin), of which
    a campaign may spend ``campaign_budget_share``. Values of an engagement and of 1k reach are
    log-uniform in the benchmark ranges, one draw per brand.
    """
    cal = calibration or Calibration()
    category = cal.draw("brand_category_mix", rng, n)
    goal = cal.draw("goal_mix", rng, n)
    target = sample_audience(category, rng, cal, concentration=cal.target_concentration)
    edges = np.log(np.asarray(cal.budget_bin_edges))
    bins = cal.draw("budget_bin_shares", rng, n)
    annual = np.round(np.exp(rng.uniform(edges[bins], edges[bins + 1])), 2)
    order_value = cal.order_value_median * np.exp(cal.order_value_log_sd * rng.standard_normal(n))
    start_month = rng.integers(0, 12, size=n)
    vpe = _log_uniform(rng, cal.value_per_engagement_range, n)
    v1k = _log_uniform(rng, cal.value_per_1k_reach_range, n)
    return Campaign(
        category=category,
        goal=goal,
        target_audience=target,
        annual_budget=annual,
        budget=np.round(annual * cal.campaign_budget_share, 2),
        order_value=order_value,
        start_month=start_month,
        value_per_engagement=vpe,
        value_per_1k_reach=v1k,
    )


def sample_campaign(rng: np.random.Generator, calibration: Calibration | None = None) -> Campaign:
    """Draw one campaign (scalar fields): the same random draws, in the same order, as
    ``sample_campaigns(1, rng).take(0)`` (so the same campaign, up to floating-point rounding), on
    Python scalars: the environment draws one per reset."""
    cal = calibration or Calibration()
    category = int(cal.draw("brand_category_mix", rng))
    goal = int(cal.draw("goal_mix", rng))
    alpha = cal.target_concentration * cal.base_audience()[category]
    gammas = rng.standard_gamma(alpha)
    total = gammas.sum()
    target = gammas / total if total > 0 else alpha / alpha.sum()
    edges = cal.array("budget_bin_edges")
    b = int(cal.draw("budget_bin_shares", rng))
    annual = round(math.exp(rng.uniform(math.log(edges[b]), math.log(edges[b + 1]))), 2)
    order_value = cal.order_value_median * math.exp(cal.order_value_log_sd * rng.standard_normal())
    start_month = int(rng.integers(0, 12))
    vpe, v1k = (
        math.exp(rng.uniform(math.log(lo), math.log(hi)))
        for lo, hi in (cal.value_per_engagement_range, cal.value_per_1k_reach_range)
    )
    return Campaign(category=category, goal=goal, target_audience=target, annual_budget=annual,
                    budget=round(annual * cal.campaign_budget_share, 2), order_value=order_value,
                    start_month=start_month, value_per_engagement=vpe, value_per_1k_reach=v1k)  # fmt: skip


def month_of_week(start_month: int | np.ndarray, week: int | np.ndarray) -> np.ndarray:
    """Calendar month (0-11) of campaign week ``week`` (weeks start at 0 on the 1st of ``start_month``),
    as an array of the broadcast shape (0-d for scalars)."""
    return (np.asarray(start_month) + (np.asarray(week) * 7 // DAYS_PER_MONTH).astype(int)) % 12


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, ...], n: int) -> np.ndarray:
    lo, hi = np.log(bounds[0]), np.log(bounds[1])
    return np.exp(rng.uniform(lo, hi, size=n))
