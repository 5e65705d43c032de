"""The per-transition update of a CQI leaf's split candidates, compiled (numba).

:meth:`agents.cqi.CQI._learn_transition` spends most of its time here: every candidate of the leaf
learns from the transition and is scored, which in numpy is a dozen small array operations per
environment step. One compiled pass does the same arithmetic in the same order;
:meth:`agents.cqi.CQI.split_scores` keeps the numpy form for inspection, and the tests hold the two equal.
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True)
def update_candidates(x, a, y, alpha, decay, greedy, baseline, cand_feature, cand_value, cand_q, cand_top,
                      cand_arg, cand_visits, seen_low, seen_high):  # fmt: skip
    """Learn from (x, a, y) on every candidate, then score them.

    ``cand_q`` is (A, C, 2) and ``cand_visits`` (C, 2), side 0 holding ``x[feature] < value`` (NaN goes
    right, as in the tree walk). ``cand_top`` (C, 2, 2) holds each side's best and second-best Q-value
    over actions and ``cand_arg`` (C, 2) the best action (see :func:`top_two`); they are kept up to date
    here, so a side's maximum is recounted only when its best action falls below the second.

    Each candidate's visits decay on both sides; on the side holding x, Q(a) moves toward y by ``alpha``
    and visits rise by ``1 - decay``. Score of a candidate: the sum over its sides of
    visits x (max_a Q_side - Q_side(greedy)) when ``greedy >= 0`` (the paper's reading), else
    visits x (max_a Q_side - baseline). Candidates without a learned-from observation on both sides
    (from ``seen_low``/``seen_high``) score -inf. Returns (best candidate, its score)."""
    n_cand = cand_q.shape[1]
    rise = 1.0 - decay
    best, best_score = -1, -np.inf
    for c in range(n_cand):
        f = cand_feature[c]
        v = cand_value[c]
        side = 0 if x[f] < v else 1
        _learn_side(cand_q, cand_top, cand_arg, a, c, side, y, alpha)
        cand_visits[c, 0] *= decay
        cand_visits[c, 1] *= decay
        cand_visits[c, side] += rise
        if not (v > seen_low[f] and v <= seen_high[f]):
            continue
        total = 0.0
        for s in range(2):
            ref = cand_q[greedy, c, s] if greedy >= 0 else baseline
            total += (cand_top[c, s, 0] - ref) * cand_visits[c, s]
        if total > best_score:
            best, best_score = c, total
    return best, best_score


@nb.njit(cache=True)
def update_candidates_lcb(x, a, y, alpha, decay, greedy, baseline, z, cand_feature, cand_value, cand_q,
                          cand_top, cand_arg, cand_visits, cand_n, cand_mse, seen_low, seen_high,
                          sample_mean=False):  # fmt: skip
    """:func:`update_candidates` for the conservative rule: the same update, plus per action and side
    the number of updates ``cand_n`` and the running mean squared update ``cand_mse`` (the mean of
    ``(y - Q_old)^2``, weight ``max(alpha, 1 / n)``), and a score from lower confidence bounds. With
    ``sample_mean`` the Q-values move by that same weight ``max(alpha, 1 / n)`` (a sample mean until
    ``n`` reaches ``1 / alpha``), else by ``alpha``.

    A side's gain is ``max_b Q_side(b) - Q_side(ref)`` (``ref`` the greedy action, or ``baseline`` when
    ``greedy < 0``) minus ``z`` standard errors, the squared error of each Q-value being its mean
    squared update over ``min(n, (2 - alpha) / alpha)`` (the effective sample size of an exponential
    average); a side whose best or reference action has no update gains nothing, and a side's gain is
    never negative. A candidate whose two sides share their best action scores 0 (its children would
    act alike). Returns (best candidate, its score), -1 and -inf when no candidate has data on both
    sides."""
    n_cand = cand_q.shape[1]
    rise = 1.0 - decay
    n_cap = (2.0 - alpha) / alpha
    best, best_score = -1, -np.inf
    for c in range(n_cand):
        f = cand_feature[c]
        v = cand_value[c]
        side = 0 if x[f] < v else 1
        n = cand_n[a, c, side] + 1.0
        cand_n[a, c, side] = n
        weight = max(alpha, 1.0 / n)
        err = y - cand_q[a, c, side]
        cand_mse[a, c, side] += weight * (err * err - cand_mse[a, c, side])
        _learn_side(cand_q, cand_top, cand_arg, a, c, side, y, weight if sample_mean else alpha)
        cand_visits[c, 0] *= decay
        cand_visits[c, 1] *= decay
        cand_visits[c, side] += rise
        if not (v > seen_low[f] and v <= seen_high[f]):
            continue
        total = 0.0
        if cand_arg[c, 0] != cand_arg[c, 1]:
            for s in range(2):
                total += _side_lcb(cand_q, cand_top, cand_arg, cand_n, cand_mse, c, s, greedy, baseline,
                                   z, n_cap) * cand_visits[c, s]  # fmt: skip
        if total > best_score:
            best, best_score = c, total
    return best, best_score


@nb.njit(cache=True)
def _side_lcb(cand_q, cand_top, cand_arg, cand_n, cand_mse, c, s, greedy, baseline, z, n_cap):
    """Lower confidence bound of one candidate side's gain, floored at 0 (see update_candidates_lcb)."""
    b = cand_arg[c, s]
    n_b = cand_n[b, c, s]
    if n_b == 0.0:
        return 0.0
    var = cand_mse[b, c, s] / min(n_b, n_cap)
    if greedy >= 0:
        if b == greedy:
            return 0.0
        n_g = cand_n[greedy, c, s]
        if n_g == 0.0:
            return 0.0
        var += cand_mse[greedy, c, s] / min(n_g, n_cap)
        ref = cand_q[greedy, c, s]
    else:
        ref = baseline
    return max(0.0, cand_top[c, s, 0] - ref - z * np.sqrt(var))


@nb.njit(cache=True)
def _learn_side(cand_q, cand_top, cand_arg, a, c, side, y, alpha):
    """Move one candidate side's Q(a) toward y and keep its best and second-best values current."""
    old = cand_q[a, c, side]
    new = old + alpha * (y - old)
    cand_q[a, c, side] = new
    first, second = cand_top[c, side, 0], cand_top[c, side, 1]
    if a == cand_arg[c, side]:
        if new >= second:
            cand_top[c, side, 0] = new
        else:
            _recount(cand_q, c, side, cand_top, cand_arg)
    elif new > first:
        cand_top[c, side, 1] = first
        cand_top[c, side, 0] = new
        cand_arg[c, side] = a
    elif new > second:
        cand_top[c, side, 1] = new
    elif old == second and new < old:  # a held second place and fell
        _recount(cand_q, c, side, cand_top, cand_arg)


@nb.njit(cache=True)
def _recount(cand_q, c, side, cand_top, cand_arg):
    """Best and second-best Q-value over actions of one candidate side, and the best action (the first
    one on ties; the second-best equals the best when two actions tie)."""
    first, second, arg = -np.inf, -np.inf, 0
    for b in range(cand_q.shape[0]):
        q = cand_q[b, c, side]
        if q > first:
            second = first
            first, arg = q, b
        elif q > second:
            second = q
    cand_top[c, side, 0], cand_top[c, side, 1] = first, second
    cand_arg[c, side] = arg


@nb.njit(cache=True)
def top_two(cand_q, cand_top, cand_arg):
    """Fill ``cand_top`` and ``cand_arg`` for every candidate side from ``cand_q``."""
    for c in range(cand_q.shape[1]):
        for side in range(2):
            _recount(cand_q, c, side, cand_top, cand_arg)


@nb.njit(cache=True)
def observe(x, seen_low, seen_high, unbounded, obs_min, obs_max):
    """Widen the leaf's seen box to ``x``, and the observed range of the unbounded features; returns
    whether that range grew. NaN entries change neither."""
    for f in range(len(x)):
        if x[f] < seen_low[f]:
            seen_low[f] = x[f]
        if x[f] > seen_high[f]:
            seen_high[f] = x[f]
    grew = False
    for j in range(len(unbounded)):
        f = unbounded[j]
        if x[f] < obs_min[f]:
            obs_min[f] = x[f]
            grew = True
        if x[f] > obs_max[f]:
            obs_max[f] = x[f]
            grew = True
    return grew
