"""Reward models of the off-policy estimators, cross-fitted over campaigns.

Per decision, :func:`cross_fitted_reward_model` fits scikit-learn's ``HistGradientBoostingRegressor`` on
the context plus a one-hot encoding of the action: campaigns are split into ``n_folds`` folds and every
decision's prediction comes from the model fitted on the other folds (so no decision is scored by a
model that saw its own reward). Per campaign, :func:`fitted_q_evaluation` runs backward over the weeks,
``Q_t(x, a) = E[r + V_{t+1}(x')]``, ``V_t(x) = sum_a pi(a|x) Q_t(x, a)``, with one regressor per week
(the horizon is finite and the week is known), cross-fitted the same way. Every regressor stops early
(a tenth of its rows held out). Fits use one thread
(``n_threads``): on a shared two-core machine the default OpenMP pool made small fits twenty times
slower. Chernozhukov et al. (2018) for cross-fitting.

**Fitted-Q with action features** (:func:`fitted_q_action_features`): the one-hot over all actions
leaves each action's effect to be learned from the few decisions that took it, so at a few thousand
campaigns the models ignore the action. Here an action is described by what distinguishes it
(:class:`ActionFeatures`): the chosen segment's observed features (its best candidate's value per
dollar, its hires so far, its mean sponsored load, whether it is affordable), the log offer level, and
whether it waits; and the weeks are pooled, the week a feature: the model of week ``t`` is fitted on the
decisions of weeks ``t .. t + window - 1`` (each with its target from the later weeks' models), so every
fit sees several weeks of data and shares what an action does across them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from envs.observation import FeatureSpec, find
from experiments.ope.config import DEFAULT_CONFIG, OPEConfig
from experiments.ope.logs import LoggedData

__all__ = [
    "MIN_ROWS_PER_FIT",
    "ActionFeatures",
    "cross_fitted_reward_model",
    "fitted_q_action_features",
    "fitted_q_evaluation",
]

#: Rows of the design matrix predicted at once (bounds memory).
_PREDICT_CHUNK = 100_000
#: Fewer training rows than this in a week: fitted-Q predicts the mean target of that week.
MIN_ROWS_PER_FIT = 20


def _regressor(config: OPEConfig, seed: int) -> Any:
    """Gradient boosting with early stopping on a tenth of the rows held out (5 rounds without gain): on
    the noisy targets of fitted-Q it stops after a few dozen rounds, five times faster than always
    running ``max_iter``, at the same held-out error."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(
        max_iter=config.max_iter, random_state=seed, early_stopping=True, n_iter_no_change=5,
        validation_fraction=0.1,
    )  # fmt: skip


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
    data: LoggedData, target_probs: np.ndarray, config: OPEConfig = DEFAULT_CONFIG
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
    data: LoggedData, target_probs: np.ndarray, config: OPEConfig = DEFAULT_CONFIG
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
                test = rows[folds[rows] == k]
                _back_up(q_pairs, rows_pairs, actions, target_probs, data.action, test, rows[has_prev[rows]],
                         q_logged, v_out, v_next)  # fmt: skip
    return q_logged, v_out


def _back_up(
    q_pairs, rows_pairs, actions, target_probs, logged_action, test, with_prev, q_logged, v_out, v_next
):
    """One fitted-Q backup from a week's model: the target's value of every decision (its probabilities
    times the predicted Q of each (row, action) pair), stored for the held-out fold ``test`` beside the
    Q of the logged action, and passed back as the previous week's continuation (``v_next``)."""
    n = len(q_logged)
    v = np.bincount(rows_pairs, weights=target_probs[rows_pairs, actions] * q_pairs, minlength=n)
    logged = actions == logged_action[rows_pairs]
    q_at_logged = np.zeros(n)
    q_at_logged[rows_pairs[logged]] = q_pairs[logged]
    q_logged[test] = q_at_logged[test]
    v_out[test] = v[test]
    v_next[with_prev - 1] = v[with_prev]


# ----------------------------------------------------------------------------- action features
class ActionFeatures:
    """An action described by what distinguishes it, for models that learn action effects.

    For action ``a < S K`` (segment ``a // K``, level ``a % K``): that segment's value per dollar,
    hires, mean sponsored load and affordability from the context (found by their feature specs), the
    log offer level, and 0 for "waits"; for waiting: zeros and 1. The design of a (context, week,
    action) row is ``[context, week, these six]``.

    Parameters
    ----------
    specs : sequence of FeatureSpec
        The context columns' specs.
    offer_levels : sequence of float
    n_actions : int
    """

    FIELDS = ("value_per_dollar", "hires", "mean_load", "affordable")

    def __init__(self, specs: Sequence[FeatureSpec], offer_levels: Sequence[float], n_actions: int) -> None:
        K = len(offer_levels)
        S = (n_actions - 1) // K
        if S * K + 1 != n_actions:
            raise ValueError(f"{n_actions} actions do not fit {K} offer levels plus waiting")
        self.n_actions = n_actions
        #: (S + 1, 4) context column of every segment's features; the last row (waiting) is unused.
        columns = np.zeros((S + 1, len(self.FIELDS)), dtype=np.int64)
        for j, field in enumerate(self.FIELDS):
            for s in range(S):
                found = find(specs, field, s)
                if not found:
                    raise ValueError(f"feature_specs: no '{field}' feature of segment {s}")
                columns[s, j] = found[0]
        self._columns = columns
        self._segment = np.append(np.arange(S * K) // K, S)
        self._log_level = np.append(np.log(np.tile(np.asarray(offer_levels, dtype=float), S)), 0.0)

    def design(self, context: np.ndarray, step: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Rows ``[context, week, segment features, log offer level, waits]`` for (context, action) pairs."""
        actions = np.asarray(actions, dtype=np.int64)
        seg = self._segment[actions]
        wait = actions == self.n_actions - 1
        chosen = np.take_along_axis(context, self._columns[seg], axis=1)
        chosen[wait] = 0.0
        return np.hstack(
            [context, np.asarray(step, float)[:, None], chosen, self._log_level[actions][:, None],
             wait[:, None].astype(float)]
        )  # fmt: skip


def _predict_design(model: Any, features: ActionFeatures, context: np.ndarray, step: np.ndarray,
                    rows: np.ndarray, actions: np.ndarray) -> np.ndarray:  # fmt: skip
    out = np.empty(len(rows))
    for start in range(0, len(rows), _PREDICT_CHUNK):
        sl = slice(start, start + _PREDICT_CHUNK)
        r = rows[sl]
        out[sl] = model.predict(features.design(context[r], step[r], actions[sl]))
    return out


def fitted_q_action_features(
    data: LoggedData,
    target_probs: np.ndarray,
    features: ActionFeatures,
    config: OPEConfig = DEFAULT_CONFIG,
    window: int = 4,
) -> tuple[np.ndarray, np.ndarray]:
    """Cross-fitted fitted-Q evaluation with action features and pooled weeks (see the module docstring).

    Backward over the weeks: every decision of week ``s`` gets the target ``r + V_{s+1}(x')`` once the
    model of week ``s + 1`` is fitted; the model of week ``t`` is fitted on the training folds' decisions
    of weeks ``t .. t + window - 1`` with those targets (the week a feature) and gives ``Q_t`` and
    ``V_t(x) = sum_a pi(a|x) Q_t(x, a)`` at week ``t``.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        ``Q_hat(x_i, a_i)`` and ``V_hat(x_i)`` for every decision (thousands of USD to the end of the
        campaign), from the model that did not see decision ``i``'s campaign.
    """
    from threadpoolctl import threadpool_limits

    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window: expected a whole number >= 1, got {window!r}")
    fold_rng, _, seed = config.streams()
    folds = _campaign_folds(data, config.n_folds, fold_rng)
    n = data.n_decisions
    q_logged, v_out = np.zeros(n), np.zeros(n)
    by_step = [np.flatnonzero(data.step == t) for t in range(data.horizon)]
    has_prev = data.step > 0
    with threadpool_limits(config.n_threads):
        for k in np.unique(folds):
            v_next = np.zeros(n)
            target = np.zeros(n)
            single = not (folds != k).any()
            for t in range(data.horizon - 1, -1, -1):
                rows = by_step[t]
                target[rows] = data.reward[rows] + v_next[rows]
                pooled = np.concatenate(by_step[t : t + window])
                train = pooled if single else pooled[folds[pooled] != k]
                rows_pairs, actions = _needed_pairs(data, target_probs, rows)
                if len(train) < MIN_ROWS_PER_FIT:
                    constant = float(target[train].mean()) if len(train) else 0.0
                    q_pairs = np.full(len(rows_pairs), constant)
                else:
                    model = _regressor(config, seed + 1000 * int(k) + t).fit(
                        features.design(data.context[train], data.step[train], data.action[train]),
                        target[train],
                    )
                    q_pairs = _predict_design(model, features, data.context, data.step, rows_pairs, actions)
                test = rows[folds[rows] == k]
                _back_up(q_pairs, rows_pairs, actions, target_probs, data.action, test, rows[has_prev[rows]],
                         q_logged, v_out, v_next)  # fmt: skip
    return q_logged, v_out
