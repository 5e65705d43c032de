"""Compiled inner loops of :class:`envs.matching_env.InfluencerMatchingEnv` (numba).

They keep the environment's per-step work independent of the pool size and its reset to one pass over
the pool. Once per campaign:

* :func:`campaign_values`: every influencer's brand fit and estimated value per dollar;
* :func:`rank_segments`: for each segment the best ``depth`` influencers who could be hired at all
  (whatever their price; :func:`rank_at_start`, the same ranking read from the top of each segment by
  an upper bound of the value, at a campaign's start), from which
* :func:`cut_prefixes` cuts the ranked prefix of every (segment, offer level) pair (again whenever
  prices drop, in January).

Once per week, :func:`week_view`: the load our hires added decays, each hire action's candidate is the
first valid entry of its prefix (cut again or refilled when it runs out), then the action mask, the exact
expected outcome terms of every candidate, the expected rewards and the observation's per-week features.

Numbers here follow :mod:`envs.outcomes` term by term (the environment's ``expected_outcomes`` computes
the same terms with numpy, and the tests hold the two to 1e-12). Everything random stays in Python with
the environment's generator, so a kernel never changes the stream of random numbers.
"""

from __future__ import annotations

from typing import Any

import numba as nb
import numpy as np

from envs.outcomes import AWARENESS, ENGAGEMENT

#: Columns of the per-action ``terms`` array written by :func:`week_view`.
P_ACCEPT, REACH_MEAN, ENGAGEMENT_MEAN, CLICKS_PER_REACH, CONVERSIONS_PER_REACH, COST = range(6)
N_TERMS = 6

#: Rows of the ``month_table`` argument: acceptance shift, engagement and conversion multipliers, price
#: premium, each by calendar month.
MONTH_SHIFT, MONTH_ENGAGEMENT, MONTH_CONVERSION, MONTH_PREMIUM = range(4)

#: Entries of the ``consts`` argument (calibration and campaign scalars), see
#: :meth:`envs.matching_env.InfluencerMatchingEnv._kernel_constants`.
(
    C_LOGIT_BASE,  # acceptance intercept - category slope x pivot
    C_CATEGORY_SLOPE,
    C_LOAD_SLOPE,
    C_OFFER_SLOPE,
    C_REACH_NOISE_MEAN,  # exp(sd^2 / 2) of the reach post noise
    C_ENGAGEMENT_NOISE_MEAN,
    C_ENGAGEMENT_FIT_BASE,
    C_ENGAGEMENT_FIT_SLOPE,
    C_CLICK_FIT_BASE,
    C_CONVERSION_FIT_BASE,
    C_CONVERSION_FIT_SLOPE,
    C_OVERLAP_LO,
    C_OVERLAP_HI,
    C_GOAL,
    C_VALUE_PER_ENGAGEMENT,
    C_VALUE_PER_1K_REACH,
    C_ORDER_VALUE,
    C_BUDGET,
    # -- set every week by the environment (v1 dynamics; all neutral in v0)
    C_DEMAND,  # the brand category's demand this month: multiplies conversions and reach/engagement value
    C_VALUE_FACTOR,  # the campaign's deadline decay this week: multiplies the value of every goal
    C_LOAD_MEAN,  # the pool's mean sponsored load, which loads recover towards
    C_LOAD_RECOVERY,  # share of the start's excess load left this week (1: loads do not move, as in v0)
    C_FATIGUE,  # engagement fatigue per unit of load
) = range(23)
N_CONSTS = 23


# ------------------------------------------------------------------ arrays without reference counts
# Every array numba binds to a name, slices into a view or passes to a call is reference-counted, and each
# count is an atomic add on the array's meminfo: a full memory barrier. The week's view makes a few hundred
# per campaign (a view per row of the vector env's stacked arrays, one per prefix it scans), and they took
# about half of its time (``perf``: the ``lock xadd`` of NRT's atomic add and sub). An entry kernel that is
# handed arrays by Python, which owns them for the whole call, works on :func:`borrowed` copies instead:
# the same data, shape and strides without a meminfo, whose counts NRT skips.


def _borrow(context: Any, builder: Any, ty: Any, value: Any) -> Any:
    """``value`` of type ``ty`` with every array in it (tuples recursively) stripped of its meminfo and
    parent; anything else is passed on with a new reference (the result is a new value to numba)."""
    from numba.core import cgutils, types

    if isinstance(ty, types.Array):
        source = context.make_array(ty)(context, builder, value=value)
        view = context.make_array(ty)(context, builder)
        for field in ("nitems", "itemsize", "data", "shape", "strides"):
            setattr(view, field, getattr(source, field))
        view.meminfo = cgutils.get_null_value(view.meminfo.type)
        view.parent = cgutils.get_null_value(view.parent.type)
        return view._getvalue()
    if isinstance(ty, types.BaseTuple):
        members: Any = ty  # a tuple type iterates over its members' types
        items = [_borrow(context, builder, t, builder.extract_value(value, j)) for j, t in enumerate(members)]
        return context.make_tuple(builder, ty, items)
    context.nrt.incref(builder, ty, value)
    return value


@nb.extending.intrinsic
def _borrowed(typingctx, value):
    """``value`` (an array, or a tuple of arrays and tuples) as arrays that hold no reference to their
    memory: numba counts no references on them or on any view of them. Only for arrays the caller keeps
    alive for as long as the result is used (an entry kernel's arguments, for that call); never returned
    or stored."""

    def codegen(context, builder, signature, args):
        return _borrow(context, builder, signature.args[0], args[0])

    return value(value), codegen


@nb.njit(cache=True, inline="always")
def borrowed(value):
    """:func:`_borrowed` (``value``'s arrays without their meminfos), called as a function."""
    return _borrowed(value)  # type: ignore[call-arg]  # numba's intrinsic hides its typing context


def candidate_values(values, i):
    """The brand fit and estimated value per dollar of influencer ``i`` from a campaign's ``values``.

    What :func:`week_view` and its refills read the two from: here ``values`` is the pair of rows
    ``(fit, value_per_dollar)`` that :func:`campaign_values` filled at the campaign's start (the single
    env's); the vector env registers another form (:mod:`envs._vector_kernels`), which computes them where
    read. In compiled code the form is picked by the type of ``values`` (numba's ``overload``), so each
    caller gets its own specialisation and pays no dispatch."""
    fit, value_per_dollar = values
    return fit[i], value_per_dollar[i]


@nb.extending.overload(candidate_values)
def _candidate_values_from_rows(values, i):
    if isinstance(values, nb.types.BaseTuple) and len(values) == 2:

        def read(values, i):
            return values[0][i], values[1][i]

        return read
    return None


@nb.njit(cache=True, inline="always")
def _ranks_before(key_a: float, index_a: int, key_b: float, index_b: int) -> bool:
    """Rank order: higher key first, ties by lower index."""
    return key_a > key_b or (key_a == key_b and index_a < index_b)


@nb.njit(cache=True, inline="always")
def _available(join, leave, hired, week, never):
    """In the pool now or joining later in this campaign, and not hired (one influencer's values)."""
    return join < never and leave > week and not hired


@nb.njit(cache=True, inline="always")
def _could_be_hired(join, leave, hired, key, week, never):
    """:func:`_available` and with a rankable key (one influencer's values: scalars, so the many calls of a
    pass over the pool touch no reference counts)."""
    return _available(join, leave, hired, week, never) and np.isfinite(key)


@nb.njit(cache=True, inline="always")
def _valid_now(join, leave, hired, week):
    """In the pool this week and not hired (one influencer's values)."""
    return join <= week < leave and not hired


@nb.njit(cache=True, inline="always")
def _thresholds(budget_left, levels, premium):
    """Highest list price payable at each offer level with the budget left, at the month's premium."""
    return budget_left / (levels * premium)


@nb.njit(cache=True)
def campaign_values(category_share, audience_fit, weights, coef_a, coef_b, scale, fit, value_per_dollar,
                    segment, join, never, n_eligible):  # fmt: skip
    """Everyone's brand fit (``weights`` of category share and audience overlap) and estimated value per
    dollar, ``scale * (coef_a + coef_b * fit)`` (see :func:`envs.outcomes.value_coefficients`); and, per
    segment, how many could be hired at the campaign's start (in the pool or joining, with a finite
    value: :func:`rank_segments`' count at week 0, nobody hired yet)."""
    n_eligible[:] = 0
    for i in range(len(fit)):
        f = weights[0] * category_share[i] + weights[1] * audience_fit[i]
        fit[i] = f
        v = scale * (coef_a[i] + coef_b[i] * f)
        value_per_dollar[i] = v
        if join[i] < never and np.isfinite(v):
            n_eligible[segment[i]] += 1


@nb.njit(cache=True)
def rank_at_start(value_per_dollar, scale, bound, order, segment_start, segment, join, leave, hired, never,
                  ranked, n_eligible):  # fmt: skip
    """:func:`rank_segments` at a campaign's start (week 0, nobody hired; ``n_eligible`` from
    :func:`campaign_values`), exactly, reading only the top of each segment.

    ``bound[i]`` is an upper bound of ``coef_a + coef_b * fit`` over every possible fit and ``order`` the
    segment's members by decreasing bound (grouped by segment as ``segment_start`` says), so
    ``scale * bound[i] >= value_per_dollar[i]`` (rounding is monotone) and the scan of a segment stops
    once the bound falls below its ``depth``-th best value so far (strictly: an equal value could still
    rank first by its lower index). Without a usable bound (``scale`` not positive and finite) it is
    :func:`rank_segments`."""
    if not (scale > 0.0 and np.isfinite(scale)):
        rank_segments(value_per_dollar, segment, join, leave, hired, 0, never, ranked, n_eligible)
        return
    n_segments, depth = ranked.shape
    heap_key = np.empty((1, depth))
    for s in range(n_segments):
        heap_key[:] = -np.inf
        row = ranked[s : s + 1]
        row[:] = -1
        for j in range(segment_start[s], segment_start[s + 1]):
            i = order[j]
            if scale * bound[i] < heap_key[0, 0]:
                break
            v = value_per_dollar[i]
            if _could_be_hired(join[i], leave[i], hired[i], v, 0, never):
                _heap_push(heap_key, row, 0, v, i)
        _sort_ranked(heap_key[0], row[0])


@nb.njit(cache=True)
def _heap_push(heap_key, heap_index, row, key, index):
    """Offer (key, index) to row ``row`` of full-size min-heaps of the best entries (root = the worst
    kept). Rows of 2-d arrays rather than views: this runs for every influencer of a pool."""
    size = heap_key.shape[1]
    if not _ranks_before(key, index, heap_key[row, 0], heap_index[row, 0]):
        return
    p = 0
    while True:
        c = 2 * p + 1
        if c >= size:
            break
        if c + 1 < size and _ranks_before(heap_key[row, c], heap_index[row, c], heap_key[row, c + 1],
                                          heap_index[row, c + 1]):  # fmt: skip
            c += 1
        if _ranks_before(key, index, heap_key[row, c], heap_index[row, c]):
            heap_key[row, p] = heap_key[row, c]
            heap_index[row, p] = heap_index[row, c]
            p = c
        else:
            break
    heap_key[row, p] = key
    heap_index[row, p] = index


@nb.njit(cache=True)
def _sort_ranked(keys, index):
    """Sort (keys, index) in place into rank order (insertion sort: a few dozen entries)."""
    for a in range(1, len(keys)):
        ka, ia = keys[a], index[a]
        b = a - 1
        while b >= 0 and _ranks_before(ka, ia, keys[b], index[b]):
            keys[b + 1], index[b + 1] = keys[b], index[b]
            b -= 1
        keys[b + 1], index[b + 1] = ka, ia


@nb.njit(cache=True)
def rank_segments(value_per_dollar, segment, join, leave, hired, week, never, ranked, n_eligible):
    """The best ``depth = ranked.shape[1]`` influencers of each segment by estimated value per dollar
    (ties: lower index first) among those who could still be hired (in the pool now or joining later,
    not hired), whatever their price, in rank order (-1 pads); ``n_eligible`` counts those per segment.

    A heap over the whole pool mispredicts a branch at almost every push, so: a sample of every 8th
    influencer sets a cut-off per segment a little below its ``depth``-th best key, one pass gathers
    who passes it (a rarely taken branch), and only those few are sorted. A segment whose cut-off turned
    out too high (or too low, overflowing the buffer) is ranked again with the heap."""
    n_segments, depth = ranked.shape
    n = len(value_per_dollar)
    stride = 8
    # 1. Cut-offs: the (depth / stride + 4)-th best sampled key of each segment.
    sample_depth = depth // stride + 4
    sample_key = np.full((n_segments, sample_depth), -np.inf)
    sample_index = np.full((n_segments, sample_depth), -1, dtype=np.int64)
    for i in range(0, n, stride):
        v = value_per_dollar[i]
        if not _could_be_hired(join[i], leave[i], hired[i], v, week, never):
            continue
        _heap_push(sample_key, sample_index, segment[i], v, i)
    cutoff = sample_key[:, 0].copy()  # the heap roots; -inf where a segment had too few samples
    # 2. Gather everyone at or above the cut-off.
    capacity = 4 * depth
    buffer_key = np.empty((n_segments, capacity))
    buffer_index = np.empty((n_segments, capacity), dtype=np.int64)
    gathered = np.zeros(n_segments, dtype=np.int64)
    n_eligible[:] = 0
    for i in range(n):
        v = value_per_dollar[i]
        if not _could_be_hired(join[i], leave[i], hired[i], v, week, never):
            continue
        s = segment[i]
        n_eligible[s] += 1
        if v >= cutoff[s]:
            g = gathered[s]
            if g < capacity:
                buffer_key[s, g] = v
                buffer_index[s, g] = i
            gathered[s] = g + 1
    # 3. Sort what was gathered (stable on the index order of the pass: ties by lower index).
    ranked[:] = -1
    heap_key = np.full((1, depth), -np.inf)
    for s in range(n_segments):
        g = gathered[s]
        if g <= capacity and g >= min(depth, n_eligible[s]):
            order = np.argsort(-buffer_key[s, :g], kind="mergesort")
            for j in range(min(depth, g)):
                ranked[s, j] = buffer_index[s, order[j]]
            continue
        # The cut-off missed: rank this segment with a heap over the pool.
        heap_key[:] = -np.inf
        row = ranked[s : s + 1]
        for i in range(n):
            v = value_per_dollar[i]
            if segment[i] != s or not _could_be_hired(join[i], leave[i], hired[i], v, week, never):
                continue
            _heap_push(heap_key, row, 0, v, i)
        _sort_ranked(heap_key[0], row[0])


@nb.njit(cache=True)
def cut_prefixes(
    ranked, n_eligible, price, leave, hired, week, budget_left, levels, premium, prefix, complete
):
    """Every (segment, level) prefix cut from the ranked lists (see :func:`_cut_one`), at the price
    thresholds of the budget left, the offer levels and the month's premium."""
    thresholds = _thresholds(budget_left, levels, premium)
    for s in range(prefix.shape[0]):
        for k in range(prefix.shape[1]):
            _cut_one(s, k, ranked, n_eligible, price, leave, hired, week, thresholds[k], prefix, complete)


@nb.njit(cache=True)
def _cut_one(s, k, ranked, n_eligible, price, leave, hired, week, threshold, prefix, complete):
    """The (s, k) prefix from segment s's ranked list: its first ``P`` entries still available (not
    left, not hired) whose list price the level can pay. Complete when the list held everyone eligible
    and no more than ``P`` of them qualify."""
    prefix_len = prefix.shape[2]
    depth = ranked.shape[1]
    prefix[s, k, :] = -1
    qualify = 0
    for j in range(min(n_eligible[s], depth)):
        i = ranked[s, j]
        if leave[i] > week and not hired[i] and price[i] <= threshold:
            if qualify < prefix_len:
                prefix[s, k, qualify] = i
            qualify += 1
    complete[s, k] = n_eligible[s] <= depth and qualify <= prefix_len


@nb.njit(cache=True)
def _refill(s, k, threshold, by_price, segment_start, sorted_price, values, join, leave, hired, week, never,
            prefix, complete):  # fmt: skip
    """Rebuild an exhausted prefix from the segment's members sorted by list price: only those the level
    can pay are read, so the scan is short exactly when the ranked list ran out (few can be paid); each
    value read with :func:`candidate_values`."""
    lo = segment_start[s]
    hi = lo + np.searchsorted(sorted_price[lo : segment_start[s + 1]], threshold, side="right")
    prefix_len = prefix.shape[2]
    heap_key = np.full((1, prefix_len), -np.inf)
    heap_index = np.full((1, prefix_len), -1, dtype=np.int64)
    eligible = 0
    for j in range(lo, hi):
        i = by_price[j]
        if not _available(join[i], leave[i], hired[i], week, never):  # _could_be_hired, the value read last
            continue
        v = candidate_values(values, i)[1]
        if not np.isfinite(v):
            continue
        eligible += 1
        _heap_push(heap_key, heap_index, 0, v, i)
    _sort_ranked(heap_key[0], heap_index[0])
    prefix[s, k, :] = heap_index[0]
    complete[s, k] = eligible <= prefix_len
    return lo, hi


@nb.njit(cache=True)
def week_view(
    # -- this call
    choose,  # pick new candidates (False on the last step: keep the last week's)
    week,
    month,  # calendar month of the outcome terms
    observed_month,  # calendar month shown in the observation
    budget_left,
    weeks_left_share,
    n_hired,
    load_decay,
    load_sum,  # (S,) background load of the segment's current members
    load_count,  # (S,) current members per segment
    # -- the campaign (InfluencerMatchingEnv._campaign_arrays)
    ranked,  # (S, D) each segment's best at the campaign's start (see rank_segments)
    n_eligible,  # (S,)
    prefix,  # in/out (S, K, P), refilled when exhausted
    complete,  # in/out (S, K)
    join,
    leave,
    hired,
    consts,  # (N_CONSTS,)
    category_share,  # (n,)
    load,  # (n,) sponsored load at the campaign's start
    values,  # the campaign's fit and value per dollar, read with candidate_values
    rates,  # (4, n) fit-free true rates: reach, engagements, clicks and conversions per reach
    hired_index,  # (H,) every hire so far (first n_hired entries)
    hired_segment,  # (H,)
    hired_load,  # in/out (H,) sponsored load each hire added, decayed here by load_decay first
    hires,  # (S,) hires per segment
    candidate,  # in/out (S, K), -1 = invalid action
    terms,  # out (A, N_TERMS) per hire action, see the column names above
    expected,  # out (A + 1,) expected reward, thousands of USD (0 for waiting and invalid actions)
    mask,  # out (A + 1,)
    observation,  # in/out: the campaign's features set; the per-week features are written here
    # -- the market (InfluencerMatchingEnv._market_arrays)
    by_price,  # (n,) influencer indices grouped by segment, by list price within a segment
    segment_start,  # (S + 1,) where each segment's group starts in by_price
    sorted_price,  # (n,) list prices aligned with by_price
    never,
    price,
    levels,  # (K,) offer ratios
    log_levels,  # (K,)
    month_table,  # (4, 12)
    reach_value,  # (n,) platform multiplier of the value of reach
    mix_unit,  # (n, 12) unit-length category mixes
):
    """Choose this week's candidates, then describe them: mask, outcome terms, expected rewards and the
    observation's per-week features.

    First the load our hires added decays by ``load_decay`` (the environment passes
    :func:`envs.outcomes.load_decay_factor` of one week, 1 when no time passed). A candidate is the first
    entry of its prefix that is valid this week (in the pool, not hired, list price payable at the
    level); an incomplete prefix that ran out is cut again or refilled (:func:`_choose_again`)."""
    for h in range(n_hired):
        hired_load[h] *= load_decay
    thresholds = _thresholds(budget_left, levels, month_table[MONTH_PREMIUM, month])
    if choose:
        n_segments, n_levels = candidate.shape
        for s in range(n_segments):
            for k in range(n_levels):
                chosen = _first_valid(prefix[s, k], join, leave, hired, price, thresholds[k], week)
                if chosen < 0 and not complete[s, k]:  # rare: the prefix ran out (a call passing many
                    # arrays costs their reference counts, so the common case stays inline)
                    chosen = _choose_again(s, k, thresholds[k], week, never, ranked, n_eligible, prefix,
                                           complete, join, leave, hired, price, values, by_price,
                                           segment_start, sorted_price)  # fmt: skip
                candidate[s, k] = chosen
    _outcome_terms(month, n_hired, consts, category_share, load, values, rates, hired_index, hired_segment,
                   candidate, terms, expected, mask, price, levels, log_levels, month_table, reach_value,
                   mix_unit)  # fmt: skip
    _observe(budget_left, weeks_left_share, observed_month, n_hired, load_sum, load_count, consts, values,
             hired_segment, hired_load, hires, candidate, observation)  # fmt: skip


@nb.njit(cache=True)
def _choose_again(s, k, threshold, week, never, ranked, n_eligible, prefix, complete, join, leave, hired,
                  price, values, by_price, segment_start, sorted_price):  # fmt: skip
    """The candidate of hire action (s, k) when its prefix has no valid entry but is incomplete, or -1.

    Prefixes only lose entries within a campaign, so an empty result from an incomplete prefix means it
    ran out: it is cut again from the segment's ranked list (:func:`_cut_one`), and if that has nothing
    left, refilled from the pool (:func:`_refill`)."""
    # Ran out: cut again from the ranked list, which holds more than the prefix ...
    _cut_one(s, k, ranked, n_eligible, price, leave, hired, week, threshold, prefix, complete)
    chosen = _first_valid(prefix[s, k], join, leave, hired, price, threshold, week)
    if chosen >= 0 or complete[s, k]:
        return chosen
    # ... and when that ran out too, from the members the level can pay.
    lo, hi = _refill(s, k, threshold, by_price, segment_start, sorted_price, values, join, leave, hired, week,
                     never, prefix, complete)  # fmt: skip
    chosen = _first_valid(prefix[s, k], join, leave, hired, price, threshold, week)
    if chosen >= 0 or complete[s, k]:
        return chosen
    # Every ranked entry joins later: take the best valid one now without caching.
    best_key = -np.inf
    for j in range(lo, hi):
        i = by_price[j]
        if _valid_now(join[i], leave[i], hired[i], week):
            v = candidate_values(values, i)[1]
            if chosen < 0 or _ranks_before(v, i, best_key, chosen):
                chosen, best_key = i, v
    return chosen


@nb.njit(cache=True, inline="always")
def _outcome_terms(month, n_hired, consts, category_share, load, values, rates, hired_index, hired_segment,
                   candidate, terms, expected, mask, price, levels, log_levels, month_table, reach_value,
                   mix_unit):  # fmt: skip
    """The mask, the expected outcome terms (columns of ``terms``) and the expected reward of every
    hire action's candidate this week, term by term as :mod:`envs.outcomes`."""
    n_segments, n_levels = candidate.shape
    noise_reach, noise_engagement = consts[C_REACH_NOISE_MEAN], consts[C_ENGAGEMENT_NOISE_MEAN]
    goal = int(consts[C_GOAL])
    shift = month_table[MONTH_SHIFT, month]
    month_engagement = month_table[MONTH_ENGAGEMENT, month]
    month_conversion = month_table[MONTH_CONVERSION, month]
    premium = month_table[MONTH_PREMIUM, month]
    demand, value_factor = consts[C_DEMAND], consts[C_VALUE_FACTOR]
    load_mean, recovery = consts[C_LOAD_MEAN], consts[C_LOAD_RECOVERY]
    recovering = recovery != 1.0
    expected[:] = 0.0
    mask[:] = False
    mask[-1] = True
    terms[:] = 0.0
    for s in range(n_segments):
        last = -1  # the levels of a segment often share a candidate: its level-free terms are computed once
        partial_logit = reach_mean = engagement_mean = clicks_per_reach = conversions_per_reach = value = 0.0
        for k in range(n_levels):
            a = s * n_levels + k
            i = candidate[s, k]
            if i < 0:
                continue
            mask[a] = True
            if i != last:
                last = i
                load_now = load[i]
                if recovering:  # v1: the load of the week (rates hold the start's fatigue: adjust it)
                    load_now = load_mean + (load[i] - load_mean) * recovery
                partial_logit = (
                    consts[C_LOGIT_BASE]
                    + consts[C_CATEGORY_SLOPE] * category_share[i]
                    + consts[C_LOAD_SLOPE] * load_now
                )
                overlap = _overlap(i, s, n_hired, hired_index, hired_segment, mix_unit, consts)
                f = candidate_values(values, i)[0]
                reach_mean = rates[0, i] * overlap
                engagement_mean = (
                    rates[1, i]
                    * (consts[C_ENGAGEMENT_FIT_BASE] + consts[C_ENGAGEMENT_FIT_SLOPE] * f)
                    * month_engagement
                )
                if recovering:
                    engagement_mean *= np.exp(-consts[C_FATIGUE] * (load_now - load[i]))
                clicks_per_reach = rates[2, i] * (consts[C_CLICK_FIT_BASE] + f)
                conversions_per_reach = (
                    rates[3, i]
                    * (consts[C_CONVERSION_FIT_BASE] + consts[C_CONVERSION_FIT_SLOPE] * f)
                    * month_conversion
                    * demand
                )
                if goal == AWARENESS:
                    value = reach_mean * noise_reach / 1000.0 * consts[C_VALUE_PER_1K_REACH] * reach_value[i]
                    value *= demand
                elif goal == ENGAGEMENT:
                    value = engagement_mean * noise_engagement * consts[C_VALUE_PER_ENGAGEMENT] * demand
                else:  # the demand is in the conversions already
                    value = reach_mean * noise_reach * conversions_per_reach * consts[C_ORDER_VALUE]
                value *= value_factor
            # the logit summed in its order: ((base + category + load) + offer) + month shift
            logit = partial_logit + consts[C_OFFER_SLOPE] * log_levels[k] + shift
            p = 1.0 / (1.0 + np.exp(-logit))
            cost = levels[k] * price[i] * premium
            terms[a, P_ACCEPT] = p
            terms[a, REACH_MEAN] = reach_mean
            terms[a, ENGAGEMENT_MEAN] = engagement_mean
            terms[a, CLICKS_PER_REACH] = clicks_per_reach
            terms[a, CONVERSIONS_PER_REACH] = conversions_per_reach
            terms[a, COST] = cost
            expected[a] = p * (value - cost) / 1000.0


@nb.njit(cache=True, inline="always")
def _overlap(i, s, n_hired, hired_index, hired_segment, mix_unit, consts):
    """Share of candidate i's reach that is new given the earlier hires of segment s (as
    :func:`envs.outcomes.overlap_factor`: each removes lo + (hi - lo) x the cosine of the category mixes)."""
    lo, hi = consts[C_OVERLAP_LO], consts[C_OVERLAP_HI]
    overlap = 1.0
    for h in range(n_hired):
        if hired_segment[h] != s:
            continue
        j = hired_index[h]
        cos = 0.0
        for c in range(mix_unit.shape[1]):
            cos += mix_unit[i, c] * mix_unit[j, c]
        cos = min(max(cos, 0.0), 1.0)
        overlap *= 1.0 - (lo + (hi - lo) * cos)
    return overlap


@nb.njit(cache=True, inline="always")
def _observe(budget_left, weeks_left_share, observed_month, n_hired, load_sum, load_count, consts, values,
             hired_segment, hired_load, hires, candidate, observation):  # fmt: skip
    """The observation's per-week features (layout: :func:`envs.observation.observation_specs`): budget and
    weeks left, month, and per segment the best candidate's value per dollar, hires, mean sponsored load
    (background plus what our hires added) and whether anything is affordable."""
    budget = consts[C_BUDGET]
    observation[16] = budget_left / budget if budget > 0 else 0.0
    observation[17] = weeks_left_share
    observation[18] = observed_month
    for s in range(candidate.shape[0]):
        best = candidate[s, 0]  # the lowest offer level is the most permissive: its candidate ranks best
        load_s = load_sum[s]
        for h in range(n_hired):
            if hired_segment[h] == s:
                load_s += hired_load[h]
        base = 19 + 4 * s
        observation[base] = candidate_values(values, best)[1] if best >= 0 else 0.0
        observation[base + 1] = hires[s]
        observation[base + 2] = load_s / max(load_count[s], 1.0)
        observation[base + 3] = 1.0 if best >= 0 else 0.0


@nb.njit(cache=True)
def _first_valid(entries, join, leave, hired, price, threshold, week):
    """The first entry (-1 ends the list) valid this week at this price threshold, or -1."""
    for i in entries:
        if i < 0:
            return -1
        if _valid_now(join[i], leave[i], hired[i], week) and price[i] <= threshold:
            return i
    return -1
