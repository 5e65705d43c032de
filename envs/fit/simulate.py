"""Offers tables simulated by running the real environment, for parameter-recovery tests.

:func:`simulate_offers` runs :class:`~envs.matching_env.InfluencerMatchingEnv` through its public API
(``reset(seed=)``, ``step``, ``info["outcome"]``, ``info["action_mask"]``, ``candidate_features()``,
``campaign``, the observation's month) under a known calibration and a logging policy, and writes down
every offer made, as a team's logs would: so a recovery test exercises the same code path as real logs.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from envs.calibration import CATEGORIES, GOALS, Calibration
from envs.fit.offers import OFFER_COLUMN_NAMES
from envs.matching_env import InfluencerMatchingEnv
from envs.observation import find, observation_specs
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
    market_seed, n_segments, offer_levels, campaign_weeks
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
    )
    the_pool = env.pool
    month_at = find(observation_specs(n_segments, campaign_weeks), "month")[0]
    row_of = {str(i): k for k, i in enumerate(the_pool.influencer_id)}
    mix = the_pool.category_mix
    levels = np.asarray(offer_levels, dtype=float)
    level_penalty = np.abs(np.log(np.tile(levels, n_segments)))
    rng = np.random.default_rng(np.random.SeedSequence([seed, 14]))
    rows: list[tuple] = []
    for c in range(n_campaigns):
        obs, info = env.reset(seed=seed * 1_000_003 + c)
        campaign = env.campaign
        hired: list[tuple[int, int]] = []  # (segment, pool row) of every hire of this campaign
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
            month = int(round(float(obs[month_at])))
            obs, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
            out = info["outcome"]
            i = row_of[out["influencer_id"]]
            s = int(out["segment"])
            earlier = [j for seg, j in hired if seg == s]
            overlap = float(overlap_factor(mix[i][None], mix[earlier], calibration)[0]) if earlier else 1.0
            rows.append((out["influencer_id"], f"s{seed}-c{c:05d}", month, out["offer_ratio"],
                         float(the_pool.sponsored_load[i]), CATEGORIES[int(campaign.category)],
                         GOALS[int(campaign.goal)], float(campaign.order_value), float(features["category_share"][action]),
                         float(features["fit"][action]), overlap, s,
                         int(out["accepted"]), int(out["reach"]), int(out["engagements"]), int(out["clicks"]),
                         int(out["conversions"]), float(out["cost"]), float(out["revenue"])))  # fmt: skip
            if out["accepted"]:
                hired.append((s, i))
    logger.info("simulated %d offers over %d campaigns (%s logger)", len(rows), n_campaigns, logger_policy)
    return pd.DataFrame(rows, columns=list(OFFER_COLUMN_NAMES)), the_pool
