"""Logs generated in the simulator: campaigns played by a stochastic policy, with exact propensities.

:func:`generate_logs` plays the campaigns of :func:`experiments.evaluation.episode_seeds` with any
:class:`~experiments.ope.policies.StochasticPolicy` and returns them in the file format of
:mod:`experiments.ope.logs`; :func:`rollouts` is the simulation itself, also used for the truth.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from envs.fit.simulate import OfferRecorder
from envs.matching_env import NO_OFFER
from experiments.evaluation import episode_seeds
from experiments.ope.logs import (
    CANDIDATE_FIELDS,
    INFLUENCER,
    META_FORMAT,
    META_VERSION,
    OFFER_FACTS,
    OUTCOME_COLUMNS,
    LoggedData,
)
from experiments.ope.policies import StochasticPolicy

__all__ = ["LOCKSTEP", "generate_logs", "rollouts"]

#: Environments stepped side by side when simulating (one batched policy call per week).
LOCKSTEP = 64
#: Campaigns of the native vector env's blocks in :func:`rollouts`.
VECTOR_BLOCK = 256
#: The candidate facts the offer recorder reads that the vector env's candidate_features() has.
RECORDED_FEATURES = tuple(f for f in OfferRecorder.FEATURES if f != "sponsored_load")
#: The outcome columns of a log, the influencer id last.
OUTCOME_NAMES = (*(name for name, _ in OUTCOME_COLUMNS), INFLUENCER)


def _campaign_streams(seed: int, n_campaigns: int) -> tuple[list[int], list[np.random.SeedSequence]]:
    """Reset seeds of the campaigns (those of :func:`experiments.evaluation.episode_seeds`) and one
    action-draw stream per campaign, so results do not depend on how campaigns are batched."""
    _, draws = np.random.SeedSequence(seed).spawn(2)
    return episode_seeds(seed, n_campaigns), draws.spawn(n_campaigns)


def rollouts(
    env: Any,
    policy: StochasticPolicy,
    reset_seeds: Sequence[int],
    draw_seeds: Sequence[np.random.SeedSequence | int],
    *,
    expected: bool = False,
    outcomes: bool = True,
    candidates: bool = False,
    campaigns: Sequence[Any] | None = None,
    lockstep: int = LOCKSTEP,
    vectorized: bool = True,
) -> dict[str, np.ndarray]:
    """Play one campaign per reset seed with ``policy``, sampling actions from its probabilities.

    Campaign ``c`` starts with ``reset(seed=reset_seeds[c])`` on a copy of ``env.unwrapped`` and draws
    its actions from ``default_rng(draw_seeds[c])``; ``lockstep`` campaigns run side by side so the
    policy is asked once per week for all of them (the result does not depend on ``lockstep``). With
    ``campaigns`` (one :class:`~envs.campaigns.Campaign` per reset seed), campaign ``c`` is
    ``campaigns[c]`` instead of the one its reset draws (the reset seed still decides the churn and the
    outcomes). Without ``outcomes`` and ``candidates``, the campaigns run on the native vector env
    (:func:`_vector_rollouts`: the same numbers; the model-based estimate of the README example took 21 s
    instead of 111 s) unless ``vectorized`` is False or
    the env or policy needs single envs.

    Returns
    -------
    dict of str to numpy.ndarray
        One entry per decision, sorted by campaign and step: ``campaign``, ``step``, ``context``
        (n, d), ``action_mask`` (n, A), ``probabilities`` (n, A), ``action``, ``propensity``,
        ``reward`` (thousands of USD); with ``outcomes`` the outcome columns, ``influencer_id`` and the
        offer facts of :data:`experiments.ope.logs.OFFER_FACTS` (recorded by
        :class:`envs.fit.simulate.OfferRecorder` before and after each step; NaN on waits);
        with ``expected`` also ``expected_rewards`` (n, A), the exact expected reward of every action
        under the hidden truth (thousands of USD); with ``candidates`` also ``candidate_<field>`` (n, A)
        for every field of :data:`experiments.ope.logs.CANDIDATE_FIELDS` (``candidate_features()`` before
        each step).
    """
    base = env.unwrapped
    if vectorized and _vectorizable(base, policy):
        return _vector_rollouts(
            base, policy, reset_seeds, draw_seeds, expected, campaigns, outcomes, candidates
        )
    return _single_rollouts(base, policy, reset_seeds, draw_seeds, expected, outcomes, candidates, campaigns,
                            lockstep)  # fmt: skip


def _single_rollouts(
    base: Any,
    policy: StochasticPolicy,
    reset_seeds: Sequence[int],
    draw_seeds: Sequence[np.random.SeedSequence | int],
    expected: bool,
    outcomes: bool,
    candidates: bool,
    campaigns: Sequence[Any] | None,
    lockstep: int,
) -> dict[str, np.ndarray]:
    """:func:`rollouts` on copies of the single env, ``lockstep`` side by side."""
    n = len(reset_seeds)
    width = max(1, min(int(lockstep), n))
    envs = [copy.deepcopy(base) for _ in range(width)]
    recorder = OfferRecorder(base) if outcomes else None
    recorders = [recorder.bind(e) for e in envs] if recorder is not None else []
    records: dict[str, list] = {k: [] for k in ("campaign", "step", "context", "action_mask", "probabilities",
                                                   "action", "reward", "expected_rewards", "outcome",
                                                   "facts", "candidates")}  # fmt: skip
    for start in range(0, n, width):
        block = list(range(start, min(n, start + width)))
        obs, masks, rngs, steps = {}, {}, {}, {}
        for j, c in enumerate(block):
            options = None if campaigns is None else {"campaign": campaigns[c]}
            o, info = envs[j].reset(seed=int(reset_seeds[c]), options=options)
            obs[j], masks[j] = o, np.asarray(info["action_mask"], dtype=bool)
            rngs[j], steps[j] = np.random.default_rng(draw_seeds[c]), 0
            if recorders:
                recorders[j].start_campaign()
        active = list(range(len(block)))
        while active:
            observations = np.stack([obs[j] for j in active]).astype(np.float64)
            action_masks = np.stack([masks[j] for j in active])
            probs = policy.probabilities(observations, action_masks, envs=[envs[j] for j in active])
            still = []
            for row, j in enumerate(active):
                p = probs[row]
                cumulative = np.cumsum(p)
                a = int(np.searchsorted(cumulative, rngs[j].random() * cumulative[-1], side="right"))
                a = min(a, len(p) - 1)
                if expected:
                    records["expected_rewards"].append(envs[j].expected_rewards())
                recorder = recorders[j] if recorders else None
                offer = _before_step(envs[j], recorder, observations[row], a, records if candidates else None)
                o2, reward, terminated, truncated, info = envs[j].step(a)
                records["campaign"].append(block[j])
                records["step"].append(steps[j])
                records["context"].append(observations[row])
                records["action_mask"].append(action_masks[row])
                records["probabilities"].append(p)
                records["action"].append(a)
                records["reward"].append(float(reward))
                if outcomes:
                    records["outcome"].append(info.get("outcome"))
                    records["facts"].append(
                        {} if offer is None else recorders[j].after_step(offer, info.get("outcome"))
                    )
                if not (terminated or truncated):
                    obs[j], masks[j] = o2, np.asarray(info["action_mask"], dtype=bool)
                    steps[j] += 1
                    still.append(j)
            active = still
    campaign = np.asarray(records["campaign"], dtype=np.int64)
    step = np.asarray(records["step"], dtype=np.int64)
    order = np.lexsort((step, campaign))
    probabilities = np.stack(records["probabilities"])[order]
    action = np.asarray(records["action"], dtype=np.int64)[order]
    out = {
        "campaign": campaign[order],
        "step": step[order],
        "context": np.stack(records["context"])[order],
        "action_mask": np.stack(records["action_mask"])[order],
        "probabilities": probabilities,
        "action": action,
        "propensity": probabilities[np.arange(len(action)), action],
        "reward": np.asarray(records["reward"])[order],
    }
    if expected:
        out["expected_rewards"] = np.stack(records["expected_rewards"])[order]
    if candidates:
        _add_candidates(out, np.stack(records["candidates"])[order])
    if outcomes:
        taken = [records["outcome"][i] for i in order]
        for name, kind in OUTCOME_COLUMNS:
            dtype = np.float64 if kind == "amount" else np.int64
            out[name] = np.array([0 if o is None else o[name] for o in taken], dtype=dtype)
        out[INFLUENCER] = np.array(["" if o is None else o["influencer_id"] for o in taken], dtype=object)
        _add_facts(out, [records["facts"][i] for i in order])
    return out


def takes_vector_env(env: Any) -> bool:
    """Whether the native vector env can run ``env``'s market (an unwrapped single env without a
    persistent market)."""
    from envs.matching_env import InfluencerMatchingEnv

    return type(env) is InfluencerMatchingEnv and not env.persistent_market


def _vectorizable(env: Any, policy: StochasticPolicy) -> bool:
    """Whether :func:`_vector_rollouts` can play ``policy`` in ``env``: the native vector env takes the
    env, and the policy decides from the observation or, as the heuristics, from the candidate facts
    (not from other state of the simulator)."""
    return takes_vector_env(env) and (not policy.reads_env_state or policy.reads_candidates)


def _vector_rollouts(
    env: Any,
    policy: StochasticPolicy,
    reset_seeds: Sequence[int],
    draw_seeds: Sequence[np.random.SeedSequence | int],
    expected: bool,
    campaigns: Sequence[Any] | None,
    outcomes: bool = False,
    candidates: bool = False,
) -> dict[str, np.ndarray]:
    """:func:`rollouts` on the native vector env: the same numbers.

    Sub-env ``j`` of a block plays campaign ``c`` as the single env copy does (the vector env's sub-envs
    are single envs step for step, :class:`envs.vector.InfluencerMatchingVectorEnv`), the policy is
    asked once per week for the block's running campaigns (heuristics from the batched candidate
    facts, which :meth:`StochasticPolicy.probabilities` turns into the same actions), and each
    campaign's action is drawn from its own stream with the same arithmetic. The outcomes are the
    batched ``info["outcome"]``; each offer's facts are recorded by the campaign's own
    :class:`~envs.fit.simulate.OfferRecorder` from the batched candidate facts and the sub-env's view
    (:meth:`~envs.vector.InfluencerMatchingVectorEnv.sub_env`), as the single env's are. A block ends
    with its longest campaign; the sub-envs of campaigns that ended earlier step on, unread."""
    from envs.vector import InfluencerMatchingVectorEnv

    n = len(reset_seeds)
    width = max(1, min(VECTOR_BLOCK, n))
    vec = InfluencerMatchingVectorEnv.from_env(env, width)
    wait = env.wait_action
    reads = [f for f in getattr(policy.agent, "reads", ()) if f != "segment"]
    recorder = OfferRecorder(env) if outcomes else None
    # The candidate facts a step reads: the policy's, the logged ones, and what the recorder takes.
    needed = list(dict.fromkeys([*(reads if policy.reads_env_state else []), *(CANDIDATE_FIELDS if candidates else []),
                                 *(RECORDED_FEATURES if outcomes else [])]))  # fmt: skip
    keys = ["campaign", "step", "context", "action_mask", "probabilities", "action", "reward", "expected_rewards",
            "candidates", *OUTCOME_NAMES, "facts"]  # fmt: skip
    chunks: dict[str, list] = {k: [] for k in keys}
    for start in range(0, n, width):
        block = np.arange(start, min(n, start + width))
        m, ids = len(block), block.tolist()
        seeds = [int(reset_seeds[c]) for c in ids] + [0] * (width - m)  # spare sub-envs: any campaign
        given = None if campaigns is None else [campaigns[c] for c in ids] + [None] * (width - m)
        obs, info = vec.reset(seed=seeds, options=None if given is None else {"campaigns": given})
        rngs = [np.random.default_rng(draw_seeds[c]) for c in ids]
        recording = None if recorder is None else _VectorRecording(vec, recorder, m)
        active = np.arange(m)
        step = 0
        while len(active):
            observations = obs[active].astype(np.float64)
            masks = info["action_mask"][active]
            every = vec.candidate_features(needed) if needed else {}
            facts = {key: every[key][active] for key in reads} if policy.reads_env_state else None
            probs = policy.probabilities(observations, masks, candidates=facts)
            cumulative = np.cumsum(probs, axis=1)  # row by row as np.cumsum(p) sums, so the same bits
            u = np.array([rngs[j].random() for j in active]) * cumulative[:, -1]
            drawn = np.minimum(
                (cumulative <= u[:, None]).sum(axis=1), probs.shape[1] - 1
            )  # searchsorted, right
            actions = np.full(width, wait, dtype=np.int64)
            actions[active] = drawn
            if expected:
                chunks["expected_rewards"].append(info["expected_rewards"][active])
            if candidates:
                chunks["candidates"].append(np.stack([every[f][active] for f in CANDIDATE_FIELDS], axis=1))
            if recording is not None:
                recording.before(active, drawn, observations, every)
            obs, reward, terminated, truncated, info = vec.step(actions)
            for key, values in (("campaign", block[active]), ("step", np.full(len(active), step)),
                                ("context", observations), ("action_mask", masks), ("probabilities", probs),
                                ("action", drawn), ("reward", reward[active])):  # fmt: skip
                chunks[key].append(values)
            if recording is not None:
                outcome = info["outcome"]
                for name in OUTCOME_NAMES:
                    chunks[name].append(outcome[name][active])
                chunks["facts"].extend(recording.after(active, outcome))
            active = active[~(terminated[active] | truncated[active])]
            step += 1
    campaign = np.concatenate(chunks["campaign"]).astype(np.int64)
    order = np.lexsort((np.concatenate(chunks["step"]), campaign))
    arrays = [k for k in keys if chunks[k] and k not in ("candidates", "facts")]
    out = {key: np.concatenate(chunks[key])[order] for key in arrays}
    out["campaign"] = out["campaign"].astype(np.int64)
    out["step"] = out["step"].astype(np.int64)
    out["action"] = out["action"].astype(np.int64)
    out["propensity"] = out["probabilities"][np.arange(len(order)), out["action"]]
    if candidates:
        _add_candidates(out, np.concatenate(chunks["candidates"])[order])
    if outcomes:
        for name, kind in OUTCOME_COLUMNS:
            out[name] = out[name].astype(np.float64 if kind == "amount" else np.int64)
        out[INFLUENCER] = out[INFLUENCER].astype(object)
        _add_facts(out, [chunks["facts"][i] for i in order])
    return out


class _VectorRecording:
    """The offer facts of a block of campaigns on the vector env ``vec``: campaign ``j`` (sub-env ``j``)
    has its own :class:`~envs.fit.simulate.OfferRecorder` (bound from ``recorder``), which reads the
    batched candidate facts and the sub-env's view, as on a single env."""

    def __init__(self, vec: Any, recorder: OfferRecorder, m: int) -> None:
        self.vec, self.wait = vec, vec.env.wait_action
        self.recorders = [recorder.bind(vec.env) for _ in range(m)]
        self.offers: dict[int, dict] = {}

    def before(self, active: np.ndarray, drawn: np.ndarray, observations: np.ndarray, every: dict) -> None:
        """Before the step: each offer's facts (waits have none)."""
        self.offers = {}
        for row, j in enumerate(active.tolist()):
            if drawn[row] != self.wait:
                features = {key: every[key][j] for key in RECORDED_FEATURES}
                self.offers[j] = self.recorders[j].before_step(observations[row], int(drawn[row]), features,
                                                               env=self.vec.sub_env(j))  # fmt: skip

    def after(self, active: np.ndarray, outcome: dict[str, np.ndarray]) -> list[dict]:
        """After the step: the facts of each active campaign's decision ({} for a wait)."""
        rows = []
        for j in active.tolist():
            offer = self.offers.get(j)
            rows.append({} if offer is None else self.recorders[j].after_step(
                offer, {key: outcome[key][j] for key in NO_OFFER}))  # fmt: skip
        return rows


def _add_candidates(out: dict[str, np.ndarray], stacked: np.ndarray) -> None:
    """``candidate_<field>`` (n, A) from the decisions' candidate facts stacked (n, fields, A)."""
    for k, field in enumerate(CANDIDATE_FIELDS):
        out[f"candidate_{field}"] = stacked[:, k]


def _add_facts(out: dict[str, np.ndarray], facts: Sequence[dict]) -> None:
    """The offer-fact columns from each decision's recorded facts (NaN where not recorded)."""
    for spec in OFFER_FACTS:
        out[spec.name] = np.array([f.get(spec.name, np.nan) for f in facts], dtype=np.float64)


def _before_step(env: Any, recorder: Any, observation: np.ndarray, action: int, records: dict | None) -> dict | None:  # fmt: skip
    """Record the candidate facts (into ``records``, when given) and the offer's facts before a step."""
    if records is None and recorder is None:
        return None
    features = env.candidate_features()
    if records is not None:
        records["candidates"].append(np.stack([features[f] for f in CANDIDATE_FIELDS]))
    if recorder is None or action == env.wait_action:
        return None
    return recorder.before_step(observation, action, features)


def generate_logs(
    env: Any,
    policy: StochasticPolicy,
    n_campaigns: int,
    seed: int,
    *,
    lockstep: int = LOCKSTEP,
    candidates: bool = True,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Logs of ``n_campaigns`` campaigns played by ``policy`` in ``env``.

    The campaigns are those of :func:`experiments.evaluation.episode_seeds` for ``seed``; actions are
    drawn from the policy's probabilities with streams spawned from ``seed``, and ``propensity`` is the
    exact probability of the action drawn. ``lockstep`` campaigns are simulated side by side (see
    :func:`rollouts`); it changes the speed, not the logs. ``candidates`` records the candidate facts
    (what the heuristics read, so they can be evaluated from the logs).

    Returns
    -------
    (pandas.DataFrame, dict)
        The log in the file format (``campaign_id`` = 0 .. n_campaigns - 1) and its metadata, except
        the ``env`` options and ``policy`` entries, which the caller adds.
    """
    if isinstance(n_campaigns, bool) or not isinstance(n_campaigns, (int, np.integer)) or n_campaigns < 1:
        raise ValueError(f"campaigns: expected a whole number >= 1, got {n_campaigns!r}")
    unwrapped = env.unwrapped
    reset_seeds, draw_seeds = _campaign_streams(seed, int(n_campaigns))
    sim = rollouts(env, policy, reset_seeds, draw_seeds, lockstep=lockstep, candidates=candidates)
    data = LoggedData(
        campaign_ids=np.arange(n_campaigns),
        campaign=sim["campaign"],
        step=sim["step"],
        context=sim["context"],
        action=sim["action"],
        propensity=sim["propensity"],
        reward=sim["reward"],
        action_mask=sim["action_mask"],
        feature_names=tuple(unwrapped.feature_names),
        action_names=tuple(unwrapped.action_names),
        outcomes={k: sim[k] for k in [*(name for name, _ in OUTCOME_COLUMNS), INFLUENCER]},
        offer_facts={spec.name: sim[spec.name] for spec in OFFER_FACTS},
        candidates={f: sim[f"candidate_{f}"] for f in CANDIDATE_FIELDS} if candidates else {},
        source="generated logs",
    )
    returns = data.per_campaign(data.reward)
    metadata = {
        "format": META_FORMAT,
        "version": META_VERSION,
        "seed": int(seed),
        "n_campaigns": int(n_campaigns),
        "n_decisions": data.n_decisions,
        "mean_return": float(returns.mean()),
        "feature_names": list(unwrapped.feature_names),
        "action_names": list(unwrapped.action_names),
        "campaign_ids": list(range(n_campaigns)),
        "campaign_seeds": [int(s) for s in reset_seeds],
    }
    return data.to_frame(), metadata
