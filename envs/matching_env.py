"""``influmatch/InfluencerMatching-v1`` (and ``-v0``): one brand's influencer campaign as a gymnasium
environment."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs import _kernels
from envs.calibration import MONTHS, POPULATION_MODES, Calibration
from envs.campaigns import Campaign, month_of_week, sample_campaign
from envs.observation import observation_specs
from envs.outcomes import (
    AWARENESS,
    CONVERSION,
    ENGAGEMENT,
    SPONSORED_POST_LOAD,
    FitFreeRates,
    brand_value,
    burn_followers,
    expected_counts,
    fit_free_rates,
    load_decay_factor,
    overlap_factor,
    post_noise_means,
    value_coefficients,
    value_scale,
)
from envs.population import InfluencerPool
from matching.profiles import segment_profiles
from matching.segmentation import InfluencerSegmenter

#: Keys of :meth:`InfluencerMatchingEnv.expected_outcomes` besides ``reward``.
_EXPECTED_KEYS = (
    "accept_probability",
    "reach",
    "engagements",
    "clicks",
    "conversions",
    "revenue",
    "value",
    "cost",
)

#: Fields of the campaign state that a week changes (what :meth:`InfluencerMatchingEnv.fork` copies).
_WEEKLY_ARRAYS = (
    "consts", "hired", "prefix", "complete", "candidate", "terms", "expected", "mask", "hires",
    "hired_array", "hired_segment", "hired_load", "observation",
)  # fmt: skip

#: Days per environment step.
DAYS_PER_STEP = 7

#: ``info["outcome"]`` of a step that made no offer (a wait, an invalid action) and of ``reset``: the
#: keys and types of an offer's outcome, with nobody approached and nothing happening.
NO_OFFER: dict[str, Any] = {
    "influencer_id": "",
    "segment": -1,
    "offer_ratio": 0.0,
    "accepted": False,
    "reach": 0,
    "engagements": 0,
    "clicks": 0,
    "conversions": 0,
    "cost": 0.0,
    "revenue": 0.0,
    "value": 0.0,
}

#: Size of the ``rgb_array`` frame: height and width in pixels of one bar, and the margin around bars.
_BAR_HEIGHT, _BAR_WIDTH, _MARGIN = 10, 160, 4
_COLOURS = {
    "background": (24, 24, 32),
    "track": (60, 60, 72),
    "budget": (80, 200, 120),
    "weeks": (90, 150, 230),
    "hires": (240, 160, 60),
}

#: The market's dynamics: ``"v0"`` (InfluencerMatching-v0, the calendar of month effects only) and
#: ``"v1"`` (InfluencerMatching-v1: brand-category demand by month, creators booking up ahead of the
#: holidays, sponsored loads recovering over the weeks).
DYNAMICS: tuple[str, ...] = ("v0", "v1")


#: Ranked candidates kept per segment and offer level (cut again from the ranked list when used up).
PREFIX = 16

#: Influencers of each segment ranked at the start of a campaign (whatever their price), from which every
#: level's prefix is cut; when the list has nothing left for a level, the prefix is refilled from the
#: segment's members sorted by price.
RANK_DEPTH = 4 * PREFIX


@dataclasses.dataclass
class _Market:
    """What stays fixed for the life of an environment: the pool, the newcomers who may join, the
    segmentation and brand-independent precomputations. Shared (not copied) by ``copy.deepcopy``."""

    pool: InfluencerPool  # incumbents first, then the reservoir of possible newcomers
    n_incumbents: int
    segment: np.ndarray  # (n_total,) segment of every influencer (newcomers: the fitted model's predict)
    by_price: np.ndarray  # (n_total,) influencer indices grouped by segment, by list price (then index)
    segment_start: np.ndarray  # (S + 1,) where each segment's group starts in by_price
    sorted_price: np.ndarray  # (n_total,) list prices aligned with by_price
    segmenter: InfluencerSegmenter
    profiles: Any  # DataFrame of segment profiles
    expected_fake_share: np.ndarray  # what a marketer can assume about fakes: the tier's mean
    sqrt_audience: np.ndarray  # (n_total, 12)
    category_share: np.ndarray  # (12, n_total) category mixes, one contiguous row per brand category
    mix_unit: np.ndarray  # (n_total, 12) category mixes scaled to unit length (for audience overlap)
    reach_value: np.ndarray  # (n_total,) platform multiplier of the value of reach
    true_rates: np.ndarray  # (4, n_total) FitFreeRates fields, hidden truth at the pool's followers and load
    value_coef: np.ndarray  # (3, 2, n_total) estimated value per dollar, see _value_per_dollar_coefficients
    load_sum: np.ndarray  # (S,) background sponsored load of each segment's incumbents
    load_count: np.ndarray  # (S,) incumbents per segment
    rank_bound: np.ndarray  # (3, n_total) per goal: upper bound of value per dollar / scale, any campaign
    rank_order: np.ndarray  # (3, n_total) per goal: indices by segment (segment_start), by rank_bound desc


@dataclasses.dataclass
class _State:
    """Everything that changes during a campaign (deep-copied by ``copy.deepcopy``)."""

    campaign: Campaign
    month_list: list[int]  # calendar month of every week of the campaign (and the one after)
    category_share: np.ndarray  # (n_total,) everyone's category mix at the brand's category
    week: int
    budget_left: float
    premium: float
    rates: np.ndarray  # (4, n_total) fit-free true rates (the market's, or this campaign's if persistent)
    load: np.ndarray  # (n_total,) sponsored load at the campaign's start
    consts: np.ndarray  # calibration and campaign scalars for the kernels (see envs._kernels)
    value_per_dollar: np.ndarray  # (n_total,) estimated from observables only: the ranking key
    fit: np.ndarray  # (n_total,) brand fit from observables (category mix and audience)
    join: np.ndarray  # (n_total,) first week each influencer is in the pool (never = weeks + 1)
    leave: np.ndarray  # (n_total,) week each influencer leaves
    hired: np.ndarray  # (n_total,) bool
    ranked: np.ndarray  # (S, RANK_DEPTH) each segment's best by value per dollar at the start, -1 = pad
    n_eligible: np.ndarray  # (S,) how many of each segment could be hired at the start
    prefix: np.ndarray  # (S, K, PREFIX) best "could still be valid" influencers per action, -1 = empty
    complete: np.ndarray  # (S, K) the prefix holds every influencer that could still be valid
    candidate: np.ndarray  # (S, K) influencer each hire action approaches now, -1 = invalid action
    terms: np.ndarray  # (S * K, N_TERMS) this week's outcome terms per hire action (columns: envs._kernels)
    expected: np.ndarray  # (S * K + 1,) this week's expected reward per action
    mask: np.ndarray  # (S * K + 1,) this week's valid actions
    hires: np.ndarray  # (S,) hires per segment
    hired_index: list[int]  # every hire, in order
    hired_array: np.ndarray  # (weeks,) the same, preallocated (first len(hired_index) entries)
    hired_segment: np.ndarray  # (weeks,) segment of every hire
    hired_load: np.ndarray  # (weeks,) sponsored load our hires added, per hire (decays)
    observation: np.ndarray  # the campaign's constant features, filled in; the rest is set per step
    load_sum: np.ndarray  # (weeks, S) background sponsored load of each week's members, per segment
    load_count: np.ndarray  # (weeks, S) members of each segment each week
    followers: np.ndarray | None  # persistent market only: followers after reputation burn
    extra_load: np.ndarray | None  # persistent market only: load added by hires, per influencer
    spent: float = 0.0
    total_reward: float = 0.0
    last_outcome: dict | None = None


class InfluencerMatchingEnv(gym.Env):
    """A brand's influencer campaign, one step per week.

    ## Description

    A brand runs a campaign of ``campaign_weeks`` weeks with a fixed budget. Every week it may offer one
    deal: it picks a segment of influencers (segments come from k-means on observable features, see
    :mod:`matching.segmentation`) and an offer level (a multiple of the influencer's list price), or it
    waits. The environment then offers the deal to the *best available influencer of that segment*:
    among influencers of the segment who are in the pool this week, were not hired earlier in this
    campaign and whose offer the remaining budget can pay, the one with the highest *estimated value per
    dollar* for this brand. The estimate uses observable features only (followers, observed engagement,
    price, category mix, audience, sponsored load, and the tier's average fake share); the outcome is
    drawn from the hidden truth (true engagement, actual fake share). The influencer accepts or refuses
    (a refusal costs nothing but the week); an accepted deal produces reach, engagements, clicks and
    conversions, as in :mod:`envs.outcomes`, with the numbers of ``docs/calibration.md`` (the fields of
    :class:`~envs.calibration.Calibration`).

    Dynamics within a campaign: acceptance, engagement, conversions and prices follow the calendar month
    (November and December: more refusals (``acceptance_month_shift``), +12 % prices
    (``price_month_premium``), more conversions (``month_conversion``)); a hire's unique reach shrinks by
    10-40 % (``overlap_range``) for every earlier hire in the same segment (audience overlap); the pool
    churns weekly (``churn_rate`` of influencers leave and as many newcomers join, segmented by the fitted
    model); a hired influencer's sponsored load rises by 1, halving every 14 days
    (``load_half_life_days``), and its followers fall by 0.19 % (``reputation_burn``). These updates are
    :func:`envs.outcomes.load_decay_factor`, :data:`envs.outcomes.SPONSORED_POST_LOAD` and
    :func:`envs.outcomes.burn_followers`. Under v0 the background sponsored load of other influencers is
    stationary. With ``persistent_market=True`` loads and followers carry over from one campaign to the
    next.

    The calendar of v1 (``dynamics="v1"``, registered as ``InfluencerMatching-v1``), which makes the
    time of a hire matter:

    * demand for the brand's category by month (``category_month_demand``) multiplies conversions and
      the value of reach and engagement: fitness peaks in January, travel in the first half of the
      year, beauty, fashion, family, gaming and tech in November and December;
    * creators book up ahead of the holidays (``booking_month_shift``, ``booking_month_premium``):
      refusals and prices rise from September, not only in the peak, and January is slack;
    * a candidate's sponsored load recovers towards the pool's mean with ``load_half_life_days``
      (``load_recovers``), so acceptance and engagement improve for a fatigued candidate who is left
      alone for a few weeks;
    * optionally, a deadline (``deadline_week``): a post from that week on is worth
      ``deadline_decay ** (week - deadline_week + 1)`` of its value, for every goal;
    * optionally, a product launch (``launch_week``): a post before that week is worth
      ``prelaunch_value`` of its value, for every goal (teasers build some awareness, but nothing can be
      bought yet), so the best time to hire is the launch, not the campaign's first week.

    ## Action Space

    ``Discrete(S * K + 1)`` with S = ``n_segments`` and K = ``len(offer_levels)``. Action ``a < S*K``
    offers ``offer_levels[a % K]`` x list price to the best available influencer of segment ``a // K``;
    action ``S*K`` waits a week. ``action_names`` gives readable names ("seg 3 · micro · instagram ·
    beauty · 1.0×", "wait"); ``action_masks()`` marks valid actions (a hire action is valid when its
    segment has an influencer the budget can pay at that offer level). An invalid action is a no-op that
    wastes the week.

    ## Observation Space

    ``Box(float32)`` of ``12 + 3 + 3 + 1 + 4 S`` values, named in ``feature_names``: the brand category
    (one-hot, 12), the goal (one-hot, 3), log10 of the campaign budget in USD, the share of the budget
    left, the share of weeks left, the month (0 = January .. 11), and per segment: the best candidate's
    estimated value per dollar (at list price, from observables), hires from that segment so far, the
    segment's mean sponsored load, and whether anything in it is affordable (0/1).

    ## Rewards

    (value - cost) of the week's deal in thousands of USD, where value depends on the campaign goal:
    revenue (conversions x order value) for conversion, engagements x the brand's value per engagement
    for engagement, unique reach / 1000 x the brand's value per 1k reach for awareness. Waiting, refusals
    and invalid actions earn 0. The episode return is the campaign's net value. ``info["expected_rewards"]``
    holds the exact expected reward of every action in the current state (hidden truth, for oracles and
    evaluation; it is not part of the observation).

    ## Starting State

    ``reset`` draws a brand campaign (category, target audience, goal, budget, order value, start month,
    values of an engagement and of 1k reach) from the calibrated market, decides the churn of the
    campaign (who leaves, which newcomers join and when), and ranks every segment's influencers for the
    brand. The pool itself is built once, at construction (``pool`` or ``n_influencers`` generated with
    ``market_seed``), and segmented there.

    ## Episode End

    Terminated when no hire action is valid (nothing affordable at any offer level); truncated after
    ``campaign_weeks`` steps.

    ## Arguments

    ``gymnasium.make("influmatch/InfluencerMatching-v1", n_influencers=10_000, n_segments=8,
    offer_levels=(0.8, 1.0, 1.25), campaign_weeks=26, population_mode="marketplace", pool=None,
    calibration=None, estimate_calibration=None, churn_rate=0.002, market_seed=0,
    persistent_market=False, dynamics="v0", deadline_week=None, deadline_decay=0.8, launch_week=None,
    prelaunch_value=0.25, render_mode=None)``
    (the class's ``dynamics`` default is ``"v0"``, so an earlier ``InfluencerMatchingEnv(...)`` stays v0;
    the ``-v1`` id passes ``"v1"``)

    * ``pool``: an :class:`~envs.population.InfluencerPool` or the path of an influencer CSV (then
      ``n_influencers`` and ``population_mode`` are ignored).
    * ``calibration``: a :class:`~envs.calibration.Calibration`, a mapping of fields, or a YAML path.
    * ``estimate_calibration``: the market the env's own estimate assumes (the value per $ from
      observables that ranks each segment's influencers and that the observation shows), in the same
      forms; None: ``calibration``. A market whose outcomes depart from what the team's tools assume
      sets both: model-based evaluation runs a fitted ``calibration`` with the logs' declared market
      here, so the fit changes the outcomes, not how the logged system ranked and what it showed.
    * ``churn_rate``: weekly share of influencers who leave the pool (as many newcomers join).
    * ``market_seed``: seeds the pool generation and the segmentation (the campaign randomness comes
      from ``reset(seed=...)``).
    * ``dynamics``: ``"v0"`` or ``"v1"`` (the calendar above).
    * ``deadline_week``, ``deadline_decay``: the campaign's optional deadline (week index, from 0) and
      the weekly factor its posts lose from then on.
    * ``launch_week``, ``prelaunch_value``: the campaign's optional product launch (week index, from 0,
      no later than the deadline) and the share of its value a post has before it (an assumption; 0.25
      by default).

    ## Info

    The same keys with the same types after every ``reset`` and ``step`` (so vector envs can merge them):

    * ``outcome``: a dict of what happened, always with the keys and types of :data:`NO_OFFER`:
      ``influencer_id`` (str), ``segment`` (int), ``offer_ratio`` (float), ``accepted`` (bool),
      ``reach``, ``engagements``, ``clicks``, ``conversions`` (int), ``cost``, ``revenue``, ``value``
      (float, USD). A step that made no offer (a wait, an invalid action) and ``reset`` report
      :data:`NO_OFFER`: ``influencer_id=""``, ``segment=-1``, ``offer_ratio=0.0``, ``accepted=False`` and
      zeros; a refused offer names the influencer, segment and offer ratio, with zeros for the rest.
    * ``action_mask``: bool, one per action (as ``action_masks()``).
    * ``expected_rewards``: float64, one per action, in thousands of USD.

    ## Rendering

    ``render_mode="ansi"`` returns a text summary of the campaign; ``"rgb_array"`` a small uint8 frame
    (height ``4 + 14 * (2 + S)``, width 168, 3 channels) with one bar each for the share of budget left,
    the share of weeks left and the hires of every segment (one block per hire), drawn with numpy.

    ## Vector Environments

    The env runs under gymnasium's make_vec with vectorization_mode "sync" or "async", SyncVectorEnv,
    AsyncVectorEnv and Stable-Baselines3's make_vec_env (DummyVecEnv, SubprocVecEnv). Both ids also
    register a native vector env, :class:`envs.vector.InfluencerMatchingVectorEnv` (vectorization_mode
    "vector_entry_point", which make_vec uses when no mode is given): N campaigns on one shared market,
    stepped by one compiled call, each sub-env the same as a single env with the matching seed.

    ## Version History

    * v1: the calendar of a real campaign: brand-category demand by month, creators booking up ahead
      of the holidays, sponsored loads recovering with time, an optional deadline. The default of
      every command and config. Observation, actions, rewards and info keep v0's layout. Later, an
      optional launch week (``launch_week``, ``prelaunch_value``; off by default, so runs without it are
      unchanged).
    * v0: initial version. Still registered; reproduces earlier results byte for byte.
    * Info contract (both versions, issue 16): ``info["outcome"]`` is always a dict with the keys and
      types of :data:`NO_OFFER`; it used to be None after ``reset``, a wait or an invalid action,
      which vector envs could not merge with an offer's dict. Observations, rewards and expected
      rewards are unchanged byte for byte (the v0 digest test maps :data:`NO_OFFER` back to None
      and still matches the digest recorded before). ``render_mode="rgb_array"`` added (what
      Stable-Baselines3's make_vec_env passes). The native vector env registered for both ids.
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(
        self,
        n_influencers: int = 10_000,
        n_segments: int = 8,
        offer_levels: Sequence[float] = (0.8, 1.0, 1.25),
        campaign_weeks: int = 26,
        population_mode: str = "marketplace",
        pool: InfluencerPool | str | Path | None = None,
        calibration: Calibration | dict | str | Path | None = None,
        estimate_calibration: Calibration | dict | str | Path | None = None,
        churn_rate: float = 0.002,
        market_seed: int = 0,
        persistent_market: bool = False,
        dynamics: str = "v0",
        deadline_week: int | None = None,
        deadline_decay: float = 0.8,
        launch_week: int | None = None,
        prelaunch_value: float = 0.25,
        render_mode: str | None = None,
    ) -> None:
        _check_int("n_influencers", n_influencers, 2)
        if dynamics not in DYNAMICS:
            raise ValueError(f"dynamics: expected one of {list(DYNAMICS)}, got {dynamics!r}")
        if deadline_week is not None:
            _check_int("deadline_week", deadline_week, 0)
        if (
            isinstance(deadline_decay, bool)
            or not isinstance(deadline_decay, (int, float))
            or not 0 <= deadline_decay <= 1
        ):
            raise ValueError(f"deadline_decay: expected a weekly factor in [0, 1], got {deadline_decay!r}")
        if launch_week is not None:
            _check_int("launch_week", launch_week, 0)
            if deadline_week is not None and launch_week > deadline_week:
                raise ValueError(
                    f"launch_week: expected a week no later than deadline_week ({deadline_week}), got {launch_week}"
                )
        if (
            isinstance(prelaunch_value, bool)
            or not isinstance(prelaunch_value, (int, float))
            or not 0 <= prelaunch_value <= 1
        ):
            raise ValueError(f"prelaunch_value: expected a share in [0, 1], got {prelaunch_value!r}")
        _check_int("n_segments", n_segments, 1)
        _check_int("campaign_weeks", campaign_weeks, 1)
        _check_int("market_seed", market_seed, 0)
        levels = tuple(offer_levels) if isinstance(offer_levels, (list, tuple, np.ndarray)) else None
        if not levels or any(
            isinstance(x, bool) or not isinstance(x, (int, float)) or not x > 0 for x in levels
        ):
            raise ValueError(
                f"offer_levels: expected a non-empty list of positive ratios, got {offer_levels!r}"
            )
        if len(set(levels)) != len(levels):
            raise ValueError(f"offer_levels: expected distinct ratios, got {offer_levels!r}")
        if population_mode not in POPULATION_MODES:
            raise ValueError(
                f"population_mode: expected one of {list(POPULATION_MODES)}, got {population_mode!r}"
            )
        if (
            isinstance(churn_rate, bool)
            or not isinstance(churn_rate, (int, float))
            or not 0 <= churn_rate < 1
        ):
            raise ValueError(f"churn_rate: expected a weekly share in [0, 1), got {churn_rate!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode: expected None, 'ansi' or 'rgb_array', got {render_mode!r}")

        self.calibration = _as_calibration(calibration)
        self.estimate_calibration = (
            self.calibration
            if estimate_calibration is None
            else _as_calibration(estimate_calibration, "estimate_calibration")
        )
        self.offer_levels = np.asarray(sorted(float(x) for x in levels))
        self.n_segments = int(n_segments)
        self.campaign_weeks = int(campaign_weeks)
        self.churn_rate = float(churn_rate)
        self.persistent_market = bool(persistent_market)
        self.dynamics = dynamics
        self.deadline_week = None if deadline_week is None else int(deadline_week)
        self.deadline_decay = float(deadline_decay)
        self.launch_week = None if launch_week is None else int(launch_week)
        self.prelaunch_value = float(prelaunch_value)
        self.render_mode = render_mode
        self._market = self._build_market(pool, int(n_influencers), population_mode, int(market_seed))

        S, K = self.n_segments, len(self.offer_levels)
        self.n_hire_actions = S * K
        self.wait_action = S * K
        self.action_space = spaces.Discrete(S * K + 1)
        self.segment_names = list(self._market.profiles["name"])
        self.action_names = [
            f"seg {s} · {self.segment_names[s]} · {r:g}×" for s in range(S) for r in self.offer_levels
        ]
        self.action_names.append("wait")
        self.feature_specs = observation_specs(S, self.campaign_weeks)
        self.feature_names = [f.name for f in self.feature_specs]
        low = [f.low for f in self.feature_specs]
        high = [f.high for f in self.feature_specs]
        self.observation_space = spaces.Box(
            np.asarray(low, np.float32), np.asarray(high, np.float32), dtype=np.float32
        )
        self._state: _State | None = None
        # Per-step constants.
        cal = self.calibration
        self._log_levels = np.log(self.offer_levels)
        self._month_shift = np.asarray(cal.acceptance_month_shift, dtype=float)
        self._premium = np.asarray(cal.price_month_premium, dtype=float)
        v1 = dynamics == "v1"
        if v1:  # creators book up ahead of the holidays (Calibration.booking_month_*)
            self._month_shift = self._month_shift + np.asarray(cal.booking_month_shift, dtype=float)
            self._premium = self._premium * np.asarray(cal.booking_month_premium, dtype=float)
        # The calendar of v1 (all neutral in v0): demand by brand category and month, the pool's mean
        # load that loads recover towards, and the share of excess load left after each week.
        self._demand = np.asarray(cal.category_month_demand, dtype=float) if v1 else np.ones((12, 12))
        self._load_recovers = v1 and cal.load_recovers
        self._load_mean = float(self._market.pool.sponsored_load[: self._market.n_incumbents].mean())
        self._load_decay = load_decay_factor(DAYS_PER_STEP, cal)
        self._action_segment = np.repeat(np.arange(S), K)
        self._action_level = np.tile(np.arange(K), S)
        self._never = self.campaign_weeks + 1
        self._price = self._market.pool.price
        self._fit_weights = np.array([cal.fit_category_weight, cal.fit_audience_weight])
        self._month_table = np.stack([self._month_shift, cal.array("month_engagement"),
                                      cal.array("month_conversion"), self._premium])  # fmt: skip
        self._platform = self._market.pool.platform
        self._premium_list = self._premium.tolist()
        market = self._market
        self._market_arrays = (market.by_price, market.segment_start, market.sorted_price, self._never,
                               self._price, self.offer_levels, self._log_levels, self._month_table,
                               market.reach_value, market.mix_unit)  # fmt: skip
        n_total, n_inc = len(self._market.pool), self._market.n_incumbents
        self._join_template = np.where(np.arange(n_total) < n_inc, 0, self._never)
        self._leave_template = np.full(n_total, self._never, dtype=np.int64)

    # ---------------------------------------------------------------------------- construction
    def _build_market(self, pool, n: int, mode: str, market_seed: int) -> _Market:
        cal = self.calibration
        pool_ss, seg_ss, reservoir_ss, fill_ss = np.random.SeedSequence(market_seed).spawn(4)
        # Newcomers are drawn like a generated pool; for a user's pool, from the marketplace mode.
        newcomer_mode = mode if pool is None else "marketplace"
        if pool is None:
            pool = InfluencerPool.generate(n, np.random.default_rng(pool_ss), cal, mode)
        elif isinstance(pool, (str, Path)):
            pool = InfluencerPool.read_csv(pool, np.random.default_rng(fill_ss), cal)
        elif not isinstance(pool, InfluencerPool):
            raise ValueError(f"pool: expected an InfluencerPool or a CSV path, got {type(pool).__name__}")
        if len(pool) < self.n_segments:
            raise ValueError(
                f"pool: {len(pool)} influencers cannot fill n_segments={self.n_segments} segments"
            )
        frame = pool.to_frame()
        segmenter = InfluencerSegmenter(
            n_segments=self.n_segments, random_state=int(seg_ss.generate_state(1)[0])
        )
        segmenter.fit(frame)
        labels = np.asarray(segmenter.labels_, dtype=np.int64)
        profiles = segment_profiles(frame, labels, tier_edges=cal.tier_edges)
        if len(profiles) != self.n_segments:
            raise ValueError(
                f"pool: segmentation produced {len(profiles)} non-empty segments, expected {self.n_segments}"
            )
        everyone = pool
        # Possible newcomers: three times the expected number of joiners of one campaign.
        if self.churn_rate > 0:
            n_reservoir = int(math.ceil(3 * self.churn_rate * len(pool) * self.campaign_weeks)) + 16
            newcomers = InfluencerPool.generate(
                n_reservoir, np.random.default_rng(reservoir_ss), cal, newcomer_mode, id_prefix="new"
            )
            labels = np.concatenate(
                [labels, np.asarray(segmenter.predict(newcomers.to_frame()), dtype=np.int64)]
            )
            everyone = _concat_pools(pool, newcomers)
        fake_guess = _expected_fake_share_by_tier(cal)[cal.tier_index(everyone.followers)]
        S = self.n_segments
        incumbents = labels[: len(pool)]
        followers, load = everyone.followers.astype(float), everyone.sponsored_load
        by_price = np.lexsort((np.arange(len(labels)), everyone.price, labels))
        value_coef = self._value_per_dollar_coefficients(everyone, followers, load, fake_guess)
        return _Market(
            pool=everyone,
            n_incumbents=len(pool),
            segment=labels,
            by_price=by_price,
            segment_start=np.searchsorted(labels[by_price], np.arange(S + 1)),
            sorted_price=everyone.price[by_price],
            segmenter=segmenter,
            profiles=profiles,
            expected_fake_share=fake_guess,
            sqrt_audience=np.sqrt(everyone.audience),
            category_share=np.ascontiguousarray(everyone.category_mix.T),
            mix_unit=everyone.category_mix / np.linalg.norm(everyone.category_mix, axis=1, keepdims=True),
            reach_value=cal.array("platform_reach_value_multiplier")[everyone.platform],
            true_rates=self._true_rates(everyone, followers, load),
            value_coef=value_coef,
            load_sum=np.bincount(incumbents, weights=pool.sponsored_load, minlength=S),
            load_count=np.bincount(incumbents, minlength=S).astype(float),
            **self._rank_bounds(everyone, labels, value_coef),
        )

    def _rank_bounds(self, pool: InfluencerPool, labels: np.ndarray, value_coef: np.ndarray) -> dict:
        """For :func:`envs._kernels.rank_at_start`: per goal, an upper bound of ``coef_a + coef_b * fit``
        over every campaign, and everyone ordered by it within their segment.

        A campaign's fit is ``w_c * category share + w_a * audience fit``, the share between the
        influencer's smallest and largest category share and the audience fit (a dot product of square
        roots) between 0 and ``sqrt(sum of the audience)`` (Cauchy-Schwarz: the target sums to 1); the
        bounds are widened by a relative 1e-6 so that rounding cannot cross them. With a negative fit
        weight there is no such bound and every bound is infinite (the ranking reads everyone)."""
        w_category, w_audience = (
            float(self.calibration.fit_category_weight),
            float(self.calibration.fit_audience_weight),
        )
        mix = pool.category_mix
        if w_category < 0 or w_audience < 0:
            bound = np.full(value_coef.shape[::2], np.inf)
        else:
            audience_max = np.sqrt(pool.audience.sum(axis=1))
            bound = value_bound(
                value_coef, mix.max(axis=1), mix.min(axis=1), audience_max, w_category, w_audience
            )
        index = np.arange(len(labels))
        order = np.stack([np.lexsort((index, -b, labels)) for b in bound])
        return {"rank_bound": bound, "rank_order": order}

    def _true_rates(self, pool: InfluencerPool, followers: np.ndarray, load: np.ndarray) -> np.ndarray:
        """The hidden fit-free outcome rates of everyone, stacked as a (4, n) array."""
        rates = fit_free_rates(pool.platform, followers, pool.true_engagement_rate, pool.fake_share, load,
                               self.calibration, pool.response_quality)  # fmt: skip
        return np.stack([getattr(rates, f.name) for f in dataclasses.fields(FitFreeRates)])

    def _value_per_dollar_coefficients(
        self, pool: InfluencerPool, followers: np.ndarray, load: np.ndarray, fake_guess: np.ndarray
    ) -> np.ndarray:
        """What the observables suggest (observed ER, the tier's fake share) about each influencer's value
        per dollar of list price, as ``coef[goal, 0] + coef[goal, 1] * fit`` per unit of the campaign's
        value scale (:func:`envs.outcomes.value_coefficients`): a campaign ranks the pool from its fit.
        The estimate assumes the market of ``estimate_calibration``."""
        cal = self.estimate_calibration
        estimated = fit_free_rates(pool.platform, followers, pool.engagement_rate, fake_guess, load, cal)
        return value_coefficients(estimated, pool.platform, cal) / pool.price

    # ------------------------------------------------------------------------------- gym API
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        rng, market, cal = self.np_random, self._market, self.calibration
        pool = market.pool
        campaign = sample_campaign(rng, cal)
        if options and "campaign" in options:
            campaign = options["campaign"]
            if not isinstance(campaign, Campaign):
                raise ValueError("options['campaign']: expected an envs.campaigns.Campaign")

        true_rates, value_coef, load = market.true_rates, market.value_coef, pool.sponsored_load
        followers: np.ndarray | None = None
        extra_load: np.ndarray | None = None
        if self.persistent_market:
            followers, extra_load = self._carried_over()
            load = load + extra_load
            true_rates = self._true_rates(pool, followers, load)
            value_coef = self._value_per_dollar_coefficients(
                pool, followers, load, market.expected_fake_share
            )

        c, goal, month0 = int(campaign.category), int(campaign.goal), int(campaign.start_month)
        join, leave, load_sum, load_count = self._draw_churn(rng)
        S, K, n, weeks = self.n_segments, len(self.offer_levels), len(pool), self.campaign_weeks
        self._state = st = _State(
            campaign=campaign,
            month_list=month_of_week(month0, np.arange(weeks + 1)).tolist(),
            category_share=market.category_share[c],
            week=0,
            budget_left=float(campaign.budget),
            premium=float(self._premium[month0]),
            rates=true_rates,
            load=load,
            consts=self._kernel_constants(campaign),
            value_per_dollar=np.empty(n),
            fit=np.empty(n),
            join=join,
            leave=leave,
            hired=np.zeros(n, dtype=bool),
            ranked=np.full((S, RANK_DEPTH), -1, dtype=np.int64),
            n_eligible=np.zeros(S, dtype=np.int64),
            prefix=np.full((S, K, PREFIX), -1, dtype=np.int64),
            complete=np.zeros((S, K), dtype=bool),
            candidate=np.full((S, K), -1, dtype=np.int64),
            terms=np.zeros((S * K, _kernels.N_TERMS)),
            expected=np.zeros(S * K + 1),
            mask=np.zeros(S * K + 1, dtype=bool),
            hires=np.zeros(S, dtype=np.int64),
            hired_index=[],
            hired_array=np.zeros(weeks, dtype=np.int64),
            hired_segment=np.zeros(weeks, dtype=np.int64),
            hired_load=np.zeros(weeks),
            observation=self._campaign_features(campaign),
            load_sum=load_sum,
            load_count=load_count,
            followers=followers,
            extra_load=extra_load,
        )
        # The brand's view of every influencer, once per campaign: its fit, the estimated value per dollar
        # (the ranking key) and the best few of each segment.
        scale = value_scale(goal, month0, float(campaign.order_value), float(campaign.value_per_engagement),
                            float(campaign.value_per_1k_reach), cal)  # fmt: skip
        _kernels.campaign_values(st.category_share, market.sqrt_audience @ np.sqrt(campaign.target_audience),
                                 self._fit_weights, value_coef[goal, 0], value_coef[goal, 1], scale, st.fit,
                                 st.value_per_dollar, market.segment, st.join, self._never, st.n_eligible)  # fmt: skip
        if self.persistent_market:  # the bounds hold for the market's coefficients, not a campaign's own
            _kernels.rank_segments(st.value_per_dollar, market.segment, st.join, st.leave, st.hired, 0,
                                   self._never, st.ranked, st.n_eligible)  # fmt: skip
        else:
            _kernels.rank_at_start(st.value_per_dollar, scale, market.rank_bound[goal], market.rank_order[goal],
                                   market.segment_start, market.segment, st.join, st.leave, st.hired,
                                   self._never, st.ranked, st.n_eligible)  # fmt: skip
        self._cut_prefixes(st)
        self._refresh(st)
        return st.observation.copy(), self._info(st, NO_OFFER)

    def _carried_over(self) -> tuple[np.ndarray, np.ndarray]:
        """Persistent market: everyone's followers and the sponsored load our hires added, as the last
        campaign left them (the load decayed over its weeks); the pool's followers and no load at first."""
        previous, pool = self._state, self._market.pool
        if previous is None or previous.followers is None or previous.extra_load is None:
            return pool.followers.astype(float), np.zeros(len(pool))
        decay = load_decay_factor(previous.week * DAYS_PER_STEP, self.calibration)
        return previous.followers, previous.extra_load * decay

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        st = self._require_state()
        try:
            action = int(action)
        except (TypeError, ValueError):
            raise ValueError(
                f"action: expected an integer in [0, {self.wait_action}], got {action!r}"
            ) from None
        if not 0 <= action <= self.wait_action:
            raise ValueError(f"action: expected an integer in [0, {self.wait_action}], got {action!r}")
        reward = 0.0
        outcome = NO_OFFER
        if action < self.n_hire_actions:
            s, k = divmod(action, len(self.offer_levels))
            i = int(st.candidate[s, k])
            if i >= 0:
                outcome = self._offer(st, s, k, i)
                reward = (outcome["value"] - outcome["cost"]) / 1000.0
        st.total_reward += reward
        self._advance_week(st)
        truncated = st.week >= self.campaign_weeks
        terminated = not truncated and not st.mask[:-1].any()
        return st.observation.copy(), reward, terminated, truncated, self._info(st, outcome)

    def action_masks(self) -> np.ndarray:
        """Valid actions (bool, one per action); waiting is always valid."""
        return self._require_state().mask.copy()

    def expected_outcomes(self) -> dict[str, np.ndarray]:
        """What every action is expected to bring now, under the hidden truth (one value per action).

        Keys: ``accept_probability``; given acceptance, ``reach``, ``engagements``, ``clicks``,
        ``conversions``, ``revenue``, ``value`` and ``cost`` (USD); ``reward``, the unconditional
        expected net value in thousands of USD. Waiting and invalid actions are all zeros.
        """
        st = self._require_state()
        acts, terms = self._candidate_terms(st)
        out = {key: np.zeros(self.wait_action + 1) for key in (*_EXPECTED_KEYS, "reward")}
        for key in _EXPECTED_KEYS:
            out[key][acts] = terms[key]
        out["reward"][acts] = terms["reward"]
        return out

    def _candidate_terms(self, st: _State) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The valid hire actions and, for each, the expected outcome terms of its candidate.

        The reference computation, with :mod:`envs.outcomes`; the per-step path is the compiled
        :func:`envs._kernels.week_view`, and the tests hold the two to the same numbers."""
        cal, campaign = self.calibration, st.campaign
        flat = st.candidate.ravel()
        acts = np.flatnonzero(flat >= 0)
        index, level = flat[acts], self._action_level[acts]
        month = st.month_list[st.week]
        load = self.sponsored_load_now(index)
        logit = (
            cal.acceptance_intercept
            + cal.acceptance_category_slope * (st.category_share[index] - cal.acceptance_category_pivot)
            + cal.acceptance_load_slope * load
            + cal.acceptance_offer_slope * self._log_levels[level]
            + self._month_shift[month]
        )
        p = 1.0 / (1.0 + np.exp(-logit))
        overlap = self._overlap(st, index, self._action_segment[acts]) if len(acts) else 1.0
        rates = FitFreeRates(*st.rates[:, index]).with_fit(st.fit[index], cal)
        reach, engagements, clicks, conversions = expected_counts(rates, month, overlap, cal)
        demand = self._demand[int(campaign.category), month]
        engagements = engagements * np.exp(-cal.engagement_fatigue * (load - st.load[index]))
        conversions = conversions * demand
        revenue = conversions * campaign.order_value
        value = brand_value(campaign.goal, self._platform[index], reach, engagements, revenue,
                            campaign.value_per_engagement, campaign.value_per_1k_reach, cal)  # fmt: skip
        if campaign.goal != CONVERSION:
            value = value * demand
        value = value * self.value_factor(st.week)
        cost = self.offer_levels[level] * self._price[index] * self._premium[month]
        terms = {"accept_probability": p, "reach": reach, "engagements": engagements, "clicks": clicks,
                 "conversions": conversions, "revenue": revenue, "value": value, "cost": cost,
                 "reward": p * (value - cost) / 1000.0}  # fmt: skip
        return acts, terms

    def value_factor(self, week: int) -> float:
        """What the campaign's structure leaves of a post's value in ``week``: ``prelaunch_value`` before
        the launch week, ``deadline_decay ** (week - deadline_week + 1)`` from the deadline on, 1 between
        (and always, without a launch or a deadline)."""
        if self.launch_week is not None and week < self.launch_week:
            return self.prelaunch_value
        if self.deadline_week is None or week < self.deadline_week:
            return 1.0
        return self.deadline_decay ** (week - self.deadline_week + 1)

    def sponsored_load_now(self, index: np.ndarray | int) -> np.ndarray:
        """Sponsored load of influencers ``index`` this week: the campaign start's, or under v1 that load
        recovered towards the pool's mean for the weeks gone by (hires excluded: they leave the pool of
        candidates)."""
        st = self._require_state()
        load = st.load[index]
        if not self._load_recovers:
            return np.asarray(load, dtype=float)
        return self._load_mean + (load - self._load_mean) * self._load_decay**st.week

    def candidate_features(self) -> dict[str, np.ndarray]:
        """Observable facts about each action's candidate (NaN for waiting and invalid actions).

        What a marketer sees before making an offer: ``followers``, ``price`` (list price, USD),
        ``cost`` (the offer at this level, with the month's premium), ``engagement_rate`` (observed),
        ``category_share`` (the influencer's mix at the brand's category), ``fit`` (brand fit from category
        mix and audience), ``value_per_dollar`` (the environment's estimate, from observables only) and
        ``segment``. Heuristic policies use these; the hidden truth stays in :meth:`expected_outcomes`.
        """
        st = self._require_state()
        n = self.wait_action + 1
        flat = st.candidate.ravel()
        acts = np.flatnonzero(flat >= 0)
        index, level = flat[acts], self._action_level[acts]
        pool = self._market.pool
        followers = pool.followers if st.followers is None else st.followers
        columns = {
            "followers": followers[index],
            "price": self._price[index],
            "cost": self.offer_levels[level] * self._price[index] * st.premium,
            "engagement_rate": pool.engagement_rate[index],
            "category_share": pool.category_mix[index, int(st.campaign.category)],
            "fit": st.fit[index],
            "value_per_dollar": st.value_per_dollar[index],
        }
        out = {key: np.full(n, np.nan) for key in columns}
        for key, values in columns.items():
            out[key][acts] = values
        out["segment"] = np.append(self._action_segment, -1)
        out["offer_ratio"] = np.append(self.offer_levels[self._action_level], np.nan)
        return out

    def expected_rewards(self) -> np.ndarray:
        """Exact expected reward of every action in the current state, in thousands of USD (0 for
        waiting and for invalid actions, which are no-ops). A copy; the same numbers as
        ``expected_outcomes()["reward"]``, computed once a week by the compiled path."""
        return self._require_state().expected.copy()

    def expected_costs(self) -> np.ndarray:
        """Expected spend of every action in the current state, in thousands of USD: the probability
        the offer is accepted times its cost (0 for waiting and for invalid actions). With
        :meth:`expected_rewards`, what a budget-pacing reference weighs (a copy; hidden truth)."""
        st = self._require_state()
        out = np.zeros(self.wait_action + 1)
        valid = st.mask[:-1]
        terms = st.terms[valid]
        out[:-1][valid] = terms[:, _kernels.P_ACCEPT] * terms[:, _kernels.COST] / 1000.0
        return out

    def render(self) -> str | np.ndarray | None:
        """The campaign as text (``"ansi"``) or as a ``uint8`` frame (``"rgb_array"``); None otherwise."""
        if self.render_mode == "rgb_array":
            return self._render_frame(self._require_state())
        if self.render_mode != "ansi":
            return None
        st = self._require_state()
        c = st.campaign
        month = MONTHS[st.month_list[min(st.week, self.campaign_weeks - 1)]]
        lines = [
            f"Week {st.week}/{self.campaign_weeks} ({month}) · {c.describe()}",
            f"Budget left ${st.budget_left:,.0f} of ${float(c.budget):,.0f} · spent ${st.spent:,.0f} · "
            f"net value so far ${st.total_reward * 1000:,.0f}",
        ]
        if st.last_outcome is not None:
            o = st.last_outcome
            verdict = "accepted" if o["accepted"] else "refused"
            lines.append(
                f"Last offer: {o['influencer_id']} (seg {o['segment']}) at {o['offer_ratio']:g}× → {verdict}; "
                f"reach {o['reach']:,}, engagements {o['engagements']:,}, conversions {o['conversions']:,}, "
                f"cost ${o['cost']:,.0f}, value ${o['value']:,.0f}"
            )
        lines.append(f"   {'segment':<37} {'value/$':>8} {'hires':>5} {'load':>5}  affordable")
        obs = st.observation
        for s in range(self.n_segments):
            v, h, load, ok = obs[19 + 4 * s : 23 + 4 * s]
            lines.append(
                f"{s:>2} {self.segment_names[s]:<37} {v:>8.2f} {int(h):>5} {load:>5.2f}  {'yes' if ok else 'no'}"
            )
        return "\n".join(lines)

    def _render_frame(self, st: _State) -> np.ndarray:
        """Bars of the share of budget left, the share of weeks left and each segment's hires."""
        S, weeks = self.n_segments, self.campaign_weeks
        budget = float(st.campaign.budget)
        shares = [st.budget_left / budget if budget > 0 else 0.0, (weeks - min(st.week, weeks)) / weeks]
        colours = ["budget", "weeks"]
        block = max(_BAR_WIDTH // weeks, 1)  # pixels per hire
        for s in range(S):
            shares.append(min(int(st.hires[s]) * block, _BAR_WIDTH) / _BAR_WIDTH)
            colours.append("hires")
        row = _BAR_HEIGHT + _MARGIN
        frame = np.empty((_MARGIN + row * len(shares), _BAR_WIDTH + 2 * _MARGIN, 3), dtype=np.uint8)
        frame[:] = _COLOURS["background"]
        for b, (share, colour) in enumerate(zip(shares, colours, strict=True)):
            top = _MARGIN + b * row
            bar = frame[top : top + _BAR_HEIGHT, _MARGIN : _MARGIN + _BAR_WIDTH]
            bar[:] = _COLOURS["track"]
            bar[:, : int(round(min(max(share, 0.0), 1.0) * _BAR_WIDTH))] = _COLOURS[colour]
        return frame

    # ----------------------------------------------------------------------- introspection
    @property
    def pool(self) -> InfluencerPool:
        """The incumbent influencers (as constructed)."""
        return self._market.pool.subset(np.arange(self._market.n_incumbents))

    @property
    def segment_labels(self) -> np.ndarray:
        """Segment of every incumbent influencer."""
        return self._market.segment[: self._market.n_incumbents]

    @property
    def segmenter(self) -> InfluencerSegmenter:
        """The fitted segmentation of the incumbent pool (newcomers are assigned with its ``predict``)."""
        return self._market.segmenter

    @property
    def segment_profiles(self):
        """Profile of every segment (a DataFrame, see :func:`matching.profiles.segment_profiles`)."""
        return self._market.profiles

    @property
    def campaign(self) -> Campaign:
        return self._require_state().campaign

    @property
    def budget_left(self) -> float:
        return self._require_state().budget_left

    @property
    def week(self) -> int:
        return self._require_state().week

    def candidate_ids(self) -> list[str | None]:
        """Influencer id each hire action would approach now (None where the action is invalid)."""
        ids = self._market.pool.influencer_id
        return [ids[i] if i >= 0 else None for i in self._require_state().candidate.ravel()]

    def hired_ids(self) -> list[str]:
        """Ids of the influencers hired in this campaign, in order."""
        return [self._market.pool.influencer_id[i] for i in self._require_state().hired_index]

    def __deepcopy__(self, memo: dict) -> InfluencerMatchingEnv:
        """An independent environment in the same state; the fixed market is shared, not copied."""
        clone = copy.copy(self)
        memo[id(self)] = clone
        clone._state = copy.deepcopy(self._state, memo)
        clone._np_random = copy.deepcopy(self._np_random, memo)
        return clone

    def fork(self, rng: np.random.Generator | None = None) -> InfluencerMatchingEnv:
        """A cheap independent copy of the current campaign, for planning by rollouts.

        The market and everything a campaign fixes at its reset (fit, value per dollar, churn, rankings,
        rates) are shared, read-only; only what a week changes is copied (hires, candidates, terms,
        budget, and the followers and loads of a persistent market). The copy draws from ``rng`` (a copy
        of this env's generator when ``None``). Stepping it never touches this env; resetting it starts
        a new campaign on the shared market as usual."""
        st = self._require_state()
        clone = copy.copy(self)
        state = copy.copy(st)
        for name in _WEEKLY_ARRAYS:
            setattr(state, name, getattr(st, name).copy())
        state.hired_index = list(st.hired_index)
        if st.followers is not None and st.extra_load is not None:
            state.followers, state.extra_load = st.followers.copy(), st.extra_load.copy()
        clone._state = state
        clone._np_random = copy.deepcopy(self._np_random) if rng is None else rng
        return clone

    # ------------------------------------------------------------------------------ internals
    def _require_state(self) -> _State:
        if self._state is None:
            raise RuntimeError("call reset() before using the environment")
        return self._state

    def _draw_churn(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Who leaves and who joins during this campaign, and when; and what that does to each segment.

        Each incumbent leaves after a geometric number of weeks (weekly probability ``churn_rate``);
        every leaver is replaced in the same week by a newcomer drawn from the reservoir.

        Returns ``join`` and ``leave`` (week of each influencer, ``never`` when not this campaign) and, per
        week and segment, the members' total background sponsored load and their number.
        """
        market, weeks = self._market, self.campaign_weeks
        join, leave = self._join_template.copy(), self._leave_template.copy()
        load_sum = np.broadcast_to(market.load_sum, (weeks, self.n_segments))
        load_count = np.broadcast_to(market.load_count, (weeks, self.n_segments))
        if self.churn_rate == 0:
            return join, leave, np.ascontiguousarray(load_sum), np.ascontiguousarray(load_count)
        leavers, joiners, when = self._churn_draws(rng)
        n_leave = len(leavers)
        leave[leavers] = when
        join[joiners] = when
        who, at = np.concatenate([leavers, joiners]), np.concatenate([when, when])
        sign = np.repeat([-1.0, 1.0], n_leave)
        cells, shape = at * self.n_segments + market.segment[who], (weeks, self.n_segments)
        delta_load = np.bincount(cells, sign * market.pool.sponsored_load[who], weeks * self.n_segments)
        delta_count = np.bincount(cells, sign, weeks * self.n_segments)
        load_sum = load_sum + np.cumsum(delta_load.reshape(shape), axis=0)
        return join, leave, load_sum, load_count + np.cumsum(delta_count.reshape(shape), axis=0)

    def _churn_draws(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The random part of :meth:`_draw_churn` (``churn_rate > 0``): the incumbents who leave, the
        newcomers who replace them (reservoir indices), and the week of each swap.

        Leaving within the campaign: a Binomial count, then uniform indices and truncated-geometric weeks."""
        market, weeks = self._market, self.campaign_weeks
        n_total, n_inc = len(market.pool), market.n_incumbents
        p_leave = 1.0 - (1.0 - self.churn_rate) ** (weeks - 1)
        n_leave = min(int(rng.binomial(n_inc, p_leave)), n_total - n_inc)
        leavers = rng.choice(n_inc, size=n_leave, replace=False)
        u = rng.random(n_leave)
        when = 1 + np.floor(np.log1p(-u * p_leave) / math.log1p(-self.churn_rate)).astype(np.int64)
        when = np.minimum(when, weeks - 1)
        joiners = n_inc + rng.choice(n_total - n_inc, size=n_leave, replace=False)
        return leavers, joiners, when

    def _cut_prefixes(self, st: _State) -> None:
        """Every (segment, level) prefix: in ranking order, the first ``PREFIX`` influencers of the segment
        who could still be valid for that level (in the pool now or joining later, not hired, list price
        payable at the level's threshold), cut from the ranked lists of the campaign's start.

        Within a campaign that set only shrinks (hires and departures are final, the budget only falls)
        until prices drop in January, which cuts every prefix again; so the first valid entry of a prefix
        is the best valid influencer of the segment, and a prefix that runs out before its segment does
        is refilled by :func:`envs._kernels.week_view`."""
        _kernels.cut_prefixes(st.ranked, st.n_eligible, self._price, st.leave, st.hired, st.week, st.budget_left,
                              self.offer_levels, st.premium, st.prefix, st.complete)  # fmt: skip

    def _refresh(self, st: _State, choose: bool = True, load_decay: float = 1.0) -> None:
        """This week's candidates (unless ``choose`` is False: the last observation keeps them), then the
        action mask, the outcome terms, the expected rewards and the observation; ``load_decay``
        multiplies the load our hires added first (see :func:`envs._kernels.week_view`)."""
        week, weeks = st.week, self.campaign_weeks
        shown = min(week, weeks - 1)  # the week the observation describes
        consts, k = st.consts, _kernels
        consts[k.C_DEMAND] = self._demand[int(st.campaign.category), st.month_list[week]]
        consts[k.C_VALUE_FACTOR] = self.value_factor(week)
        if self._load_recovers:
            consts[k.C_LOAD_RECOVERY] = self._load_decay**week
        args = (
            choose, week, st.month_list[week], st.month_list[shown], st.budget_left, (weeks - week) / weeks,
            len(st.hired_index), load_decay, st.load_sum[shown], st.load_count[shown],
            *self._campaign_arrays(st), *self._market_arrays,
        )  # fmt: skip
        _kernels.week_view(*args)

    @staticmethod
    def _campaign_arrays(st: _State) -> tuple:
        """The campaign's arrays :func:`envs._kernels.week_view` reads and writes, in its order."""
        return (st.ranked, st.n_eligible, st.prefix, st.complete, st.join, st.leave, st.hired, st.consts,
                st.category_share, st.load, (st.fit, st.value_per_dollar), st.rates, st.hired_array,
                st.hired_segment, st.hired_load, st.hires, st.candidate, st.terms, st.expected, st.mask,
                st.observation)  # fmt: skip

    def _kernel_constants(self, campaign: Campaign) -> np.ndarray:
        """The calibration and campaign scalars :func:`envs._kernels.week_view` reads (see its names)."""
        cal, k = self.calibration, _kernels
        consts = np.zeros(k.N_CONSTS)
        consts[k.C_LOGIT_BASE] = (
            cal.acceptance_intercept - cal.acceptance_category_slope * cal.acceptance_category_pivot
        )
        consts[k.C_CATEGORY_SLOPE] = cal.acceptance_category_slope
        consts[k.C_LOAD_SLOPE] = cal.acceptance_load_slope
        consts[k.C_OFFER_SLOPE] = cal.acceptance_offer_slope
        consts[k.C_REACH_NOISE_MEAN], consts[k.C_ENGAGEMENT_NOISE_MEAN] = post_noise_means(cal)
        consts[k.C_ENGAGEMENT_FIT_BASE] = cal.engagement_fit_base
        consts[k.C_ENGAGEMENT_FIT_SLOPE] = cal.engagement_fit_slope
        consts[k.C_CLICK_FIT_BASE] = cal.click_fit_base
        consts[k.C_CONVERSION_FIT_BASE] = cal.conversion_fit_base
        consts[k.C_CONVERSION_FIT_SLOPE] = cal.conversion_fit_slope
        consts[k.C_OVERLAP_LO], consts[k.C_OVERLAP_HI] = cal.overlap_range
        consts[k.C_GOAL] = int(campaign.goal)
        consts[k.C_VALUE_PER_ENGAGEMENT] = float(campaign.value_per_engagement)
        consts[k.C_VALUE_PER_1K_REACH] = float(campaign.value_per_1k_reach)
        consts[k.C_ORDER_VALUE] = float(campaign.order_value)
        consts[k.C_BUDGET] = float(campaign.budget)
        consts[k.C_DEMAND] = consts[k.C_VALUE_FACTOR] = consts[k.C_LOAD_RECOVERY] = 1.0
        consts[k.C_LOAD_MEAN] = self._load_mean
        consts[k.C_FATIGUE] = cal.engagement_fatigue
        return consts

    def _offer(self, st: _State, s: int, k: int, i: int) -> dict:
        """Offer level ``k`` to influencer ``i`` of segment ``s``; updates budget, hires and loads.

        Draws, in this order, one uniform (acceptance), two normals (reach and engagement post noise)
        and three Poissons (engagements, clicks, conversions), whether or not the offer is accepted, as
        :func:`envs.outcomes.sample_counts` does; the means are this week's terms of the action."""
        cal, rng, campaign = self.calibration, self.np_random, st.campaign
        p, reach_mean, engagement_mean, clicks_per_reach, conversions_per_reach, cost = st.terms[
            s * len(self.offer_levels) + k
        ].tolist()
        accepted = rng.random() < p
        reach = round(reach_mean * math.exp(cal.reach_post_sd * rng.standard_normal()))
        engagements = int(
            rng.poisson(engagement_mean * math.exp(cal.engagement_post_sd * rng.standard_normal()))
        )
        clicks = int(rng.poisson(reach * clicks_per_reach))
        conversions = int(rng.poisson(reach * conversions_per_reach))
        ratio = float(self.offer_levels[k])
        if not accepted:
            reach = engagements = clicks = conversions = 0
            cost = 0.0
        revenue = conversions * float(campaign.order_value)
        goal = int(campaign.goal)
        if goal == AWARENESS:  # envs.outcomes.brand_value, on Python scalars
            value = reach / 1000.0 * float(campaign.value_per_1k_reach) * float(self._market.reach_value[i])
        elif goal == ENGAGEMENT:
            value = engagements * float(campaign.value_per_engagement)
        else:
            value = revenue
        if goal != CONVERSION:  # v1 demand (in the conversions already); 1 in v0
            value *= float(st.consts[_kernels.C_DEMAND])
        value *= float(st.consts[_kernels.C_VALUE_FACTOR])
        if accepted:
            st.budget_left = max(st.budget_left - cost, 0.0)
            st.spent += cost
            st.hired[i] = True
            st.hires[s] += 1
            n = len(st.hired_index)
            st.hired_index.append(i)
            st.hired_array[n] = i
            st.hired_segment[n] = s
            st.hired_load[n] = SPONSORED_POST_LOAD
            if st.extra_load is not None and st.followers is not None:
                st.extra_load[i] += SPONSORED_POST_LOAD
                st.followers[i] = burn_followers(st.followers[i], cal)
        st.last_outcome = {
            "influencer_id": str(self._market.pool.influencer_id[i]),
            "segment": s,
            "offer_ratio": ratio,
            "accepted": accepted,
            "reach": reach,
            "engagements": engagements,
            "clicks": clicks,
            "conversions": conversions,
            "cost": cost,
            "revenue": revenue,
            "value": value,
        }
        return st.last_outcome

    def _overlap(self, st: _State, index: np.ndarray, segments: np.ndarray) -> np.ndarray | float:
        """Share of each candidate's reach that is new given earlier hires in its segment."""
        n = len(st.hired_index)
        if not n:
            return 1.0
        same = segments[:, None] == st.hired_segment[None, :n]
        if not same.any():
            return 1.0
        mix = self._market.mix_unit
        return overlap_factor(
            mix[index], mix[st.hired_array[:n]], self.calibration, same_niche=same, unit=True
        )

    def _advance_week(self, st: _State) -> None:
        """Move to the next week: month premium, load decay, churn, candidates."""
        st.week += 1
        if st.week >= self.campaign_weeks:
            self._refresh(st, choose=False)  # the last observation: the same candidates, the final budget
            return
        premium = self._premium_list[st.month_list[st.week]]
        dropped = premium < st.premium
        st.premium = premium
        if dropped:  # January: every price threshold rises, so every prefix is cut again
            self._cut_prefixes(st)
        self._refresh(st, load_decay=self._load_decay)

    def _campaign_features(self, campaign: Campaign) -> np.ndarray:
        """The observation with the campaign's constant features set (category, goal, log budget)."""
        obs = np.zeros(len(self.feature_specs), dtype=np.float32)
        obs[int(campaign.category)] = 1.0
        obs[12 + int(campaign.goal)] = 1.0
        obs[15] = math.log10(max(float(campaign.budget), 1.0))
        return obs

    @staticmethod
    def _info(st: _State, outcome: dict) -> dict:
        """The step's info (see the class docstring's Info section); ``outcome`` is copied."""
        return {
            "outcome": dict(outcome),
            "action_mask": st.mask.copy(),
            "expected_rewards": st.expected.copy(),
        }


# ---------------------------------------------------------------------------------- helpers
def value_bound(
    value_coef: np.ndarray,
    share_max: np.ndarray,
    share_min: np.ndarray,
    audience_max: np.ndarray,
    w_category: float,
    w_audience: float,
) -> np.ndarray:
    """Per goal, an upper bound of everyone's ``coef_a + coef_b * fit`` (``value_coef`` (goals, 2, n)) for
    a fit ``w_category * share + w_audience * audience fit`` with the share in ``[share_min, share_max]``
    and the audience fit in ``[0, audience_max]`` (non-negative weights), widened by a relative 1e-6 and
    one ulp so that rounding cannot cross it; infinite where the coefficients are not finite."""
    fit_max = (w_category * share_max + w_audience * audience_max) * (1 + 1e-6) + 1e-12
    fit_min = w_category * share_min * (1 - 1e-6) - 1e-12
    coef_a, coef_b = value_coef[:, 0], value_coef[:, 1]
    bound = coef_a + np.where(coef_b >= 0, coef_b * fit_max, coef_b * fit_min)
    bound = np.where(np.isfinite(bound), bound, np.inf)  # never cut off: scanned (and skipped) first
    return np.maximum(bound, np.nextafter(bound, np.inf))  # one more ulp of room


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: expected a whole number >= {minimum}, got {value!r}")


def _as_calibration(
    calibration: Calibration | dict | str | Path | None, name: str = "calibration"
) -> Calibration:
    if calibration is None:
        return Calibration()
    if isinstance(calibration, Calibration):
        return calibration
    if isinstance(calibration, dict):
        return Calibration.from_dict(calibration)
    if isinstance(calibration, (str, Path)):
        return Calibration.from_yaml(calibration)
    raise ValueError(
        f"{name}: expected a Calibration, a mapping or a YAML path, got {type(calibration).__name__}"
    )


def _concat_pools(a: InfluencerPool, b: InfluencerPool) -> InfluencerPool:
    return InfluencerPool(
        **{f.name: np.concatenate([getattr(a, f.name), getattr(b, f.name)]) for f in dataclasses.fields(a)}
    )


def _expected_fake_share_by_tier(cal: Calibration) -> np.ndarray:
    """Mean fake share by tier implied by the calibration (the best guess a marketer can make)."""
    a, b = cal.fake_share_clean_beta
    lo, hi = cal.fake_share_fraud_range
    p = np.asarray(cal.fraud_probability_by_tier)
    return p * (lo + hi) / 2 + (1 - p) * a / (a + b)


#: The keyword options of :class:`InfluencerMatchingEnv` a config, ``--env`` or a log's metadata may set
#: (everything but ``render_mode``): the one list every command checks option names against.
ENV_OPTIONS: tuple[str, ...] = tuple(
    name
    for name in inspect.signature(InfluencerMatchingEnv.__init__).parameters
    if name not in ("self", "render_mode")
)


def env_option_defaults() -> dict[str, Any]:
    """Default value of every option in :data:`ENV_OPTIONS`."""
    params = inspect.signature(InfluencerMatchingEnv.__init__).parameters
    return {name: params[name].default for name in ENV_OPTIONS}
