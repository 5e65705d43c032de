"""Experiment configs: which agents, seeds, environment options and budgets make up a sweep.

A config is a YAML file like ``experiments/configs/demo.yaml``::

    name: demo
    question: Which match policy should we ship?
    timesteps: 30000            # environment steps per run
    seeds: [0, 1, 2]            # or a count: 3 means seeds 0, 1, 2
    eval: {every: 10000, episodes: 20}   # optional: planner: false (no score against the planner)
    env: {n_influencers: 10000, n_segments: 8}
    env_grid: {churn_rate: [0.0, 0.002]}      # optional: one variant per value (or per combination)
    agents:
      cqi:
        hyperparameters: {learning_rate: 0.05}
        grid: {split_threshold: [0.5, 1.0, 2.0]}   # optional: one variant per value
      ppo: {}
      oracle: {}

Every key is checked; an error names the file and the key path (``agents.cqi.grid.split_threshold``)
and says what was expected. :meth:`ExperimentConfig.run_specs` expands the grid into one
:class:`~experiments.runner.RunSpec` per (agent, variant, seed).
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any, NoReturn

from experiments.files import describe_non_file
from experiments.strict_yaml import read_yaml

CONFIG_DIR = Path(__file__).parent / "configs"

_TOP_KEYS = {"name", "question", "timesteps", "seeds", "eval", "env", "env_grid", "agents"}
_AGENT_KEYS = {"hyperparameters", "grid", "timesteps"}
_EVAL_KEYS = {"every", "episodes", "planner"}


class ConfigError(ValueError):
    """An experiment config is invalid; the message names the file and the key."""


@dataclasses.dataclass(frozen=True)
class AgentEntry:
    """One agent of a config: fixed hyperparameters, an optional grid, an optional own budget."""

    name: str
    hyperparameters: dict[str, Any]
    grid: dict[str, list]
    timesteps: int | None = None


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """A validated experiment config (see the module docstring for the YAML form)."""

    name: str
    question: str
    timesteps: int
    seeds: tuple[int, ...]
    eval_every: int
    eval_episodes: int
    env: dict[str, Any]
    env_grid: dict[str, list]
    agents: tuple[AgentEntry, ...]
    source: str = "config"
    eval_planner: bool = True

    # --------------------------------------------------------------------------------- loading
    @classmethod
    def from_yaml(cls, path: str | Path) -> ExperimentConfig:
        """Read and validate a config file; a bare name like ``demo`` means the shipped config."""
        path = resolve_config(path)
        try:
            data = read_yaml(path)
        except (OSError, ValueError) as exc:
            raise ConfigError(str(exc)) from None
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "config") -> ExperimentConfig:
        """Validate a mapping (as read from YAML); errors name ``source`` and the key path."""
        check = _Check(source)
        data = check.mapping(data, "the file", _TOP_KEYS, required={"timesteps", "seeds", "agents"})
        name = check.text(data.get("name", Path(source).stem), "name")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ConfigError(f"{source}: name: use letters, digits, '_', '-' or '.', got {name!r}")
        question = check.text(data.get("question", "Which match policy should we ship?"), "question")
        timesteps = check.count(data["timesteps"], "timesteps")
        seeds_value = data["seeds"]
        if isinstance(seeds_value, int) and not isinstance(seeds_value, bool):
            seeds = tuple(range(check.count(seeds_value, "seeds")))
        else:
            seeds = tuple(
                check.count(s, f"seeds[{i}]", minimum=0)
                for i, s in enumerate(check.nonempty_list(seeds_value, "seeds"))
            )
            if len(set(seeds)) != len(seeds):
                raise ConfigError(f"{source}: seeds: each seed may appear once, got {list(seeds)}")
        evaluation = check.mapping(data.get("eval", {}), "eval", _EVAL_KEYS)
        eval_every = check.count(evaluation.get("every", max(timesteps // 5, 1)), "eval.every")
        eval_episodes = check.count(evaluation.get("episodes", 20), "eval.episodes")
        eval_planner = check.boolean(evaluation.get("planner", True), "eval.planner")
        env = dict(check.mapping(data.get("env", {}), "env", None))
        env_grid = check.grid(data.get("env_grid", {}), "env_grid")
        overlap = set(env) & set(env_grid)
        if overlap:
            raise ConfigError(
                f"{source}: env_grid.{sorted(overlap)[0]}: also set in env; set it in one place"
            )
        agents_data = check.mapping(data["agents"], "agents", None)
        if not agents_data:
            raise ConfigError(f"{source}: agents: expected at least one agent")
        agents = []
        for agent_name, entry in agents_data.items():
            where = f"agents.{agent_name}"
            entry = check.mapping(entry if entry is not None else {}, where, _AGENT_KEYS)
            hyper = dict(check.mapping(entry.get("hyperparameters", {}), f"{where}.hyperparameters", None))
            grid = check.grid(entry.get("grid", {}), f"{where}.grid")
            both = set(hyper) & set(grid)
            if both:
                raise ConfigError(f"{source}: {where}.grid.{sorted(both)[0]}: also set in hyperparameters")
            own = check.count(entry["timesteps"], f"{where}.timesteps") if "timesteps" in entry else None
            agents.append(AgentEntry(str(agent_name), hyper, grid, own))
        config = cls(
            name, question, timesteps, seeds, eval_every, eval_episodes, env, env_grid, tuple(agents), source,
            eval_planner=eval_planner,
        )  # fmt: skip
        config.check_agents()
        return config

    def check_agents(self) -> None:
        """Refuse unknown agent names and environment options before any run starts."""
        from agents import AGENT_NAMES

        for entry in self.agents:
            if entry.name not in AGENT_NAMES and not re.fullmatch(r"segment_\d+", entry.name):
                raise ConfigError(
                    f"{self.source}: agents.{entry.name}: unknown agent (known: {', '.join(AGENT_NAMES)}, segment_<k>)"
                )
        from envs.matching_env import ENV_OPTIONS

        for key in [*self.env, *self.env_grid]:
            if key not in ENV_OPTIONS:
                raise ConfigError(
                    f"{self.source}: env.{key}: unknown environment option (known: {', '.join(sorted(ENV_OPTIONS))})"
                )

    # ------------------------------------------------------------------------------- expansion
    def variants(self, entry: AgentEntry) -> list[tuple[str, dict, dict]]:
        """(label, env options, hyperparameters) for every grid combination of an agent."""
        env_keys, agent_keys = list(self.env_grid), list(entry.grid)
        env_values = [self.env_grid[k] for k in env_keys]
        agent_values = [entry.grid[k] for k in agent_keys]
        out = []
        for env_combo in itertools.product(*env_values) if env_keys else [()]:
            for agent_combo in itertools.product(*agent_values) if agent_keys else [()]:
                parts = [
                    f"{k}={_fmt(v)}"
                    for k, v in zip(env_keys + agent_keys, env_combo + agent_combo, strict=True)
                ]
                env = {**self.env, **dict(zip(env_keys, env_combo, strict=True))}
                hyper = {**entry.hyperparameters, **dict(zip(agent_keys, agent_combo, strict=True))}
                out.append((",".join(parts) or "default", env, hyper))
        return out

    def run_specs(self) -> list[tuple[str, Any]]:
        """(variant label, :class:`~experiments.runner.RunSpec`) per agent x variant x seed, in a stable
        order."""
        from experiments.runner import RunSpec

        specs = []
        for entry in self.agents:
            for label, env, hyper in self.variants(entry):
                for seed in self.seeds:
                    spec = RunSpec(
                        agent=entry.name,
                        seed=seed,
                        timesteps=entry.timesteps or self.timesteps,
                        env=env,
                        hyperparameters=hyper,
                        eval_every=self.eval_every,
                        eval_episodes=self.eval_episodes,
                        planner=self.eval_planner,
                    )
                    specs.append((label, spec))
        return specs

    def to_dict(self) -> dict[str, Any]:
        """The config in its YAML form (for ``sweep.yaml`` beside the results)."""
        agents: dict[str, dict[str, Any]] = {}
        for entry in self.agents:
            agents[entry.name] = {"hyperparameters": entry.hyperparameters}
            if entry.grid:
                agents[entry.name]["grid"] = entry.grid
            if entry.timesteps:
                agents[entry.name]["timesteps"] = entry.timesteps
        return {
            "name": self.name,
            "question": self.question,
            "timesteps": self.timesteps,
            "seeds": list(self.seeds),
            "eval": {
                "every": self.eval_every,
                "episodes": self.eval_episodes,
                **({} if self.eval_planner else {"planner": False}),  # a default sweep.yaml is as before
            },
            "env": self.env,
            "env_grid": self.env_grid,
            "agents": agents,
        }


def resolve_config(path: str | Path) -> Path:
    """The shipped config of that name when ``path`` is a bare name (``demo`` →
    experiments/configs/demo.yaml, even if the current folder holds a ``demo/``), else the path as
    given (``my.yaml``, ``configs/demo.yaml``, ``./demo``)."""
    text = str(path)
    if not text.strip():
        raise ConfigError("config: expected a config file or the name of a shipped config, got ''")
    path = Path(text)
    if len(path.parts) == 1 and not path.suffix and "/" not in text:
        shipped = CONFIG_DIR / f"{path.name}.yaml"
        if shipped.is_file():
            return shipped
    if path.exists():
        problem = describe_non_file(path)
        if problem is not None:
            raise ConfigError(f"{path}: {problem}")
        return path
    if len(path.parts) == 1 and (CONFIG_DIR / path.name).is_file():
        return CONFIG_DIR / path.name
    raise ConfigError(f"{path}: no such config file (shipped configs: {', '.join(shipped_configs())})")


def shipped_configs() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


class _Check:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, what: str) -> NoReturn:
        raise ConfigError(f"{self.source}: {where}: {what}")

    def mapping(
        self, value: Any, where: str, allowed: set | None, required: AbstractSet[str] = frozenset()
    ) -> Mapping:
        if not isinstance(value, Mapping):
            self.fail(where, f"expected a mapping, got {type(value).__name__}")
        if allowed is not None:
            for key in value:
                if key not in allowed:
                    prefix = "" if where == "the file" else f"{where}."
                    raise ConfigError(
                        f"{self.source}: {prefix}{key}: unknown key (expected one of {', '.join(sorted(allowed))})"
                    )
        for key in sorted(required):
            if key not in value:
                self.fail(key, "missing (required)")
        return value

    def nonempty_list(self, value: Any, where: str) -> list:
        if not isinstance(value, list) or not value:
            self.fail(where, f"expected a non-empty list, got {value!r}")
        return value

    def count(self, value: Any, where: str, minimum: int = 1) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.fail(where, f"expected a whole number >= {minimum}, got {value!r}")
        return value

    def boolean(self, value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            self.fail(where, f"expected true or false, got {value!r}")
        return value

    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            self.fail(where, f"expected text, got {value!r}")
        return value

    def grid(self, value: Any, where: str) -> dict[str, list]:
        grid = self.mapping(value, where, None)
        for key, values in grid.items():
            self.nonempty_list(values, f"{where}.{key}")
        return {str(k): list(v) for k, v in grid.items()}
