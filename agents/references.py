"""The reference policies that define the normalised score: :class:`RandomPolicy` (0) and
:class:`MyopicOracle` (1), on their base :class:`EnvStatePolicy` (also the base of the heuristics).

**Policies that read the environment.** An :class:`EnvStatePolicy` is constructed with the environment
and reads ``env.unwrapped`` (its action mask, its candidates' observable features, or, for the oracle,
the hidden expected rewards) when ``predict`` is called; ``predict`` ignores the observation it is
given. These policies are meant for sequential, single-environment use: evaluation, generating logs.
``predict`` refuses a batch of more than one observation, since the environment has one current state.
Use :meth:`EnvStatePolicy.with_env` to run the same policy on another environment (evaluation does).
They do not learn: ``learn`` plays the environment for the requested steps (through the loop of
:class:`agents.base.BaseAgent`, so callbacks see every step) and ``save`` writes their configuration as
JSON.

**MyopicOracle is not a deployable policy.** It reads the hidden truth (``expected_rewards()``, which no
real marketer observes) and is the reference that defines a normalised score of 1; its return is an
upper reference line for one-step-greedy play, not an upper bound on what a planning policy can earn.
"""

from __future__ import annotations

import copy
from collections import deque
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from agents._checks import check_seed
from agents._policy_files import read_policy_file, write_policy_file
from agents.base import EPISODE_WINDOW, BaseAgent

__all__ = ["EnvStatePolicy", "MyopicOracle", "RandomPolicy", "myopic_action"]


def _single_or_one(observation: Any, name: str) -> bool:
    """Whether ``observation`` is one observation (``False``: a batch of exactly one)."""
    shape = np.shape(observation)
    if len(shape) <= 1:
        return True
    if len(shape) == 2 and shape[0] == 1:
        return False
    raise ValueError(
        f"{name} acts on the environment's current state: predict takes one observation at a time, "
        f"got a batch of shape {shape}"
    )


class EnvStatePolicy(BaseAgent):
    """Base of the policies that act on the environment's current state (see the module docstring).

    Parameters
    ----------
    env : gymnasium.Env or None
        The environment whose ``unwrapped`` state ``predict`` reads. ``None`` is allowed (e.g. after
        ``load`` without an env) until ``predict`` or ``learn`` is called.
    seed : int or None
        Seed of the policy's own random stream (only :class:`RandomPolicy` draws from it). ``learn``
        resets the environment without a seed: the environment's own stream decides the campaigns.
    """

    #: ``predict`` reads ``env.unwrapped`` and ignores the observation.
    reads_env_state = True

    def __init__(self, env: gym.Env | None, *, seed: int | None = None) -> None:
        self.env = env
        self.seed = check_seed(seed)
        self._rng = np.random.default_rng(self.seed)
        self._init_loop(env_seed=None)

    # -- protocol
    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, None]:
        """The action for the environment's *current* state.

        ``observation`` is ignored (the state is read from ``env.unwrapped``); it only decides the
        shape of the result: a 0-d array for one observation, shape ``(1,)`` for a batch of one.
        ``state``, ``episode_start``, ``deterministic`` and ``action_masks`` are accepted for the
        protocol and ignored (the environment's own mask is used).
        """
        single = _single_or_one(observation, type(self).__name__)
        action = self._act(self._unwrapped())
        return (np.asarray(action, dtype=np.int64) if single else np.array([action], dtype=np.int64)), None

    def _act(self, env: Any) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def _select_action(self, observation: np.ndarray, info: dict[str, Any]) -> int:
        return self._act(self._unwrapped())

    # -- environment
    def _unwrapped(self) -> Any:
        if self.env is None:
            raise ValueError(
                f"{type(self).__name__} has no env: pass one to the constructor, to load(path, env=...) "
                "or to set_env(env)"
            )
        return self.env.unwrapped

    def with_env(self, env: gym.Env) -> EnvStatePolicy:
        """A copy of this policy (same parameters, a copy of its random stream) acting on ``env``."""
        clone = copy.copy(self)
        clone._rng = copy.deepcopy(self._rng)
        clone.ep_info_buffer = deque(self.ep_info_buffer, maxlen=EPISODE_WINDOW)
        clone.set_env(env)
        return clone

    # -- configuration and persistence
    def get_params(self) -> dict[str, Any]:
        """The constructor's keyword arguments (besides ``env``)."""
        return {"seed": self.seed}

    def save(self, path: str | Path) -> None:
        """Write the policy's configuration (and random-stream state) to ``path`` as JSON."""
        write_policy_file(
            path,
            type(self).__name__,
            {
                "params": self.get_params(),
                "state": {"rng": self._rng.bit_generator.state, "num_timesteps": self.num_timesteps},
            },
        )

    @classmethod
    def load(cls, path: str | Path, env: gym.Env | None = None) -> EnvStatePolicy:
        """Read a policy written by :meth:`save`; ``env`` is the environment it will act on."""
        data = read_policy_file(path, cls.__name__)
        try:
            policy = cls(env, **data["params"])
        except TypeError as err:
            raise ValueError(f"{path}: bad {cls.__name__} parameters ({err})") from err
        policy._rng.bit_generator.state = data["state"]["rng"]
        policy.num_timesteps = int(data["state"]["num_timesteps"])
        return policy

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"


class RandomPolicy(EnvStatePolicy):
    """Uniform over the valid actions of the current state (the environment's ``action_masks()``).

    The reference that defines a normalised score of 0. ``deterministic`` is ignored: the policy is
    random either way, drawing from its own stream (``seed``).
    """

    def _act(self, env: Any) -> int:
        valid = np.flatnonzero(env.action_masks())
        return int(valid[self._rng.integers(len(valid))])

    def action_probabilities(self, observation: np.ndarray, action_mask: np.ndarray) -> np.ndarray:
        """Uniform over the valid actions of ``action_mask``: shape ``(n_actions,)``, or ``(n, n_actions)``
        for a batch of masks (the observation is ignored)."""
        mask = np.asarray(action_mask, dtype=bool)
        counts = mask.sum(axis=-1, keepdims=True)
        if not (counts > 0).all():
            raise ValueError("action_mask: expected at least one valid action")
        return mask / counts


class MyopicOracle(EnvStatePolicy):
    """The valid action with the highest *expected* immediate reward under the hidden truth.

    Reads ``env.unwrapped.expected_rewards()``, which no marketer can observe: a **reference, never a
    deployable policy**. It defines a normalised score of 1. It waits when no valid offer has a positive
    expected reward; ties go to the lowest action index. Myopic: it ignores what an offer does to the
    budget and to later weeks, so a planning policy can beat it.
    """

    #: Its Q-values are the environment's hidden expected rewards (what a distilled tree weights by).
    uses_expected_rewards = True

    def _act(self, env: Any) -> int:
        return myopic_action(env)


def myopic_action(env: Any, allow_wait: bool = True, budget_price: float = 0.0) -> int:
    """The myopic oracle's choice in ``env``'s current state (``env`` unwrapped).

    The valid hire with the highest expected reward; waiting when no valid hire has a positive expected
    reward (or, with ``allow_wait=False``, only when no hire is valid at all).

    ``budget_price`` > 0 makes it pace the budget: it scores each hire by its expected reward minus
    ``budget_price`` times its expected spend (``env.expected_costs()``), so it takes only deals whose
    expected net value clears that price of the budget they use, and otherwise waits (a dollar spent now
    is a dollar a better week cannot have). The planning oracle's rollouts use a few such prices."""
    rewards = np.where(env.action_masks(), env.expected_rewards(), -np.inf)
    if budget_price:
        rewards = rewards - budget_price * env.expected_costs()
    rewards[env.wait_action] = -np.inf
    best = int(np.argmax(rewards))
    if rewards[best] == -np.inf:
        return int(env.wait_action)
    if allow_wait and rewards[best] <= 0:
        return int(env.wait_action)
    return best
