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
def update_candidates(x, a, y, alpha, decay, greedy, baseline, cand_feature, cand_value, cand_q,
                      cand_visits, seen_low, seen_high):  # fmt: skip
    """Learn from (x, a, y) on every candidate, then score them.

    ``cand_q`` is (A, C, 2) and ``cand_visits`` (C, 2), side 0 holding ``x[feature] < value`` (NaN goes
    right, as in the tree walk). Each candidate's visits decay on both sides; on the side holding x,
    Q(a) moves toward y by ``alpha`` and visits rise by ``1 - decay``. Score of a candidate: the sum over
    its sides of visits x (max_a Q_side - Q_side(greedy)) when ``greedy >= 0`` (the paper's reading), else
    visits x (max_a Q_side - baseline). Candidates without a learned-from observation on both sides
    (from ``seen_low``/``seen_high``) score -inf. Returns (best candidate, its score)."""
    n_actions, n_cand = cand_q.shape[0], cand_q.shape[1]
    rise = 1.0 - decay
    best, best_score = -1, -np.inf
    for c in range(n_cand):
        f = cand_feature[c]
        v = cand_value[c]
        side = 0 if x[f] < v else 1
        old = cand_q[a, c, side]
        cand_q[a, c, side] = old + alpha * (y - old)
        cand_visits[c, 0] *= decay
        cand_visits[c, 1] *= decay
        cand_visits[c, side] += rise
        if not (v > seen_low[f] and v <= seen_high[f]):
            continue
        total = 0.0
        for s in range(2):
            top = cand_q[0, c, s]
            for b in range(1, n_actions):
                if cand_q[b, c, s] > top:
                    top = cand_q[b, c, s]
            ref = cand_q[greedy, c, s] if greedy >= 0 else baseline
            total += (top - ref) * cand_visits[c, s]
        if total > best_score:
            best, best_score = c, total
    return best, best_score
