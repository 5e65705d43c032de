"""Model-based evaluation per campaign: the candidate policy run in the market fitted to the logs.

The importance weights of a 26-week campaign are degenerate unless the candidate is close to the
logging policy, so per campaign the logs are used another way: to fit the market (issue 14,
:func:`experiments.market_fit.run_market_fit`), and then to say which campaigns to simulate.

1. **The fit** (:func:`fit_logged_market`): the logged offers (refusals included) give maximum-likelihood
   estimates of the outcome model with their covariance, and the predictive checks replay the logged
   offers under the fit. Offers whose facts the logs do not know (a newcomer of a churning market) are
   left out of the fit and counted.
2. **The simulated markets** (:func:`build_markets`). The *point market* (:func:`point_market`): the
   fit's estimate, the logs' options (pool, segments, offer levels, weeks, dynamics, churn) and the
   influencers' hidden columns at their posterior mean (:func:`hidden_posterior`): a joint normal
   posterior of every influencer's standardised response quality and log true engagement rate, from
   the priors the observables give (the list price, censored at the price floor, as
   :func:`envs.population.quality_given_price`; the observed rate, as the regression calibration of
   :func:`envs.fit.offers.offer_observables`) updated with the logged reach and engagements of the
   influencer's accepted offers. A campaign's value is linear in the response quality along a path, so
   the point market gives close to the posterior average without Monte Carlo noise. Then ``n_draws``
   markets (:func:`simulated_market`), each a calibration drawn from the fit's asymptotic normal
   (:meth:`envs.fit.MarketFit.draw_calibrations`) with the hidden columns drawn from their posterior
   under it. The simulator does not see the truth the logs were drawn from, only what a team could know.
   Only the outcomes are the fit's: the env's own estimate (the value per $ that ranks each segment's
   influencers and that the observation shows) stays the logs' declared market's
   (``estimate_calibration``), as the logged contexts were computed.
3. **The campaigns** (:class:`LoggedCampaigns`): every logged campaign's brand category, goal, budget
   and start month are read from its first decision's context (the log format's context columns). What
   the logs do not hold is inferred where the outcomes pin it down and drawn from the calibration
   otherwise: the order value from the ``order_value`` offer fact or revenue / conversions; the value
   of an engagement (engagement goal) and of 1k reach (awareness goal) from the logged ``value`` of an
   accepted offer divided by its engagements or reach (and the known calendar factors); the target
   audience is never logged and is always drawn (around the brand category's audience), as are the
   values of campaigns that hired nobody. :attr:`LoggedCampaigns.notes` counts each case.
4. **The simulation** (:func:`simulate_target`): a pilot path of every logged campaign in the point
   market, then ``n_simulations`` fresh paths allocated by the pilot (:mod:`experiments.ope.paths`: at
   least one per campaign, more where the value, and so its path noise, is large; the unlogged fields
   drawn anew on every path). A campaign's value on a path is its expected return along it
   (``sum_t sum_a pi(a|x_t) q(x_t, a)``, as the truth of :mod:`experiments.ope.truth` is defined). A few
   campaigns carry most of the value on these markets (for ``best_fit`` 1 % of 3,000 carry 61 %), so
   simulating every campaign, and those more often, is what makes the estimate precise.

**The estimate and its interval** (:meth:`ModelBasedValues.summary`). The estimate is the mean over the
logged campaigns of their fresh paths' mean. Its variance adds three parts: the parameter and
hidden-quality uncertainty, ``(estimate x sd_d(T_d / T_0))^2``, where ``T_d`` is the total of the
``n_subset`` campaigns with the largest pilots under draw ``d``, run with the pilot's reset seeds,
action draws and fields (common random numbers), and ``T_0`` their pilot total (what the common random
numbers do not hold of the path noise is left in, so this part is conservative); the simulation noise
of the mean, ``sum_c s_c^2 / r_c / C^2`` (``s_c^2`` a path's variance, ``r_c`` the campaign's paths);
and the noise of the logged campaigns' own unlogged fields and paths, ``sum_c s_c^2 / C^2``. The
interval is normal at the configured level. What the interval does not hold is the misfit of the model
itself (parameters the fit holds at their defaults, a market the outcome model cannot describe); the
predictive checks flag what they can of it, and ``influmatch ope-backtest`` measures it.

**Model-based DR** (:func:`model_based_q`): the same simulations give, at every simulated decision,
``Q(x_t, a_t) = q(x_t, a_t) + sum_{s > t} sum_a pi(a|x_s) q(x_s, a)`` (the fitted market's expected
reward and the target's continuation value); one gradient-boosting regressor on the context, the week
and the action's features (:class:`~experiments.ope.models.ActionFeatures`) turns them into
``Q_hat(x, a)`` at the logged contexts, and ``V_hat(x) = sum_a pi(a|x) Q_hat(x, a)``, the Q-model of
the step-wise DR estimator (``MB-DR`` in :mod:`experiments.ope.estimators`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from envs.calibration import Calibration
from envs.campaigns import Campaign
from envs.observation import FeatureSpec, find
from envs.outcomes import AWARENESS, ENGAGEMENT
from envs.population import InfluencerPool, sample_audience
from experiments.ope.config import DEFAULT_CONFIG, OPEConfig
from experiments.ope.logs import INFLUENCER, LoggedData
from experiments.ope.models import ActionFeatures, _needed_pairs, _regressor
from experiments.ope.policies import StochasticPolicy, make_env
from experiments.ope.posterior import HiddenPosterior, hidden_posterior, quality_posterior

__all__ = [
    "FittedMarket",
    "HiddenPosterior",
    "LoggedCampaigns",
    "ModelBasedValues",
    "fit_logged_market",
    "hidden_posterior",
    "model_based_q",
    "quality_posterior",
    "simulate_target",
    "simulated_market",
]

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------ fit
@dataclasses.dataclass(frozen=True, eq=False)
class FittedMarket:
    """The market fitted to logs, and what the simulated markets are built from.

    Attributes
    ----------
    run : experiments.market_fit.MarketFitRun
        The fit (``run.fit``, a :class:`envs.fit.MarketFit`), its predictive checks and offers table.
    env_options : dict
        The logs' environment options (the simulated markets take them, with another calibration).
    pool : InfluencerPool
        The logs' influencers (their observable columns are used).
    n_left_out : int
        Offers left out of the fit (an influencer outside the pool or offer facts the logs leave empty).
    calibrations : list of Calibration
        The parameter draws, one simulated market each.
    """

    run: Any
    env_options: dict
    pool: InfluencerPool
    n_left_out: int
    calibrations: list[Calibration]

    @property
    def fit(self) -> Any:
        return self.run.fit

    def flagged_share(self) -> float:
        """Share of the predictive checks (with enough offers) whose logged value is outside the model's
        95 % interval."""
        checks = self.run.checks
        checked = checks[checks["verdict"] != "too few offers"]
        if checked.empty:
            return math.nan
        return float(checked["verdict"].str.startswith("logged").mean())

    def checks_pass(self, max_flagged_share: float) -> bool:
        """At most ``max_flagged_share`` of the checks flag (False when nothing could be checked)."""
        share = self.flagged_share()
        return bool(share <= max_flagged_share) if not math.isnan(share) else False


def _fittable_rows(data: LoggedData, pool: InfluencerPool) -> np.ndarray:
    """Decisions the fit can use: waits, and offers to influencers of the pool with every logged offer fact."""
    offer = data.action != data.n_actions - 1
    ok = ~offer
    ids = data.outcomes.get(INFLUENCER)
    known = np.ones(data.n_decisions, bool)
    if ids is not None:
        known = pd.Index(pool.influencer_id.astype(str)).get_indexer(ids.astype(str)) >= 0
    facts = np.ones(data.n_decisions, bool)
    for values in data.offer_facts.values():
        facts &= np.isfinite(values)
    return np.flatnonzero(ok | (offer & known & facts))


def fit_logged_market(
    data: LoggedData, env: Any, env_options: dict, config: OPEConfig = DEFAULT_CONFIG
) -> FittedMarket:
    """Fit the market to the logs (the influencers of ``env``, the logs' environment) and draw
    ``config.n_draws`` calibrations from the fit.

    Raises
    ------
    experiments.market_fit.FitInputError, envs.fit.OffersValidationError, envs.fit.MarketFitError
        Logs the fit cannot use (no outcome columns, too few offers), or a fit that does not converge.
    """
    from experiments.market_fit import run_market_fit

    fit_rng, _ = config.model_streams()
    pool = env.unwrapped.pool
    rows = _fittable_rows(data, pool)
    used = data if len(rows) == data.n_decisions else data.subset(rows)
    run = run_market_fit(used, pool, fit_rng, n_sims=config.n_check_simulations,
                         engagement_clusters=config.engagement_clusters, fit_slopes=config.fit_slopes)  # fmt: skip
    calibrations = run.fit.draw_calibrations(config.n_draws, fit_rng)
    return FittedMarket(run, dict(env_options), pool, data.n_decisions - len(rows), calibrations)


def simulated_market(fitted: FittedMarket, calibration: Calibration, rng: np.random.Generator) -> Any:
    """An environment of the logs' options with ``calibration`` and the logs' influencers, their hidden
    columns drawn from what the observables and the logged outcomes say under ``calibration``
    (:func:`hidden_posterior`)."""
    true_rate, quality = hidden_posterior(fitted.run.offers, fitted.pool, calibration).draw(calibration, rng)
    return _market_of(fitted, calibration, true_rate, quality)


def point_market(fitted: FittedMarket) -> Any:
    """The market at the fit's estimate with every influencer's hidden columns at their posterior mean
    (:meth:`HiddenPosterior.point`: the response quality ``E[q]`` and the true engagement rate
    ``E[q ER] / E[q]``): a campaign's value is linear in the response quality along a path, so this
    market's values are close to those averaged over the posterior, without its Monte Carlo noise."""
    calibration = fitted.fit.calibration
    true_rate, quality = hidden_posterior(fitted.run.offers, fitted.pool, calibration).point(calibration)
    return _market_of(fitted, calibration, true_rate, quality)


def _market_of(
    fitted: FittedMarket, calibration: Calibration, true_rate: np.ndarray, quality: np.ndarray
) -> Any:
    """The logs' market with the outcomes of ``calibration`` and these hidden columns. The env's own
    estimate (the value per $ that ranks each segment's influencers and that the observation shows)
    stays the logs' declared market's, as the logged contexts were computed: a fitted outcome model
    changes what happens to an offer, not which influencer an action reaches or what the policy sees.
    (Ranking by the fit's estimate credits a value-per-$ policy with the fit's own noise: +5.5 % against
    +1.7 % on a goal-grid scenario.)"""
    options = fitted.env_options
    declared = options.get("estimate_calibration")
    if declared is None:
        declared = options.get("calibration")
    simulated = dataclasses.replace(fitted.pool, true_engagement_rate=true_rate, response_quality=quality)
    return make_env({**options, "pool": simulated, "calibration": calibration,
                     "estimate_calibration": Calibration() if declared is None else declared})  # fmt: skip


# ------------------------------------------------------------------------------------ campaigns
@dataclasses.dataclass(frozen=True, eq=False)
class LoggedCampaigns:
    """What the logs say about every logged campaign (arrays of length C; NaN where not logged).

    ``category``, ``goal``, ``budget`` (USD) and ``start_month`` are read from the first decision's
    context; ``order_value``, ``value_per_engagement`` and ``value_per_1k_reach`` (USD) are inferred
    from the outcomes where they pin them down (see the module docstring). :meth:`draw` completes them.
    ``notes`` counts, per field, the campaigns where it was read, inferred or drawn.
    """

    category: np.ndarray
    goal: np.ndarray
    budget: np.ndarray
    start_month: np.ndarray
    order_value: np.ndarray
    value_per_engagement: np.ndarray
    value_per_1k_reach: np.ndarray
    notes: dict[str, str]

    def __len__(self) -> int:
        return len(self.category)

    def draw(self, index: np.ndarray, rng: np.random.Generator, cal: Calibration) -> list[Campaign]:
        """Campaigns ``index`` with what the logs do not say drawn from ``cal`` (the target audience
        always; the order value and the values of an engagement and of 1k reach where not inferred)."""
        index = np.asarray(index, dtype=np.int64)
        m = len(index)
        category = self.category[index]
        audience = sample_audience(category, rng, cal, concentration=cal.target_concentration)
        order_value = cal.order_value_median * np.exp(cal.order_value_log_sd * rng.standard_normal(m))
        vpe = _log_uniform(rng, cal.value_per_engagement_range, m)
        v1k = _log_uniform(rng, cal.value_per_1k_reach_range, m)
        order_value = np.where(np.isnan(self.order_value[index]), order_value, self.order_value[index])
        vpe = np.where(np.isnan(self.value_per_engagement[index]), vpe, self.value_per_engagement[index])
        v1k = np.where(np.isnan(self.value_per_1k_reach[index]), v1k, self.value_per_1k_reach[index])
        budget = self.budget[index]
        return [
            Campaign(
                category=int(category[k]),
                goal=int(self.goal[index[k]]),
                target_audience=audience[k],
                annual_budget=float(budget[k] / cal.campaign_budget_share),
                budget=float(budget[k]),
                order_value=float(order_value[k]),
                start_month=int(self.start_month[index[k]]),
                value_per_engagement=float(vpe[k]),
                value_per_1k_reach=float(v1k[k]),
            )
            for k in range(m)
        ]


def _log_uniform(rng: np.random.Generator, bounds: Sequence[float], n: int) -> np.ndarray:
    return np.exp(rng.uniform(math.log(bounds[0]), math.log(bounds[1]), size=n))


def _one_hot_index(context: np.ndarray, specs: Sequence[FeatureSpec], field: str) -> np.ndarray:
    columns = [j for j in find(specs, field) if specs[j].kind == "one_hot"]
    return context[:, columns].argmax(axis=1)


def logged_campaigns(data: LoggedData, env: Any) -> LoggedCampaigns:
    """Read and infer what the logs say about their campaigns (see :class:`LoggedCampaigns`), in the
    logs' environment ``env`` (its feature specs, pool, calendar and deadline)."""
    unwrapped = env.unwrapped
    specs = unwrapped.feature_specs
    first = data.campaign_first_rows()
    context = data.context[first]
    category = _one_hot_index(context, specs, "brand_category")
    goal = _one_hot_index(context, specs, "goal")
    budget = np.round(10.0 ** context[:, find(specs, "log10_budget")[0]], 2)
    start_month = np.rint(context[:, find(specs, "month")[0]]).astype(np.int64) % 12
    C = data.n_campaigns
    order_value = _per_campaign_first(data, data.offer_facts.get("order_value"))
    if "revenue" in data.outcomes and "conversions" in data.outcomes:
        revenue, conversions = (
            data.per_campaign(data.outcomes["revenue"]),
            data.per_campaign(data.outcomes["conversions"].astype(float)),
        )
        from_revenue = np.divide(revenue, conversions, out=np.full(C, np.nan), where=conversions > 0)
        order_value = np.where(np.isnan(order_value), from_revenue, order_value)
    vpe, v1k = _brand_values(data, unwrapped, category, goal)
    notes = {
        "category, goal, budget, start month": f"read from the context of all {C} campaigns",
        "target audience": f"not logged: drawn for all {C} campaigns around the brand category's audience",
    }
    for name, values, applies in (("order value", order_value, np.ones(C, bool)),
                                  ("value per engagement", vpe, goal == ENGAGEMENT),
                                  ("value per 1k reach", v1k, goal == AWARENESS)):  # fmt: skip
        known = int(np.isfinite(values[applies]).sum())
        notes[name] = (
            f"inferred for {known} of {int(applies.sum())} campaigns it matters to, drawn for the rest"
        )
    return LoggedCampaigns(category, goal, budget, start_month, order_value, vpe, v1k, notes)


def _per_campaign_first(data: LoggedData, values: np.ndarray | None) -> np.ndarray:
    """Each campaign's first finite value of a per-decision column (NaN where none)."""
    out = np.full(data.n_campaigns, np.nan)
    if values is None:
        return out
    rows = np.flatnonzero(np.isfinite(values))[::-1]
    out[data.campaign[rows]] = values[rows]  # the last write is the campaign's first finite row
    return out


def _brand_values(data: LoggedData, env: Any, category: np.ndarray, goal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(value per engagement, value per 1k reach) of every campaign, from the ``value`` of its accepted
    offers (the median over them) divided by what earned it; NaN where the logs cannot tell."""
    C = data.n_campaigns
    vpe, v1k = np.full(C, np.nan), np.full(C, np.nan)
    needed = ("value", "engagements", "reach", "accepted", INFLUENCER)
    if any(k not in data.outcomes for k in needed):
        return vpe, v1k
    cal, pool = env.calibration, env.pool
    month = np.rint(data.context[:, find(env.feature_specs, "month")[0]]).astype(np.int64) % 12
    demand = np.asarray(cal.category_month_demand) if env.dynamics == "v1" else np.ones((12, 12))
    c = data.campaign
    factor = (
        demand[category[c], month]
        * np.array([env.value_factor(int(t)) for t in range(data.horizon)])[data.step]
    )
    where = pd.Index(pool.influencer_id.astype(str)).get_indexer(data.outcomes[INFLUENCER].astype(str))
    platform = np.where(where >= 0, pool.platform[np.maximum(where, 0)], 0)
    multiplier = np.asarray(cal.platform_reach_value_multiplier, dtype=float)[platform]
    value = data.outcomes["value"]
    accepted = (data.outcomes["accepted"] == 1) & (factor > 0)
    for out, wanted, count, scale in (
        (vpe, ENGAGEMENT, data.outcomes["engagements"].astype(float), np.ones(data.n_decisions)),
        (v1k, AWARENESS, data.outcomes["reach"] / 1000.0, multiplier * (where >= 0)),
    ):
        usable = accepted & (goal[c] == wanted) & (count * scale > 0)
        ratio = value[usable] / (count[usable] * scale[usable] * factor[usable])
        frame = pd.DataFrame({"campaign": c[usable], "ratio": ratio}).groupby("campaign")["ratio"].median()
        out[frame.index.to_numpy()] = frame.to_numpy()
    return vpe, v1k


# ----------------------------------------------------------------------------------- simulation
@dataclasses.dataclass(frozen=True, eq=False)
class ModelBasedValues:
    """The simulated campaigns of the model-based estimate.

    Attributes
    ----------
    value, path_variance, paths : numpy.ndarray, shape (C,)
        Every logged campaign's mean value over its fresh paths in the point market (thousands of USD),
        the variance of one path around it, and its number of paths
        (:class:`experiments.ope.paths.CampaignValues`).
    pilot : numpy.ndarray, shape (C,)
        The pilot path's value of every campaign (allocates the paths; the reference of the draws).
    subset, subset_weight : numpy.ndarray, shape (k,)
        The campaigns simulated under every parameter draw (those with the largest pilot values), and
        the weight of each in their total (1).
    draw_values : numpy.ndarray, shape (n_draws, k)
        The subset's values under each draw, with the pilot's reset seeds, action draws and campaign
        fields (common random numbers).
    n_campaigns, n_draws : int
    steps : dict of str to numpy.ndarray
        Every decision of the fresh paths (``context``, ``step``, ``action``, ``q``: the fitted market's
        expected reward of the action taken plus the target's continuation value, thousands of USD), for
        :func:`model_based_q`.
    """

    value: np.ndarray
    path_variance: np.ndarray
    paths: np.ndarray
    pilot: np.ndarray
    subset: np.ndarray
    subset_weight: np.ndarray
    draw_values: np.ndarray
    n_campaigns: int
    n_draws: int
    steps: dict[str, np.ndarray]

    def relative_spread(self, member: np.ndarray) -> float:
        """Standard deviation over the draws of the (stratified) total of the subset's members under a
        draw relative to its total in the pilot: the relative parameter and hidden-quality uncertainty."""
        keep = np.asarray(member)[self.subset] > 0
        weight = self.subset_weight * keep
        reference = float(weight @ self.pilot[self.subset])
        if keep.sum() < 2 or not abs(reference) > 0:
            return math.nan
        ratios = (self.draw_values @ weight) / reference
        return float(np.std(ratios, ddof=1))

    def summary(self, member: np.ndarray, confidence: float) -> tuple[float, float, float, float]:
        """(estimate, low, high, standard error) over the logged campaigns with ``member > 0`` (see the
        module docstring); NaNs when there are none."""
        from scipy.stats import norm

        keep = np.asarray(member) > 0
        n = int(keep.sum())
        if n == 0:
            return (math.nan,) * 4
        estimate = float(self.value[keep].mean())
        spread = self.relative_spread(member)
        if math.isnan(spread):
            spread = self.relative_spread(np.ones(self.n_campaigns))
        spread = 0.0 if math.isnan(spread) else spread
        path_variance = self.path_variance[keep]
        simulation = float((path_variance / self.paths[keep]).sum()) / n**2
        logged = float(path_variance.sum()) / n**2
        se = math.sqrt((estimate * spread) ** 2 + simulation + logged)
        z = float(norm.ppf(0.5 + confidence / 2))
        return estimate, estimate - z * se, estimate + z * se, se


def _subset(pilot: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The campaigns of the draws: the ``size`` with the largest ``|pilot|`` (they carry most of the
    value on these markets; a random stratum with weight ``C / size`` made the draws' ratios noisier
    than the parameters are uncertain), each of weight 1."""
    order = np.argsort(-np.abs(pilot), kind="stable")[: min(size, len(pilot))]
    return np.sort(order), np.ones(len(order))


def simulate_target(
    fitted: FittedMarket,
    campaigns: LoggedCampaigns,
    policy: StochasticPolicy,
    config: OPEConfig = DEFAULT_CONFIG,
    *,
    markets: Sequence[Any] | None = None,
) -> ModelBasedValues:
    """Run ``policy`` on the logged campaigns in the simulated markets (see the module docstring).

    ``markets`` are those of :func:`build_markets` (the point market first, then one per draw of
    ``fitted.calibrations``; built here when not given: about a second each, so several targets share
    them).
    """
    from experiments.ope.paths import campaign_values, path_values

    _, rng = config.model_streams()
    if markets is None:
        markets = build_markets(fitted, config)
    point, draws = markets[0], markets[1:]
    C = len(campaigns)
    everyone = np.arange(C)
    # The pilot: one path per campaign in the point market (fields drawn once, kept for the draws).
    fields = campaigns.draw(everyone, rng, point.unwrapped.calibration)
    reset_seeds = rng.integers(0, 2**31 - 1, size=C).tolist()
    streams = np.random.SeedSequence(int(rng.integers(2**63))).spawn(C)
    pilot, _, _ = path_values(point, policy, fields, reset_seeds, streams)
    # The estimate: fresh paths allocated by the pilot, each with its own draw of the unlogged fields.
    fresh_seed = np.random.SeedSequence(int(rng.integers(2**63)))
    field_rng = np.random.default_rng(np.random.SeedSequence(int(rng.integers(2**63))))
    cal = point.unwrapped.calibration
    repeated = campaign_values(point, policy, _FreshFields(campaigns, field_rng, cal), pilot,
                               max(1.0, config.n_simulations / C), fresh_seed, keep_steps=True)  # fmt: skip
    # The uncertainty: the subset under every draw, with the pilot's seeds, action draws and fields.
    subset, weight = _subset(pilot, config.n_subset)
    chosen = [fields[c] for c in subset]
    draw_values = np.stack([
        path_values(env, policy, chosen, [reset_seeds[c] for c in subset], [streams[c] for c in subset])[0]
        for env in draws
    ]) if draws else np.zeros((0, len(subset)))  # fmt: skip
    steps = repeated.steps
    per_step = (steps["probabilities"] * steps["expected_rewards"]).sum(axis=1)
    q = _q_targets({**steps, "campaign": steps["path"]}, per_step)
    return ModelBasedValues(
        value=repeated.value, path_variance=repeated.path_variance, paths=repeated.paths, pilot=pilot,
        subset=subset, subset_weight=weight, draw_values=draw_values, n_campaigns=C, n_draws=len(draws),
        steps=q,
    )  # fmt: skip


class _FreshFields:
    """Logged campaigns with their unlogged fields drawn anew for every path (a sequence over paths is
    not known in advance, so :func:`experiments.ope.paths.campaign_values` asks by index)."""

    def __init__(self, campaigns: LoggedCampaigns, rng: np.random.Generator, cal: Calibration) -> None:
        self.campaigns, self.rng, self.cal = campaigns, rng, cal

    def __call__(self, index: np.ndarray) -> list[Campaign]:
        return self.campaigns.draw(index, self.rng, self.cal)


def build_markets(fitted: FittedMarket, config: OPEConfig = DEFAULT_CONFIG) -> list[Any]:
    """The point market (the fit's estimate, every hidden column at its posterior mean), then the
    markets of ``fitted``'s draws (hidden columns drawn from their posterior)."""
    rng = np.random.default_rng(np.random.SeedSequence([config.random_state, 15, 1]))
    point = point_market(fitted)
    return [point, *(simulated_market(fitted, cal, rng) for cal in fitted.calibrations)]


def _q_targets(sim: dict[str, np.ndarray], per_step: np.ndarray) -> dict[str, np.ndarray]:
    """Every simulated decision with ``q``: expected reward of the action taken plus the value to go
    after it (the target's expected rewards of the later weeks of the same campaign)."""
    campaign = sim["campaign"]
    totals = np.bincount(campaign, weights=per_step)
    through = np.cumsum(per_step) - np.r_[0.0, np.cumsum(totals)][campaign]  # value up to and incl. t
    after = totals[campaign] - through
    taken = sim["expected_rewards"][np.arange(len(campaign)), sim["action"]]
    return {"context": sim["context"], "step": sim["step"], "action": sim["action"], "q": taken + after}


def model_based_q(
    data: LoggedData,
    target_probs: np.ndarray,
    values: ModelBasedValues,
    features: ActionFeatures,
    config: OPEConfig = DEFAULT_CONFIG,
) -> tuple[np.ndarray, np.ndarray]:
    """``(Q_hat(x_i, a_i), V_hat(x_i))`` at every logged decision from the simulated decisions (see the
    module docstring), thousands of USD to the end of the campaign."""
    from threadpoolctl import threadpool_limits

    _, _, seed = config.streams()
    steps = values.steps
    with threadpool_limits(config.n_threads):
        model = _regressor(config, seed + 7).fit(
            features.design(steps["context"].astype(np.float64), steps["step"], steps["action"]), steps["q"]
        )
        rows, actions = _needed_pairs(data, target_probs, np.arange(data.n_decisions))
        q = model.predict(features.design(data.context[rows], data.step[rows], actions))
    v_hat = np.bincount(rows, weights=target_probs[rows, actions] * q, minlength=data.n_decisions)
    q_logged = np.zeros(data.n_decisions)
    logged = actions == data.action[rows]
    q_logged[rows[logged]] = q[logged]
    return q_logged, v_hat
