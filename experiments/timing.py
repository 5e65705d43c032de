"""The best time to match: what hiring now is worth against waiting, by brand category and month.

:func:`timing_table` asks the planning oracle (:class:`agents.PlanningOracle`, hidden truth, a
reference) at the first week of many simulated campaigns of each brand category and start month:
the planned value of its best hire now against the planned value of waiting (waiting then acting on
the best of its horizons, by default until the start of each coming month). Positive ``advantage``
means hire now; negative, wait. Each cell averages ``n_campaigns`` campaigns of that category and
month (goal, budget and audience drawn from the calibrated market), with the standard error over
campaigns.

:func:`policy_waits` measures where a policy waits: by calendar month, the share of weeks in which a
hire was possible but the policy waited, on given campaigns.

Figures are drawn from the saved CSVs (:func:`experiments.reporting.figures.plot_timing`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from agents.planning import action_returns
from envs.calibration import CATEGORIES, MONTHS
from envs.campaigns import sample_campaign

__all__ = ["TIMING_FILE", "WAITS_FILE", "best_hire", "play_campaign", "policy_waits", "timing_table"]

#: Files a sweep folder holds the timing analysis in.
TIMING_FILE = "timing.csv"
WAITS_FILE = "waits.csv"


def _advantage(env: Any, seed: int, planner: dict[str, Any]) -> float | None:
    """Planned value of the best hire now minus that of waiting, in thousands of USD (None when no hire
    is valid)."""
    values = action_returns(env, seed=seed, **planner)
    wait = values.pop(int(env.wait_action))
    if not values:
        return None
    best = max(values.values(), key=lambda v: float(v.mean()))
    return float(best.mean() - wait.mean())


def timing_table(
    env: Any,
    *,
    categories: Sequence[str] = CATEGORIES,
    months: Sequence[int] = tuple(range(12)),
    n_campaigns: int = 8,
    budget: float | None = None,
    seed: int = 0,
    planner: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Hire now or wait, per brand category and start month (see the module docstring).

    Parameters
    ----------
    env : InfluencerMatchingEnv
        The market (unwrapped); its state is replaced by the campaigns played here.
    categories, months : sequences
        The cells to measure (category names, months 0 = January .. 11).
    n_campaigns : int
        Campaigns per cell.
    budget : float, optional
        Every campaign's budget in USD (default: drawn from the market, like the other fields). Waiting
        is worth most when the budget binds, so ask for the budget you have.
    seed : int
        Seeds the campaigns and the planner's rollouts.
    planner : dict, optional
        Keywords of :func:`agents.planning.action_returns` (default ``n_rollouts=4``).

    Returns
    -------
    pandas.DataFrame
        One row per cell: ``category``, ``month`` (0-11), ``month_name``, ``n``, ``advantage`` (mean of
        hire-now minus wait in USD per 1,000 USD of campaign budget, so campaigns of every size weigh
        the same), ``std_error``, ``decision`` ("hire now" / "wait" / "either": the interval of two
        standard errors contains 0).
    """
    options = {"n_rollouts": 4, **(planner or {})}
    rng = np.random.default_rng(seed)
    rows = []
    for category in categories:
        c = CATEGORIES.index(category)
        for month in months:
            values = []
            for k in range(n_campaigns):
                campaign = dataclasses.replace(
                    sample_campaign(rng, env.calibration), category=c, start_month=month
                )
                if budget is not None:
                    campaign = dataclasses.replace(campaign, budget=float(budget))
                env.reset(seed=int(rng.integers(2**31)), options={"campaign": campaign})
                advantage = _advantage(env, seed=seed * 1_000_003 + k, planner=options)
                if advantage is not None:  # thousands of USD -> USD per 1,000 USD of budget
                    values.append(advantage * 1e6 / float(campaign.budget))
            rows.append(_cell(category, month, np.asarray(values)))
    return pd.DataFrame(rows)


def _cell(category: str, month: int, values: np.ndarray) -> dict[str, Any]:
    n = len(values)
    mean = float(values.mean()) if n else float("nan")
    se = float(values.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    if n > 1 and mean - 2 * se > 0:
        decision = "hire now"
    elif n > 1 and mean + 2 * se < 0:
        decision = "wait"
    else:
        decision = "either"
    return {"category": category, "month": month, "month_name": MONTHS[month], "n": n,
            "advantage": mean, "std_error": se, "decision": decision}  # fmt: skip


def _greedy_action(agent: Any, observation: np.ndarray, mask: np.ndarray, masks: bool) -> int:
    """``agent``'s deterministic action, given the mask when it takes one (``masks``)."""
    kwargs = {"action_masks": mask} if masks else {}
    return int(np.asarray(agent.predict(observation, deterministic=True, **kwargs)[0]).reshape(-1)[0])


def policy_waits(agent: Any, env: Any, seeds: Sequence[int], label: str) -> pd.DataFrame:
    """Where ``agent`` waits: per calendar month, weeks with a valid hire and the share it waited.

    ``env`` is the agent's environment (gymnasium-wrapped or not); policies that read the environment's
    state must already act on it. Returns rows ``policy``, ``month``, ``month_name``, ``weeks``,
    ``waited``, ``wait_share``."""
    from agents.base import accepts_action_masks
    from envs.observation import find

    unwrapped = env.unwrapped
    month_feature = find(unwrapped.feature_specs, "month")[0]
    weeks, waited = np.zeros(12), np.zeros(12)
    masks = accepts_action_masks(agent)
    for seed in seeds:
        obs, info = env.reset(seed=int(seed))
        done = False
        while not done:
            mask = info["action_mask"]
            action = _greedy_action(agent, obs, mask, masks)
            if mask[:-1].any():
                month = int(round(float(obs[month_feature])))
                weeks[month] += 1
                waited[month] += action == unwrapped.wait_action
            obs, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
    share = np.divide(waited, weeks, out=np.full(12, np.nan), where=weeks > 0)
    return pd.DataFrame({"policy": label, "month": np.arange(12), "month_name": list(MONTHS), "weeks": weeks,
                         "waited": waited, "wait_share": share})  # fmt: skip


def best_hire(agent: Any, observation: np.ndarray, mask: np.ndarray) -> int:
    """The valid hire ``agent`` ranks highest at ``observation``: by its action probabilities (SB3
    policies, the bandit), its Q-values (CQI) or the scores its leaf acts on (a distilled tree's
    ``action_scores``). ``ValueError`` naming the agent if it has none of them."""
    hires = np.asarray(mask, dtype=bool).copy()
    hires[-1] = False
    if hasattr(agent, "action_scores"):
        scores = np.asarray(agent.action_scores(observation), dtype=float)
    elif hasattr(agent, "action_probabilities"):
        scores = np.asarray(agent.action_probabilities(observation, mask), dtype=float)
    elif hasattr(agent, "q_values"):
        scores = np.asarray(agent.q_values(observation), dtype=float)
    else:
        raise ValueError(
            f"{type(agent).__name__}: ranks no actions (no action_scores, action_probabilities or q_values)"
        )
    # A hire scored -inf (no value in a distilled tree's leaf) still ranks above an invalid action.
    return int(np.argmax(np.where(hires, np.nan_to_num(scores, nan=-1e300, neginf=-1e300), -np.inf)))


def play_campaign(
    agent: Any, env: Any, seed: int, options: dict | None = None, *, replace_waits: bool = False
):
    """Play one campaign with ``agent`` (deterministic) from ``env.reset(seed=seed, options=options)``.

    Returns ``(return, expected_return, waits)``: the rewards drawn, the sum of each week's expected
    reward of the action taken (the same mean, less noise: see :func:`agents.planning.rollout_return`),
    and the weeks it waited while a hire was valid. ``replace_waits``: each such wait becomes the
    agent's best valid hire (:func:`best_hire`), the copy that cannot time its hires."""
    from agents.base import accepts_action_masks

    unwrapped, masks = env.unwrapped, accepts_action_masks(agent)
    obs, info = env.reset(seed=int(seed), options=options)
    total, expected, waits, done = 0.0, 0.0, 0, False
    while not done:
        mask = info["action_mask"]
        action = _greedy_action(agent, obs, mask, masks)
        if action == unwrapped.wait_action and mask[:-1].any():
            if replace_waits:
                action = best_hire(agent, obs, mask)
            else:
                waits += 1
        expected += float(unwrapped.expected_rewards()[action])
        obs, reward, terminated, truncated, info = env.step(action)
        total += float(reward)
        done = terminated or truncated
    return total, expected, waits


def sweep_timing(
    sweep_dir: Any, *, n_campaigns: int = 2, n_policy_campaigns: int = 10, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The timing table on a sweep's market and where each of its policies waits.

    The market is the one of the sweep's first run (lowest seed): the planner's table on it
    (:func:`timing_table`, ``n_campaigns`` per category and month), and for one run of every agent and
    variant (the lowest seed's), :func:`policy_waits` on the first ``n_policy_campaigns`` of that run's
    evaluation campaigns. Returns ``(timing, waits)``."""
    from pathlib import Path

    from agents import load_agent
    from experiments import stats
    from experiments.evaluation import episode_seeds
    from experiments.runner import load_run, make_env

    runs = stats.read_sweep_runs(Path(sweep_dir)).sort_values(["seed", "agent", "variant"])
    first = load_run(runs["run_dir"].iloc[0])
    env = make_env(first["spec"])
    timing = timing_table(env.unwrapped, n_campaigns=n_campaigns, seed=seed)
    frames = []
    for (agent_key, variant), group in runs.groupby(["agent", "variant"], sort=False):
        agent_name, run_dir = str(agent_key), Path(group["run_dir"].iloc[0])
        info = load_run(run_dir)
        run_env = make_env(info["spec"])
        agent = load_agent(agent_name, run_dir / info["config"]["model_file"], env=run_env)
        seeds = episode_seeds(info["config"]["seeds"]["eval_seed"], n_policy_campaigns)
        label = agent_name if variant in ("", "default") else f"{agent_name} ({variant})"
        frames.append(policy_waits(agent, run_env, seeds, label))
    return timing, pd.concat(frames, ignore_index=True)
