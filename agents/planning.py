"""The planning oracle: a ceiling to score learned policies against.

:class:`PlanningOracle` reads the hidden truth, like :class:`~agents.references.MyopicOracle`, and is
likewise **a reference, never a deployable policy**. Where the myopic oracle takes the offer with the
highest expected reward *this week*, the planner also values what an action does to the rest of the
campaign (the budget it spends, the candidates it uses up, the months it waits for):

    Q(a) = E[reward of a now] + max over d in wait_horizons of  E[return of "wait d weeks, then act
           myopically" from the state a leads to]

The first term is exact (``expected_rewards()``); the continuation is a Monte-Carlo mean over
``n_rollouts`` sampled futures, run on copies of the environment (the hidden market is shared, only the
campaign's state is copied). Rollout ``r`` of every action and every horizon uses the same random
stream (common random numbers), so two actions are compared on the same futures and their difference
has far less noise than either value. Only the ``n_candidates`` hire actions with the highest expected
reward (and waiting, when ``allow_wait``) are valued; the others cannot win by much where rewards are
this skewed, and valuing them would multiply the cost.

``allow_wait=False`` gives the same planner without the wait action (and its rollouts never wait while
a hire is valid): the difference between the two is the value of timing.

It is a one-step improvement over a family of base policies (the myopic oracle after a delay), so its
return is a lower bound on the optimal policy's, not the optimum itself; report scores against it as
"the best policy found", not "the best possible".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["action_values", "myopic_action", "rollout_return"]


def myopic_action(env: Any, allow_wait: bool = True) -> int:
    """The myopic oracle's choice in ``env``'s current state (``env`` unwrapped).

    The valid hire with the highest expected reward; waiting when no valid hire has a positive expected
    reward (or, with ``allow_wait=False``, only when no hire is valid at all)."""
    rewards = np.where(env.action_masks(), env.expected_rewards(), -np.inf)
    rewards[env.wait_action] = -np.inf
    best = int(np.argmax(rewards))
    if rewards[best] == -np.inf:
        return int(env.wait_action)
    if allow_wait and rewards[best] <= 0:
        return int(env.wait_action)
    return best


def rollout_return(env: Any, delay: int, allow_wait: bool = True) -> float:
    """Return from ``env``'s current state (``env`` is played, pass a copy) of "wait ``delay`` weeks,
    then act like the myopic oracle" until the campaign ends."""
    total, done, week = 0.0, False, 0
    while not done:
        action = int(env.wait_action) if week < delay else myopic_action(env, allow_wait)
        _, reward, terminated, truncated, _ = env.step(action)
        total += reward
        done = terminated or truncated
        week += 1
    return total


def action_values(
    env: Any,
    *,
    allow_wait: bool = True,
    n_rollouts: int = 4,
    n_candidates: int = 4,
    wait_horizons: Sequence[int] = (0, 1, 3, 7),
    seed: int = 0,
) -> dict[int, tuple[float, float]]:
    """The planner's value of every action it considers in ``env``'s current state (``env`` unwrapped).

    Returns ``{action: (value, standard_error)}`` in thousands of USD: the exact expected reward of the
    action plus the best horizon's mean continuation (its standard error over rollouts beside it)."""
    mask, expected = env.action_masks(), env.expected_rewards()
    hires = np.flatnonzero(mask[:-1])
    order = hires[np.lexsort((hires, -expected[hires]))][:n_candidates]
    actions = [int(a) for a in order]
    if allow_wait or not actions:
        actions.append(int(env.wait_action))
    horizons = tuple(wait_horizons) if allow_wait else (0,)
    values: dict[int, tuple[float, float]] = {}
    for action in actions:
        best_mean, best_se = -np.inf, 0.0
        returns = np.empty((len(horizons), n_rollouts))
        for r in range(n_rollouts):
            stream = np.random.SeedSequence([seed, r])
            for h, delay in enumerate(horizons):
                clone = env.fork(np.random.Generator(np.random.PCG64(stream)))
                _, _, terminated, truncated, _ = clone.step(action)
                returns[h, r] = 0.0 if terminated or truncated else rollout_return(clone, delay, allow_wait)
        for h in range(len(horizons)):
            mean = float(returns[h].mean())
            if mean > best_mean:
                se = float(returns[h].std(ddof=1) / np.sqrt(n_rollouts)) if n_rollouts > 1 else 0.0
                best_mean, best_se = mean, se
        values[action] = (float(expected[action]) + best_mean, best_se)
    return values
