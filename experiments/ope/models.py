"""Reward models of the off-policy estimators, cross-fitted over campaigns.

Per decision, :func:`cross_fitted_reward_model` fits scikit-learn's ``HistGradientBoostingRegressor`` on
the context plus a one-hot encoding of the action: campaigns are split into ``n_folds`` folds and every
decision's prediction comes from the model fitted on the other folds (so no decision is scored by a
model that saw its own reward). Per campaign, :func:`fitted_q_evaluation` runs backward over the weeks,
``Q_t(x, a) = E[r + V_{t+1}(x')]``, ``V_t(x) = sum_a pi(a|x) Q_t(x, a)``, with one regressor per week
(the horizon is finite and the week is known), cross-fitted the same way. Fits use one thread
(``n_threads``): on a shared two-core machine the default OpenMP pool made small fits twenty times
slower. Chernozhukov et al. (2018) for cross-fitting.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from experiments.ope.config import DEFAULT_CONFIG, OPEConfig
from experiments.ope.logs import LoggedData

__all__ = ["MIN_ROWS_PER_FIT", "cross_fitted_reward_model", "fitted_q_evaluation"]

#: Rows of the design matrix predicted at once (bounds memory).
_PREDICT_CHUNK = 100_000
#: Fewer training rows than this in a week: fitted-Q predicts the mean target of that week.
MIN_ROWS_PER_FIT = 20


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
