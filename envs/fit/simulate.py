"""Offers tables simulated by running the real environment, for parameter-recovery tests.

:func:`simulate_offers` runs :class:`~envs.matching_env.InfluencerMatchingEnv` through its public API
(``reset(seed=)``, ``step``, ``info["outcome"]``, ``info["action_mask"]``, ``candidate_features()``,
``campaign``, the observation's month) under a known calibration and a logging policy, and writes down
every offer made, as a team's logs would: so a recovery test exercises the same code path as real logs.
"""

from __future__ import annotations

import copy
import logging
import math
from typing import Any

import numpy as np
import pandas as pd

from envs.calibration import CATEGORIES, GOALS, Calibration
from envs.fit.offers import OFFER_COLUMN_NAMES, OUTCOME_COLUMNS
from envs.matching_env import InfluencerMatchingEnv
from envs.observation import find
from envs.outcomes import overlap_factor
from envs.population import InfluencerPool

logger = logging.getLogger(__name__)

#: Logging policies :func:`simulate_offers` knows.
LOGGERS: tuple[str, ...] = ("uniform", "epsilon_greedy")


def simulate_offers(
    calibration: Calibration,
    pool: InfluencerPool | int = 2_000,
    n_campaigns: int = 300,
    *,
    logger_policy: str = "uniform",
    epsilon: float = 0.2,
    seed: int = 0,
    market_seed: int = 0,
    n_segments: int = 8,
    offer_levels: tuple[float, ...] = (0.8, 1.0, 1.25),
    campaign_weeks: int = 26,
    dynamics: str = "v0",
) -> tuple[pd.DataFrame, InfluencerPool]:
    """Run the environment for ``n_campaigns`` campaigns and log every offer made.

    Each week the logger makes one offer (it never waits while an offer is possible):
    ``"uniform"`` picks a valid hire action uniformly at random; ``"epsilon_greedy"`` picks, with
    probability ``1 - epsilon``, the valid action whose candidate has the highest estimated value per
    dollar (``env.candidate_features()["value_per_dollar"]``; ties go to the offer level nearest the list
    price) and otherwise a uniform valid action.

    The market is the default non-persistent one without churn (``churn_rate=0``, so every offered
    influencer is in ``env.pool``). Background sponsored loads are then stationary within a campaign and
    an influencer is hired at most once per campaign, so the load at the time of an offer is
    ``env.pool.sponsored_load`` of that influencer. The overlap factor is recomputed from the campaign's
    earlier hires in the same segment with :func:`envs.outcomes.overlap_factor`, as the env does.

    Parameters
    ----------
    calibration : Calibration
        The market's truth.
    pool : InfluencerPool or int
        The influencers, or how many to generate (with ``market_seed``).
    n_campaigns : int
        Campaigns (episodes) to run; a campaign logs up to ``campaign_weeks`` offers.
    logger_policy : str
        One of :data:`LOGGERS`.
    epsilon : float
        Exploration probability of the epsilon-greedy logger (0-1).
    seed : int
        Seeds the campaigns (``reset(seed=seed + campaign)``) and the logger's generator.
    market_seed, n_segments, offer_levels, campaign_weeks, dynamics
        Passed to the environment.

    Returns
    -------
    offers : pandas.DataFrame
        One row per offer with the columns of :data:`envs.fit.offers.OFFER_COLUMNS`.
    pool : InfluencerPool
        The environment's incumbent pool (hidden fields included).
    """
    if logger_policy not in LOGGERS:
        raise ValueError(f"logger_policy: expected one of {list(LOGGERS)}, got {logger_policy!r}")
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon: expected a probability in [0, 1], got {epsilon!r}")
    env = InfluencerMatchingEnv(
        n_influencers=pool if isinstance(pool, int) else 10_000,
        pool=None if isinstance(pool, int) else pool,
        calibration=calibration,
        churn_rate=0.0,
        market_seed=market_seed,
        n_segments=n_segments,
        offer_levels=offer_levels,
        campaign_weeks=campaign_weeks,
        dynamics=dynamics,
    )
    recorder = OfferRecorder(env)
    levels = np.asarray(offer_levels, dtype=float)
    level_penalty = np.abs(np.log(np.tile(levels, n_segments)))
    rng = np.random.default_rng(np.random.SeedSequence([seed, 14]))
    rows: list[dict] = []
    for c in range(n_campaigns):
        obs, info = env.reset(seed=seed * 1_000_003 + c)
        recorder.start_campaign()
        done = False
        while not done:
            valid = np.flatnonzero(info["action_mask"][:-1])
            if len(valid) == 0:
                break
            features = env.candidate_features()
            if logger_policy == "epsilon_greedy" and rng.random() >= epsilon:
                value = features["value_per_dollar"][valid]
                action = int(valid[np.lexsort((level_penalty[valid], -value))[0]])
            else:
                action = int(valid[rng.integers(len(valid))])
            facts = recorder.before_step(obs, action, features)
            obs, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
            out = info["outcome"]
            row = recorder.after_step(facts, out)
            row.update(campaign_id=f"s{seed}-c{c:05d}", **{k: out[k] for k in OUTCOME_COLUMNS})
            rows.append(row)
    logger.info("simulated %d offers over %d campaigns (%s logger)", len(rows), n_campaigns, logger_policy)
    offers = pd.DataFrame(rows, columns=list(OFFER_COLUMN_NAMES))
    offers["accepted"] = offers["accepted"].astype(np.int64)
    return offers, env.pool


class OfferRecorder:
    """The facts of an offer at the time it is made, from an environment's public API.

    Used by :func:`simulate_offers` and by the log generator of :mod:`experiments.ope.generation`, so
    logs and recovery tests record an offer the same way. Call :meth:`start_campaign` after every
    ``reset``, :meth:`before_step` with the observation, the action and ``candidate_features()`` just
    before ``step``, and :meth:`after_step` with what it returned and ``info["outcome"]``.

    What is recorded (the decision columns of :data:`envs.fit.offers.OFFER_COLUMNS`):

    * from ``candidate_features()``: ``offer_ratio``, ``segment``, ``category_share``, ``fit`` and, when
      the environment provides it, ``sponsored_load``;
    * from ``campaign``: ``brand_category``, ``goal``, ``order_value``; from the observation: ``month``;
    * otherwise ``sponsored_load`` is ``env.sponsored_load_now(i)`` of the candidate (the load of the
      week: the campaign start's, recovered towards the pool's mean under v1), and ``overlap_factor``
      follows the campaign's earlier hires in the same segment through
      :func:`envs.outcomes.overlap_factor`, as the environment computes it.

    Both are NaN for an influencer outside ``env.pool`` (a newcomer of a churning market), and the
    overlap factor is NaN after such a hire in the same segment: the public API does not show them.
    """

    #: The fields of ``candidate_features()`` that :meth:`before_step` reads when present.
    FEATURES: tuple[str, ...] = ("offer_ratio", "category_share", "fit", "sponsored_load", "segment")

    def __init__(self, env: Any) -> None:
        base = env.unwrapped
        self.env = base
        pool = base.pool
        self._row_of = {str(i): k for k, i in enumerate(pool.influencer_id)}
        self._mix = pool.category_mix
        self._month_at = find(base.feature_specs, "month")[0]
        self._calibration = base.calibration
        self._hired: list[tuple[int, int]] = []  # (segment, pool row or -1) of this campaign's hires

    def bind(self, env: Any) -> OfferRecorder:
        """A recorder of another copy of the same market (``copy.deepcopy`` of the environment), sharing
        this one's tables of the pool, with its own campaign."""
        twin = copy.copy(self)
        twin.env = env.unwrapped
        twin._hired = []
        return twin

    def start_campaign(self) -> None:
        """Forget the previous campaign's hires (call after ``reset``)."""
        self._hired = []

    def before_step(
        self, observation: np.ndarray, action: int, features: dict[str, np.ndarray], env: Any = None
    ) -> dict:
        """Facts known before the step: brand, goal, order value, month and the action's candidate, read
        from the bound environment or ``env`` (a view of the same campaign, such as a vector env's
        :meth:`~envs.vector.InfluencerMatchingVectorEnv.sub_env`)."""
        env = self.env if env is None else env
        campaign = env.campaign
        facts: dict[str, Any] = {
            "month": int(round(float(observation[self._month_at]))),
            "brand_category": CATEGORIES[int(campaign.category)],
            "goal": GOALS[int(campaign.goal)],
            "order_value": float(campaign.order_value),
        }
        for key in self.FEATURES:
            if key in features and key != "segment":
                facts[key] = float(features[key][action])
        facts["segment"] = int(features["segment"][action])
        if "sponsored_load" not in facts:
            candidate = env.candidate_ids()[action]
            i = self._row_of.get(str(candidate), -1) if candidate is not None else -1
            facts["sponsored_load"] = float(env.sponsored_load_now(i)) if i >= 0 else math.nan
        return facts

    def after_step(self, facts: dict, outcome: dict | None) -> dict:
        """The offer's decision facts (``facts`` completed with load and overlap, and the influencer id);
        records an accepted hire for later overlaps."""
        row = dict(facts)
        if outcome is None:
            return row
        i = self._row_of.get(str(outcome["influencer_id"]), -1)
        s = int(outcome["segment"])
        row["influencer_id"] = str(outcome["influencer_id"])
        row["segment"] = s
        row["offer_ratio"] = float(outcome["offer_ratio"])
        earlier = [j for seg, j in self._hired if seg == s]
        if i < 0 or -1 in earlier:
            row["overlap_factor"] = math.nan
        elif earlier:
            row["overlap_factor"] = float(
                overlap_factor(self._mix[i][None], self._mix[earlier], self._calibration)[0]
            )
        else:
            row["overlap_factor"] = 1.0
        row["accepted"] = int(outcome["accepted"])
        if outcome["accepted"]:
            self._hired.append((s, i))
        return row
