"""Every agent by name: :data:`AGENT_NAMES`, :func:`make_agent`, :func:`load_agent`.

Heavy dependencies (torch, scikit-learn) are imported only when an agent that needs them is made.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import gymnasium as gym

from agents.bandit import LogisticBandit
from agents.base import Agent
from agents.cqi import CQI
from agents.distill import DistilledTree
from agents.heuristics import (
    BestFitPolicy,
    BestValuePerDollarPolicy,
    BiggestReachPolicy,
    CheapestPerFollowerPolicy,
    FixedSegmentPolicy,
)
from agents.planning import PlanningOracle
from agents.references import EnvStatePolicy, MyopicOracle, RandomPolicy
from agents.sb3 import ALGORITHMS, SB3Agent, make_sb3, sb3_hyperparameter_names

__all__ = [
    "AGENT_NAMES",
    "LEARNING_AGENTS",
    "SB3_AGENTS",
    "SEGMENT_AGENT_PATTERN",
    "agent_class",
    "agent_names",
    "check_agent_name",
    "check_hyperparameters",
    "hyperparameter_names",
    "load_agent",
    "make_agent",
    "model_filename",
]

#: Agents that learn through the SB3 factory (:mod:`agents.sb3`).
SB3_AGENTS: tuple[str, ...] = ALGORITHMS

#: Every agent name and its class, except the fixed-segment policies (:data:`SEGMENT_AGENT_PATTERN`).
_CLASSES: dict[str, type[Agent]] = {
    "cqi": CQI,
    **dict.fromkeys(SB3_AGENTS, SB3Agent),
    "logistic_bandit": LogisticBandit,
    "random": RandomPolicy,
    "oracle": MyopicOracle,
    "planning_oracle": PlanningOracle,
    "distilled_tree": DistilledTree,
    "cheapest_per_follower": CheapestPerFollowerPolicy,
    "best_fit": BestFitPolicy,
    "biggest_reach": BiggestReachPolicy,
    "best_value_per_dollar": BestValuePerDollarPolicy,
}

#: Every agent name except the fixed-segment policies, which follow :data:`SEGMENT_AGENT_PATTERN`.
AGENT_NAMES: tuple[str, ...] = tuple(_CLASSES)

#: ``segment_0`` .. ``segment_{S-1}``: always offer to segment k (:class:`~agents.heuristics.FixedSegmentPolicy`).
SEGMENT_AGENT_PATTERN = "segment_<k>"

#: Agents whose ``learn`` learns (the others are fixed policies: their ``learn`` only plays the env).
LEARNING_AGENTS: tuple[str, ...] = tuple(
    name for name, cls in _CLASSES.items() if not issubclass(cls, EnvStatePolicy)
)

_SEGMENT = re.compile(r"segment_(0|[1-9][0-9]*)")

#: Constructor parameters that are not hyperparameters.
_NOT_HYPERPARAMETERS = {"self", "env", "seed", "segment"}


def check_agent_name(name: Any) -> str:
    """``name`` if it names an agent, else ``ValueError`` listing the known ones."""
    if isinstance(name, str) and (name in AGENT_NAMES or _SEGMENT.fullmatch(name)):
        return name
    raise ValueError(f"unknown agent {name!r} (known: {', '.join(AGENT_NAMES)}, {SEGMENT_AGENT_PATTERN})")


def agent_names(n_segments: int) -> tuple[str, ...]:
    """Every concrete agent name for an environment with ``n_segments`` segments."""
    return (*AGENT_NAMES, *(f"segment_{k}" for k in range(n_segments)))


def _segment_of(name: str) -> int | None:
    match = _SEGMENT.fullmatch(name)
    return int(match.group(1)) if match else None


def agent_class(name: str) -> type[Agent]:
    """The class of agent ``name`` (:class:`~agents.sb3.SB3Agent` for the SB3 algorithms)."""
    check_agent_name(name)
    return _CLASSES.get(name, FixedSegmentPolicy)


def hyperparameter_names(name: str) -> list[str]:
    """The hyperparameters :func:`make_agent` accepts for agent ``name`` (sorted)."""
    cls = agent_class(name)
    if cls is SB3Agent:
        return sb3_hyperparameter_names(name)
    return sorted(set(inspect.signature(cls).parameters) - _NOT_HYPERPARAMETERS)


def check_hyperparameters(name: str, hyperparameters: dict[str, Any]) -> None:
    """``ValueError`` naming the first hyperparameter that agent ``name`` does not take."""
    known = hyperparameter_names(name)
    for key in sorted(hyperparameters):
        if key not in known:
            listing = ", ".join(known) if known else "none: it has no hyperparameters"
            raise ValueError(f"unknown hyperparameter '{key}' for agent '{name}' (known: {listing})")


def make_agent(name: str, env: gym.Env, seed: int | None = None, **hyperparameters: Any) -> Any:
    """A new agent ``name`` for ``env``.

    Parameters
    ----------
    name : str
        One of :data:`AGENT_NAMES` (``segment_<k>`` as e.g. ``segment_3``).
    env : gymnasium.Env
        One (not vectorised) environment: the one the agent learns on, and for the policies that read
        the environment's state, the one they act on.
    seed : int or None
        The agent's seed.
    **hyperparameters
        Passed to the agent's constructor (see :func:`hyperparameter_names`); an unknown one raises
        ``ValueError`` naming it.
    """
    cls = agent_class(name)
    check_hyperparameters(name, hyperparameters)
    if cls is SB3Agent:
        return make_sb3(name, env, seed=seed, **hyperparameters)
    segment = _segment_of(name)
    if segment is None:
        constructor: Any = (
            cls  # every class of the table but SB3Agent takes (env, *, seed, **hyperparameters)
        )
        return constructor(env, seed=seed, **hyperparameters)
    unwrapped: Any = env.unwrapped  # a segment policy needs an influmatch env: it has n_segments
    n_segments = int(unwrapped.n_segments)
    if segment >= n_segments:
        raise ValueError(f"unknown agent {name!r}: this environment has segments 0..{n_segments - 1}")
    return FixedSegmentPolicy(env, segment, seed=seed)


def model_filename(name: str) -> str:
    """The model file of a run folder: ``model.zip`` for SB3 agents, ``model.json`` for the others."""
    check_agent_name(name)
    return "model.zip" if name in SB3_AGENTS else "model.json"


def load_agent(name: str, path: str | Path, env: gym.Env | None = None) -> Any:
    """Read agent ``name`` saved at ``path`` (by its ``save``); ``env`` as in each class's ``load``."""
    agent = agent_class(name).load(path, env=env)
    segment = _segment_of(name)
    if segment is not None and agent.segment != segment:
        raise ValueError(f"{path}: holds segment_{agent.segment}, not {name}")
    if name in SB3_AGENTS and agent.algorithm != name:
        raise ValueError(f"{path}: holds an '{agent.algorithm}' model, not '{name}'")
    return agent


def resolve_teacher(teacher: Any, env: gym.Env, seed: int | None = None) -> Any:
    """The teacher a :class:`~agents.distill.DistilledTree` imitates, acting on ``env``.

    ``teacher`` is an object with ``predict``, a run folder (its ``config.json`` names the agent, its
    model file holds it), or the name of a policy that needs no training (``oracle``,
    ``planning_oracle``, a heuristic, ``segment_<k>``), made with ``seed``: the planning oracle's
    rollouts and the random policy draw from it, so the same tree seed gives the same labels."""
    import json

    if hasattr(teacher, "predict"):
        return teacher.with_env(env) if isinstance(teacher, EnvStatePolicy) else teacher
    if not isinstance(teacher, (str, Path)):
        raise ValueError(f"teacher: expected a run folder or a policy name, got {teacher!r}")
    folder = Path(teacher)
    if folder.is_dir():
        config_path = folder / "config.json"
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
            # A run folder's config.json names the agent in its spec (experiments.runner).
            name = config["spec"]["agent"] if "spec" in config else config["agent"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ValueError(f"teacher: {config_path}: not a run folder's config (no {err})") from None
        check_agent_name(name)
        return load_agent(name, folder / str(config.get("model_file", model_filename(name))), env=env)
    name = str(teacher)
    if name in LEARNING_AGENTS:
        raise ValueError(
            f"teacher: '{name}' must be trained first: pass its run folder (influmatch train --agent {name} ...)"
        )
    try:
        check_agent_name(name)
    except ValueError:
        raise ValueError(f"teacher: {name!r} is neither a run folder nor a policy name") from None
    return make_agent(name, env, seed=seed)
