"""One training run: a :class:`RunSpec` in, one run folder out.

A run folder holds

* ``config.json``: the spec, the seeds derived from it, the environment options as used, the
  calibration and the library versions;
* ``progress.csv``: the learning curve, one row every ``timesteps // 100`` steps and at the end:
  ``timesteps``, ``episodes`` (training episodes finished), ``mean_return`` (mean return of the last
  100 training episodes, thousands of USD; exploration included), for CQI ``n_leaves`` and ``depth``,
  and ``train_seconds`` (wall clock since training started, evaluations excluded);
* ``eval.csv``: one row per evaluation (at step 0, every ``eval_every`` steps and at the end):
  ``timesteps``, ``mean_return``, ``std_return``, ``std_error``, ``normalized_score``, ``eval_seconds``;
* the model: ``model.zip`` (SB3 agents) or ``model.json`` (CQI, the bandit and the fixed policies);
* ``summary.json``: ``agent``, ``seed``, ``timesteps``, the final evaluation (``mean_return``,
  ``std_return``, ``std_error``, ``normalized_score``, ``random_return``, ``oracle_return``,
  ``eval_episodes``, ``eval_returns``), ``train_episodes``, ``model_file``, for CQI ``n_leaves`` and
  ``depth``, and the wall-clock fields ``train_seconds``, ``eval_seconds``, ``compile_seconds`` (numba
  compiling its kernels on first use, counted in neither of the other two) and ``total_seconds``;
* for CQI, ``tree.txt``: the tree as if/else rules with feature and action names.

Randomness: ``SeedSequence(spec.seed)`` spawns three children, for the environment (its ``market_seed``,
unless the spec's env options set one, and the reset seed of the training campaigns), for the agent
(its ``seed``) and for the evaluation campaigns. The same spec gives the same files byte for byte except
the wall-clock columns and fields, all named ``*_seconds``. The training environment's first reset
always uses the environment's stream, whatever seed the agent passes to it (CQI and the bandit would
otherwise seed the environment from their own seed, making the two streams identical).

Every agent takes exactly ``timesteps`` environment steps (an on-policy agent's last, cut-short rollout
is not trained on). SB3 agents, CQI and the bandit are evaluated from an SB3 callback; the fixed
policies (random, oracle, heuristics, fixed segments) play ``timesteps`` steps in a simple loop for the
learning curve, and are evaluated once (they do not change, so every evaluation row is the same).

The folder is written under a temporary sibling name (``.<name>.<pid>.<random>.partial``) and renamed
into place at the end, so an interrupted or failed run leaves nothing under the final name; what a
killed run left behind is removed by the next run into the same folder
(:func:`experiments.files.remove_stale`).
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.metadata
import json
import logging
import platform
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd

from agents import (
    LEARNING_AGENTS,
    check_agent_name,
    check_hyperparameters,
    make_agent,
    model_filename,
)
from agents.registry import SB3_AGENTS
from experiments.evaluation import Evaluator
from experiments.files import (
    check_output,
    remove_stale,
    replace_dir,
    temp_sibling,
    write_json,
    write_text_atomic,
)
from experiments.market import seed_ints
from experiments.options import check_env_options
from experiments.recording import Recorder as _Recorder
from experiments.recording import episode_returns as _episode_returns
from experiments.recording import play_fixed_policy as _play_fixed_policy
from experiments.recording import recording_callback as _recording_callback

__all__ = [
    "RunSpec",
    "env_options",
    "evaluate_runs",
    "library_versions",
    "load_run",
    "make_env",
    "resume",
    "run",
    "run_seeds",
]

logger = logging.getLogger(__name__)

_RUN_FORMAT = "influmatch.run"
_RUN_VERSION = 1
_VERSIONED = (
    "influmatch",
    "numpy",
    "scipy",
    "pandas",
    "scikit-learn",
    "gymnasium",
    "torch",
    "stable-baselines3",
    "sb3-contrib",
)


def _is_count(value: Any, minimum: int) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer)) and bool(value >= minimum)


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """What one run trains and how it is evaluated; validated on construction (errors name the field).

    Parameters
    ----------
    agent : str
        An agent name of :mod:`agents` (``segment_<k>`` as e.g. ``segment_3``).
    seed : int
        The run's one seed (>= 0).
    timesteps : int
        Environment steps of training (>= 1); the fixed policies play them for the learning curve.
    env : dict
        Keyword options of ``InfluencerMatchingEnv`` (JSON values: a calibration as a mapping or a YAML
        path, a pool as a CSV path).
    hyperparameters : dict
        Keyword arguments of the agent (see :func:`agents.hyperparameter_names`).
    eval_every : int or None
        Steps between evaluations (besides step 0 and the end); ``None`` for a tenth of ``timesteps``.
    eval_episodes : int
        Evaluation campaigns per evaluation.
    planner : bool
        Also score the final policy against the planning oracle (``score_vs_planner``); the planner
        is the costliest part of an evaluation (``False`` leaves that score NaN).
    """

    agent: str
    seed: int = 0
    timesteps: int = 10_000
    env: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    hyperparameters: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    eval_every: int | None = None
    eval_episodes: int = 100
    planner: bool = True

    def __post_init__(self) -> None:
        try:
            check_agent_name(self.agent)
        except ValueError as err:
            raise ValueError(f"agent: {err}") from None
        if not _is_count(self.seed, 0):
            raise ValueError(f"seed: expected a whole number >= 0, got {self.seed!r}")
        if not _is_count(self.timesteps, 1):
            raise ValueError(f"timesteps: expected a whole number >= 1, got {self.timesteps!r}")
        if self.eval_every is not None and not _is_count(self.eval_every, 1):
            raise ValueError(f"eval_every: expected a whole number >= 1 or None, got {self.eval_every!r}")
        if not _is_count(self.eval_episodes, 1):
            raise ValueError(f"eval_episodes: expected a whole number >= 1, got {self.eval_episodes!r}")
        if not isinstance(self.planner, bool):
            raise ValueError(f"planner: expected true or false, got {self.planner!r}")
        for field in ("env", "hyperparameters"):
            value = getattr(self, field)
            if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
                raise ValueError(f"{field}: expected a mapping with string keys, got {value!r}")
            try:
                json.dumps(dict(value), allow_nan=False)
            except (TypeError, ValueError) as err:
                raise ValueError(f"{field}: expected JSON values (numbers, strings, lists), {err}") from None
            object.__setattr__(self, field, copy.deepcopy(dict(value)))
        check_env_options(list(self.env), "env")
        try:
            check_hyperparameters(self.agent, dict(self.hyperparameters))
        except ValueError as err:
            raise ValueError(f"hyperparameters: {err}") from None
        object.__setattr__(self, "seed", int(self.seed))
        object.__setattr__(self, "timesteps", int(self.timesteps))
        object.__setattr__(self, "eval_episodes", int(self.eval_episodes))
        if self.eval_every is not None:
            object.__setattr__(self, "eval_every", int(self.eval_every))

    @property
    def evaluation_interval(self) -> int:
        """``eval_every``, or a tenth of ``timesteps`` when it is ``None``."""
        return self.eval_every if self.eval_every is not None else max(self.timesteps // 10, 1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "seed": self.seed,
            "timesteps": self.timesteps,
            "env": copy.deepcopy(dict(self.env)),
            "hyperparameters": copy.deepcopy(dict(self.hyperparameters)),
            "eval_every": self.eval_every,
            "eval_episodes": self.eval_episodes,
            **({} if self.planner else {"planner": False}),  # a default run's config.json is as before
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "spec") -> RunSpec:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ValueError(f"{source}: unknown run spec field '{unknown[0]}'")
        if "agent" not in data:
            raise ValueError(f"{source}: the run spec has no 'agent'")
        return cls(**data)


def run_seeds(spec: RunSpec) -> dict[str, int]:
    """The integer seeds of a run, spawned from ``SeedSequence(spec.seed)``
    (:func:`experiments.market.seed_ints`).

    ``market_seed`` (the env's, unless ``spec.env`` sets it), ``reset_seed`` (the training campaigns),
    ``agent_seed`` and ``eval_seed`` (the evaluation campaigns).
    """
    seeds = seed_ints(spec.seed)
    seeds["market_seed"] = int(spec.env.get("market_seed", seeds["market_seed"]))
    return seeds


#: The dynamics of a run whose spec does not name them: new runs get v1 (the default of every command);
#: a run folder written before v1 existed has no ``dynamics`` in its spec and was v0 (:func:`load_run`).
DEFAULT_DYNAMICS = "v1"


def env_options(spec: RunSpec) -> dict[str, Any]:
    """The environment options of a run: the spec's, with the run's ``market_seed`` and the
    ``dynamics`` (:data:`DEFAULT_DYNAMICS` unless the spec sets them) filled in, so a run folder
    says which market it ran on."""
    return {"dynamics": DEFAULT_DYNAMICS, **spec.env, "market_seed": run_seeds(spec)["market_seed"]}


def make_env(spec: RunSpec) -> gym.Env:
    """The run's environment, ``gymnasium.make("influmatch/InfluencerMatching-v1", **env_options)``."""
    import envs

    return gym.make(envs.ENV_ID, **env_options(spec))


class _SeededFirstReset(gym.Wrapper):
    """Makes the first ``reset`` use ``seed`` whatever seed the caller passes (later resets pass through)."""

    def __init__(self, env: gym.Env, seed: int) -> None:
        super().__init__(env)
        self._first_seed: int | None = seed

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if self._first_seed is not None:
            seed, self._first_seed = self._first_seed, None
        return self.env.reset(seed=seed, options=options)


def library_versions() -> dict[str, str | None]:
    """Python and the versions of the libraries a result depends on (installed distributions)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _train(
    spec: RunSpec,
    agent: Any,
    train_env: gym.Env,
    recorder: _Recorder,
    begin: int,
    parent: Any,
    progress_bar: bool,
) -> int:
    """Train (or, for a fixed policy, play) for ``spec.timesteps`` steps; returns the steps taken."""
    if spec.agent not in LEARNING_AGENTS:
        return _play_fixed_policy(agent, train_env, recorder, spec.timesteps)
    callback = _recording_callback(recorder, agent, begin + spec.timesteps)
    agent.learn(spec.timesteps, callback=callback, progress_bar=progress_bar, reset_num_timesteps=not parent)
    timesteps = int(agent.num_timesteps)
    recorder.finish(timesteps, _episode_returns(agent))
    return timesteps


# ------------------------------------------------------------------------------------ the run
def _check_destination(out_dir: Path, overwrite: bool) -> None:
    if out_dir.is_dir() and (out_dir / "summary.json").exists() and not overwrite:
        raise FileExistsError(f"{out_dir}: holds a finished run; pass --overwrite to replace it")
    check_output(out_dir, overwrite, folder=True)


def _write_csv(path: Path, rows: list[dict]) -> None:
    write_text_atomic(path, pd.DataFrame(rows).to_csv(index=False))


def run(
    spec: RunSpec,
    out_dir: str | Path,
    progress_bar: bool = False,
    overwrite: bool = False,
    tensorboard: str | Path | None = None,
    reference_cache: str | Path | None = None,
) -> dict:
    """Train ``spec.agent`` and write one run folder at ``out_dir`` (see the module docstring).

    Parameters
    ----------
    spec : RunSpec
    out_dir : path
        The run folder. Refused if it holds a finished run (unless ``overwrite``) or other files.
    progress_bar : bool
        Show SB3's progress bar while training.
    overwrite : bool
        Replace a finished run at ``out_dir`` (only once the new one is complete).
    tensorboard : path, optional
        Also log the training scalars (episode return and length, for trees their size) to TensorBoard
        under ``tensorboard/<agent>_seed<seed>`` (:func:`agents.tensorboard.tensorboard_logger`).
    reference_cache : path, optional
        A folder shared with other runs on the same campaigns (a sweep's workers): the planning
        oracle's returns are read from there when another run has computed them (same results).

    Returns
    -------
    dict
        The contents of ``summary.json``.
    """
    if not isinstance(spec, RunSpec):
        raise TypeError(f"spec: expected a RunSpec, got {type(spec).__name__}")
    out_dir = Path(out_dir)
    _check_destination(out_dir, overwrite)
    total_start = time.perf_counter()
    seeds = run_seeds(spec)
    env = make_env(spec)  # bad env options fail here, before anything is written
    evaluator = Evaluator(
        env, seeds["eval_seed"], spec.eval_episodes, planner=spec.planner, cache_dir=reference_cache
    )
    train_env = _SeededFirstReset(env, seeds["reset_seed"])
    agent = make_agent(spec.agent, train_env, seed=seeds["agent_seed"], **spec.hyperparameters)
    if tensorboard is not None and hasattr(agent, "set_logger"):
        from agents.tensorboard import tensorboard_logger

        agent.set_logger(tensorboard_logger(tensorboard, f"{spec.agent}_seed{spec.seed}"))

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(out_dir.parent, out_dir.name)  # what a killed run into this folder left behind
    tmp = temp_sibling(out_dir, ".partial", directory=True)
    try:
        summary = _train_and_write(spec, agent, train_env, evaluator, seeds, tmp, progress_bar)
        summary["total_seconds"] = round(time.perf_counter() - total_start, 3)
        write_json(tmp / "summary.json", summary)
        _move_into_place(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        env.close()
    return summary


def _move_into_place(tmp: Path, out_dir: Path) -> None:
    replace_dir(tmp, out_dir)


#: Agents whose saved model can continue learning (:func:`resume`).
RESUMABLE_AGENTS: tuple[str, ...] = ("cqi", "logistic_bandit", *SB3_AGENTS)


def resume(
    run_dir: str | Path,
    timesteps: int,
    out_dir: str | Path,
    *,
    env: Mapping[str, Any] | None = None,
    eval_every: int | None = None,
    eval_episodes: int | None = None,
    progress_bar: bool = False,
    overwrite: bool = False,
) -> dict:
    """Continue the saved model of ``run_dir`` for ``timesteps`` more steps into a new run folder.

    The model (CQI, the bandit or an SB3 agent: :data:`RESUMABLE_AGENTS`) is loaded on the parent's
    market (its recorded env options, ``market_seed`` included) with ``env`` applied on top (a changed
    market: e.g. ``{"calibration": "shifted.yaml"}``), and learns with ``reset_num_timesteps=False``,
    so step counts, ``progress.csv`` and ``eval.csv`` continue from the parent's; it is evaluated on the
    parent's evaluation campaigns (the same seeds) in the new market. ``config.json`` records
    ``parent`` (the parent folder and its step count) and ``summary.json`` ``parent``.

    Returns
    -------
    dict
        The contents of the new ``summary.json`` (``timesteps`` is the total, the parent's included).
    """
    from agents import load_agent

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    info = load_run(run_dir)
    parent_spec, config = info["spec"], info["config"]
    if parent_spec.agent not in RESUMABLE_AGENTS:
        raise ValueError(
            f"{run_dir}: a {parent_spec.agent} run cannot continue learning "
            f"(resumable: {', '.join(RESUMABLE_AGENTS)})"
        )
    check_env_options(list(env or {}), "--env")
    spec = dataclasses.replace(
        parent_spec,
        timesteps=timesteps,
        env={**config["env_options"], **dict(env or {})},
        eval_every=eval_every,
        eval_episodes=eval_episodes or parent_spec.eval_episodes,
    )
    _check_destination(out_dir, overwrite)
    total_start = time.perf_counter()
    seeds = run_seeds(spec)
    new_env = make_env(spec)
    evaluator = Evaluator(new_env, seeds["eval_seed"], spec.eval_episodes, planner=spec.planner)
    train_env = _SeededFirstReset(new_env, seeds["reset_seed"])
    agent = load_agent(spec.agent, run_dir / config["model_file"], env=train_env)
    parent = {"run_dir": str(run_dir.resolve()), "timesteps": int(agent.num_timesteps)}
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(out_dir.parent, out_dir.name)
    tmp = temp_sibling(out_dir, ".partial", directory=True)
    try:
        summary = _train_and_write(spec, agent, train_env, evaluator, seeds, tmp, progress_bar, parent)
        summary["total_seconds"] = round(time.perf_counter() - total_start, 3)
        write_json(tmp / "summary.json", summary)
        _move_into_place(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        new_env.close()
    return summary


def _train_and_write(
    spec: RunSpec,
    agent: Any,
    train_env: gym.Env,
    evaluator: Evaluator,
    seeds: dict[str, int],
    folder: Path,
    progress_bar: bool,
    parent: dict[str, Any] | None = None,
) -> dict:
    unwrapped: Any = train_env.unwrapped  # an InfluencerMatchingEnv (calibration, feature and action names)
    model_file = model_filename(spec.agent)
    write_json(
        folder / "config.json",
        {
            "format": _RUN_FORMAT,
            "version": _RUN_VERSION,
            "spec": spec.to_dict(),
            "env_options": env_options(spec),
            "seeds": seeds,
            "model_file": model_file,
            "calibration": unwrapped.calibration.to_dict(),
            "versions": library_versions(),
            **({"parent": parent} if parent else {}),
        },
    )
    fixed = spec.agent not in LEARNING_AGENTS
    begin = int(parent["timesteps"]) if parent else 0
    recorder = _Recorder(
        agent, evaluator, spec.evaluation_interval, max(spec.timesteps // 100, 1), fixed=fixed, start=begin
    )
    start = time.perf_counter()
    with recorder.compile_clock:
        timesteps = _train(spec, agent, train_env, recorder, begin, parent, progress_bar)
    train_seconds = time.perf_counter() - start - recorder.eval_seconds - recorder.compile_clock.total

    _write_csv(folder / "progress.csv", recorder.progress_rows)
    _write_csv(folder / "eval.csv", recorder.eval_rows)
    agent.save(folder / model_file)
    final = recorder.last
    if final is None:  # pragma: no cover - finish() always evaluates
        raise RuntimeError("the run recorded no evaluation")
    summary: dict[str, Any] = {
        "agent": spec.agent,
        "seed": spec.seed,
        "timesteps": timesteps,
        **final.to_dict(include_returns=False),
        "eval_returns": list(final.returns),
        "train_episodes": recorder.episodes,
        "model_file": model_file,
        **({"parent": parent["run_dir"]} if parent else {}),
    }
    if hasattr(agent, "n_leaves") and hasattr(agent, "export_text"):  # the tree policies: CQI, distilled
        summary["n_leaves"] = int(agent.n_leaves)
        summary["depth"] = int(agent.depth)
        from experiments.reporting.trees import plain_tree_text

        tree = agent.export_text(feature_names=unwrapped.feature_names, action_names=unwrapped.action_names)
        write_text_atomic(folder / "tree.txt", plain_tree_text(tree, unwrapped.feature_specs) + "\n")
    summary["train_seconds"] = round(train_seconds, 3)
    summary["eval_seconds"] = round(recorder.eval_seconds, 3)
    summary["compile_seconds"] = round(recorder.compile_clock.total, 3)
    return summary


def load_run(run_dir: str | Path) -> dict[str, Any]:
    """``config.json`` and ``summary.json`` of a finished run folder; ``ValueError`` naming the folder
    if it is not one."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"{run_dir}: not a run folder (no such folder)")
    for name in ("config.json", "summary.json"):
        if not (run_dir / name).is_file():
            raise ValueError(f"{run_dir}: not a run folder (no {name})")
    try:
        config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{run_dir}: not a run folder (unreadable JSON: {err})") from None
    if not isinstance(config, dict) or config.get("format") != _RUN_FORMAT:
        raise ValueError(f"{run_dir}: not a run folder (config.json is not an influmatch run config)")
    if config.get("version") != _RUN_VERSION:
        raise ValueError(f"{run_dir}: unsupported run folder version {config.get('version')!r}")
    if not (run_dir / config["model_file"]).is_file():
        raise ValueError(f"{run_dir}: not a run folder (no {config['model_file']})")
    spec_values = dict(config["spec"])
    if isinstance(spec_values.get("env"), dict) and "dynamics" not in config.get("env_options", {}):
        # Written before InfluencerMatching-v1: the run was played on v0.
        spec_values["env"] = {**spec_values["env"], "dynamics": "v0"}
    spec = RunSpec.from_dict(spec_values, source=str(run_dir / "config.json"))
    return {"spec": spec, "config": config, "summary": summary}


def evaluate_runs(run_dirs: Sequence[str | Path], episodes: int | None = None) -> list[dict]:
    """Re-evaluate saved runs on the fixed evaluation campaigns of their own configs (``--episodes``
    changes how many, the first ones staying the same); runs sharing a config share the evaluation
    environment and the reference returns. One row per run folder: agent, seed, timesteps, and the
    fresh evaluation (:meth:`experiments.evaluation.EvaluationResult.to_dict`)."""
    from agents import load_agent

    runs = [(Path(d), load_run(d)) for d in run_dirs]  # every folder is checked before any work
    envs: dict[str, gym.Env] = {}
    evaluators: dict[tuple, Evaluator] = {}
    rows = []
    for run_dir, info in runs:
        spec, config = info["spec"], info["config"]
        env_key = json.dumps(config["env_options"], sort_keys=True)
        if env_key not in envs:
            envs[env_key] = make_env(spec)
        n_episodes = episodes or spec.eval_episodes
        key = (env_key, config["seeds"]["eval_seed"], n_episodes)
        if key not in evaluators:
            evaluators[key] = Evaluator(envs[env_key], config["seeds"]["eval_seed"], n_episodes)
        agent = load_agent(spec.agent, run_dir / config["model_file"])
        result = evaluators[key].evaluate(agent)
        rows.append(
            {
                "run": str(run_dir),
                "agent": spec.agent,
                "seed": spec.seed,
                "timesteps": info["summary"].get("timesteps", spec.timesteps),
                **result.to_dict(include_returns=False),
            }
        )
    return rows
