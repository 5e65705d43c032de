"""The planning oracle: a ceiling to score learned policies against.

:class:`PlanningOracle` reads the hidden truth, like :class:`~agents.references.MyopicOracle`, and is
likewise **a reference, never a deployable policy**. Where the myopic oracle takes the offer with the
highest expected reward *this week*, the planner also values what an action does to the rest of the
campaign (the budget it spends, the candidates it uses up, the months it waits for):

    Q(a) = E[reward of a now] + max over d in wait_horizons of  E[return of "wait d weeks, then act
           myopically" from the state a leads to]

where the delays d are, by default, 0 and the weeks to the start of each coming calendar month.

The first term is exact (``expected_rewards()``); the continuation is a Monte-Carlo mean over
``n_rollouts`` sampled futures, run on copies of the environment (the hidden market is shared, only the
campaign's state is copied). Rollout ``r`` of every action and every horizon uses the same random
stream (common random numbers), so two actions are compared on the same futures and their difference
has far less noise than either value. Only the ``n_candidates`` hire actions with the highest expected
reward (and waiting, when ``allow_wait``) are valued; the others cannot win by much where rewards are
this skewed, and valuing them would multiply the cost. The planner departs from the myopic choice only
when the best action beats it on fresh rollouts (twice as many, new random numbers) by more than
``min_advantage_z`` standard errors of the paired difference: choosing the best of noisy estimates
inflates them, and without the fresh comparison the planner waited too often and did worse than the
myopic oracle it refines.

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

from agents._checks import check_int, check_seed
from agents.references import EnvStatePolicy, myopic_action

__all__ = [
    "PlanningOracle",
    "action_returns",
    "action_values",
    "myopic_action",
    "plan",
    "planned_action",
    "rollout_return",
]


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


def _continuations(env: Any, action: int, delay: int, n: int, seed: int, allow_wait: bool) -> np.ndarray:
    """``n`` sampled returns of "take ``action``, wait ``delay`` weeks, then act myopically" after this
    week (rollout ``r`` draws from stream ``[seed, r]``, whatever the action: common random numbers)."""
    out = np.empty(n)
    for r in range(n):
        clone = _fork(env, np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, r]))))
        _, _, terminated, truncated, _ = clone.step(action)
        out[r] = 0.0 if terminated or truncated else rollout_return(clone, delay, allow_wait)
    return out


def plan(
    env: Any,
    *,
    allow_wait: bool = True,
    n_rollouts: int = 4,
    n_candidates: int = 2,
    wait_horizons: Sequence[int] | str = "months",
    seed: int = 0,
) -> dict[int, tuple[np.ndarray, int]]:
    """Sampled planned values of every action the planner considers in ``env``'s current state.

    Returns ``{action: (values, delay)}``: ``values`` holds one value per rollout (thousands of USD),
    the exact expected reward of the action plus that rollout's continuation under ``delay``, the
    action's best horizon (the one with the highest mean). Rollout ``r`` shares its random stream across
    actions and horizons, so ``values[a] - values[b]`` is a paired sample of the difference. Picking the
    best horizon biases each value up (a maximum of noisy means); :class:`PlanningOracle` therefore
    re-measures its final comparison on fresh rollouts."""
    mask, expected = env.action_masks(), env.expected_rewards()
    hires = np.flatnonzero(mask[:-1])
    order = hires[np.lexsort((hires, -expected[hires]))][:n_candidates]
    actions = [int(a) for a in order]
    if allow_wait or not actions:
        actions.append(int(env.wait_action))
    horizons = _horizons(env, wait_horizons) if allow_wait else (0,)
    out: dict[int, tuple[np.ndarray, int]] = {}
    for action in actions:
        returns = [_continuations(env, action, d, n_rollouts, seed, allow_wait) for d in horizons]
        best = int(np.argmax([r.mean() for r in returns]))
        out[action] = (float(expected[action]) + returns[best], horizons[best])
    return out


def action_returns(env: Any, **kwargs: Any) -> dict[int, np.ndarray]:
    """``{action: values}`` of :func:`plan` (same keywords), without the horizons."""
    return {a: values for a, (values, _) in plan(env, **kwargs).items()}


def month_horizons(env: Any, n_months: int = 6) -> tuple[int, ...]:
    """0 and the delays, in weeks, to the first week of each of the next ``n_months`` calendar months
    that start before the campaign ends: "wait until the month changes" is what timing a hire means."""
    from envs.campaigns import month_of_week

    week, weeks = int(env.week), int(env.campaign_weeks)
    months = month_of_week(int(env.campaign.start_month), np.arange(week, weeks))
    starts = np.flatnonzero(np.diff(months) != 0) + 1
    return (0, *(int(d) for d in starts[:n_months]))


def _horizons(env: Any, wait_horizons: Sequence[int] | str) -> tuple[int, ...]:
    return month_horizons(env) if isinstance(wait_horizons, str) else tuple(wait_horizons)


def action_values(env: Any, **kwargs: Any) -> dict[int, tuple[float, float]]:
    """``{action: (mean planned value, its standard error)}`` from :func:`action_returns` (same keywords)."""
    values = action_returns(env, **kwargs)
    n = next(iter(values.values())).size
    return {
        a: (float(v.mean()), float(v.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0) for a, v in values.items()
    }


def planned_action(values: dict[int, np.ndarray], default: int, z: float = 1.0) -> int:
    """The action to take given sampled planned values: the best by mean, but only if it beats
    ``default`` (the myopic choice) by more than ``z`` standard errors of their paired difference;
    otherwise ``default``. This keeps rollout noise from making the planner worse than the myopic
    oracle it improves on."""
    best = min(values, key=lambda a: (-float(values[a].mean()), a))
    if best == default or default not in values:
        return best
    diff = values[best] - values[default]
    se = float(diff.std(ddof=1) / np.sqrt(diff.size)) if diff.size > 1 else 0.0
    return best if float(diff.mean()) > z * se else default


def _fork(env: Any, rng: np.random.Generator) -> Any:
    """An independent copy of ``env``'s campaign that draws from ``rng`` (the env's cheap ``fork`` when
    it has one: the hidden market is shared, only the campaign's state is copied)."""
    fork = getattr(env, "fork", None)
    if fork is not None:
        return fork(rng)
    clone = copy.deepcopy(env)
    clone.np_random = rng
    return clone


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
    n_candidates : int, default 2
        Hire actions valued per decision (the best by expected reward).
    wait_horizons : "months" or sequence of int, default "months"
        Delays, in weeks, of the continuation policies ("wait d weeks, then act myopically"); "months":
        0 and the delays to the start of each of the next six calendar months (:func:`month_horizons`).
    min_advantage_z : float, default 1.0
        It departs from the myopic choice only when the best action's paired advantage exceeds this
        many standard errors (see :func:`planned_action`).
    seed : int or None
        Seed of the rollouts' random streams (one per decision, drawn from this seed's stream).
    """

    def __init__(
        self,
        env: gym.Env | None,
        *,
        allow_wait: bool = True,
        n_rollouts: int = 4,
        n_candidates: int = 2,
        wait_horizons: Sequence[int] | str = "months",
        min_advantage_z: float = 1.0,
        seed: int | None = None,
    ) -> None:
        super().__init__(env, seed=check_seed(seed))
        if (
            isinstance(min_advantage_z, bool)
            or not isinstance(min_advantage_z, (int, float))
            or not min_advantage_z >= 0
        ):
            raise ValueError(f"min_advantage_z: expected a number >= 0, got {min_advantage_z!r}")
        self.min_advantage_z = float(min_advantage_z)
        if not isinstance(allow_wait, bool):
            raise ValueError(f"allow_wait: expected true or false, got {allow_wait!r}")
        self.allow_wait = allow_wait
        self.n_rollouts = check_int("n_rollouts", n_rollouts, 1)
        self.n_candidates = check_int("n_candidates", n_candidates, 1)
        self.wait_horizons: tuple[int, ...] | str
        if wait_horizons == "months":
            self.wait_horizons = "months"
        else:
            horizons = list(wait_horizons) if isinstance(wait_horizons, (list, tuple)) else None
            if not horizons:
                raise ValueError(
                    f"wait_horizons: expected 'months' or a non-empty list of weeks >= 0, got {wait_horizons!r}"
                )
            self.wait_horizons = tuple(check_int("wait_horizons", h, 0) for h in horizons)

    def get_params(self) -> dict[str, Any]:
        return {
            "allow_wait": self.allow_wait,
            "n_rollouts": self.n_rollouts,
            "n_candidates": self.n_candidates,
            "wait_horizons": self.wait_horizons
            if isinstance(self.wait_horizons, str)
            else list(self.wait_horizons),
            "min_advantage_z": self.min_advantage_z,
            "seed": self.seed,
        }

    def action_returns(self, env: Any | None = None) -> dict[int, np.ndarray]:
        """The planner's first-stage sampled values of each action it considers now (:func:`plan`)."""
        return action_returns(
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
        default = myopic_action(env, self.allow_wait)
        planned = plan(env, allow_wait=self.allow_wait, n_rollouts=self.n_rollouts,
                       n_candidates=self.n_candidates, wait_horizons=self.wait_horizons,
                       seed=int(self._rng.integers(2**63 - 1)))  # fmt: skip
        best = min(planned, key=lambda a: (-float(planned[a][0].mean()), a))
        if best == default or default not in planned:
            return best
        # The pick is biased up (the best of noisy horizons and actions): compare the two afresh, on
        # new common random numbers, twice as many, each under its chosen horizon.
        fresh = int(self._rng.integers(2**63 - 1))
        expected = env.expected_rewards()
        values = {
            a: float(expected[a])
            + _continuations(env, a, planned[a][1], 2 * self.n_rollouts, fresh, self.allow_wait)
            for a in (best, default)
        }
        return planned_action(values, default, self.min_advantage_z)
