"""Compiled batch loops of :class:`envs.vector.InfluencerMatchingVectorEnv` (numba).

Every campaign's state is one row of stacked arrays (``budget_left[i]``, ``hired[i]``, ``prefix[i]``
...); a call steps or resets many campaigns on the one shared market. The per-campaign work is the
single environment's own kernels (:mod:`envs._kernels`), called on the rows, and the offer is sampled
here with the campaign's own ``numpy.random.Generator`` in the order of
:meth:`envs.matching_env.InfluencerMatchingEnv._offer` (numba draws from a generator exactly as numpy
does), so a row follows the same trajectory as a single environment with the same generator:

* :func:`step_campaigns`: the week's offer (acceptance, reach, engagements, clicks, conversions), the
  budget and hires, then the next week's candidates, mask, outcome terms, expected rewards and
  observation;
* :func:`draw_starts`: the random part of new campaigns (the campaign, then its churn) from each row's
  generator, in the single env's order and bit for bit (numpy's ``Generator.choice`` without
  replacement, which numba lacks, written out);
* :func:`reset_campaigns`: a new campaign's fit, value per dollar, ranked segments, prefixes and first
  week (after the Python side finished those draws as the single env does); the fit and value per dollar
  are not stored but computed where read (the ranking's scan, then each week's candidates and refills),
  with the audience product summed as the BLAS kernel that computes each row of the single env's
  (:func:`_blas_dot`, :func:`classify_rows`, :func:`_computed_values`).

The entry kernels work on :func:`envs._kernels.borrowed` arrays: the rows' views then count no
references (their atomic counts took about a quarter of the step kernel's time).
"""

from __future__ import annotations

import numba as nb
import numpy as np
from numba.np.random.distributions import random_loggam
from numba.np.random.generator_core import next_double
from numba.np.random.random_methods import buffered_bounded_lemire_uint32

from envs import _kernels as k
from envs.outcomes import AWARENESS, CONVERSION, ENGAGEMENT, SPONSORED_POST_LOAD

#: Columns of the ``counts`` output of :func:`step_campaigns` (whole numbers).
OUT_REACH, OUT_ENGAGEMENTS, OUT_CLICKS, OUT_CONVERSIONS = range(4)
#: Columns of the ``amounts`` output (USD).
OUT_COST, OUT_REVENUE, OUT_VALUE = range(3)

#: Entries of the ``tables`` tuple's scalar vector ``scalars``.
S_REACH_SD, S_ENGAGEMENT_SD, S_LOAD_DECAY, S_LOAD_RECOVERS = range(4)


@nb.njit(cache=True)
def _refresh(i, choose, load_decay, week, weeks, category, month_list, budget_left, n_hired, consts,
             demand, value_factor, recovery, load_recovers, campaign, market, lazy_on, lazy, value_coef):  # fmt: skip
    """:meth:`InfluencerMatchingEnv._refresh` on row ``i``: this week's calendar constants, then
    :func:`envs._kernels.week_view`, which reads the fit and value per dollar from the row's arrays, or
    with ``lazy_on`` computes them where read (:func:`_computed_values`; see :func:`reset_campaigns`)."""
    (ranked, n_eligible, prefix, complete, join, leave, hired, category_share, load, fit, value_per_dollar,
     rates, hired_array, hired_segment, hired_load, hires, candidate, terms, expected, mask, observation,
     load_sum, load_count) = campaign  # fmt: skip
    (by_price, segment_start, sorted_price, never, price, levels, log_levels, month_table, reach_value,
     mix_unit) = market  # fmt: skip
    shown = min(week, weeks - 1)
    month = month_list[i, week]
    consts[i, k.C_DEMAND] = demand[category[i], month]
    consts[i, k.C_VALUE_FACTOR] = value_factor[week]
    if load_recovers:
        consts[i, k.C_LOAD_RECOVERY] = recovery[week]
    category_row = category_share[category[i]]
    if lazy_on:
        audience, kind, roots, scales, fit_weights = lazy[0], lazy[1], lazy[2], lazy[4], lazy[5]
        goal = int(consts[i, k.C_GOAL])
        values = (audience, kind, roots[i], category_row, value_coef[goal, 0], value_coef[goal, 1], fit_weights,
                  scales[i])  # fmt: skip
        k.week_view(choose, week, month, month_list[i, shown], budget_left[i], (weeks - week) / weeks,
                    n_hired[i], load_decay, load_sum[i, shown], load_count[i, shown], ranked[i], n_eligible[i],
                    prefix[i], complete[i], join[i], leave[i], hired[i], consts[i], category_row, load, values,
                    rates, hired_array[i], hired_segment[i], hired_load[i], hires[i], candidate[i], terms[i],
                    expected[i], mask[i], observation[i], by_price, segment_start, sorted_price, never, price,
                    levels, log_levels, month_table, reach_value, mix_unit)  # fmt: skip
    else:
        k.week_view(choose, week, month, month_list[i, shown], budget_left[i], (weeks - week) / weeks,
                    n_hired[i], load_decay, load_sum[i, shown], load_count[i, shown], ranked[i], n_eligible[i],
                    prefix[i], complete[i], join[i], leave[i], hired[i], consts[i], category_row, load,
                    (fit[i], value_per_dollar[i]), rates, hired_array[i], hired_segment[i], hired_load[i],
                    hires[i], candidate[i], terms[i], expected[i], mask[i], observation[i], by_price,
                    segment_start, sorted_price, never, price, levels, log_levels, month_table, reach_value,
                    mix_unit)  # fmt: skip


@nb.njit(cache=True)
def _offer(i, s, lvl, chosen, generator, scalars, consts, levels, reach_value, terms, counts, amounts):
    """Sample the offer of level ``lvl`` to influencer ``chosen`` of segment ``s`` (row ``i``): one
    uniform, two normals and three Poissons in :meth:`InfluencerMatchingEnv._offer`'s order; returns
    whether it was accepted and writes the outcome's counts and amounts."""
    a = s * len(levels) + lvl
    p = terms[i, a, k.P_ACCEPT]
    cost = terms[i, a, k.COST]
    accepted = generator.random() < p
    reach = np.int64(
        np.rint(terms[i, a, k.REACH_MEAN] * np.exp(scalars[S_REACH_SD] * generator.standard_normal()))
    )
    engagement_mean = terms[i, a, k.ENGAGEMENT_MEAN] * np.exp(
        scalars[S_ENGAGEMENT_SD] * generator.standard_normal()
    )
    engagements = poisson(generator, engagement_mean)
    clicks = poisson(generator, reach * terms[i, a, k.CLICKS_PER_REACH])
    conversions = poisson(generator, reach * terms[i, a, k.CONVERSIONS_PER_REACH])
    if not accepted:
        reach = engagements = clicks = conversions = np.int64(0)
        cost = 0.0
    revenue = conversions * consts[i, k.C_ORDER_VALUE]
    goal = int(consts[i, k.C_GOAL])
    if goal == AWARENESS:
        value = reach / 1000.0 * consts[i, k.C_VALUE_PER_1K_REACH] * reach_value[chosen]
    elif goal == ENGAGEMENT:
        value = engagements * consts[i, k.C_VALUE_PER_ENGAGEMENT]
    else:
        value = revenue
    if goal != CONVERSION:
        value *= consts[i, k.C_DEMAND]
    value *= consts[i, k.C_VALUE_FACTOR]
    counts[i, OUT_REACH] = reach
    counts[i, OUT_ENGAGEMENTS] = engagements
    counts[i, OUT_CLICKS] = clicks
    counts[i, OUT_CONVERSIONS] = conversions
    amounts[i, OUT_COST] = cost
    amounts[i, OUT_REVENUE] = revenue
    amounts[i, OUT_VALUE] = value
    return accepted


@nb.njit(cache=True)
def poisson(generator, lam):
    """``generator.poisson(lam)`` exactly as numpy draws it. From ``lam >= 10`` numpy samples by PTRS
    (Hörmann's transformed rejection) with ``k = floor(...)``; numba's port truncates instead, so where
    the expression lies in (-1, 0) numba returns 0 while numpy rejects and draws again (seen: a click
    count of 0 for numpy's 10, and every later draw of the campaign shifted). Below 10 numba's
    multiplication method is numpy's."""
    if lam < 10:
        return np.int64(generator.poisson(lam))
    bitgen = generator.bit_generator
    slam = np.sqrt(lam)
    loglam = np.log(lam)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    invalpha = 1.1239 + 1.1328 / (b - 3.4)
    vr = 0.9277 - 3.6224 / (b - 2)
    while True:
        U = next_double(bitgen) - 0.5
        V = next_double(bitgen)
        us = 0.5 - np.fabs(U)
        draw = np.int64(np.floor((2 * a / us + b) * U + lam + 0.43))
        if us >= 0.07 and V <= vr:
            return draw
        if draw < 0 or (us < 0.013 and V > us):
            continue
        if np.log(V) + np.log(invalpha) - np.log(a / (us * us) + b) <= -lam + draw * loglam - random_loggam(
            draw + 1
        ):
            return draw


@nb.njit(cache=True)
def poisson_many(generator, lam, n):
    """``n`` draws of :func:`poisson` (for the tests against numpy's stream)."""
    out = np.empty(n, dtype=np.int64)
    for j in range(n):
        out[j] = poisson(generator, lam)
    return out


@nb.njit(cache=True)
def step_campaigns(rows, actions, generators, state, tables, campaign, market, out, lazy_on, lazy, values):
    """Step campaigns ``rows`` with ``actions`` (one per row of the batch); see the module docstring.

    ``state``: (week, budget_left, spent, total_reward, premium, n_hired, category, month_list, consts);
    ``tables``: (demand, value_factor, recovery, premium_by_month, scalars); ``campaign`` and ``market``:
    the row-stacked campaign arrays and the market's arrays, in :func:`_refresh`'s order; ``out``:
    (reward, terminated, truncated, offered, segment, offer_ratio, accepted, counts, amounts), written
    at each stepped row; ``lazy_on``, ``lazy`` and ``values``: see :func:`reset_campaigns`."""
    rows, actions, state, tables, campaign, market, out, lazy, values = k.borrowed(
        (rows, actions, state, tables, campaign, market, out, lazy, values)
    )
    _step_rows(rows, actions, generators, state, tables, campaign, market, out, lazy_on, lazy, values)


@nb.njit(cache=True, parallel=True)
def step_campaigns_threaded(n_threads, rows, actions, generators, state, tables, campaign, market, out, lazy_on,
                            lazy, values):  # fmt: skip
    """:func:`step_campaigns` on ``n_threads`` threads, each stepping a contiguous share of ``rows``. A row
    is stepped by the same code from its own generator and touches only its own rows of the state, so the
    numbers are the same for any number of threads. The caller sets numba's thread count to ``n_threads``
    (``numba.set_num_threads`` inside a compiled function reads the threading layer through a pointer
    known only at run time, which stops numba caching the function)."""
    rows, actions, state, tables, campaign, market, out, lazy, values = k.borrowed(
        (rows, actions, state, tables, campaign, market, out, lazy, values)
    )
    for t in nb.prange(n_threads):  # one call per thread: a call per row costs about 0.5 us (its ~60 arrays)
        lo, hi = _thread_share(t, n_threads, len(rows))
        if lo < hi:
            _step_rows(rows[lo:hi], actions[lo:hi], generators, state, tables, campaign, market, out, lazy_on, lazy,
                       values)  # fmt: skip


@nb.njit(cache=True)
def _thread_share(t, n_threads, n_rows):
    """Thread ``t``'s contiguous share ``lo:hi`` of ``n_rows`` rows split among ``n_threads`` (may be empty)."""
    share = (n_rows + n_threads - 1) // n_threads
    return t * share, min((t + 1) * share, n_rows)


@nb.njit(cache=True)
def _step_rows(rows, actions, generators, state, tables, campaign, market, out, lazy_on, lazy, values):
    """The loop of :func:`step_campaigns` over ``rows``, on arrays already borrowed."""
    week, budget_left, spent, total_reward, premium, n_hired, category, month_list, consts = state
    demand, value_factor, recovery, premium_by_month, scalars = tables
    reward, terminated, truncated, offered, segment, offer_ratio, accepted, counts, amounts = out
    candidate, terms, mask = campaign[16], campaign[17], campaign[19]
    hired, hires, hired_array, hired_segment, hired_load = (
        campaign[6],
        campaign[15],
        campaign[12],
        campaign[13],
        campaign[14],
    )
    ranked, n_eligible, prefix, complete, leave = (
        campaign[0],
        campaign[1],
        campaign[2],
        campaign[3],
        campaign[5],
    )
    price, levels, reach_value = market[4], market[5], market[8]
    value_coef = values[1]
    n_levels = len(levels)
    n_hire = candidate.shape[1] * n_levels
    weeks = month_list.shape[1] - 1
    load_recovers = scalars[S_LOAD_RECOVERS] != 0.0
    for b in range(len(rows)):
        i = rows[b]
        action = actions[b]
        r = 0.0
        offered[i] = -1
        segment[i] = -1
        offer_ratio[i] = 0.0
        accepted[i] = False
        counts[i, :] = 0
        amounts[i, :] = 0.0
        if action < n_hire:
            s, lvl = action // n_levels, action % n_levels
            chosen = candidate[i, s, lvl]
            if chosen >= 0:
                ok = _offer(
                    i,
                    s,
                    lvl,
                    chosen,
                    generators[i],
                    scalars,
                    consts,
                    levels,
                    reach_value,
                    terms,
                    counts,
                    amounts,
                )
                offered[i], segment[i], offer_ratio[i], accepted[i] = chosen, s, levels[lvl], ok
                cost = amounts[i, OUT_COST]
                if ok:
                    budget_left[i] = max(budget_left[i] - cost, 0.0)
                    spent[i] += cost
                    hired[i, chosen] = True
                    hires[i, s] += 1
                    h = n_hired[i]
                    hired_array[i, h] = chosen
                    hired_segment[i, h] = s
                    hired_load[i, h] = SPONSORED_POST_LOAD
                    n_hired[i] = h + 1
                r = (amounts[i, OUT_VALUE] - cost) / 1000.0
        total_reward[i] += r
        reward[i] = r
        # Next week (InfluencerMatchingEnv._advance_week).
        week[i] += 1
        w = week[i]
        if w >= weeks:
            _refresh(i, False, 1.0, w, weeks, category, month_list, budget_left, n_hired, consts, demand,
                     value_factor, recovery, load_recovers, campaign, market, lazy_on, lazy, value_coef)  # fmt: skip
        else:
            p = premium_by_month[month_list[i, w]]
            dropped = p < premium[i]
            premium[i] = p
            if dropped:
                k.cut_prefixes(ranked[i], n_eligible[i], price, leave[i], hired[i], w, budget_left[i], levels, p,
                               prefix[i], complete[i])  # fmt: skip
            _refresh(i, True, scalars[S_LOAD_DECAY], w, weeks, category, month_list, budget_left, n_hired, consts,
                     demand, value_factor, recovery, load_recovers, campaign, market, lazy_on, lazy,
                     value_coef)  # fmt: skip
        truncated[i] = w >= weeks
        terminated[i] = not truncated[i] and not mask[i, :-1].any()


@nb.njit(cache=True)
def _start_churn(i, lo, hi, churn, templates, join, leave, load_sum, load_count):
    """Row ``i``'s churn from the swaps ``lo:hi`` of ``churn = (leavers, joiners, when)``: join and leave
    weeks and the per-week, per-segment load tables, as :meth:`InfluencerMatchingEnv._draw_churn` builds
    them with numpy (a bincount of the swaps, leavers first, then a running sum over the weeks). The join
    and leave rows hold the templates but where the row's last campaign swapped (``templates`` ends with
    those indices, ``touched[i, :n_touched[i]]``), so only those are restored, not the whole row."""
    leavers, joiners, when = churn
    join_template, leave_template, base_sum, base_count, background, segment, touched, n_touched = templates
    for t in range(n_touched[i]):  # undo the last campaign's swaps: the row is the templates again
        j = touched[i, t]
        join[i, j] = join_template[j]
        leave[i, j] = leave_template[j]
    n_touched[i] = 0
    weeks, n_segments = load_sum.shape[1], load_sum.shape[2]
    delta_load = np.zeros(weeks * n_segments)
    delta_count = np.zeros(weeks * n_segments)
    for j in range(lo, hi):
        leave[i, leavers[j]] = when[j]
        join[i, joiners[j]] = when[j]
        touched[i, n_touched[i]] = leavers[j]
        touched[i, n_touched[i] + 1] = joiners[j]
        n_touched[i] += 2
    for j in range(lo, hi):
        cell = when[j] * n_segments + segment[leavers[j]]
        delta_load[cell] += -1.0 * background[leavers[j]]
        delta_count[cell] += -1.0
    for j in range(lo, hi):
        cell = when[j] * n_segments + segment[joiners[j]]
        delta_load[cell] += background[joiners[j]]
        delta_count[cell] += 1.0
    for s in range(n_segments):
        running_load = running_count = 0.0
        for w in range(weeks):
            running_load += delta_load[w * n_segments + s]
            running_count += delta_count[w * n_segments + s]
            load_sum[i, w, s] = base_sum[s] + running_load
            load_count[i, w, s] = base_count[s] + running_count


@nb.njit(cache=True)
def reset_campaigns(rows, offsets, churn, templates, audience_fit, scale, values, state, tables, campaign, market,
                    lazy_on, lazy):  # fmt: skip
    """Start the campaigns of ``rows`` (their scalars, constants and campaign features already set by the
    Python side, which also drew the churn: swaps ``offsets[b]:offsets[b + 1]`` of ``churn`` belong to
    ``rows[b]``, as do ``audience_fit[b]`` and ``scale[b]``): churn tables, fit and value per dollar,
    ranked segments, prefixes and the first week, as :meth:`InfluencerMatchingEnv.reset` does.

    ``values``: (fit_weights, value_coef, rank_bound, rank_order, bound_in_order) of the market: the bounds
    and orders of :func:`envs._kernels.rank_at_start` by goal and brand category (see
    :meth:`envs.vector.InfluencerMatchingVectorEnv._rank_bounds`), and the bounds in that order. With ``lazy_on`` the fit
    and value per dollar are computed only where read (see the section on them below; ``audience_fit`` is
    then not read): ``lazy`` = (sqrt_audience, kind, sqrt_target, row_full, scale, fit_weights,
    not_finite, magnitude, incumbents, n_incumbents, scan_table), the market's audiences and
    :func:`classify_rows`' kernels, each row's square-rooted target audience (set by the caller), whether
    all its values are computed, and its scale; per goal the influencers whose coefficients are not finite
    (-1 pads) and a bound of ``|coef_a| + |coef_b| * |fit|``; the incumbents per segment and their number;
    and :func:`_rank_lazily`'s inputs in scan order. A row's values are then never stored: the week view
    computes each where it reads it (:func:`_computed_values`)."""
    (rows, offsets, churn, templates, audience_fit, scale, values, state, tables, campaign, market,
     lazy) = k.borrowed((rows, offsets, churn, templates, audience_fit, scale, values, state, tables, campaign,
                         market, lazy))  # fmt: skip
    _reset_rows(rows, offsets, churn, templates, audience_fit, scale, values, state, tables, campaign, market,
                lazy_on, lazy)  # fmt: skip


@nb.njit(cache=True, parallel=True)
def reset_campaigns_threaded(n_threads, rows, offsets, churn, templates, audience_fit, scale, values, state, tables,
                             campaign, market, lazy_on, lazy):  # fmt: skip
    """:func:`reset_campaigns` on ``n_threads`` threads, each starting a contiguous share of ``rows`` (as
    :func:`step_campaigns_threaded`: the same numbers for any number of threads)."""
    (rows, offsets, churn, templates, audience_fit, scale, values, state, tables, campaign, market,
     lazy) = k.borrowed((rows, offsets, churn, templates, audience_fit, scale, values, state, tables, campaign,
                         market, lazy))  # fmt: skip
    for t in nb.prange(n_threads):
        lo, hi = _thread_share(t, n_threads, len(rows))
        if lo < hi:
            _reset_rows(rows[lo:hi], offsets[lo : hi + 1], churn, templates, audience_fit[lo:hi], scale[lo:hi],
                        values, state, tables, campaign, market, lazy_on, lazy)  # fmt: skip


@nb.njit(cache=True)
def _reset_rows(rows, offsets, churn, templates, audience_fit, scale, values, state, tables, campaign, market,
                lazy_on, lazy):  # fmt: skip
    """The loop of :func:`reset_campaigns` over ``rows``, on arrays already borrowed."""
    fit_weights, value_coef, rank_bound, rank_order, bound_in_order = values
    segment = templates[5]
    week, budget_left, spent, total_reward, premium, n_hired, category, month_list, consts = state
    demand, value_factor, recovery, premium_by_month, scalars = tables
    (ranked, n_eligible, prefix, complete, join, leave, hired, category_share, load, fit, value_per_dollar,
     rates, hired_array, hired_segment, hired_load, hires, candidate, terms, expected, mask, observation,
     load_sum, load_count) = campaign  # fmt: skip
    segment_start, never, price, levels = market[1], market[3], market[4], market[5]
    weeks = month_list.shape[1] - 1
    load_recovers = scalars[S_LOAD_RECOVERS] != 0.0
    for b in range(len(rows)):
        i = rows[b]
        _start_churn(i, offsets[b], offsets[b + 1], churn, templates, join, leave, load_sum, load_count)
        for h in range(n_hired[i]):  # only the last campaign's hires are set
            hired[i, hired_array[i, h]] = False
        hires[i, :] = 0
        hired_array[i, :] = 0
        hired_segment[i, :] = 0
        hired_load[i, :] = 0.0
        n_hired[i] = 0
        week[i] = 0
        spent[i] = 0.0
        total_reward[i] = 0.0
        prefix[i] = -1
        complete[i] = False
        candidate[i] = -1
        goal = int(consts[i, k.C_GOAL])
        category_row, coef_a, coef_b = category_share[category[i]], value_coef[goal, 0], value_coef[goal, 1]
        bounded = False
        if lazy_on:
            bounded = _start_lazily(i, b, churn[1], offsets[b], offsets[b + 1], lazy, category_row, coef_a, coef_b,
                                    goal, scale[b], segment, join, never, fit, value_per_dollar, n_eligible)  # fmt: skip
        else:
            k.campaign_values(category_row, audience_fit[b], fit_weights, coef_a, coef_b, scale[b], fit[i],
                              value_per_dollar[i], segment, join[i], never, n_eligible[i])  # fmt: skip
        c = category[i]
        if bounded:
            _rank_lazily(i, lazy, category_row, coef_a, coef_b, bound_in_order[goal, c], rank_order[goal, c],
                         lazy[10][goal, c], segment_start, join, never, ranked)  # fmt: skip
        else:
            k.rank_at_start(value_per_dollar[i], scale[b], rank_bound[goal, c], rank_order[goal, c], segment_start,
                            segment, join[i], leave[i], hired[i], never, ranked[i], n_eligible[i])  # fmt: skip
        _cut_at_start(i, ranked, n_eligible, price, budget_left[i], levels, premium[i], prefix, complete)
        _refresh(i, True, 1.0, 0, weeks, category, month_list, budget_left, n_hired, consts, demand,
                 value_factor, recovery, load_recovers, campaign, market, lazy_on, lazy, value_coef)  # fmt: skip


# ------------------------------------------------------------------------- compiled stream-exact draws
@nb.njit(cache=True)
def _inverse_cdf(cdf, u):
    """``numpy.searchsorted(cdf, u, side="right")`` (:meth:`Calibration.draw`'s category of a uniform)."""
    j = 0
    while j < len(cdf) and cdf[j] <= u:
        j += 1
    return j


@nb.njit(cache=True)
def _bounded(generator, high):
    """``generator.integers(0, high + 1)`` for ``0 <= high < 2**32 - 1``: numpy's
    ``random_bounded_uint64(0, high)`` (Lemire's rejection on 32-bit words; no draw when ``high`` is 0).
    Numba's own ``integers`` draws the same but allocates an array per call, six times slower here."""
    if high == 0:
        return np.int64(0)
    return np.int64(buffered_bounded_lemire_uint32(generator.bit_generator, np.uint32(high)))


@nb.njit(cache=True)
def _shuffle_tail(generator, data, first):
    """numpy's ``_shuffle_int(bitgen, len(data), first, data)`` (the shuffle of ``Generator.choice``):
    from the last entry down to ``first``, swap with a uniform index in ``[0, i]``."""
    for i in range(len(data) - 1, first - 1, -1):
        j = _bounded(generator, i)  # numpy's random_bounded_uint64(0, i)
        data[i], data[j] = data[j], data[i]


@nb.njit(cache=True)
def _choice_without_replacement(generator, pop_size, size, out):
    """``generator.choice(pop_size, size=size, replace=False)`` into ``out[:size]``, drawing exactly
    what numpy (>= 1.17's ``Generator``) draws: a tail shuffle of ``arange(pop_size)`` for a large
    share of a large population, else Floyd's algorithm with numpy's hash set, then a shuffle."""
    if pop_size > 10000 and size > pop_size // 50:
        idx = np.arange(pop_size)
        _shuffle_tail(generator, idx, max(pop_size - size, 1))
        out[:size] = idx[pop_size - size :]
        return
    set_size = np.uint64(1.2 * size)
    mask = set_size
    mask |= mask >> np.uint64(1)
    mask |= mask >> np.uint64(2)
    mask |= mask >> np.uint64(4)
    mask |= mask >> np.uint64(8)
    mask |= mask >> np.uint64(16)
    mask |= mask >> np.uint64(32)
    empty = np.uint64(0xFFFFFFFFFFFFFFFF)
    hash_set = np.full(np.int64(mask) + 1, empty, dtype=np.uint64)
    for j in range(pop_size - size, pop_size):
        val = np.uint64(_bounded(generator, j))  # numpy's random_bounded_uint64(0, j)
        loc = val & mask
        while hash_set[loc] != empty and hash_set[loc] != val:
            loc = (loc + np.uint64(1)) & mask
        if hash_set[loc] == empty:
            hash_set[loc] = val
            out[j - pop_size + size] = np.int64(val)
        else:
            loc = np.uint64(j) & mask
            while hash_set[loc] != empty:
                loc = (loc + np.uint64(1)) & mask
            hash_set[loc] = np.uint64(j)
            out[j - pop_size + size] = j
    _shuffle_tail(generator, out[:size], 1)


@nb.njit(cache=True)
def draw_starts(rows, generators, cdfs, alpha, log_ranges, churn, buffers):
    """The random part of a new campaign in each of ``rows``, from the row's generator in the order of
    :meth:`InfluencerMatchingEnv.reset`: :func:`envs.campaigns.sample_campaign`'s draws, then
    :meth:`InfluencerMatchingEnv._churn_draws`' (numba's generator methods draw numpy's exact streams;
    ``Generator.choice`` without replacement, which numba lacks, is :func:`_choice_without_replacement`).

    ``cdfs``: (category, goal, budget bin) cumulative shares, the last entry +inf; ``alpha``: (12, 12)
    Dirichlet parameters of the target audience by category; ``log_ranges``: (budget bin edges, log),
    then the log bounds of the value per engagement and per 1k reach; ``churn``: (incumbents,
    reservoir, p_leave, on); ``buffers``: (leavers, joiners, uniforms) of room for ``len(rows)`` times the
    reservoir, reused across calls (fresh ones this large would fault in their pages at every call).

    Returns ``(ints, floats, gammas, offsets, leavers, joiners, uniforms)``: per row the category,
    goal, budget bin and start month; the uniform exponent of the annual budget, the order value's
    normal, and the two value exponents; the 12 gamma draws; and the swaps ``offsets[b]:offsets[b+1]``
    (leavers, joiners as pool indices, and the uniform of each swap's week).
    """
    R = len(rows)
    ints, floats, gammas, offsets = _draw_outputs(R, alpha.shape[1])
    for b in range(R):
        offsets[b + 1] = offsets[b] + _draw_row(b, generators[rows[b]], offsets[b], cdfs, alpha, log_ranges,
                                                churn, buffers, ints, floats, gammas)  # fmt: skip
    end = offsets[R]
    leavers, joiners, uniforms = buffers
    return ints, floats, gammas, offsets, leavers[:end], joiners[:end], uniforms[:end]


@nb.njit(cache=True, parallel=True)
def draw_starts_threaded(n_threads, rows, generators, cdfs, alpha, log_ranges, churn, buffers):
    """:func:`draw_starts` on ``n_threads`` threads, each drawing a contiguous share of ``rows`` from their
    own generators: row ``b``'s swaps go to its own slot of the buffers (from ``b`` times the reservoir),
    then are moved together in row order, so the result is :func:`draw_starts`' to the bit."""
    R = len(rows)
    ints, floats, gammas, offsets = _draw_outputs(R, alpha.shape[1])
    n_leave = np.zeros(R, dtype=np.int64)
    slot = np.int64(churn[1])
    for t in nb.prange(n_threads):
        lo, hi = _thread_share(t, n_threads, R)
        for b in range(lo, hi):
            n_leave[b] = _draw_row(b, generators[rows[b]], b * slot, cdfs, alpha, log_ranges, churn, buffers, ints,
                                   floats, gammas)  # fmt: skip
    leavers, joiners, uniforms = buffers
    for b in range(R):  # each slot moves left (offsets[b] <= b * slot), in row order: nothing is overwritten
        start, end = offsets[b], offsets[b] + n_leave[b]
        for j in range(n_leave[b]):
            leavers[start + j] = leavers[b * slot + j]
            joiners[start + j] = joiners[b * slot + j]
            uniforms[start + j] = uniforms[b * slot + j]
        offsets[b + 1] = end
    end = offsets[R]
    return ints, floats, gammas, offsets, leavers[:end], joiners[:end], uniforms[:end]


@nb.njit(cache=True)
def _draw_outputs(n_rows, n_categories):
    """The per-row outputs of :func:`draw_starts`: ints, floats, gammas and the swaps' offsets."""
    return (np.zeros((n_rows, 4), dtype=np.int64), np.zeros((n_rows, 4)), np.zeros((n_rows, n_categories)),
            np.zeros(n_rows + 1, dtype=np.int64))  # fmt: skip


@nb.njit(cache=True)
def _draw_row(b, g, start, cdfs, alpha, log_ranges, churn, buffers, ints, floats, gammas):
    """Row ``b`` of :func:`draw_starts` from generator ``g``: its campaign's draws into ``ints[b]``,
    ``floats[b]`` and ``gammas[b]``, then its churn's swaps into the buffers from ``start``; returns how
    many swaps."""
    category_cdf, goal_cdf, budget_cdf = cdfs
    log_edges, log_vpe, log_v1k = log_ranges
    n_inc, n_reservoir, p_leave, churn_on = churn
    n_inc, n_reservoir = np.int64(n_inc), np.int64(n_reservoir)
    leavers, joiners, uniforms = buffers
    category = _inverse_cdf(category_cdf, g.random())
    ints[b, 0] = category
    ints[b, 1] = _inverse_cdf(goal_cdf, g.random())
    for c in range(alpha.shape[1]):
        gammas[b, c] = g.standard_gamma(alpha[category, c])
    bin_ = _inverse_cdf(budget_cdf, g.random())
    ints[b, 2] = bin_
    floats[b, 0] = g.uniform(log_edges[bin_], log_edges[bin_ + 1])
    floats[b, 1] = g.standard_normal()
    ints[b, 3] = _bounded(g, 11)  # integers(0, 12)
    floats[b, 2] = g.uniform(log_vpe[0], log_vpe[1])
    floats[b, 3] = g.uniform(log_v1k[0], log_v1k[1])
    n_leave = np.int64(0)
    if churn_on:
        n_leave = min(np.int64(g.binomial(n_inc, p_leave)), n_reservoir)
        _choice_without_replacement(g, n_inc, n_leave, leavers[start:])
        for j in range(n_leave):
            uniforms[start + j] = g.random()
        _choice_without_replacement(g, n_reservoir, n_leave, joiners[start:])
        for j in range(n_leave):
            joiners[start + j] += n_inc
    return n_leave


# --------------------------------------------------------------- brand values computed only where read
# A new campaign's fit and value per dollar are read only for the few influencers that the ranking scans
# (the top of each segment by an upper bound), for each week's candidates and for the members a refill
# reads; each is computed where it is read (:func:`_computed_values`, a dozen multiply-adds on the market's
# arrays, cheaper than a store and a load from rows of every influencer for every campaign, which miss the
# caches), and a whole row only for a campaign whose scale cannot bound the ranking
# (:func:`_complete_row`, for :func:`envs._kernels.rank_at_start`'s full pass). The single env takes the audience fit from one
# BLAS product over the pool (``sqrt_audience @ sqrt(target)``); :func:`_blas_dot` computes one row of it
# in the summation order of the OpenBLAS kernel that computed that row, which
# :func:`classify_rows` finds by comparing against numpy's product at construction.

#: Kernels of OpenBLAS's ``dgemv_t`` (the row-major product ``A @ x`` of a 12-column ``A``) for one row:
#: the 4-row FMA kernel, the 2-row SSE kernel and the 1-row SSE kernel (the last rows of a thread's share).
DOT_4X4, DOT_4X2, DOT_4X1 = range(3)
#: Columns the exact row products are written out for (the audience's 2 genders x 6 age bands).
DOT_WIDTH = 12
#: How deep into each segment's scan order the lazy ranking finds its inputs side by side (the scan table
#: of :meth:`envs.vector.InfluencerMatchingVectorEnv._scan_table`; a scan reads a few more than the
#: ranked depth per segment).
SCAN_DEPTH = 64


@nb.extending.intrinsic
def _fma(typingctx, a, b, c):
    """``a * b + c`` rounded once (LLVM's ``llvm.fma.f64``: the instruction, or libm's exact ``fma``)."""
    from llvmlite import ir

    def codegen(context, builder, signature, args):
        double = ir.DoubleType()
        fn = nb.core.cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(double, [double] * 3), "llvm.fma.f64"
        )
        return builder.call(fn, args)

    return nb.types.float64(nb.types.float64, nb.types.float64, nb.types.float64), codegen


@nb.njit(cache=True, inline="always")
def _blas_dot(a, j, x, kind):
    """Row ``j`` of ``a @ x`` (``a`` of 12 columns) as OpenBLAS's ``dgemv_t`` kernel ``kind`` sums it:
    DOT_4X4 keeps four FMA lanes (columns c, c + 4, c + 8) and adds them as (0 + 2) + (1 + 3); DOT_4X2 two
    lanes of products added in turn (even and odd columns), then lane 0 + lane 1; DOT_4X1 four such lanes,
    added as (0 + 2) + (1 + 3)."""
    if kind == DOT_4X4:
        l0, l1, l2, l3 = a[j, 0] * x[0], a[j, 1] * x[1], a[j, 2] * x[2], a[j, 3] * x[3]
        for c in range(4, DOT_WIDTH, 4):
            l0 = _fma(a[j, c], x[c], l0)  # type: ignore[call-arg]  # numba's intrinsic hides its typing context
            l1 = _fma(a[j, c + 1], x[c + 1], l1)
            l2 = _fma(a[j, c + 2], x[c + 2], l2)
            l3 = _fma(a[j, c + 3], x[c + 3], l3)
        return (l0 + l2) + (l1 + l3)
    if kind == DOT_4X2:
        l0, l1 = 0.0, 0.0
        for c in range(0, DOT_WIDTH, 2):
            l0 += a[j, c] * x[c]
            l1 += a[j, c + 1] * x[c + 1]
        return l0 + l1
    l0, l1, l2, l3 = 0.0, 0.0, 0.0, 0.0
    for c in range(0, DOT_WIDTH, 4):
        l0 += a[j, c] * x[c]
        l1 += a[j, c + 1] * x[c + 1]
        l2 += a[j, c + 2] * x[c + 2]
        l3 += a[j, c + 3] * x[c + 3]
    return (l0 + l2) + (l1 + l3)


@nb.extending.overload(k.candidate_values)
def _computed_values(values, i):
    """:func:`envs._kernels.candidate_values` of a row whose values are computed where read: ``values`` =
    (sqrt_audience, kind, sqrt_target, category_row, coef_a, coef_b, fit_weights, scale), and the fit and
    value per dollar those of :func:`envs._kernels.campaign_values`, with :func:`_blas_dot`'s audience fit
    (the same operations in the same order: the same bits)."""
    if isinstance(values, nb.types.BaseTuple) and len(values) == 8:

        def compute(values, i):
            audience, kind, root, category_row, coef_a, coef_b, fit_weights, scale = values
            f = fit_weights[0] * category_row[i] + fit_weights[1] * _blas_dot(audience, i, root, kind[i])
            return f, scale * (coef_a[i] + coef_b[i] * f)

        return compute
    return None


@nb.njit(cache=True)
def classify_rows(a, probes, products, kind):
    """For every row of ``a``, the first of :func:`_blas_dot`'s kernels that gives numpy's ``products[p]
    = a @ probes[p]`` exactly for every probe, into ``kind``; False (and -1 there) if a row matches none."""
    every = True
    for j in range(a.shape[0]):
        kind[j] = -1
        for candidate in range(3):
            ok = True
            for p in range(probes.shape[0]):
                if _blas_dot(a, j, probes[p], candidate) != products[p, j]:
                    ok = False
                    break
            if ok:
                kind[j] = candidate
                break
        every = every and kind[j] >= 0
    return every


@nb.njit(cache=True)
def rows_agree(a, probes, products, kind):
    """Whether every row's kernel in ``kind`` gives numpy's ``products[p] = a @ probes[p]`` exactly."""
    for j in range(a.shape[0]):
        if kind[j] < 0:
            return False
        for p in range(probes.shape[0]):
            if _blas_dot(a, j, probes[p], kind[j]) != products[p, j]:
                return False
    return True


@nb.njit(cache=True)
def _fill(i, indices, audience, kind, root, scale, fit_weights, category_row, coef_a, coef_b, fit,
          value_per_dollar):  # fmt: skip
    """The fit and value per dollar of each of ``indices`` for row ``i``'s campaign (again if known: the
    same numbers, and cheaper than tracking which are), as
    :func:`envs._kernels.campaign_values` computes them (with :func:`_blas_dot`'s audience fit). A call per
    list, not per value: every array passed costs its reference counts (:func:`_rank_lazily` writes the
    same lines out)."""
    for j in indices:
        f = fit_weights[0] * category_row[j] + fit_weights[1] * _blas_dot(audience, j, root, kind[j])
        fit[i, j] = f
        value_per_dollar[i, j] = scale * (coef_a[j] + coef_b[j] * f)


@nb.njit(cache=True)
def _complete_row(i, lazy, category_row, coef_a, coef_b, fit, value_per_dollar):
    """Every value of row ``i``, for the scans that read the whole pool (once per campaign)."""
    audience, kind, roots, row_full, scales, fit_weights = lazy[:6]
    if row_full[i]:
        return
    root, scale = roots[i], scales[i]
    _fill(i, np.arange(fit.shape[1]), audience, kind, root, scale, fit_weights, category_row, coef_a,
          coef_b, fit, value_per_dollar)  # fmt: skip
    row_full[i] = True


@nb.njit(cache=True)
def _start_lazily(i, b, joiners, lo, hi, lazy, category_row, coef_a, coef_b, goal, scale, segment, join, never,
                  fit, value_per_dollar, n_eligible):  # fmt: skip
    """Row ``i``'s new campaign without its values: :func:`envs._kernels.campaign_values`' count of who
    could be hired per segment (everyone in the pool or joining, less those whose coefficients are not
    finite; ``lazy``'s magnitude bound guarantees every other value finite). False when that bound does
    not hold or the scale cannot bound the ranking: the row is then computed in full."""
    row_full, scales = lazy[3], lazy[4]
    not_finite, magnitude, incumbents = lazy[6], lazy[7], lazy[8]
    row_full[i] = False
    scales[i] = scale
    if not (scale > 0.0 and np.isfinite(scale) and scale * magnitude[goal] < 1e300):
        _complete_row(i, lazy, category_row, coef_a, coef_b, fit, value_per_dollar)
        n_eligible[i, :] = 0
        for j in range(fit.shape[1]):
            if join[i, j] < never and np.isfinite(value_per_dollar[i, j]):
                n_eligible[i, segment[j]] += 1
        return False
    n_eligible[i, :] = incumbents
    for q in range(lo, hi):
        n_eligible[i, segment[joiners[q]]] += 1
    for j in not_finite[goal]:
        if j < 0:
            break
        if join[i, j] < never:
            n_eligible[i, segment[j]] -= 1
    return True


@nb.njit(cache=True)
def _rank_lazily(i, lazy, category_row, coef_a, coef_b, bound_in_order, order, scan_table, segment_start, join,
                 never, ranked):  # fmt: skip
    """:func:`envs._kernels.rank_at_start` on row ``i`` with a usable scale, computing each scanned value
    (the ranking reads the same values in the same order, so it ranks the same). Read sequentially: the
    bounds in scan order, the inputs of the first ``SCAN_DEPTH`` of each segment from ``scan_table`` (S,
    SCAN_DEPTH, 16) (see :meth:`envs.vector.InfluencerMatchingVectorEnv._scan_table`; those of the rest
    from the market's arrays), and none of the row's state but the joins of the reservoir: at a campaign's
    start nobody is hired and nobody has left (a leaver leaves in week 1 or later), and every incumbent is
    in the pool, so who could be hired is who is in the pool or joining with a finite value."""
    audience, kind, roots, row_full, scales, fit_weights = lazy[:6]
    n_incumbents = lazy[9]
    root, scale = roots[i], scales[i]
    w_category, w_audience = fit_weights[0], fit_weights[1]
    n_segments, depth = ranked.shape[1], ranked.shape[2]
    heap_key = np.empty((1, depth))
    heap_index = np.empty((1, depth), dtype=np.int64)
    in_table = scan_table.shape[1]
    for s in range(n_segments):
        heap_key[:] = -np.inf
        heap_index[:] = -1
        inputs = scan_table[s]
        start = segment_start[s]
        for q in range(start, segment_start[s + 1]):
            if scale * bound_in_order[q] < heap_key[0, 0]:
                break
            j = order[q]
            if j >= n_incumbents and join[i, j] >= never:
                continue
            m = q - start  # _computed_values' lines, on the table's copy of j's inputs or on the market's
            if m < in_table:
                f = w_category * inputs[m, 12] + w_audience * _blas_dot(
                    inputs, m, root, np.int64(inputs[m, 15])
                )
                v = scale * (inputs[m, 13] + inputs[m, 14] * f)
            else:
                f = w_category * category_row[j] + w_audience * _blas_dot(audience, j, root, kind[j])
                v = scale * (coef_a[j] + coef_b[j] * f)
            if np.isfinite(v):
                k._heap_push(heap_key, heap_index, 0, v, j)
        k._sort_ranked(heap_key[0], heap_index[0])
        ranked[i, s, :] = heap_index[0]


@nb.njit(cache=True)
def _cut_at_start(i, ranked, n_eligible, price, budget_left, levels, premium, prefix, complete):
    """:func:`envs._kernels.cut_prefixes` on row ``i`` at a campaign's start, when everyone ranked is
    available (nobody hired, nobody left): each level's prefix is its first ``P`` ranked entries the level
    can pay, from one pass over each ranked list (reading each price once for all levels)."""
    thresholds = k._thresholds(budget_left, levels, premium)
    n_levels, prefix_len, depth = prefix.shape[2], prefix.shape[3], ranked.shape[2]
    qualify = np.zeros(n_levels, dtype=np.int64)
    for s in range(prefix.shape[1]):
        prefix[i, s] = -1
        qualify[:] = 0
        for q in range(min(n_eligible[i, s], depth)):
            j = ranked[i, s, q]
            p = price[j]
            for lvl in range(n_levels):
                if p <= thresholds[lvl]:
                    if qualify[lvl] < prefix_len:
                        prefix[i, s, lvl, qualify[lvl]] = j
                    qualify[lvl] += 1
        for lvl in range(n_levels):
            complete[i, s, lvl] = n_eligible[i, s] <= depth and qualify[lvl] <= prefix_len


@nb.njit(cache=True)
def candidate_values(rows, candidate, category, consts, category_share, fit, value_per_dollar, lazy_on, lazy,
                     value_coef, out_fit, out_value):  # fmt: skip
    """The fit and value per dollar of every hire action's candidate of ``rows`` (row ``b`` of the outputs
    for campaign ``rows[b]``; NaN where the action has none), read as :func:`_refresh` hands them to the
    week's view (computed where read with ``lazy_on``, else from the rows ``fit`` and ``value_per_dollar``):
    the numbers the single env's ``candidate_features`` reads from its rows."""
    rows, candidate, category, consts, category_share, fit, value_per_dollar, lazy, value_coef, out_fit, out_value = (
        k.borrowed((rows, candidate, category, consts, category_share, fit, value_per_dollar, lazy, value_coef,
                    out_fit, out_value))
    )  # fmt: skip
    n_segments, n_levels = candidate.shape[1], candidate.shape[2]
    for b in range(len(rows)):
        i = rows[b]
        category_row = category_share[category[i]]
        for s in range(n_segments):
            for level in range(n_levels):
                a = s * n_levels + level
                chosen = candidate[i, s, level]
                if chosen < 0:
                    out_fit[b, a] = np.nan
                    out_value[b, a] = np.nan
                elif lazy_on:
                    goal = int(consts[i, k.C_GOAL])
                    values = (lazy[0], lazy[1], lazy[2][i], category_row, value_coef[goal, 0], value_coef[goal, 1],
                              lazy[5], lazy[4][i])  # fmt: skip
                    out_fit[b, a], out_value[b, a] = k.candidate_values(values, chosen)
                else:
                    out_fit[b, a], out_value[b, a] = k.candidate_values((fit[i], value_per_dollar[i]), chosen)
