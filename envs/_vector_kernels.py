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
  week (after the Python side finished those draws as the single env does).
"""

from __future__ import annotations

import numba as nb
import numpy as np
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
             demand, value_factor, recovery, load_recovers, campaign, market):  # fmt: skip
    """:meth:`InfluencerMatchingEnv._refresh` on row ``i``: this week's calendar constants, then
    :func:`envs._kernels.week_view`."""
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
    k.week_view(choose, week, month, month_list[i, shown], budget_left[i], (weeks - week) / weeks,
                n_hired[i], load_decay, load_sum[i, shown], load_count[i, shown], ranked[i], n_eligible[i],
                prefix[i], complete[i], join[i], leave[i], hired[i], consts[i], category_share[category[i]],
                load, fit[i], value_per_dollar[i], rates, hired_array[i], hired_segment[i], hired_load[i],
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
    engagements = np.int64(generator.poisson(engagement_mean))
    clicks = np.int64(generator.poisson(reach * terms[i, a, k.CLICKS_PER_REACH]))
    conversions = np.int64(generator.poisson(reach * terms[i, a, k.CONVERSIONS_PER_REACH]))
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
def step_campaigns(rows, actions, generators, state, tables, campaign, market, out):
    """Step campaigns ``rows`` with ``actions`` (one per row of the batch); see the module docstring.

    ``state``: (week, budget_left, spent, total_reward, premium, n_hired, category, month_list, consts);
    ``tables``: (demand, value_factor, recovery, premium_by_month, scalars); ``campaign`` and ``market``:
    the row-stacked campaign arrays and the market's arrays, in :func:`_refresh`'s order; ``out``:
    (reward, terminated, truncated, offered, segment, offer_ratio, accepted, counts, amounts), written
    at each stepped row."""
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
                     value_factor, recovery, load_recovers, campaign, market)  # fmt: skip
        else:
            p = premium_by_month[month_list[i, w]]
            dropped = p < premium[i]
            premium[i] = p
            if dropped:
                k.cut_prefixes(ranked[i], n_eligible[i], price, leave[i], hired[i], w, budget_left[i], levels, p,
                               prefix[i], complete[i])  # fmt: skip
            _refresh(i, True, scalars[S_LOAD_DECAY], w, weeks, category, month_list, budget_left, n_hired, consts,
                     demand, value_factor, recovery, load_recovers, campaign, market)  # fmt: skip
        truncated[i] = w >= weeks
        terminated[i] = not truncated[i] and not mask[i, :-1].any()


@nb.njit(cache=True)
def _start_churn(i, lo, hi, churn, templates, join, leave, load_sum, load_count):
    """Row ``i``'s churn from the swaps ``lo:hi`` of ``churn = (leavers, joiners, when)``: join and leave
    weeks and the per-week, per-segment load tables, as :meth:`InfluencerMatchingEnv._draw_churn` builds
    them with numpy (a bincount of the swaps, leavers first, then a running sum over the weeks)."""
    leavers, joiners, when = churn
    join_template, leave_template, base_sum, base_count, background, segment = templates
    join[i, :] = join_template
    leave[i, :] = leave_template
    weeks, n_segments = load_sum.shape[1], load_sum.shape[2]
    delta_load = np.zeros(weeks * n_segments)
    delta_count = np.zeros(weeks * n_segments)
    for j in range(lo, hi):
        leave[i, leavers[j]] = when[j]
        join[i, joiners[j]] = when[j]
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
def reset_campaigns(rows, offsets, churn, templates, audience_fit, scale, fit_weights, value_coef, rank_bound,
                    rank_order, state, tables, campaign, market):  # fmt: skip
    """Start the campaigns of ``rows`` (their scalars, constants and campaign features already set by the
    Python side, which also drew the churn: swaps ``offsets[b]:offsets[b + 1]`` of ``churn`` belong to
    ``rows[b]``, as do ``audience_fit[b]`` and ``scale[b]``): churn tables, fit and value per dollar,
    ranked segments, prefixes and the first week, as :meth:`InfluencerMatchingEnv.reset` does."""
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
        k.campaign_values(category_share[category[i]], audience_fit[b], fit_weights, value_coef[goal, 0],
                          value_coef[goal, 1], scale[b], fit[i], value_per_dollar[i], segment, join[i], never,
                          n_eligible[i])  # fmt: skip
        k.rank_at_start(value_per_dollar[i], scale[b], rank_bound[goal], rank_order[goal], segment_start, segment,
                        join[i], leave[i], hired[i], never, ranked[i], n_eligible[i])  # fmt: skip
        k.cut_prefixes(ranked[i], n_eligible[i], price, leave[i], hired[i], 0, budget_left[i], levels,
                       premium[i], prefix[i], complete[i])  # fmt: skip
        _refresh(i, True, 1.0, 0, weeks, category, month_list, budget_left, n_hired, consts, demand,
                 value_factor, recovery, load_recovers, campaign, market)  # fmt: skip


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
def draw_starts(rows, generators, cdfs, alpha, log_ranges, churn):
    """The random part of a new campaign in each of ``rows``, from the row's generator in the order of
    :meth:`InfluencerMatchingEnv.reset`: :func:`envs.campaigns.sample_campaign`'s draws, then
    :meth:`InfluencerMatchingEnv._churn_draws`' (numba's generator methods draw numpy's exact streams;
    ``Generator.choice`` without replacement, which numba lacks, is :func:`_choice_without_replacement`).

    ``cdfs``: (category, goal, budget bin) cumulative shares, the last entry +inf; ``alpha``: (12, 12)
    Dirichlet parameters of the target audience by category; ``log_ranges``: (budget bin edges, log),
    then the log bounds of the value per engagement and per 1k reach; ``churn``: (incumbents,
    reservoir, p_leave, on).

    Returns ``(ints, floats, gammas, offsets, leavers, joiners, uniforms)``: per row the category,
    goal, budget bin and start month; the uniform exponent of the annual budget, the order value's
    normal, and the two value exponents; the 12 gamma draws; and the swaps ``offsets[b]:offsets[b+1]``
    (leavers, joiners as pool indices, and the uniform of each swap's week).
    """
    category_cdf, goal_cdf, budget_cdf = cdfs
    log_edges, log_vpe, log_v1k = log_ranges
    n_inc, n_reservoir, p_leave, churn_on = churn
    n_inc, n_reservoir = np.int64(n_inc), np.int64(n_reservoir)
    R = len(rows)
    ints = np.zeros((R, 4), dtype=np.int64)
    floats = np.zeros((R, 4))
    gammas = np.zeros((R, alpha.shape[1]))
    capacity = R * n_reservoir if churn_on else 0
    leavers = np.empty(capacity, dtype=np.int64)
    joiners = np.empty(capacity, dtype=np.int64)
    uniforms = np.empty(capacity)
    offsets = np.zeros(R + 1, dtype=np.int64)
    for b in range(R):
        g = generators[rows[b]]
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
        start = offsets[b]
        n_leave = np.int64(0)
        if churn_on:
            n_leave = min(np.int64(g.binomial(n_inc, p_leave)), n_reservoir)
            _choice_without_replacement(g, n_inc, n_leave, leavers[start:])
            for j in range(n_leave):
                uniforms[start + j] = g.random()
            _choice_without_replacement(g, n_reservoir, n_leave, joiners[start:])
            for j in range(n_leave):
                joiners[start + j] += n_inc
        offsets[b + 1] = start + n_leave
    end = offsets[R]
    return ints, floats, gammas, offsets, leavers[:end], joiners[:end], uniforms[:end]
