"""The true value of a target policy on logged campaigns, computed in the simulator (simulated logs only).

Per decision, the logged campaigns are replayed (same reset seeds and environment options, same logged
actions, which also checks that the logs and the simulator agree) and the estimand
``V = E_x[sum_a pi(a|x) q(x, a)]`` is computed with the exact expected rewards
``env.expected_rewards()``. Per campaign, the target policy is run in the simulator on the same
campaigns and its value is the mean over campaigns of ``sum_t sum_a pi(a|x_t) q(x_t, a)`` (exact
expected rewards along the simulated path: less noise than sampled rewards), with its standard error.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from envs.observation import FeatureSpec
from experiments.ope.estimators import campaign_groups, segment_order
from experiments.ope.generation import rollouts, takes_vector_env
from experiments.ope.logs import LoggedData, metadata_path
from experiments.ope.policies import StochasticPolicy

__all__ = ["TruthError", "replay_expected_rewards", "simulate_target", "truth_table", "with_truth"]


class TruthError(ValueError):
    """The simulator does not reproduce the logs, so the true value cannot be computed."""


def _reset_seeds(data: LoggedData) -> list[int]:
    """Reset seed of every logged campaign, from the logs' metadata."""
    meta = data.metadata
    if meta is None:
        raise TruthError(
            f"{data.source}: the true value needs {metadata_path(data.source).name} beside the logs "
            "(environment options and campaign seeds, written by influmatch log)"
        )
    seeds = {str(i): int(s) for i, s in zip(meta["campaign_ids"], meta["campaign_seeds"], strict=True)}
    out = []
    for cid in data.campaign_ids:
        if str(cid) not in seeds:
            raise TruthError(f"{metadata_path(data.source)}: no reset seed for campaign {cid}")
        out.append(seeds[str(cid)])
    return out


def replay_expected_rewards(env: Any, data: LoggedData, *, vectorized: bool = True) -> np.ndarray:
    """Replay every logged campaign in the simulator and read the exact expected reward of every
    action at every logged decision, shape (n, A), thousands of USD.

    Each campaign is reset with its logged seed and stepped with the logged actions; the replayed
    context and reward must match the logged ones (else :class:`TruthError` naming the row: the first
    mismatch of the first campaign that has one). The campaigns run in blocks on the native vector env
    (the single env's numbers), or one by one where it does not take the env or ``vectorized`` is
    False.
    """
    seeds = _reset_seeds(data)
    unwrapped = env.unwrapped
    starts = np.r_[data.campaign_first_rows(), data.n_decisions]
    q = np.empty((data.n_decisions, data.n_actions))
    if vectorized and takes_vector_env(unwrapped):
        _replay_in_blocks(unwrapped, data, seeds, starts, q)
        return q
    sim = copy.deepcopy(unwrapped)
    for c in range(data.n_campaigns):
        obs, _ = sim.reset(seed=seeds[c])
        for i in range(starts[c], starts[c + 1]):
            context_ok = _same_context(obs[None], data.context[i][None])[0]
            if not context_ok.all():
                raise _context_error(data, i, obs, context_ok)
            q[i] = sim.expected_rewards()
            obs, reward, terminated, truncated, _ = sim.step(int(data.action[i]))
            if not _same_reward(np.array([reward]), data.reward[i : i + 1])[0]:
                raise _reward_error(data, i, float(reward))
            if (terminated or truncated) != (i == starts[c + 1] - 1):
                raise _end_error(data, i, bool(terminated or truncated))
    return q


def _replay_in_blocks(
    env: Any, data: LoggedData, seeds: list[int], starts: np.ndarray, q: np.ndarray
) -> None:
    """:func:`replay_expected_rewards` on the native vector env, campaigns side by side in blocks."""
    from envs.vector import InfluencerMatchingVectorEnv
    from experiments.ope.generation import VECTOR_BLOCK

    C = data.n_campaigns
    width = max(1, min(VECTOR_BLOCK, C))
    vec = InfluencerMatchingVectorEnv.from_env(env, width)
    for lo in range(0, C, width):
        block = np.arange(lo, min(C, lo + width))
        m = len(block)
        obs, info = vec.reset(seed=[seeds[c] for c in block.tolist()] + [0] * (width - m))
        first, length = starts[block], starts[block + 1] - starts[block]
        active, problems, t = np.arange(m), {}, 0
        while len(active):
            rows = first[active] + t
            context_ok = _same_context(obs[active], data.context[rows])
            for j in np.flatnonzero(~context_ok.all(axis=1)).tolist():
                problems[int(active[j])] = _context_error(data, int(rows[j]), obs[active[j]], context_ok[j])
            q[rows] = info["expected_rewards"][active]
            actions = np.full(width, env.wait_action, dtype=np.int64)
            actions[active] = data.action[rows]
            obs, reward, terminated, truncated, info = vec.step(actions)
            ended = terminated[active] | truncated[active]
            last = t == length[active] - 1
            reward_ok = _same_reward(reward[active], data.reward[rows])
            for j in range(len(active)):
                b = int(active[j])
                if b in problems:
                    continue
                if not reward_ok[j]:
                    problems[b] = _reward_error(data, int(rows[j]), float(reward[b]))
                elif ended[j] != last[j]:
                    problems[b] = _end_error(data, int(rows[j]), bool(ended[j]))
            going = ~ended & ~last
            active = np.array([b for b, keep in zip(active.tolist(), going, strict=True) if keep and b not in problems],
                              dtype=np.int64)  # fmt: skip
            t += 1
        if problems:
            raise problems[min(problems)]


def _same_context(simulated: np.ndarray, logged: np.ndarray) -> np.ndarray:
    return np.isclose(simulated, logged, rtol=1e-6, atol=1e-7)


def _same_reward(simulated: np.ndarray, logged: np.ndarray) -> np.ndarray:
    """``math.isclose(simulated, logged, rel_tol=1e-6, abs_tol=1e-9)`` elementwise."""
    return np.abs(simulated - logged) <= np.maximum(
        1e-6 * np.maximum(np.abs(simulated), np.abs(logged)), 1e-9
    )


def _context_error(data: LoggedData, i: int, simulated: np.ndarray, same: np.ndarray) -> TruthError:
    j = int(np.flatnonzero(~same)[0])
    return TruthError(
        f"{data.source}: row {data.file_row(i)}, column '{data.feature_names[j]}': the simulator "
        f"gives {simulated[j]:.6g}, the logs {data.context[i, j]:.6g}; were the logs made with "
        "these environment options?"
    )


def _reward_error(data: LoggedData, i: int, simulated: float) -> TruthError:
    return TruthError(
        f"{data.source}: row {data.file_row(i)}, column 'reward': the simulator gives {simulated:.6g}, "
        f"the logs {data.reward[i]:.6g}"
    )


def _end_error(data: LoggedData, i: int, ended: bool) -> TruthError:
    return TruthError(
        f"{data.source}: row {data.file_row(i)}: the simulated campaign "
        f"{'ends' if ended else 'goes on'} here, the logged one does not"
    )


def simulate_target(
    env: Any,
    policy: StochasticPolicy,
    data: LoggedData,
    seed: int = 0,
    segments: np.ndarray | None = None,
    n_paths: float = 1,
) -> dict[str, np.ndarray]:
    """Run the target policy in the simulator on the logged campaigns (their reset seeds).

    With ``n_paths > 1`` the value of a campaign is its expected value over paths, estimated from
    ``n_paths`` paths per campaign on average (:func:`experiments.ope.paths.campaign_values`: the path
    of the logged reset seed is the pilot that allocates them, the logged campaign is kept and the
    outcomes are drawn anew); one path leaves the mean of the campaigns 10-20 % from its expectation on
    these markets, which is not an error an estimator could avoid.

    Returns
    -------
    dict
        ``value`` (C,): each campaign's expected return along the simulated path (the mean over its
        paths), ``sum_t sum_a pi(a|x_t) q(x_t, a)`` (thousands of USD); ``sampled`` (C,): the return
        actually drawn on the logged reset seed's path; with ``segments``, ``by_segment`` (C, S + 1):
        the part of ``value`` from each segment's actions (last column: waiting); with ``n_paths > 1``
        ``path_variance`` and ``paths`` (C,), for the standard error of the truth.
    """
    reset_seeds = _reset_seeds(data)
    draws = np.random.SeedSequence(seed).spawn(data.n_campaigns)
    sim = rollouts(env, policy, reset_seeds, draws, expected=True, outcomes=False)
    first = np.flatnonzero(sim["step"] == 0)
    logged_first = data.context[data.campaign_first_rows()]
    if not np.allclose(sim["context"][first], logged_first, rtol=1e-6, atol=1e-7):
        c = int(
            np.flatnonzero(
                ~np.isclose(sim["context"][first], logged_first, rtol=1e-6, atol=1e-7).all(axis=1)
            )[0]
        )
        raise TruthError(
            f"{data.source}: campaign {data.campaign_ids[c]}: the simulator starts it differently from the "
            "logs; were the logs made with these environment options?"
        )
    per_step = sim["probabilities"] * sim["expected_rewards"]
    C = data.n_campaigns
    out = {
        "value": np.bincount(sim["campaign"], weights=per_step.sum(axis=1), minlength=C),
        "sampled": np.bincount(sim["campaign"], weights=sim["reward"], minlength=C),
    }
    if segments is not None:
        cols = [per_step[:, segments == s].sum(axis=1) for s in segment_order(segments)]
        out["by_segment"] = np.stack(
            [np.bincount(sim["campaign"], weights=col, minlength=C) for col in cols], axis=1
        )
    if n_paths > 1:
        from experiments.ope.paths import campaign_values

        sim_env = copy.deepcopy(env.unwrapped)
        campaigns = []
        for s in reset_seeds:
            sim_env.reset(seed=s)
            campaigns.append(sim_env.campaign)
        repeated = campaign_values(env, policy, campaigns, out["value"], n_paths,
                                   np.random.SeedSequence([seed, 15, 2]), segments=segments)  # fmt: skip
        out.update(value=repeated.value, path_variance=repeated.path_variance, paths=repeated.paths)
        if repeated.by_segment is not None:
            out["by_segment"] = repeated.by_segment
    return out


def truth_table(
    data: LoggedData,
    target_probs: np.ndarray,
    q_true: np.ndarray,
    simulated: dict[str, np.ndarray],
    groups: pd.DataFrame,
    segments: np.ndarray | None = None,
    *,
    feature_specs: Sequence[FeatureSpec] | None = None,
) -> pd.DataFrame:
    """True values for the (scope, group_by, group) rows of ``groups`` (an
    :func:`~experiments.ope.estimators.estimate` table made with the same ``segments``).

    Per decision: mean over the group's logged decisions of ``sum_a pi(a|x) q(x, a)`` (exact, no
    standard error). Per campaign: mean over the group's campaigns of the simulated expected return,
    with its standard error. ``feature_specs`` locate the brand and goal columns (default: the logs'
    own, :meth:`~experiments.ope.logs.LoggedData.specs`).
    """
    per_row = target_probs * q_true
    keys = groups[["scope", "group_by", "group"]].drop_duplicates()
    members = _memberships(data, feature_specs, keys, segments)
    out = []
    for scope, group_by, group in keys.itertuples(index=False):
        member, segment, column = members[(group_by, group)]
        campaign_value: np.ndarray | None
        if segment is None:
            row_value = per_row.sum(axis=1)
            campaign_value = simulated["value"]
        else:
            row_value = per_row[:, segments == segment].sum(axis=1)
            campaign_value = simulated["by_segment"][:, column] if "by_segment" in simulated else None
        rows = member[data.campaign] > 0
        if scope == "per_decision":
            truth, se = float(row_value[rows].mean()), 0.0
        elif campaign_value is None:
            truth, se = math.nan, math.nan
        else:
            values = campaign_value[member > 0]
            truth = float(values.mean())
            if "path_variance" in simulated:  # the truth's own noise: its paths'
                keep = member > 0
                se = float(
                    np.sqrt((simulated["path_variance"][keep] / simulated["paths"][keep]).sum()) / keep.sum()
                )
            else:
                se = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan
        out.append((scope, group_by, group, truth, se))
    return pd.DataFrame(out, columns=["scope", "group_by", "group", "truth", "truth_std_error"])


def _memberships(
    data: LoggedData,
    feature_specs: Sequence[FeatureSpec] | None,
    keys: pd.DataFrame,
    segments: np.ndarray | None,
) -> dict[tuple[str, str], tuple[np.ndarray, int | None, int]]:
    """(group_by, group) -> (campaign indicator, segment or None, column of ``by_segment``)."""
    everyone = np.ones(data.n_campaigns)
    out: dict[tuple[str, str], tuple[np.ndarray, int | None, int]] = {("all", "all"): (everyone, None, 0)}
    for group_by, label, member in campaign_groups(data, feature_specs):
        out[(group_by, label)] = (member, None, 0)
    # The segment rows of an estimate table come in the order of segment_order(segments).
    labels = list(dict.fromkeys(keys.loc[keys["group_by"] == "segment", "group"]))
    if labels:
        if segments is None:
            raise ValueError("segments: the table has segment rows; pass the segments it was made with")
        order = segment_order(np.asarray(segments))
        if len(order) != len(labels):
            raise ValueError(f"segments: {len(order)} segments and waiting, but the table has {len(labels)}")
        for column, (label, segment) in enumerate(zip(labels, order, strict=True)):
            out[("segment", label)] = (everyone, segment, column)
    return out


def with_truth(table: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """``table`` with ``truth``, ``truth_std_error``, ``error`` (estimate - truth), ``relative_error``
    (error / |truth|) and ``covered`` (truth inside the interval) for the target's estimators; the
    ``logged`` rows (the logging policy's value) get no truth."""
    merged = table.merge(truth, on=["scope", "group_by", "group"], how="left")
    logged = merged["estimator"] == "logged"
    merged.loc[logged, ["truth", "truth_std_error"]] = np.nan
    merged["error"] = merged["estimate"] - merged["truth"]
    with np.errstate(divide="ignore", invalid="ignore"):
        merged["relative_error"] = merged["error"] / merged["truth"].abs()
    covered = (merged["low"] <= merged["truth"]) & (merged["truth"] <= merged["high"])
    merged["covered"] = covered.where(merged["truth"].notna() & merged["low"].notna())
    return merged
