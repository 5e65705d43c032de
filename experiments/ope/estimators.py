"""Off-policy evaluation: what a candidate match policy would earn, estimated from logged matches.

Given logs of decisions made by a logging policy (the format of :mod:`experiments.logs`) and a target
policy's action probabilities at every logged context, :func:`estimate` returns the classic
estimators, each with a bootstrap confidence interval and the effective sample size of its weights,
at two scopes:

**Per decision** (each week as a contextual bandit). The estimand is the expected reward of one
decision by the target policy at the contexts the logging policy met,
``V = E_x[sum_a pi(a|x) q(x, a)]`` with ``q`` the expected reward (thousands of USD per decision).
With ``w_i = pi(a_i|x_i) / propensity_i``:

- ``IPS``: ``mean(w_i r_i)``;
- ``SNIPS``: ``sum(w_i r_i) / sum(w_i)`` (self-normalised);
- ``DM``: ``mean(sum_a pi(a|x_i) q_hat(x_i, a))`` with ``q_hat`` a reward model;
- ``DR``: ``DM + mean(w_i (r_i - q_hat(x_i, a_i)))`` (doubly robust).

**Per campaign** (the value of a whole campaign, thousands of USD per campaign, the episode return).
Per-decision importance weighting over the campaign: ``rho_t = prod_{s <= t} w_s`` weights the reward
of week ``t``. After a campaign ends its reward is 0 and its weight stays ``rho_T`` (an absorbing state).

- ``IPS``: per-decision importance sampling, ``mean_c sum_t rho_ct r_ct`` (Precup et al. 2000);
- ``SNIPS``: weighted per-decision IS, ``sum_t (sum_c rho_ct r_ct / sum_c rho_ct)``;
- ``DM``: ``mean_c V_hat(x_c0)``, fitted-Q evaluation of the target policy (see below);
- ``DR``: step-wise doubly robust (Jiang & Li 2016; Thomas & Brunskill 2016),
  ``mean_c sum_t [rho_ct (r_ct - Q_hat(x_ct, a_ct)) + rho_c,t-1 V_hat(x_ct)]``.

``logged`` rows give the logging policy's own value (the mean logged reward per decision and per
campaign): what the current policy earns, beside which the candidate is judged.

**Clipping.** ``clip=c`` caps every importance weight at ``c``: ``min(w_i, c)`` per decision and
``min(rho_t, c)`` per campaign (the cumulative product is clipped, not its factors). Clipping trades
bias (towards zero for the clipped mass) for variance; the default is no clipping. Over a 26-week
campaign cumulative weights explode unless the target is close to the logging policy, which the
effective sample size shows.

**Models.** The reward model of DM/DR per decision is scikit-learn's
``HistGradientBoostingRegressor`` on the context plus a one-hot encoding of the action, *cross-fitted*:
campaigns are split into ``n_folds`` folds and every decision's prediction comes from the model fitted
on the other folds (so no decision is scored by a model that saw its own reward). Per campaign, fitted-Q
evaluation runs backward over the weeks, ``Q_t(x, a) = E[r + V_{t+1}(x')]``,
``V_t(x) = sum_a pi(a|x) Q_t(x, a)``, with one regressor per week (the horizon is finite and the week
is known), cross-fitted the same way. Fits use one thread (``n_threads``): on a shared two-core machine
the default OpenMP pool made small fits twenty times slower.

**Intervals.** Percentile bootstrap over *campaigns* (decisions of one campaign are dependent):
``n_bootstrap`` resamples drawn from a seeded generator, every estimator's sums recomputed from the same
resampled campaign counts in one matrix product. The models are not refitted per resample.

**What-if breakdowns** (``breakdown=True``): the same estimates per brand category and per goal (from
the context's one-hot columns; a campaign belongs to one group) and per segment of the action (the part
of the value earned by offers to that segment; the parts over segments and waiting add up to the
total), with the target's share of decisions going to each segment. Per campaign, segments get IPS,
SNIPS and logged values only (DM/DR would need one fitted-Q model per segment).

**Ground truth** (``influmatch ope --truth``, simulated logs only): per decision, the logged campaigns
are replayed in the simulator (same reset seeds and environment options, same logged actions, which
also checks that the logs and the simulator agree) and ``V`` is computed with the exact expected
rewards ``env.expected_rewards()``; per campaign, the target policy is run in the simulator on the
same campaigns and its value is the mean over campaigns of ``sum_t sum_a pi(a|x_t) q(x_t, a)`` (exact
expected rewards along the simulated path: less noise than sampled rewards), with its standard error.

References: Open Bandit Pipeline (Saito et al. 2021) and SCOPE-RL (Kiyohara et al. 2023) for the set
of estimators; Dudik, Langford & Li (2011) for DR; Chernozhukov et al. (2018) for cross-fitting.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from experiments.cli import run_module
from experiments.files import positive_int, prepare_out_dir, write_json
from experiments.logs import (
    LoggedData,
    PolicyError,
    StochasticPolicy,
    build_policy,
    epsilon_argument,
    make_env,
    metadata_path,
    parse_env_options,
    policy_source,
    read_logs,
    read_metadata,
    rollouts,
)

__all__ = [
    "ESTIMATORS",
    "OPEConfig",
    "TruthError",
    "cross_fitted_reward_model",
    "estimate",
    "fitted_q_evaluation",
    "importance_weights",
    "plot_estimates",
    "replay_expected_rewards",
    "simulate_target",
    "target_probabilities",
    "truth_table",
]

logger = logging.getLogger(__name__)

#: Estimators, in table order.
ESTIMATORS = ("IPS", "SNIPS", "DM", "DR")
SCOPES = ("per_decision", "per_campaign")
#: Rows of the design matrix predicted at once (bounds memory).
_PREDICT_CHUNK = 100_000
#: Rows of the bootstrap count matrix built at once.
_BOOTSTRAP_CHUNK = 250
#: Fewer training rows than this in a week: fitted-Q predicts the mean target of that week.
MIN_ROWS_PER_FIT = 20


class TruthError(ValueError):
    """The simulator does not reproduce the logs, so the true value cannot be computed."""


@dataclasses.dataclass(frozen=True)
class OPEConfig:
    """Options of the estimators (validated on construction; an error names the field).

    Parameters
    ----------
    clip : float or None
        Cap on every importance weight (see the module docstring); None: no clipping.
    n_folds : int
        Cross-fitting folds of the reward model and of fitted-Q evaluation (campaigns are split).
    n_bootstrap : int
        Bootstrap resamples of campaigns.
    confidence : float
        Level of the percentile intervals, in (0, 1).
    random_state : int
        Seeds the folds, the regressors and the bootstrap.
    max_iter : int
        Boosting iterations of every ``HistGradientBoostingRegressor``.
    n_threads : int
        OpenMP threads of the regressors.
    """

    clip: float | None = None
    n_folds: int = 2
    n_bootstrap: int = 1000
    confidence: float = 0.95
    random_state: int = 0
    max_iter: int = 100
    n_threads: int = 1

    def __post_init__(self) -> None:
        if self.clip is not None and (
            isinstance(self.clip, bool) or not isinstance(self.clip, (int, float)) or not self.clip > 0
        ):
            raise ValueError(f"clip: expected a number > 0 or None, got {self.clip!r}")
        for name, minimum in (("n_folds", 2), ("n_bootstrap", 1), ("max_iter", 1), ("n_threads", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
                raise ValueError(f"{name}: expected a whole number >= {minimum}, got {value!r}")
        if isinstance(self.random_state, bool) or not isinstance(self.random_state, (int, np.integer)) or self.random_state < 0:  # fmt: skip
            raise ValueError(f"random_state: expected a whole number >= 0, got {self.random_state!r}")
        if not isinstance(self.confidence, (int, float)) or not 0 < self.confidence < 1:
            raise ValueError(f"confidence: expected a number in (0, 1), got {self.confidence!r}")

    def streams(self) -> tuple[np.random.Generator, np.random.Generator, int]:
        """(fold generator, bootstrap generator, regressor seed) spawned from ``random_state``."""
        folds, boot, models = np.random.SeedSequence(self.random_state).spawn(3)
        return (
            np.random.default_rng(folds),
            np.random.default_rng(boot),
            int(models.generate_state(1, dtype=np.uint32)[0]),
        )


# --------------------------------------------------------------------------------- target policy
def target_probabilities(policy: StochasticPolicy, data: LoggedData, chunk: int = 16_384) -> np.ndarray:
    """The target policy's action probabilities at every logged context, shape (n, A).

    Raises :class:`~experiments.logs.PolicyError` for a policy that reads the simulator's state.
    """
    policy.check_dimensions(len(data.feature_names), data.n_actions, f"the logs ({data.source})")
    out = np.empty((data.n_decisions, data.n_actions))
    for start in range(0, data.n_decisions, chunk):
        stop = start + chunk
        out[start:stop] = policy.probabilities(data.context[start:stop], data.action_mask[start:stop])
    return out


def importance_weights(data: LoggedData, target_probs: np.ndarray, clip: float | None = None) -> np.ndarray:
    """``pi(a_i|x_i) / propensity_i`` for every decision, capped at ``clip`` if given."""
    w = target_probs[np.arange(data.n_decisions), data.action] / data.propensity
    return np.minimum(w, clip) if clip is not None else w


# ---------------------------------------------------------------------------------------- models
def _regressor(config: OPEConfig, seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(max_iter=config.max_iter, random_state=seed)


def _design(context: np.ndarray, actions: np.ndarray, n_actions: int) -> np.ndarray:
    """Context plus a one-hot encoding of the action."""
    onehot = np.zeros((len(actions), n_actions))
    onehot[np.arange(len(actions)), actions] = 1.0
    return np.hstack([context, onehot])


def _predict_pairs(model: Any, context: np.ndarray, rows: np.ndarray, actions: np.ndarray, n_actions: int) -> np.ndarray:  # fmt: skip
    out = np.empty(len(rows))
    for start in range(0, len(rows), _PREDICT_CHUNK):
        sl = slice(start, start + _PREDICT_CHUNK)
        out[sl] = model.predict(_design(context[rows[sl]], actions[sl], n_actions))
    return out


def _needed_pairs(data: LoggedData, target_probs: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(row, action) pairs whose value the estimates use: every action the target may take, and the
    logged one."""
    needed = target_probs[rows] > 0
    needed[np.arange(len(rows)), data.action[rows]] = True
    r, a = np.nonzero(needed)
    return rows[r], a


def _campaign_folds(data: LoggedData, n_folds: int, rng: np.random.Generator) -> np.ndarray:
    """Fold of every decision: campaigns are dealt into ``n_folds`` folds at random."""
    n_folds = min(n_folds, data.n_campaigns)
    fold_of_campaign = rng.permutation(data.n_campaigns) % n_folds
    return fold_of_campaign[data.campaign]


def cross_fitted_reward_model(
    data: LoggedData, target_probs: np.ndarray, config: OPEConfig = OPEConfig()
) -> np.ndarray:
    """Cross-fitted ``q_hat(x_i, a)``: expected reward (thousands of USD) of action ``a`` at logged
    context ``i``, predicted by the model fitted on the other folds' campaigns.

    Returns
    -------
    numpy.ndarray, shape (n, A)
        Filled where the estimates need it (actions with ``target_probs > 0`` and the logged action);
        NaN elsewhere.
    """
    from threadpoolctl import threadpool_limits

    fold_rng, _, seed = config.streams()
    folds = _campaign_folds(data, config.n_folds, fold_rng)
    q_hat = np.full((data.n_decisions, data.n_actions), np.nan)
    with threadpool_limits(config.n_threads):
        for k in np.unique(folds):
            train, test = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
            if len(train) == 0:  # one campaign only: no out-of-fold data
                train = test
            model = _regressor(config, seed + int(k)).fit(
                _design(data.context[train], data.action[train], data.n_actions), data.reward[train]
            )
            rows, actions = _needed_pairs(data, target_probs, test)
            q_hat[rows, actions] = _predict_pairs(model, data.context, rows, actions, data.n_actions)
    return q_hat


def fitted_q_evaluation(
    data: LoggedData, target_probs: np.ndarray, config: OPEConfig = OPEConfig()
) -> tuple[np.ndarray, np.ndarray]:
    """Cross-fitted fitted-Q evaluation of the target policy, backward over the weeks.

    For week ``t`` from the last to the first, a regressor fitted on the training folds' decisions of
    week ``t`` predicts ``r + V_{t+1}(x')`` (``V`` of the campaign's next logged context, 0 after its
    last decision) from the context and the action; ``V_t(x) = sum_a pi(a|x) Q_t(x, a)``.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        ``Q_hat(x_i, a_i)`` and ``V_hat(x_i)`` for every decision (thousands of USD to the end of the
        campaign), each from the model that did not see decision ``i``'s campaign.
    """
    from threadpoolctl import threadpool_limits

    fold_rng, _, seed = config.streams()
    folds = _campaign_folds(data, config.n_folds, fold_rng)
    n, A = data.n_decisions, data.n_actions
    q_logged, v_out = np.zeros(n), np.zeros(n)
    by_step = [np.flatnonzero(data.step == t) for t in range(data.horizon)]
    has_prev = data.step > 0
    with threadpool_limits(config.n_threads):
        for k in np.unique(folds):
            v_next = np.zeros(n)  # V_{t+1} of each decision's successor, from this fold's models
            single = not (folds != k).any()
            for t in range(data.horizon - 1, -1, -1):
                rows = by_step[t]
                train = rows if single else rows[folds[rows] != k]
                target = data.reward[train] + v_next[train]
                rows_pairs, actions = _needed_pairs(data, target_probs, rows)
                if len(train) < MIN_ROWS_PER_FIT:
                    constant = float(target.mean()) if len(train) else 0.0
                    q_pairs = np.full(len(rows_pairs), constant)
                else:
                    model = _regressor(config, seed + 1000 * int(k) + t).fit(
                        _design(data.context[train], data.action[train], A), target
                    )
                    q_pairs = _predict_pairs(model, data.context, rows_pairs, actions, A)
                weights = target_probs[rows_pairs, actions]
                v = np.bincount(rows_pairs, weights=weights * q_pairs, minlength=n)
                logged = actions == data.action[rows_pairs]
                q_at_logged = np.zeros(n)
                q_at_logged[rows_pairs[logged]] = q_pairs[logged]
                test = rows[folds[rows] == k]
                q_logged[test] = q_at_logged[test]
                v_out[test] = v[test]
                with_prev = rows[has_prev[rows]]
                v_next[with_prev - 1] = v[with_prev]
    return q_logged, v_out


# ------------------------------------------------------------------------------------ estimation
@dataclasses.dataclass
class _Term:
    """One line of the table: the estimate is ``sum_j sum_c N[c, j] / sum_c D[c, j]``."""

    scope: str
    group_by: str
    group: str
    estimator: str
    numerator: np.ndarray  # (C, k)
    denominator: np.ndarray  # (C, k)
    ess: float
    n_decisions: int
    n_campaigns: int
    target_share: float = math.nan


def _ess(weights: np.ndarray) -> float:
    total = weights.sum()
    squares = (weights**2).sum()
    return float(total**2 / squares) if squares > 0 else 0.0


def _groups(data: LoggedData, prefix: str) -> list[tuple[str, np.ndarray]]:
    """(label, campaign indicator) for every group of one-hot context columns ``<prefix><label>``."""
    columns = [j for j, name in enumerate(data.feature_names) if name.startswith(prefix)]
    if not columns:
        return []
    first = data.campaign_first_rows()
    which = data.context[np.ix_(first, columns)].argmax(axis=1)
    out = []
    for position, j in enumerate(columns):
        member = which == position
        if member.any():
            out.append((data.feature_names[j][len(prefix) :], member.astype(np.float64)))
    return out


def action_segments(n_actions: int, n_segments: int) -> np.ndarray:
    """Segment of every action (``-1`` for waiting, the last action): ``a // K`` with
    ``K = (n_actions - 1) / n_segments`` offer levels."""
    levels = (n_actions - 1) // n_segments
    if levels * n_segments != n_actions - 1:
        raise ValueError(f"{n_actions} actions do not fit {n_segments} segments plus waiting")
    return np.append(np.repeat(np.arange(n_segments), levels), -1)


def estimate(
    data: LoggedData,
    target_probs: np.ndarray,
    *,
    q_hat: np.ndarray | None = None,
    fqe: tuple[np.ndarray, np.ndarray] | None = None,
    config: OPEConfig = OPEConfig(),
    segments: np.ndarray | None = None,
    segment_names: Sequence[str] | None = None,
    breakdown: bool = False,
) -> pd.DataFrame:
    """Every estimate of the target policy's value, with bootstrap intervals.

    Parameters
    ----------
    data : LoggedData
    target_probs : numpy.ndarray, shape (n, A)
        The target policy's probabilities at every logged context (:func:`target_probabilities`).
    q_hat : numpy.ndarray, shape (n, A), optional
        Reward model (:func:`cross_fitted_reward_model`, or any other); without it, no per-decision
        DM/DR.
    fqe : (numpy.ndarray, numpy.ndarray), optional
        ``(Q_hat(x_i, a_i), V_hat(x_i))`` of :func:`fitted_q_evaluation`; without it, no per-campaign
        DM/DR.
    config : OPEConfig
        Clipping, bootstrap size, confidence and seed.
    segments : numpy.ndarray of int, shape (A,), optional
        Segment of every action, -1 for waiting (:func:`action_segments`); needed for the segment
        breakdown.
    segment_names : sequence of str, optional
        Readable segment names for the breakdown.
    breakdown : bool
        Add the per-brand, per-goal and per-segment rows.

    Returns
    -------
    pandas.DataFrame
        One row per (scope, group_by, group, estimator): ``estimate``, ``low``, ``high`` (the
        interval), ``std_error`` (bootstrap), ``ess`` (effective sample size of the weights: decisions
        per decision, campaigns per campaign), ``n_decisions``, ``n_campaigns``, ``target_share``
        (segment rows: the target's share of decisions going to the segment). Values in thousands of
        USD per decision or per campaign. ``group_by`` is ``all`` for the overall estimates.
    """
    n, A, C = data.n_decisions, data.n_actions, data.n_campaigns
    if np.shape(target_probs) != (n, A):
        raise ValueError(f"target_probs: expected shape {(n, A)}, got {np.shape(target_probs)}")
    rows = np.arange(n)
    w = importance_weights(data, target_probs, config.clip)
    r = data.reward
    ones = np.ones(n)
    dm_rows = dr_rows = None
    if q_hat is not None:
        if np.shape(q_hat) != (n, A):
            raise ValueError(f"q_hat: expected shape {(n, A)}, got {np.shape(q_hat)}")
        q_used = np.where(target_probs > 0, q_hat, 0.0)
        if np.isnan(q_used).any() or np.isnan(q_hat[rows, data.action]).any():
            raise ValueError("q_hat: missing values where the target policy acts or at a logged action")
        dm_rows = (target_probs * q_used).sum(axis=1)
        dr_rows = dm_rows + w * (r - q_hat[rows, data.action])

    # Per-campaign arrays (C, H): weights carried forward after a campaign ends, rewards 0.
    w_raw = importance_weights(data, target_probs)
    rho = np.cumprod(data.padded(w_raw, fill=1.0), axis=1)
    if config.clip is not None:
        rho = np.minimum(rho, config.clip)
    rho_prev = np.hstack([np.ones((C, 1)), rho[:, :-1]])
    r_pad = data.padded(r)
    first = data.campaign_first_rows()
    dr_campaign = None
    if fqe is not None:
        q_logged, v_hat = fqe
        dr_campaign = (rho * (r_pad - data.padded(q_logged)) + rho_prev * data.padded(v_hat)).sum(axis=1)

    terms: list[_Term] = []

    def add(scope, group_by, group, member_rows, member_campaigns, segment=None, share=math.nan):
        """All estimators of one scope for one group. ``member_rows``/``member_campaigns``: 0/1 who
        belongs to the group; ``segment``: count only the value of that segment's actions."""
        row_filter = None if segment is None else (segments[data.action] == segment).astype(np.float64)
        keep = member_rows if row_filter is None else member_rows * row_filter
        n_rows = int(member_rows.sum())
        n_camp = int(member_campaigns.sum())
        col = member_campaigns[:, None]
        if scope == "per_decision":
            denominator = data.per_campaign(member_rows)[:, None]
            ess = _ess(w[member_rows > 0])
            specs = [
                ("IPS", data.per_campaign(w * r * keep)[:, None], denominator, ess),
                ("SNIPS", data.per_campaign(w * r * keep)[:, None], data.per_campaign(w * member_rows)[:, None], ess),
            ]  # fmt: skip
            if dm_rows is not None:
                if row_filter is None:
                    dm_part, dr_part = dm_rows, dr_rows
                else:  # value from this segment's actions only
                    in_segment = segments[None, :] == segment
                    dm_part = (target_probs * np.where(in_segment, q_used, 0.0)).sum(axis=1)
                    dr_part = dm_part + w * (r - q_hat[rows, data.action]) * row_filter
                specs += [
                    ("DM", data.per_campaign(dm_part * member_rows)[:, None], denominator, math.nan),
                    ("DR", data.per_campaign(dr_part * member_rows)[:, None], denominator, ess),
                ]
            specs.append(("logged", data.per_campaign(r * keep)[:, None], denominator, math.nan))
        else:
            r_keep = r_pad if row_filter is None else data.padded(r * row_filter)
            ess = _ess(rho[member_campaigns > 0, -1])
            specs = [
                ("IPS", ((rho * r_keep).sum(axis=1) * member_campaigns)[:, None], col, ess),
                ("SNIPS", rho * r_keep * col, rho * col, ess),
            ]
            if fqe is not None and row_filter is None:
                specs += [
                    ("DM", (v_hat[first] * member_campaigns)[:, None], col, math.nan),
                    ("DR", (dr_campaign * member_campaigns)[:, None], col, ess),
                ]
            specs.append(("logged", (r_keep.sum(axis=1) * member_campaigns)[:, None], col, math.nan))
        for name, numerator, denominator_, ess_ in specs:
            terms.append(
                _Term(scope, group_by, group, name, numerator, denominator_, ess_, n_rows, n_camp, share)
            )

    all_campaigns = np.ones(C)
    for scope in SCOPES:
        add(scope, "all", "all", ones, all_campaigns)
    if breakdown:
        for group_by, prefix in (("brand", "brand is "), ("goal", "goal is ")):
            for label, member in _groups(data, prefix):
                for scope in SCOPES:
                    add(scope, group_by, label, member[data.campaign], member)
        if segments is not None:
            segments = np.asarray(segments)
            if segments.shape != (A,):
                raise ValueError(f"segments: expected shape ({A},), got {segments.shape}")
            for s in [*sorted(set(segments[segments >= 0].tolist())), -1]:
                if s >= 0:
                    label = f"seg {s}" + (f" · {segment_names[s]}" if segment_names is not None else "")
                else:
                    label = "wait"
                share = float(target_probs[:, segments == s].sum() / n)
                for scope in SCOPES:
                    add(scope, "segment", label, ones, all_campaigns, s, share)

    return _bootstrap_table(terms, C, config)


def _bootstrap_table(terms: list[_Term], n_campaigns: int, config: OPEConfig) -> pd.DataFrame:
    """Point estimates and percentile intervals of every term from one set of campaign resamples."""
    _, boot_rng, _ = config.streams()
    widths = [t.numerator.shape[1] for t in terms]
    numerators = np.hstack([t.numerator for t in terms])
    denominators = np.hstack([t.denominator for t in terms])
    starts = np.r_[0, np.cumsum(widths)[:-1]]
    point = _sum_ratios(numerators.sum(axis=0)[None], denominators.sum(axis=0)[None], starts)[0]
    boots = []
    B, C = config.n_bootstrap, n_campaigns
    for start in range(0, B, _BOOTSTRAP_CHUNK):
        b = min(_BOOTSTRAP_CHUNK, B - start)
        draws = boot_rng.integers(C, size=(b, C))
        counts = np.bincount((draws + C * np.arange(b)[:, None]).ravel(), minlength=b * C).reshape(b, C)
        counts = counts.astype(np.float64)
        boots.append(_sum_ratios(counts @ numerators, counts @ denominators, starts))
    boot = np.vstack(boots)
    alpha = 1.0 - config.confidence
    with np.errstate(invalid="ignore"), _quiet_nan_warnings():
        low = np.nanpercentile(boot, 100 * alpha / 2, axis=0)
        high = np.nanpercentile(boot, 100 * (1 - alpha / 2), axis=0)
        std = np.nanstd(boot, axis=0, ddof=1) if B > 1 else np.full(len(terms), np.nan)
    return pd.DataFrame(
        {
            "scope": [t.scope for t in terms],
            "group_by": [t.group_by for t in terms],
            "group": [t.group for t in terms],
            "estimator": [t.estimator for t in terms],
            "estimate": point,
            "low": low,
            "high": high,
            "std_error": std,
            "ess": [t.ess for t in terms],
            "n_decisions": [t.n_decisions for t in terms],
            "n_campaigns": [t.n_campaigns for t in terms],
            "target_share": [t.target_share for t in terms],
        }
    )


def _sum_ratios(num_sums: np.ndarray, den_sums: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """``sum over a term's columns of num / den`` for every row of (b, k) sums -> (b, n_terms); term
    ``j`` owns the columns from ``starts[j]`` to the next start.

    A column whose denominator is 0 contributes 0 when its numerator is 0 too (a week that no
    resampled campaign reached) and makes the term NaN otherwise (a group with no campaign)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        empty = den_sums <= 0
        ratio = np.where(
            empty, np.where(num_sums == 0, 0.0, np.nan), num_sums / np.where(empty, 1.0, den_sums)
        )
        # a group absent from a resample: every column empty -> undefined, not 0
        absent = np.add.reduceat(~empty, starts, axis=1) == 0
    out = np.add.reduceat(ratio, starts, axis=1)
    out[absent] = np.nan
    return out


class _quiet_nan_warnings:
    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)
        return self

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


# ----------------------------------------------------------------------------------------- truth
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


def replay_expected_rewards(env: Any, data: LoggedData) -> np.ndarray:
    """Replay every logged campaign in the simulator and read the exact expected reward of every
    action at every logged decision, shape (n, A), thousands of USD.

    Each campaign is reset with its logged seed and stepped with the logged actions; the replayed
    context and reward must match the logged ones (else :class:`TruthError` naming the row).
    """
    seeds = _reset_seeds(data)
    sim = copy.deepcopy(env.unwrapped)
    q = np.empty((data.n_decisions, data.n_actions))
    starts = np.r_[data.campaign_first_rows(), data.n_decisions]
    for c in range(data.n_campaigns):
        obs, _ = sim.reset(seed=seeds[c])
        for i in range(starts[c], starts[c + 1]):
            if not np.allclose(obs, data.context[i], rtol=1e-6, atol=1e-7):
                j = int(np.flatnonzero(~np.isclose(obs, data.context[i], rtol=1e-6, atol=1e-7))[0])
                raise TruthError(
                    f"{data.source}: row {data.row[i]}, column '{data.feature_names[j]}': the simulator "
                    f"gives {obs[j]:.6g}, the logs {data.context[i, j]:.6g}; were the logs made with "
                    "these environment options?"
                )
            q[i] = sim.expected_rewards()
            obs, reward, terminated, truncated, _ = sim.step(int(data.action[i]))
            if not math.isclose(reward, data.reward[i], rel_tol=1e-6, abs_tol=1e-9):
                raise TruthError(
                    f"{data.source}: row {data.row[i]}, column 'reward': the simulator gives {reward:.6g}, "
                    f"the logs {data.reward[i]:.6g}"
                )
            if (terminated or truncated) != (i == starts[c + 1] - 1):
                raise TruthError(
                    f"{data.source}: row {data.row[i]}: the simulated campaign "
                    f"{'ends' if terminated or truncated else 'goes on'} here, the logged one does not"
                )
    return q


def simulate_target(
    env: Any, policy: StochasticPolicy, data: LoggedData, seed: int = 0, segments: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Run the target policy in the simulator on the logged campaigns (their reset seeds).

    Returns
    -------
    dict
        ``value`` (C,): each campaign's expected return along the simulated path,
        ``sum_t sum_a pi(a|x_t) q(x_t, a)`` (thousands of USD); ``sampled`` (C,): the return actually
        drawn; with ``segments``, ``by_segment`` (C, S + 1): the part of ``value`` from each segment's
        actions (last column: waiting).
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
        labels = sorted(set(segments[segments >= 0].tolist()))
        cols = [per_step[:, segments == s].sum(axis=1) for s in [*labels, -1]]
        out["by_segment"] = np.stack(
            [np.bincount(sim["campaign"], weights=col, minlength=C) for col in cols], axis=1
        )
    return out


def truth_table(
    data: LoggedData,
    target_probs: np.ndarray,
    q_true: np.ndarray,
    simulated: dict[str, np.ndarray],
    groups: pd.DataFrame,
    segments: np.ndarray | None = None,
) -> pd.DataFrame:
    """True values for the (scope, group_by, group) rows of ``groups`` (an :func:`estimate` table).

    Per decision: mean over the group's logged decisions of ``sum_a pi(a|x) q(x, a)`` (exact, no
    standard error). Per campaign: mean over the group's campaigns of the simulated expected return,
    with its standard error.
    """
    C = data.n_campaigns
    per_row = target_probs * q_true
    labels = {}
    if segments is not None:
        seg_ids = [*sorted(set(segments[segments >= 0].tolist())), -1]
        labels = {s: k for k, s in enumerate(seg_ids)}
    brand = dict(_groups(data, "brand is "))
    goal = dict(_groups(data, "goal is "))
    out = []
    for scope, group_by, group in (
        groups[["scope", "group_by", "group"]].drop_duplicates().itertuples(index=False)
    ):
        member = np.ones(C)
        if group_by == "brand":
            member = brand[group]
        elif group_by == "goal":
            member = goal[group]
        if group_by == "segment":
            s = -1 if group == "wait" else int(group.split()[1])
            row_value = per_row[:, segments == s].sum(axis=1)
            campaign_value = simulated["by_segment"][:, labels[s]] if "by_segment" in simulated else None
        else:
            row_value = per_row.sum(axis=1)
            campaign_value = simulated["value"]
        rows = member[data.campaign] > 0
        if scope == "per_decision":
            truth, se = float(row_value[rows].mean()), 0.0
        elif campaign_value is None:
            truth, se = math.nan, math.nan
        else:
            values = campaign_value[member > 0]
            truth = float(values.mean())
            se = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan
        out.append((scope, group_by, group, truth, se))
    return pd.DataFrame(out, columns=["scope", "group_by", "group", "truth", "truth_std_error"])


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


# ------------------------------------------------------------------------------------------ plot
def plot_estimates(estimates_csv: str | Path, out_png: str | Path) -> Path:
    """Every overall estimate with its interval, one panel per scope; the true value (when the table
    has one) as a dashed line and the logging policy's value as a dotted one. Drawn from the CSV
    written by ``influmatch ope``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = pd.read_csv(estimates_csv)
    if "group_by" in table.columns:
        table = table[table["group_by"] == "all"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    units = {"per_decision": "thousand USD per decision", "per_campaign": "thousand USD per campaign"}
    for ax, scope in zip(axes, SCOPES, strict=True):
        part = table[table["scope"] == scope]
        shown = part[part["estimator"] != "logged"]
        x = np.arange(len(shown))
        est = shown["estimate"].to_numpy()
        err = np.vstack([est - shown["low"].to_numpy(), shown["high"].to_numpy() - est])
        ax.errorbar(
            x, est, yerr=np.abs(err), fmt="o", capsize=4, color="tab:blue", label="estimate, interval"
        )
        ax.set_xticks(x, shown["estimator"])
        if "truth" in shown and shown["truth"].notna().any():
            ax.axhline(float(shown["truth"].dropna().iloc[0]), color="tab:red", ls="--", label="true value")
        logged = part[part["estimator"] == "logged"]
        if len(logged):
            ax.axhline(float(logged["estimate"].iloc[0]), color="grey", ls=":", label="logging policy")
        ax.set_title(scope.replace("_", " "))
        ax.set_ylabel(units[scope])
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(loc="best", fontsize=8)
    fig.tight_layout()
    out_png = Path(out_png)
    fig.savefig(out_png, dpi=120, metadata={"Software": None})
    plt.close(fig)
    return out_png


# --------------------------------------------------------------------------------------- command
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--logs", type=Path, required=True, help="logged decisions (.csv or .parquet)")
    parser.add_argument(
        "--policy", required=True, help="target policy: run folder of a trained agent, or a name"
    )
    parser.add_argument(
        "--epsilon",
        type=epsilon_argument,
        default=0.0,
        metavar="E|own",
        help="the target acts epsilon-greedy around its greedy action (default 0: greedy), "
        "or 'own': the agent's own action distribution",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--truth", action="store_true", help="also compute the true value in the simulator (simulated logs)"
    )
    parser.add_argument("--clip", type=float, default=None, help="cap on importance weights (default: none)")
    parser.add_argument("--folds", type=int, default=2, help="cross-fitting folds (default 2)")
    parser.add_argument(
        "--bootstrap", type=positive_int, default=1000, help="bootstrap resamples (default 1000)"
    )
    parser.add_argument("--confidence", type=float, default=0.95, help="interval level (default 0.95)")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of folds, models, bootstrap, truth (default 0)"
    )
    parser.add_argument(
        "--env",
        action="extend",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="environment options, overriding those of the logs' metadata (or, without one, of the run folder)",
    )


def run(args: argparse.Namespace) -> int:
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    config = OPEConfig(
        clip=args.clip,
        n_folds=args.folds,
        n_bootstrap=args.bootstrap,
        confidence=args.confidence,
        random_state=args.seed,
    )
    if not args.logs.is_file():
        raise FileNotFoundError(f"{args.logs}: no such file")
    meta = read_metadata(args.logs)
    source = policy_source(args.policy)
    env_options = dict(meta["env"]) if meta is not None else dict(source.env_options)
    env_options.update(parse_env_options(args.env))
    if meta is not None and source.run_dir is not None:
        differ = _differing_options(source.env_options, env_options)
        if differ:
            logger.warning(
                "%s was trained in an environment with other options (%s) than the logs'; it is evaluated as "
                "a function of the observation in the logs' environment",
                source.label,
                ", ".join(differ),
            )
    env = make_env(env_options)
    unwrapped = env.unwrapped
    target = build_policy(source, env, args.epsilon, seed=args.seed)
    if target.reads_env_state:
        raise PolicyError(
            f"--policy {source.name} reads the simulator's state when it decides, not the observation, so it "
            "can log matches (influmatch log) but cannot be evaluated from logs; evaluate a policy that "
            "acts on the observation (cqi, ppo, a2c, dqn, maskable_ppo, logistic_bandit, random)"
        )
    if args.truth and meta is None:
        raise TruthError(
            f"{args.logs}: --truth needs {metadata_path(args.logs).name} beside the logs "
            "(environment options and campaign seeds, written by influmatch log)"
        )
    data = read_logs(args.logs, unwrapped.feature_names, unwrapped.action_names)
    timings["read"] = time.perf_counter() - clock

    clock = time.perf_counter()
    probs = target_probabilities(target, data)
    timings["target_probabilities"] = time.perf_counter() - clock
    clock = time.perf_counter()
    q_hat = cross_fitted_reward_model(data, probs, config)
    timings["reward_model"] = time.perf_counter() - clock
    clock = time.perf_counter()
    fqe = fitted_q_evaluation(data, probs, config)
    timings["fitted_q"] = time.perf_counter() - clock
    clock = time.perf_counter()
    segments = action_segments(data.n_actions, int(unwrapped.n_segments))
    table = estimate(
        data,
        probs,
        q_hat=q_hat,
        fqe=fqe,
        config=config,
        segments=segments,
        segment_names=list(unwrapped.segment_names),
        breakdown=True,
    )
    timings["estimates_and_bootstrap"] = time.perf_counter() - clock

    if args.truth:
        clock = time.perf_counter()
        q_true = replay_expected_rewards(env, data)
        simulated = simulate_target(env, target, data, seed=args.seed, segments=segments)
        table = with_truth(table, truth_table(data, probs, q_true, simulated, table, segments))
        timings["truth"] = time.perf_counter() - clock

    out = prepare_out_dir(args.out)
    overall = table[table["group_by"] == "all"].drop(columns=["group_by", "group", "target_share"])
    overall.to_csv(out / "estimates.csv", index=False)
    table[table["group_by"] != "all"].to_csv(out / "breakdown.csv", index=False)
    plot_estimates(out / "estimates.csv", out / "estimates.png")
    summary = {
        "logs": str(args.logs),
        "n_decisions": data.n_decisions,
        "n_campaigns": data.n_campaigns,
        "logging_policy": (meta or {}).get("policy", {}).get("description"),
        "target_policy": target.describe(),
        "env": env_options,
        "config": dataclasses.asdict(config),
        "seconds": {k: round(v, 3) for k, v in timings.items()},
        "reward_model_r2": _r2(data.reward, q_hat[np.arange(data.n_decisions), data.action]),
    }
    write_json(out / "summary.json", summary)
    print(
        f"Off-policy estimates of {target.describe()} from {data.n_decisions:,} decisions of "
        f"{data.n_campaigns:,} campaigns ({args.logs}), {config.confidence:.0%} bootstrap intervals over "
        "campaigns, thousands of USD:"
    )
    print(format_table(overall))
    for note in degenerate_weight_notes(overall):
        print(note)
    took = sum(v for k, v in timings.items() if k not in ("read", "truth"))
    print(f"\nEstimated in {took:.1f} s. Wrote {out}/estimates.csv, breakdown.csv (by brand, goal, segment), "
          "estimates.png, summary.json")  # fmt: skip
    return 0


def degenerate_weight_notes(table: pd.DataFrame) -> list[str]:
    """A warning per scope whose importance weights have an effective sample below 1 % of the data
    (and below 10): the importance-sampling estimates of that scope are then unreliable."""
    notes = []
    for scope, unit, size in (
        ("per_decision", "decisions", "n_decisions"),
        ("per_campaign", "campaigns", "n_campaigns"),
    ):
        row = table[(table["scope"] == scope) & (table["estimator"] == "IPS")]
        if row.empty:
            continue
        ess, n = float(row["ess"].iloc[0]), int(row[size].iloc[0])
        if ess < max(10.0, 0.01 * n):
            notes.append(
                f"Note: {scope.replace('_', '-')} importance weights are degenerate (effective sample {ess:.2g} of "
                f"{n:,} {unit}): IPS and SNIPS {scope.replace('_', ' ')} are unreliable and DR leans on its model."
            )
    return notes


def _differing_options(a: dict, b: dict) -> list[str]:
    """Environment options that differ between two option sets, defaults filled in."""
    import inspect

    from envs.matching_env import InfluencerMatchingEnv

    defaults = {k: p.default for k, p in inspect.signature(InfluencerMatchingEnv).parameters.items()}

    def value(options: dict, key: str) -> Any:
        v = options.get(key, defaults.get(key))
        return list(v) if isinstance(v, tuple) else v

    return sorted(k for k in set(a) | set(b) if value(a, k) != value(b, k))


def _r2(y: np.ndarray, prediction: np.ndarray) -> float:
    variance = float(np.var(y))
    return float(1.0 - np.mean((y - prediction) ** 2) / variance) if variance > 0 else math.nan


def format_table(table: pd.DataFrame) -> str:
    """The overall estimates as aligned text columns."""
    has_truth = "truth" in table.columns
    header = ["scope", "estimator", "estimate", "interval", "ess"]
    if has_truth:
        header += ["truth", "error", "rel. error", "covered"]
    lines = []
    for row in table.itertuples(index=False):
        cells = [
            row.scope.replace("_", " "),
            row.estimator,
            f"{row.estimate:.4g}",
            f"[{row.low:.4g}, {row.high:.4g}]",
            "" if math.isnan(row.ess) else (f"{row.ess:,.0f}" if row.ess >= 10 else f"{row.ess:.2g}"),
        ]
        if has_truth:
            if math.isnan(row.truth):
                cells += ["", "", "", ""]
            else:
                cells += [
                    f"{row.truth:.4g}",
                    f"{row.error:+.3g}",
                    f"{row.relative_error:+.1%}",
                    "yes" if row.covered else "no",
                ]
        lines.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in lines)) for i, h in enumerate(header)]
    text = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    text.append("  ".join("-" * w for w in widths))
    text += ["  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip() for cells in lines]
    return "\n".join(text)


if __name__ == "__main__":
    run_module("ope")
