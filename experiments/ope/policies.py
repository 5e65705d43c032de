"""Policies with exact action probabilities, for logging matches and for evaluating a target policy.

:class:`StochasticPolicy` makes any agent stochastic with exact action probabilities: either the
agent's own distribution (``action_probabilities``: uniform for ``random``, the masked and renormalised
policy of PPO, A2C and MaskablePPO, the bandit's exploration) or epsilon-greedy around
``predict(observation, deterministic=True)``: ``(1 - epsilon) * 1{a = greedy} + epsilon / |valid|`` on
the valid actions. An invalid greedy action is a no-op that wastes the week in the environment, exactly
like waiting, so it is recorded as waiting. :func:`policy_source` resolves ``--policy`` (a run folder,
an agent name, or a team's own rule ``module:function``, see :class:`FunctionPolicy`) and
:func:`build_policy` builds the policy in an environment made by :func:`make_env`.

**Which policies are targets.** Any policy that decides from what is logged: the observation and the
action mask (trained agents, ``random``, a ``module:function`` rule), and the heuristics of
:mod:`agents.heuristics`, which read the candidates' features: logs record those
(:data:`~experiments.ope.logs.CANDIDATE_FIELDS`) and the heuristics decide from them
(:meth:`agents.heuristics.HeuristicPolicy.choose`). The oracles read the hidden truth and are no targets.

**Markets.** :func:`check_same_market` refuses logs and a policy trained in different markets (other
environment options, market seed or dynamics) unless the caller allows it: such a policy acts on
observations of a market it never saw, and its value in the logs' market is not what it earned in its own.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents import RandomPolicy
from agents.base import accepts_action_masks

__all__ = [
    "FunctionPolicy",
    "MarketMismatchError",
    "PolicyError",
    "PolicySource",
    "StochasticPolicy",
    "build_policy",
    "check_same_market",
    "differing_options",
    "make_env",
    "policy_source",
]


class PolicyError(ValueError):
    """A policy cannot be used as asked (no distribution of its own, reads the simulator's state, ...)."""


class MarketMismatchError(PolicyError):
    """Logs and a policy come from different markets (see :func:`check_same_market`)."""


#: ``package.module:function``
_FUNCTION_SPEC = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


class FunctionPolicy:
    """A team's own rule as a Python function: ``function(observations, action_masks) -> probabilities``.

    ``observations`` is (n, d) with the columns of the environment's ``feature_names`` (the logs' context
    columns), ``action_masks`` (n, A) bool; the function returns (n, A) action probabilities (rows are
    renormalised over the valid actions; a function that returns one row for one observation, (d,) and
    (A,), is called row by row). A deterministic rule returns one-hot rows.

    Parameters
    ----------
    function : callable
    label : str
        How the rule is named (``module:function``).
    """

    def __init__(self, function: Callable[[np.ndarray, np.ndarray], Any], label: str) -> None:
        self.function = function
        self.label = label

    def action_probabilities(self, observation: np.ndarray, action_mask: np.ndarray) -> np.ndarray:
        """The function's probabilities, checked: same shape as the mask, finite, >= 0."""
        try:
            out = np.asarray(self.function(observation, action_mask), dtype=np.float64)
        except (ValueError, TypeError, RuntimeError):
            raise
        except Exception as err:  # a team's code: name it, one line
            raise PolicyError(f"{self.label} raised {type(err).__name__}: {err}") from None
        if out.shape != np.shape(action_mask):
            raise PolicyError(
                f"{self.label}: expected probabilities of shape {np.shape(action_mask)}, got {out.shape}"
            )
        if not np.isfinite(out).all() or (out < 0).any():
            raise PolicyError(f"{self.label}: probabilities must be finite and >= 0")
        return out

    def predict(
        self, observation: np.ndarray, state: Any = None, episode_start: Any = None,
        deterministic: bool = False, action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, None]:  # fmt: skip
        """The most probable valid action (the protocol's ``predict``; ``action_masks`` default: all)."""
        obs = np.atleast_2d(np.asarray(observation, dtype=np.float64))
        masks = np.ones((len(obs), 0), bool) if action_masks is None else np.atleast_2d(action_masks)
        probs = np.where(masks, self.action_probabilities(obs, masks), -np.inf)
        actions = probs.argmax(axis=1)
        return (actions[0] if np.ndim(observation) == 1 else actions), None


def load_function(spec: str) -> FunctionPolicy:
    """The rule ``module:function`` (the module importable from the Python path or the current folder)."""
    module_name, _, function_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name != module_name.split(".")[0] or "" in sys.path:
            raise ValueError(f"--policy {spec}: cannot import '{module_name}' ({err})") from None
        sys.path.insert(0, "")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            raise ValueError(
                f"--policy {spec}: no module '{module_name}' on the Python path or in the current folder"
            ) from None
        finally:
            sys.path.remove("")
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ValueError(f"--policy {spec}: module '{module_name}' has no function '{function_name}'")
    return FunctionPolicy(function, spec)


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
    the heuristics) log matches with :meth:`probabilities` given ``envs``. The heuristics (an agent with
    ``choose``, :class:`agents.heuristics.HeuristicPolicy`) are also evaluated from logged contexts
    given the logs' candidate facts (``candidates``); the oracle cannot be: :meth:`probabilities`
    without ``envs`` (or candidates) raises :class:`PolicyError`.
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
        env = getattr(getattr(agent, "env", None), "unwrapped", None)
        #: (n_segments, offer_levels) of the agent's environment, for deciding from candidate facts.
        self._layout = None if env is None else (int(env.n_segments), tuple(env.offer_levels))
        self.reads_candidates = self.reads_env_state and hasattr(agent, "choose") and self._layout is not None

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
        self,
        observations: np.ndarray,
        action_masks: np.ndarray,
        envs: Sequence[Any] | None = None,
        candidates: Mapping[str, np.ndarray] | None = None,
    ) -> np.ndarray:
        """Action probabilities for a batch of contexts.

        Parameters
        ----------
        observations : numpy.ndarray, shape (n, d)
        action_masks : numpy.ndarray of bool, shape (n, A)
        envs : sequence of environments, optional
            The environment each row comes from; required by (and only used for) policies that read
            the environment's state, unless they decide from ``candidates``.
        candidates : mapping of str to numpy.ndarray (n, A), optional
            The logged candidate facts of every row (:attr:`LoggedData.candidates
            <experiments.ope.logs.LoggedData>`), which the heuristics decide from when ``envs`` is None.

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
        if self.reads_env_state and envs is None and not (self.reads_candidates and candidates is not None):
            raise PolicyError(
                f"{self.label} reads the simulator's state when it decides, not the observation, so it "
                "can log matches (influmatch log) but cannot be evaluated from logged contexts; evaluate "
                "a policy that acts on the observation (cqi, ppo, a2c, dqn, maskable_ppo, logistic_bandit, random)"
            )
        if self.epsilon is None:
            return self._own(obs, masks)
        greedy = self._greedy(obs, masks, envs, candidates)
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

    def _greedy(
        self,
        obs: np.ndarray,
        masks: np.ndarray,
        envs: Sequence[Any] | None,
        candidates: Mapping[str, np.ndarray] | None = None,
    ) -> np.ndarray:
        if self.reads_env_state and envs is None and candidates is not None:
            return self._from_candidates(masks, candidates)
        if self.reads_env_state:
            assert envs is not None, "probabilities() refuses a policy reading the env without envs"
            batched = self._heuristic_batch(envs)
            if batched is not None:
                return batched
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

    def _heuristic_batch(self, envs: Sequence[Any]) -> np.ndarray | None:
        """A heuristic's greedy actions in ``envs`` with one call of its rule for the whole batch: what
        :meth:`agents.heuristics.HeuristicPolicy._act` does row by row (every env's
        ``candidate_features()`` (the fields the rule reads, :attr:`~agents.heuristics.HeuristicPolicy.reads`,
        and the segment) and ``action_masks()``, then ``choose``, whose every step is row-wise), so the
        actions are the same. None where that does not hold: an agent that overrides ``_act`` or
        is no heuristic, or envs of different layouts."""
        from agents.heuristics import HeuristicPolicy

        if (
            not envs
            or not isinstance(self.agent, HeuristicPolicy)
            or type(self.agent)._act is not HeuristicPolicy._act
        ):
            return None
        unwrapped = [getattr(env, "unwrapped", env) for env in envs]
        first = unwrapped[0]
        layout = (int(first.n_segments), tuple(first.offer_levels))
        if any((int(e.n_segments), tuple(e.offer_levels)) != layout for e in unwrapped[1:]):
            return None
        rows = [e.candidate_features() for e in unwrapped]
        reads = {*getattr(self.agent, "reads", ()), "segment"}  # what ``score`` reads (as the logs record)
        features = {key: np.stack([row[key] for row in rows]) for key in rows[0] if key in reads}
        masks = np.stack([np.asarray(e.action_masks(), dtype=bool) for e in unwrapped])
        return np.asarray(self.agent.choose(features, masks, layout[0], first.offer_levels), dtype=np.int64)

    def _from_candidates(self, masks: np.ndarray, candidates: Mapping[str, np.ndarray]) -> np.ndarray:
        """A heuristic's greedy actions from logged candidate facts."""
        assert self._layout is not None, "reads_candidates needs the agent's environment"
        n_segments, offer_levels = self._layout
        reads = tuple(getattr(self.agent, "reads", ()))
        lacking = [f for f in reads if f != "segment" and f not in candidates]
        if lacking:
            raise PolicyError(
                f"{self.label} decides from the candidates' {', '.join(lacking)}, which the logs do not record "
                f"(columns candidate_{lacking[0]}_<action>; influmatch log writes them)"
            )
        n, A = masks.shape
        features = {f: np.asarray(candidates[f], dtype=np.float64) for f in reads if f != "segment"}
        K = len(offer_levels)
        features["segment"] = np.broadcast_to(np.append(np.arange(A - 1) // K, -1), (n, A))
        return np.asarray(self.agent.choose(features, masks, n_segments, offer_levels), dtype=np.int64)

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
    #: ``module:function`` for a team's own rule (``name`` is then ``"function"``).
    function: str | None = None

    @property
    def label(self) -> str:
        return f"{self.name} ({self.run_dir})" if self.run_dir is not None else self.name


def policy_source(spec: str) -> PolicySource:
    """Resolve ``--policy``: a run folder written by ``influmatch train``, an agent name, or a team's
    own rule ``module:function`` (:class:`FunctionPolicy`).

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
    if _FUNCTION_SPEC.fullmatch(spec):
        return PolicySource(spec, "function", None, {}, function=spec)
    try:
        name = check_agent_name(spec)
    except ValueError:
        raise ValueError(
            f"--policy: '{spec}' is neither a run folder, an agent name "
            f"(known: {', '.join(AGENT_NAMES)}, {SEGMENT_AGENT_PATTERN}) nor module:function"
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
    if source.function is not None:
        agent: Any = load_function(source.function)
        if epsilon is not None and epsilon > 0:
            raise PolicyError(
                f"--policy {source.spec}: a rule's own probabilities are evaluated; drop --epsilon"
            )
        epsilon = None
    elif source.run_dir is None:
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


def check_same_market(
    logs_options: Mapping[str, Any], policy_options: Mapping[str, Any], policy_label: str, logs_label: str,
    *, allow: bool = False,
) -> list[str]:  # fmt: skip
    """The environment options in which the logs' market and the policy's differ; raises
    :class:`MarketMismatchError` naming both markets unless ``allow`` (then the caller warns).

    A market is the environment's options (pool, market seed, dynamics, segments, offer levels, weeks,
    churn, calibration, ...), defaults filled in."""
    differ = differing_options(policy_options, logs_options)
    if differ and not allow:
        from envs.matching_env import env_option_defaults

        defaults = env_option_defaults()
        shown = [f"{k} {logs_options.get(k, defaults.get(k))!r} in the logs, "
                 f"{policy_options.get(k, defaults.get(k))!r} for the policy" for k in differ]  # fmt: skip
        raise MarketMismatchError(
            f"{logs_label} and {policy_label} come from different markets: {'; '.join(shown)}. The estimate "
            "would be the policy's value in the logs' market, not in its own; pass --allow-different-market "
            "to evaluate it there anyway"
        )
    return differ


def differing_options(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """Environment options that differ between two option sets, defaults filled in."""
    from envs.matching_env import env_option_defaults

    defaults = env_option_defaults()

    def value(options: Mapping[str, Any], key: str) -> Any:
        v = options.get(key, defaults.get(key))
        return list(v) if isinstance(v, tuple) else v

    return sorted(k for k in set(a) | set(b) if value(a, k) != value(b, k))
