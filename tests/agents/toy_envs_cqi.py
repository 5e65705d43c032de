"""Small environments for CQI's action masks and its resumable training (see ``toy_envs`` for the
contextual bandits with known optimal trees)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from tests.agents.toy_envs import ContextualBandit


class MaskedChain(gym.Env):
    """Three states where the best-paying action is sometimes invalid.

    Observation Space
        ``Box(0, 1, (1,), float32)``: state A is ``[0]``, C is ``[0.5]``, B is ``[1]``.
    Action Space
        ``Discrete(2)``; ``action_masks()`` marks both valid in A and C, only action 0 in B.
    Rewards
        A: action 1 pays 10, action 0 pays 0 (both terminate). C: either action pays 0 and leads to B.
        B: action 0 pays 1 and terminates; the invalid action 1 would pay 10 (and raises, so a test
        fails if an agent takes it).
    Starting State
        A or C with probability 1/2 each.

    With one leaf (``max_leaves=1``), uniform exploration over valid actions and bootstrapping over
    valid actions only, per episode action 0 is taken 1/4 in A (target 0), 1/4 in C (target
    ``gamma Q(0)``) and 1/2 in B (target 1), so ``Q(0) = 0.5 / (1 - gamma / 4)``; a bootstrap over all
    actions would use ``Q(1)`` in C instead and give a much larger ``Q(0)``.
    """

    metadata = {"render_modes": []}

    def __init__(self) -> None:
        self.observation_space = spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)
        self.action_space = spaces.Discrete(2)
        self._state = "A"

    def _obs(self) -> np.ndarray:
        return np.array([{"A": 0.0, "C": 0.5, "B": 1.0}[self._state]], dtype=np.float32)

    def action_masks(self) -> np.ndarray:
        return np.array([True, self._state != "B"])

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._state = "A" if self.np_random.random() < 0.5 else "C"
        return self._obs(), {}

    def step(self, action: int):
        action = int(action)
        if not self.action_masks()[action]:
            raise AssertionError(f"invalid action {action} taken in state {self._state}")
        if self._state == "A":
            return self._obs(), 10.0 * action, True, False, {}
        if self._state == "C":
            self._state = "B"
            return self._obs(), 0.0, False, False, {}
        return self._obs(), 1.0, True, False, {}


class ScriptedBandit(ContextualBandit):
    """A :class:`~tests.agents.toy_envs.ContextualBandit` whose contexts are a fixed sequence drawn at
    construction (from ``context_seed``), one per step; ``reset`` shows the current context without
    drawing, so an agent that resumes on the same env object meets exactly the contexts an
    uninterrupted run would have met."""

    def __init__(self, *args: Any, context_seed: int = 0, n_contexts: int = 100_000, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        shape = (n_contexts, *self.observation_space.shape)
        rng = np.random.default_rng(context_seed)
        self._contexts = rng.uniform(self.sample_low, self.sample_high, size=shape).astype(np.float32)
        self._t = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        gym.Env.reset(self, seed=seed)
        return self._contexts[self._t].copy(), {}

    def step(self, action: int):
        x = self._contexts[self._t]
        reward = float(self.payoff(x.astype(np.float64))[int(action)])
        self._t += 1
        return self._contexts[self._t].copy(), reward, True, False, {}


def scripted_xor_bandit(context_seed: int = 0, b0: float = 0.5, b1: float = 0.3) -> ScriptedBandit:
    """:func:`~tests.agents.toy_envs.xor_bandit` on a fixed sequence of contexts."""

    def payoff(x: np.ndarray) -> np.ndarray:
        odd = (x[0] < b0) != (x[1] < b1)
        return np.array([float(odd), float(not odd)])

    return ScriptedBandit(payoff, n_features=3, n_actions=2, context_seed=context_seed)
