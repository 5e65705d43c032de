"""The planning oracle: a ceiling to score learned policies against.

:class:`PlanningOracle` reads the hidden truth, like :class:`~agents.references.MyopicOracle`, and is
likewise **a reference, never a deployable policy**. Where the myopic oracle takes the offer with the
highest expected reward *this week*, the planner also values what an action does to the rest of the
campaign (the budget it spends, the candidates it uses up, the months it waits for). It is a rollout
algorithm (Bertsekas) over a small family of base policies, :func:`continuations`:

* "wait d weeks, then act myopically", for d = 0 and the delays to the next calendar months' starts
  (the timing policies; only d = 0 without the wait action), and
* "act myopically but pace the budget at price p" for each of ``budget_prices``: take only deals whose
  expected net value clears p times their expected spend, else wait (``myopic_action(...,
  budget_price=p)``).

At a campaign's start and whenever the month changes, it **commits** to the base policy with the
highest sampled return from the current state, if that beats the myopic oracle afresh (see below);
otherwise to the myopic oracle. Every week it then values each considered action (the ``n_candidates``
hires with the highest expected reward, the committed policy's own action, waiting) as

    Q(a) = E[reward of a now] + E[return of the committed policy from the state a leads to]

and takes the best. Following the base policy it valued keeps the one-step improvement consistent: an
earlier version took the best continuation separately for every action each week, waited on the
strength of futures it then did not follow, and trailed the myopic oracle.

Every value is a Monte-Carlo mean over sampled futures on cheap copies of the campaign (``env.fork``:
the hidden market is shared), with **common random numbers** (rollout ``r`` of every action and policy
draws from the same stream, so differences have far less noise than values), and each rollout sums the
*expected* reward of the action of each week rather than the reward drawn (the same mean; the noise of
reach and conversions, heavy-tailed, swamped the differences between actions). It departs from the
myopic choice, or from the committed policy's action, only when the best candidate beats it on
**fresh** rollouts (twice as many, new random numbers) by more than ``min_advantage_z`` standard errors
of the paired difference: the best of several noisy estimates is biased up.

Measured (``python -m experiments.studies.timing_value``, v1, 10k influencers): with 8 rollouts and z =
2 it beats the myopic oracle on each market tried, where with 4 rollouts and z = 1 (the first version)
its lead was within noise and it trailed the myopic oracle on some samples; see the README for the
figures and the timing value.

``allow_wait=False`` gives the same planner without the wait action (its rollouts never wait while a
hire is valid, and its paced policies hire the best-scoring deal): the difference between the two is
the value of timing.

It improves on a family of base policies, so its return is a lower bound on the optimal policy's, not
the optimum itself; scores against it read "the best policy found", not "the best possible".
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from agents._checks import check_int, check_seed
from agents.references import EnvStatePolicy, myopic_action
from envs.campaigns import month_of_week

#: The planner's default budget prices (class docstring): measured in the module docstring's study.
DEFAULT_BUDGET_PRICES: tuple[float, ...] = (0.5, 1.0)
#: Rollouts per action and policy, and the evidence a departure from the default needs (docstring).
DEFAULT_ROLLOUTS, DEFAULT_Z = 8, 2.0

__all__ = [
    "DEFAULT_BUDGET_PRICES",
    "PlanningOracle",
    "continuations",
    "action_returns",
    "action_values",
    "myopic_action",
    "plan",
    "policy_returns",
    "planned_action",
    "rollout_return",
]


#: A continuation policy: (delay in weeks, budget price). "Wait ``delay`` weeks, then act like the
#: myopic oracle pacing its budget at ``price``" (:func:`agents.references.myopic_action`).
Continuation = tuple[int, float]


def rollout_return(env: Any, delay: int, allow_wait: bool = True, budget_price: float = 0.0) -> float:
    """Return from ``env``'s current state (``env`` is played, pass a copy) of "wait ``delay`` weeks,
    then act like the myopic oracle (pacing at ``budget_price``)" until the campaign ends.

    It sums each week's *expected* reward of the action taken (``expected_rewards()``), not the reward
    drawn: the same expectation (the week's expected reward is the mean of its reward given everything
    before it), without the heavy-tailed noise of reach and conversions, which otherwise swamps the
    differences between actions. The acceptances, spend and hires still follow the sampled future."""
    total, done, week = 0.0, False, 0
    while not done:
        if week < delay:
            action = int(env.wait_action)
        else:
            action = myopic_action(env, allow_wait, budget_price)
        total += float(env.expected_rewards()[action])
        _, _, terminated, truncated, _ = env.step(action)
        done = terminated or truncated
        week += 1
    return total


def _continuations(
    env: Any, action: int, continuation: Continuation, n: int, seed: int, allow_wait: bool
) -> np.ndarray:
    """``n`` sampled returns of "take ``action``, then follow ``continuation``" after this week
    (rollout ``r`` draws from stream ``[seed, r]``, whatever the action: common random numbers)."""
    delay, price = continuation
    out = np.empty(n)
    for r in range(n):
        clone = _fork(env, np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, r]))))
        _, _, terminated, truncated, _ = clone.step(action)
        out[r] = 0.0 if terminated or truncated else rollout_return(clone, delay, allow_wait, price)
    return out


def policy_returns(
    env: Any, policies: Sequence[Continuation], n: int, seed: int, allow_wait: bool = True
) -> np.ndarray:
    """``(len(policies), n)`` sampled returns of following each continuation policy from ``env``'s
    current state (this week included), rollout ``r`` on stream ``[seed, r]`` for every policy."""
    out = np.empty((len(policies), n))
    for r in range(n):
        for k, (delay, price) in enumerate(policies):
            clone = _fork(env, np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, r]))))
            out[k, r] = rollout_return(clone, delay, allow_wait, price)
    return out


def best_hires(mask: np.ndarray, expected: np.ndarray, n: int) -> list[int]:
    """The ``n`` valid hires (``mask`` without its last entry, the wait) with the highest expected reward,
    best first, ties to the lowest action."""
    hires = np.flatnonzero(mask[:-1])
    return [int(a) for a in hires[np.lexsort((hires, -expected[hires]))][:n]]


def continuations(
    env: Any,
    allow_wait: bool = True,
    wait_horizons: Sequence[int] | str = "months",
    budget_prices: Sequence[float] = (),
) -> tuple[Continuation, ...]:
    """The continuation policies the planner values each action under: "wait d weeks, then act
    myopically" for every delay of ``wait_horizons`` (0 only, without waiting), and "pace the budget at
    price p from now" for every ``budget_prices`` entry."""
    horizons = _horizons(env, wait_horizons) if allow_wait else (0,)
    return (*((int(d), 0.0) for d in horizons), *((0, float(p)) for p in budget_prices))


def plan(
    env: Any,
    *,
    allow_wait: bool = True,
    n_rollouts: int = 4,
    n_candidates: int = 2,
    wait_horizons: Sequence[int] | str = "months",
    budget_prices: Sequence[float] = (),
    seed: int = 0,
) -> dict[int, tuple[np.ndarray, Continuation]]:
    """Sampled planned values of every action the planner considers in ``env``'s current state.

    The actions: the ``n_candidates`` valid hires with the highest expected reward, each budget price's
    paced choice, and waiting (when ``allow_wait``, or when no hire is valid). Returns ``{action:
    (values, continuation)}``: ``values`` holds one value per rollout (thousands of USD), the exact
    expected reward of the action plus that rollout's return under ``continuation``, the action's best
    continuation policy (:func:`continuations`, the one with the highest mean). Rollout ``r`` shares its
    random stream across actions and continuations, so ``values[a] - values[b]`` is a paired sample of
    the difference. Picking the best continuation biases each value up (a maximum of noisy means);
    :class:`PlanningOracle` therefore re-measures its final comparison on fresh rollouts."""
    mask, expected = env.action_masks(), env.expected_rewards()
    actions = best_hires(mask, expected, n_candidates)
    for price in budget_prices:
        paced = myopic_action(env, allow_wait, price)
        if paced not in actions and paced != env.wait_action:
            actions.append(paced)
    if allow_wait or not actions:
        actions.append(int(env.wait_action))
    policies = continuations(env, allow_wait, wait_horizons, budget_prices)
    out: dict[int, tuple[np.ndarray, Continuation]] = {}
    for action in actions:
        returns = [_continuations(env, action, c, n_rollouts, seed, allow_wait) for c in policies]
        best = int(np.argmax([r.mean() for r in returns]))
        out[action] = (float(expected[action]) + returns[best], policies[best])
    return out


def action_returns(env: Any, **kwargs: Any) -> dict[int, np.ndarray]:
    """``{action: values}`` of :func:`plan` (same keywords), without the horizons."""
    return {a: values for a, (values, _) in plan(env, **kwargs).items()}


def month_horizons(env: Any, n_months: int = 6) -> tuple[int, ...]:
    """0 and the delays, in weeks, to the first week of each of the next ``n_months`` calendar months
    that start before the campaign ends: "wait until the month changes" is what timing a hire means;
    and the delay to the campaign's launch week when one is ahead (``env.launch_week``)."""
    week, weeks = int(env.week), int(env.campaign_weeks)
    months = month_of_week(int(env.campaign.start_month), np.arange(week, weeks))
    delays = [int(d) for d in np.flatnonzero(np.diff(months) != 0)[:n_months] + 1]
    launch = getattr(env, "launch_week", None)
    if launch is not None and week < launch < weeks:
        delays.append(int(launch) - week)
    return (0, *sorted(set(delays)))


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


def _state_key(env: Any) -> tuple[Any, ...]:
    """What identifies a decision's state: the campaign, the week and every action's expected reward
    (which move with the budget, the hires and the candidates' loads)."""
    return (id(env.campaign), int(env.week), env.expected_rewards().tobytes(), env.action_masks().tobytes())


def _fill_q(
    q: np.ndarray, mask: np.ndarray, expected: np.ndarray, means: dict[int, float], taken: int
) -> np.ndarray:
    """:meth:`PlanningOracle.q_values` from the considered actions' values ``means`` (docstring there)."""
    top = means[taken]
    below = float(np.nextafter(top, -np.inf))
    hires = [a for a in means if mask[a] and a != mask.size - 1]
    # The considered hires' lowest continuation (value less this week's expected reward): what an
    # unconsidered hire is assumed to lead to.
    after = min((means[a] - float(expected[a]) for a in hires), default=min(means.values()))
    q[mask] = expected[mask] + after
    for a, value in means.items():
        q[a] = value
    q[mask] = np.minimum(q[mask], below)
    q[taken] = top
    return q


class PlanningOracle(EnvStatePolicy):
    """The action with the highest planned value (module docstring): reads hidden truth, a reference.

    Parameters
    ----------
    env : gymnasium.Env
        The influmatch environment whose current state it plans from.
    allow_wait : bool, default True
        Whether it may wait while a hire is valid (False: the same planner without timing).
    n_rollouts : int, default 8
        Sampled futures per action and base policy: the rollout budget. Each week about ``(n_candidates
        + 2) * n_rollouts`` rollouts, plus ``4 * n_rollouts`` when it considers a departure; at each
        month's start ``2 * n_rollouts`` per base policy (``len(wait_horizons) + len(budget_prices)``).
    n_candidates : int, default 2
        Hire actions valued per decision (the best by expected reward).
    wait_horizons : "months" or sequence of int, default "months"
        Delays, in weeks, of the continuation policies ("wait d weeks, then act myopically"); "months":
        0 and the delays to the start of each of the next six calendar months and to a launch week ahead
        (:func:`month_horizons`).
    budget_prices : sequence of float, default DEFAULT_BUDGET_PRICES
        Prices of a dollar of budget for the pacing base policies ("from now on, take only deals whose
        expected net value clears this price of their expected spend"); ``()`` leaves only the timing
        policies.
    min_advantage_z : float, default 2.0
        It departs from the myopic choice (or from the committed policy's action) only when the best
        candidate's paired advantage on fresh rollouts exceeds this many standard errors
        (:func:`planned_action`).
    seed : int or None
        Seed of the rollouts' random streams (one per decision, drawn from this seed's stream).
    """

    def __init__(
        self,
        env: gym.Env | None,
        *,
        allow_wait: bool = True,
        n_rollouts: int = DEFAULT_ROLLOUTS,
        n_candidates: int = 2,
        wait_horizons: Sequence[int] | str = "months",
        budget_prices: Sequence[float] = DEFAULT_BUDGET_PRICES,
        min_advantage_z: float = DEFAULT_Z,
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
        prices = list(budget_prices) if isinstance(budget_prices, (list, tuple)) else None
        if prices is None or not all(
            isinstance(p, (int, float)) and not isinstance(p, bool) and p >= 0 for p in prices
        ):
            raise ValueError(f"budget_prices: expected a list of numbers >= 0, got {budget_prices!r}")
        self.budget_prices = tuple(float(p) for p in prices)
        # The base policy it follows this month: (week it stops waiting, budget price), chosen by
        # _commit at the campaign's start and whenever the month changes.
        self._campaign: Any = None
        self._week, self._month = -1, -1
        self._policy: tuple[int, float] = (0, 0.0)
        # The last decision (state key, action, q_values) and one q_values made before predict asked.
        self._decision: tuple[tuple[Any, ...], int, np.ndarray] | None = None
        self._pending: tuple[Any, ...] | None = None

    def get_params(self) -> dict[str, Any]:
        return {
            "allow_wait": self.allow_wait,
            "n_rollouts": self.n_rollouts,
            "n_candidates": self.n_candidates,
            "wait_horizons": self.wait_horizons
            if isinstance(self.wait_horizons, str)
            else list(self.wait_horizons),
            "budget_prices": list(self.budget_prices),
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
            budget_prices=self.budget_prices,
            seed=int(self._rng.integers(2**63 - 1)),
        )

    def q_values(self, observation: np.ndarray | None = None) -> np.ndarray:
        """The planner's value of every action in the environment's current state, in thousands of USD:
        what :meth:`predict` acts on, so its argmax is the action the planner takes here.

        ``observation`` is ignored (the state is read from ``env.unwrapped``, like ``predict``); it is
        accepted so that :func:`agents.distill.teacher_q_values` can weight a distilled tree's states by
        the planner's Q-value gaps. The values are those of the decision :meth:`predict` made (or, when
        it was not asked about this state yet, makes now: the next ``predict`` here takes that action),
        with the same random numbers:

        * each action it considers (the ``n_candidates`` best hires, the committed base policy's action,
          waiting): the Monte-Carlo mean of its expected reward now plus the committed policy's return
          from the state it leads to (:func:`plan`'s values under the policy the planner follows);
        * when it re-measured the best of them against the default on fresh rollouts, those two take
          their fresh means; and when that advantage did not clear ``min_advantage_z`` paired standard
          errors (it kept the default), the challenger takes the default's value plus the lower
          confidence bound of its advantage, ``mean - z * se`` (no more than the default's);
        * no considered action is above the action taken (each is capped just below it: the planner
          rejected them for lack of evidence);
        * valid hires it does not consider (they earn less this week than the ones it does): their
          expected reward now plus the lowest continuation of the hires it considered (value less
          expected reward), capped likewise; invalid actions: ``-inf``. When no hire is valid,
          waiting gets 0.
        """
        env = self._unwrapped()
        key = _state_key(env)
        if self._decision is None or self._decision[0] != key:
            action, q = self._decide(env)
            self._decision = (key, action, q)
        self._pending = self._decision[:2]  # the next predict on this state takes this action
        return self._decision[2].copy()

    def _act(self, env: Any) -> int:
        key = _state_key(env)
        pending, self._pending = self._pending, None
        if pending is not None and pending[0] == key:
            return pending[1]
        action, q = self._decide(env)
        self._decision = (key, action, q)
        return action

    def _decide(self, env: Any) -> tuple[int, np.ndarray]:
        """The planner's action in ``env``'s current state and its values (:meth:`q_values`)."""
        mask = env.action_masks()
        q = np.full(mask.size, -np.inf)
        if not mask[:-1].any():
            q[int(env.wait_action)] = 0.0
            return int(env.wait_action), q
        week = int(env.week)
        month = int(month_of_week(int(env.campaign.start_month), week))
        if env.campaign is not self._campaign or week < self._week or month != self._month:
            self._commit(env, week, month)
        self._week = week
        start, price = self._policy
        default = int(env.wait_action) if week < start else myopic_action(env, self.allow_wait, price)
        follow: Continuation = (max(0, start - week - 1), price)
        expected = env.expected_rewards()
        actions = best_hires(mask, expected, self.n_candidates)
        actions += [a for a in (default, int(env.wait_action)) if a not in actions]
        if not self.allow_wait:
            actions.remove(int(env.wait_action))
        seed = int(self._rng.integers(2**63 - 1))
        values = {
            a: float(expected[a]) + _continuations(env, a, follow, self.n_rollouts, seed, self.allow_wait)
            for a in actions
        }
        means = {a: float(v.mean()) for a, v in values.items()}
        best = min(values, key=lambda a: (-means[a], a))
        if best == default:
            return best, _fill_q(q, mask, expected, means, best)
        # The pick is biased up (the best of noisy estimates): compare the two afresh, on new common
        # random numbers, twice as many.
        fresh = int(self._rng.integers(2**63 - 1))
        values = {
            a: float(expected[a])
            + _continuations(env, a, follow, 2 * self.n_rollouts, fresh, self.allow_wait)
            for a in (best, default)
        }
        action = planned_action(values, default, self.min_advantage_z)
        means[best], means[default] = float(values[best].mean()), float(values[default].mean())
        if action == default:
            diff = values[best] - values[default]
            se = float(diff.std(ddof=1) / np.sqrt(diff.size)) if diff.size > 1 else 0.0
            means[best] = min(means[best], means[default] + float(diff.mean()) - self.min_advantage_z * se)
        return action, _fill_q(q, mask, expected, means, action)

    def _commit(self, env: Any, week: int, month: int) -> None:
        """Choose the base policy to follow until the month changes: the continuation (:func:`continuations`)
        with the highest sampled return from here, if it beats acting myopically by ``min_advantage_z``
        paired standard errors on ``2 * n_rollouts`` common-random-number rollouts; else myopic."""
        policies = continuations(env, self.allow_wait, self.wait_horizons, self.budget_prices)
        if (0, 0.0) not in policies:
            policies = ((0, 0.0), *policies)
        myopic = policies.index((0, 0.0))
        n = 2 * self.n_rollouts
        values = policy_returns(env, policies, n, int(self._rng.integers(2**63 - 1)), self.allow_wait)
        chosen = int(np.argmax(values.mean(axis=1)))
        if chosen != myopic:  # the best of several noisy means is biased up: confirm it afresh
            pair = (policies[chosen], policies[myopic])
            again = policy_returns(env, pair, n, int(self._rng.integers(2**63 - 1)), self.allow_wait)
            chosen = (chosen, myopic)[planned_action({0: again[0], 1: again[1]}, 1, self.min_advantage_z)]
        delay, price = policies[chosen]
        self._campaign, self._month, self._policy = env.campaign, month, (week + delay, price)
