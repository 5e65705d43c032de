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

import copy
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from agents._checks import check_seed
from agents.references import EnvStatePolicy

__all__ = ["PlanningOracle", "action_values", "myopic_action", "rollout_return"]


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
                clone = _fork(env, np.random.Generator(np.random.PCG64(stream)))
                _, _, terminated, truncated, _ = clone.step(action)
                returns[h, r] = 0.0 if terminated or truncated else rollout_return(clone, delay, allow_wait)
        for h in range(len(horizons)):
            mean = float(returns[h].mean())
            if mean > best_mean:
                se = float(returns[h].std(ddof=1) / np.sqrt(n_rollouts)) if n_rollouts > 1 else 0.0
                best_mean, best_se = mean, se
        values[action] = (float(expected[action]) + best_mean, best_se)
    return values


def _fork(env: Any, rng: np.random.Generator) -> Any:
    """An independent copy of ``env``'s campaign that draws from ``rng`` (the env's cheap ``fork`` when
    it has one: the hidden market is shared, only the campaign's state is copied)."""
    fork = getattr(env, "fork", None)
    if fork is not None:
        return fork(rng)
    clone = copy.deepcopy(env)
    clone.np_random = rng
    return clone


def _check_count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < minimum:
        raise ValueError(f"{name}: expected a whole number >= {minimum}, got {value!r}")
    return int(value)


class PlanningOracle(EnvStatePolicy):
    """The action with the highest planned value (module docstring): reads hidden truth, a reference.

    Parameters
    ----------
    env : gymnasium.Env
        The influmatch environment whose current state it plans from.
    allow_wait : bool, default True
        Whether it may wait while a hire is valid (False: the same planner without timing).
    n_rollouts : int, default 4
        Sampled futures per action and horizon (the rollout budget, with ``n_candidates`` and
        ``wait_horizons``: about ``(n_candidates + 1) * len(wait_horizons) * n_rollouts`` rollouts per
        decision).
    n_candidates : int, default 4
        Hire actions valued per decision (the best by expected reward).
    wait_horizons : sequence of int, default (0, 1, 3, 7)
        Delays, in weeks, of the continuation policies ("wait d weeks, then act myopically").
    seed : int or None
        Seed of the rollouts' random streams (one per decision, drawn from this seed's stream).
    """

    def __init__(
        self,
        env: gym.Env | None,
        *,
        allow_wait: bool = True,
        n_rollouts: int = 4,
        n_candidates: int = 4,
        wait_horizons: Sequence[int] = (0, 1, 3, 7),
        seed: int | None = None,
    ) -> None:
        super().__init__(env, seed=check_seed(seed))
        if not isinstance(allow_wait, bool):
            raise ValueError(f"allow_wait: expected true or false, got {allow_wait!r}")
        self.allow_wait = allow_wait
        self.n_rollouts = _check_count("n_rollouts", n_rollouts, 1)
        self.n_candidates = _check_count("n_candidates", n_candidates, 1)
        horizons = list(wait_horizons) if isinstance(wait_horizons, (list, tuple)) else None
        if not horizons:
            raise ValueError(f"wait_horizons: expected a non-empty list of weeks >= 0, got {wait_horizons!r}")
        self.wait_horizons = tuple(_check_count("wait_horizons", h, 0) for h in horizons)

    def get_params(self) -> dict[str, Any]:
        return {
            "allow_wait": self.allow_wait,
            "n_rollouts": self.n_rollouts,
            "n_candidates": self.n_candidates,
            "wait_horizons": list(self.wait_horizons),
            "seed": self.seed,
        }

    def action_values(self, env: Any | None = None) -> dict[int, tuple[float, float]]:
        """The planner's value (and its standard error) of each action it considers now."""
        return action_values(
            env if env is not None else self._unwrapped(),
            allow_wait=self.allow_wait,
            n_rollouts=self.n_rollouts,
            n_candidates=self.n_candidates,
            wait_horizons=self.wait_horizons,
            seed=int(self._rng.integers(2**63 - 1)),
        )

    def _act(self, env: Any) -> int:
        mask = env.action_masks()
        if not mask[:-1].any():
            return int(env.wait_action)
        values = self.action_values(env)
        # Highest value; ties to the lowest action index.
        return min(values, key=lambda a: (-values[a][0], a))
