"""Policies with exact action probabilities, for logging matches and for evaluating a target policy.

:class:`StochasticPolicy` makes any agent stochastic with exact action probabilities: either the
agent's own distribution (``action_probabilities``: uniform for ``random``, the masked and renormalised
policy of PPO, A2C and MaskablePPO, the bandit's exploration) or epsilon-greedy around
``predict(observation, deterministic=True)``: ``(1 - epsilon) * 1{a = greedy} + epsilon / |valid|`` on
the valid actions. An invalid greedy action is a no-op that wastes the week in the environment, exactly
like waiting, so it is recorded as waiting. :func:`policy_source` resolves ``--policy`` (a run folder
or an agent name) and :func:`build_policy` builds the policy in an environment made by :func:`make_env`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents import RandomPolicy
from agents.base import accepts_action_masks

__all__ = [
    "PolicyError",
    "PolicySource",
    "StochasticPolicy",
    "build_policy",
    "differing_options",
    "make_env",
    "policy_source",
]


class PolicyError(ValueError):
    """A policy cannot be used as asked (no distribution of its own, reads the simulator's state, ...)."""


def _agent_dimensions(agent: Any) -> tuple[int | None, int | None]:
    """(observation size, number of actions) an agent expects, where it says."""
    for holder in (agent, getattr(agent, "model", None)):
        obs_space = getattr(holder, "observation_space", None)
        act_space = getattr(holder, "action_space", None)
        if obs_space is not None and act_space is not None and getattr(obs_space, "shape", None):
            return int(np.prod(obs_space.shape)), int(getattr(act_space, "n", 0)) or None
    n_features, n_actions = getattr(agent, "n_features", None), getattr(agent, "n_actions", None)
    return (int(n_features) if n_features else None), (int(n_actions) if n_actions else None)


class StochasticPolicy:
    """An agent as a stochastic policy with exact action probabilities.

    Parameters
    ----------
    agent : object
        Any agent of the :mod:`agents` protocol.
    epsilon : float in [0, 1] or None
        ``None``: the agent's own distribution (its ``action_probabilities(observation, action_mask)``;
        uniform for :class:`~agents.RandomPolicy`). A number: epsilon-greedy around
        ``predict(observation, deterministic=True)`` over the valid actions, probability
        ``(1 - epsilon) * 1{a = greedy} + epsilon / |valid|``. A greedy action the mask marks invalid
        is waiting (in the environment both are a no-op that wastes the week); if the mask marks
        waiting invalid too, its ``1 - epsilon`` is spread over the valid actions.
    wait_action : int
        Index of waiting.
    label : str
        How the policy is named in messages and tables.

    Notes
    -----
    :class:`~agents.RandomPolicy` is uniform over the valid actions whatever ``epsilon`` is.
    Policies that read the environment's state when they decide (``reads_env_state``: the oracle and
    the heuristics) can log matches (:meth:`probabilities` with ``envs``) but cannot be evaluated
    from logged contexts: :meth:`probabilities` without ``envs`` raises :class:`PolicyError`.
    """

    def __init__(self, agent: Any, epsilon: float | None, *, wait_action: int, label: str = "policy") -> None:
        if epsilon is not None and (
            isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not 0 <= epsilon <= 1
        ):
            raise PolicyError(f"epsilon: expected a number in [0, 1] or 'own', got {epsilon!r}")
        self.agent = agent
        self.label = label
        self.wait_action = int(wait_action)
        self.uniform = isinstance(agent, RandomPolicy)
        self.epsilon = None if (epsilon is None or self.uniform) else float(epsilon)
        self.reads_env_state = bool(getattr(agent, "reads_env_state", False)) and not self.uniform
        if self.epsilon is None and not self.uniform and not hasattr(agent, "action_probabilities"):
            raise PolicyError(
                f"{label} has no stochastic policy of its own (no action_probabilities): "
                "give --epsilon E to make it epsilon-greedy"
            )
        self._takes_masks = accepts_action_masks(agent)
        self._bound: dict[int, Any] = {}
        self.n_features, self.n_actions = _agent_dimensions(agent)

    def describe(self) -> str:
        """E.g. ``cqi (runs/cqi), epsilon-greedy (epsilon 0.1)``."""
        if self.uniform:
            return f"{self.label}, uniform over the valid actions"
        if self.epsilon is None:
            return f"{self.label}, its own action distribution"
        if self.epsilon == 0:
            return f"{self.label}, greedy"
        return f"{self.label}, epsilon-greedy (epsilon {self.epsilon:g})"

    def check_dimensions(self, n_features: int, n_actions: int, where: str) -> None:
        """``PolicyError`` if the agent was made for other observation or action sizes."""
        if self.n_features is not None and self.n_features != n_features:
            raise PolicyError(
                f"{self.label} takes observations of {self.n_features} features, {where} has {n_features}"
            )
        if self.n_actions is not None and self.n_actions != n_actions:
            raise PolicyError(f"{self.label} has {self.n_actions} actions, {where} has {n_actions}")

    def probabilities(
        self, observations: np.ndarray, action_masks: np.ndarray, envs: Sequence[Any] | None = None
    ) -> np.ndarray:
        """Action probabilities for a batch of contexts.

        Parameters
        ----------
        observations : numpy.ndarray, shape (n, d)
        action_masks : numpy.ndarray of bool, shape (n, A)
        envs : sequence of environments, optional
            The environment each row comes from; required by (and only used for) policies that read
            the environment's state.

        Returns
        -------
        numpy.ndarray, shape (n, A)
            Rows sum to 1 and are 0 on invalid actions.
        """
        obs = np.asarray(observations, dtype=np.float64)
        masks = np.asarray(action_masks, dtype=bool)
        if obs.ndim != 2 or masks.ndim != 2 or len(obs) != len(masks):
            raise ValueError(f"expected observations (n, d) and masks (n, A), got {obs.shape}, {masks.shape}")
        if not masks.any(axis=1).all():
            raise PolicyError(f"row {int(np.flatnonzero(~masks.any(axis=1))[0])}: no valid action")
        n, A = masks.shape
        if self.uniform:
            return masks / masks.sum(axis=1, keepdims=True)
        if self.reads_env_state and envs is None:
            raise PolicyError(
                f"{self.label} reads the simulator's state when it decides, not the observation, so it "
                "can log matches (influmatch log) but cannot be evaluated from logged contexts; evaluate "
                "a policy that acts on the observation (cqi, ppo, a2c, dqn, maskable_ppo, logistic_bandit, random)"
            )
        if self.epsilon is None:
            return self._own(obs, masks)
        greedy = self._greedy(obs, masks, envs)
        valid = masks.sum(axis=1, keepdims=True)
        probs = self.epsilon * masks / valid
        rows = np.arange(n)
        greedy_valid = masks[rows, greedy]
        wait_valid = masks[:, self.wait_action]
        target = np.where(greedy_valid, greedy, self.wait_action)
        ok = greedy_valid | wait_valid
        probs[rows[ok], target[ok]] += 1.0 - self.epsilon
        if not ok.all():
            probs[~ok] += (1.0 - self.epsilon) * masks[~ok] / valid[~ok]
        return probs

    def _greedy(self, obs: np.ndarray, masks: np.ndarray, envs: Sequence[Any] | None) -> np.ndarray:
        if self.reads_env_state:
            assert envs is not None, "probabilities() refuses a policy reading the env without envs"
            return np.array(
                [
                    int(self._bind(env).predict(o, deterministic=True)[0])
                    for o, env in zip(obs, envs, strict=True)
                ],
                dtype=np.int64,
            )
        if self._takes_masks:
            actions = self.agent.predict(obs, deterministic=True, action_masks=masks)[0]
        else:
            actions = self.agent.predict(obs, deterministic=True)[0]
        actions = np.asarray(actions, dtype=np.int64).reshape(-1)
        if actions.shape != (len(obs),) or not ((actions >= 0) & (actions < masks.shape[1])).all():
            raise PolicyError(f"{self.label}: predict returned {actions!r} for {len(obs)} observations")
        return actions

    def _bind(self, env: Any) -> Any:
        agent = self._bound.get(id(env))
        if agent is None:
            agent = self.agent.with_env(env) if hasattr(self.agent, "with_env") else self.agent
            if agent is self.agent:
                self.agent.set_env(env)
            self._bound[id(env)] = agent
        return agent

    def _own(self, obs: np.ndarray, masks: np.ndarray) -> np.ndarray:
        probs = None
        try:
            probs = np.asarray(self.agent.action_probabilities(obs, masks), dtype=np.float64)
        except (ValueError, TypeError, RuntimeError):
            probs = None
        if probs is None or probs.shape != masks.shape or not np.allclose(probs.sum(axis=1), 1.0, atol=1e-6):
            probs = np.stack(
                [np.asarray(self.agent.action_probabilities(o, m), dtype=np.float64) for o, m in zip(obs, masks, strict=True)]
            )  # fmt: skip
        probs = np.where(masks, np.clip(probs, 0.0, None), 0.0)
        total = probs.sum(axis=1, keepdims=True)
        if not (total > 0).all():
            raise PolicyError(f"{self.label} puts no probability on any valid action")
        return probs / total


@dataclasses.dataclass(frozen=True)
class PolicySource:
    """Where a policy comes from: an agent name, or a run folder (``config.json`` + the saved model)."""

    spec: str
    name: str
    run_dir: Path | None
    env_options: dict
    model_file: str | None = None

    @property
    def label(self) -> str:
        return f"{self.name} ({self.run_dir})" if self.run_dir is not None else self.name


def policy_source(spec: str) -> PolicySource:
    """Resolve ``--policy``: a run folder written by ``influmatch train`` or an agent name.

    A run folder's ``config.json`` is read in the layout of :mod:`experiments.runner` (``spec.agent``,
    ``env_options``, ``model_file``) or in the plain one (``agent``, ``env``; the model file named by
    :func:`agents.model_filename`).
    """
    from agents import AGENT_NAMES, LEARNING_AGENTS, SEGMENT_AGENT_PATTERN, check_agent_name

    path = Path(spec)
    if path.is_dir():
        config_path = path / "config.json"
        if not config_path.is_file():
            raise FileNotFoundError(
                f"{path}: no config.json (expected a run folder written by influmatch train)"
            )
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{config_path}: not valid JSON ({err.msg} at line {err.lineno})") from None
        if not isinstance(config, dict):
            raise ValueError(f"{config_path}: expected a run config (a JSON object)")
        raw_spec = config.get("spec")
        run_spec: dict[str, Any] = raw_spec if isinstance(raw_spec, dict) else config
        if not isinstance(run_spec.get("agent"), str):
            raise ValueError(f"{config_path}: agent: expected the agent's name")
        name = check_agent_name(run_spec["agent"])
        env_options = config.get("env_options", run_spec.get("env")) or {}
        if not isinstance(env_options, dict):
            raise ValueError(f"{config_path}: env: expected a mapping of environment options")
        model_file = config.get("model_file")
        if model_file is not None and not isinstance(model_file, str):
            raise ValueError(f"{config_path}: model_file: expected a file name")
        return PolicySource(spec, name, path, dict(env_options), model_file)
    if path.exists():
        raise NotADirectoryError(f"{path}: --policy must be a run folder or an agent name")
    try:
        name = check_agent_name(spec)
    except ValueError:
        raise ValueError(
            f"--policy: '{spec}' is neither a run folder nor an agent name "
            f"(known: {', '.join(AGENT_NAMES)}, {SEGMENT_AGENT_PATTERN})"
        ) from None
    if name in LEARNING_AGENTS:
        raise ValueError(
            f"--policy: {name} learns; give the run folder of a trained one "
            f"(influmatch train --agent {name} --out DIR)"
        )
    return PolicySource(spec, name, None, {})


def build_policy(source: PolicySource, env: Any, epsilon: float | None, seed: int = 0) -> StochasticPolicy:
    """The policy of ``source`` acting in ``env``, made stochastic (see :class:`StochasticPolicy`)."""
    from agents import LEARNING_AGENTS, load_agent, make_agent, model_filename

    unwrapped = env.unwrapped
    if source.run_dir is None:
        agent = make_agent(source.name, env, seed=seed)
    else:
        model = source.run_dir / (source.model_file or model_filename(source.name))
        if not model.is_file():
            raise FileNotFoundError(f"{source.run_dir}: no {model.name} (the run did not save its model)")
        agent = load_agent(source.name, model, env=None if source.name in LEARNING_AGENTS else env)
    policy = StochasticPolicy(agent, epsilon, wait_action=int(unwrapped.wait_action), label=source.label)
    policy.check_dimensions(len(unwrapped.feature_names), int(unwrapped.action_space.n), "the environment")
    return policy


def make_env(options: Mapping[str, Any]) -> Any:
    """``InfluencerMatchingEnv(**options)`` with a message naming the options on failure."""
    from envs.matching_env import InfluencerMatchingEnv

    options = dict(options)
    if isinstance(options.get("offer_levels"), list):
        options["offer_levels"] = tuple(options["offer_levels"])
    try:
        return InfluencerMatchingEnv(**options)
    except TypeError as err:
        raise ValueError(f"environment options {options}: {err}") from None


def differing_options(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """Environment options that differ between two option sets, defaults filled in."""
    from envs.matching_env import env_option_defaults

    defaults = env_option_defaults()

    def value(options: Mapping[str, Any], key: str) -> Any:
        v = options.get(key, defaults.get(key))
        return list(v) if isinstance(v, tuple) else v

    return sorted(k for k in set(a) | set(b) if value(a, k) != value(b, k))
