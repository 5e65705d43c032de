"""Stable-Baselines3 agents (PPO, A2C, DQN) and sb3-contrib's MaskablePPO, built by name.

:func:`make_sb3` wraps the environment as ``DummyVecEnv([Monitor(env)])``, with ``VecNormalize`` on top
when ``norm_obs`` or ``norm_reward`` is set (the Monitor records raw returns, so SB3's ``ep_info_buffer``
and logger report campaign net values in thousands of USD), and returns an :class:`SB3Agent` that
carries the model *and* any normalisation statistics through ``predict``, ``save`` and ``load``. MaskablePPO takes the valid actions from the environment's
``action_masks()`` through sb3-contrib's mechanism (``env_method("action_masks")``), both while learning
and, given ``action_masks=``, in ``predict``; the other algorithms see only the observation (an invalid
action is a no-op that wastes the week, which they learn to avoid).

Torch runs on one thread unless ``torch_threads`` says otherwise: on two cores the default of two
threads made PPO 7x slower here (small networks, where thread hand-offs cost more than they save).

Tuning pass (default env: 10,000 influencers, 8 segments). Budget: 50k environment steps per run, 2-3
seeds per setting (the run seed also draws the market), one-thread torch on a 2-core machine shared with
other work; each run scored on 200 fixed evaluation campaigns (normalised score: 0 = random policy,
1 = myopic oracle). Mean over seeds, per-seed scores in brackets:

=========  =========================================================  ==========================
algorithm  setting                                                    score at 50k steps
=========  =========================================================  ==========================
PPO        SB3 defaults (n_steps 2048, ent 0), raw obs and rewards    **0.55** (0.48, 0.56, 0.62)
PPO        same + VecNormalize(obs and reward, clip 10)               0.24 (0.12, 0.36, 0.24)
PPO        same + VecNormalize(obs only)                              0.32 (0.35, 0.25, 0.37)
PPO        n_steps 1024, ent_coef 0.01, raw                           0.37 (0.37, 0.30, 0.44)
A2C        n_steps 5 (SB3's), ent 0, gae_lambda 0.95, raw             0.24 (0.32, 0.17)
A2C        n_steps 16, ent_coef 0.01, gae_lambda 0.95, raw            **0.21** (0.36, 0.06)
DQN        lr 1e-4, buffer 100k, learning_starts 1000, batch 64,      0.24 (0.36, 0.12)
           train_freq 4, target update 1000, exploration 0.2, raw
DQN        same + VecNormalize(obs only)                              **0.35** (0.38, 0.33)
DQN        the raw one with lr 5e-4, target update 500                 0.06 (0.37, -0.24)
=========  =========================================================  ==========================

For PPO, normalising did not help: scaling observations by their running statistics (clipped at 10 standard
deviations) cost PPO 0.23, and normalising rewards as well 0.31. Likely reasons: the return is dominated
by the few big-budget campaigns, whose rewards reward normalisation's clipping flattens, and the raw
features are already on small scales (one-hots, shares, log10 budget, value per dollar near 1).
So PPO, A2C and MaskablePPO keep observations and rewards raw (``norm_obs=False``, ``norm_reward=False``;
both remain available, and their statistics are saved with the model). A2C
takes n_steps 16 (as good within noise as SB3's 5, with a third of the updates). MaskablePPO shares
PPO's settings (not tuned separately). DQN, whose Q-network regresses raw returns, did better with
normalised observations (two seeds only: treat it as a hint) and keeps ``norm_obs=True``. Not tried for
lack of budget: network sizes, other learning rates, gamma. With 2-3 seeds the differences of about 0.1
are within noise; only "normalisation hurts PPO" held on every seed.

Second pass, at 200k steps (3 seeds, 100 evaluation campaigns; ``influmatch sweep`` with a grid per
idea). With SB3's n_steps 2048 / batch 64, both PPO variants *declined* after 50k: on seeds 0-2 at 200k
PPO scored 0.32 and MaskablePPO 0.21 (MaskablePPO's learning curve fell from 0.35 at 50k to 0.0-0.08 at
175-200k, 5 seeds). Two remedies, mean at 200k (per seed):

===========  =======================  ===============================  =============
algorithm    setting                  score at 200k (per seed)         score at 50k
===========  =======================  ===============================  =============
PPO          learning_rate 1e-4       0.51 (0.76, 0.48, 0.30)          0.45
PPO          n_steps 8192, batch 256  **0.60** (0.83, 0.56, 0.41)      0.52
MaskablePPO  learning_rate 1e-4       0.53 (0.17, 0.83, 0.59)          0.52
MaskablePPO  n_steps 8192, batch 256  **0.55** (0.66, 0.40, 0.59)      0.71
===========  =======================  ===============================  =============

Both PPO variants therefore take n_steps 8192 and batch 256: longer rollouts average over many
campaigns (one episode is one brand, and brands differ by orders of magnitude in budget) and, with four
times fewer gradient steps per sample, a 200k run is also 25 % faster (82 s against 110 s).
"""

from __future__ import annotations

import inspect
import json
import math
import re
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

if TYPE_CHECKING:
    from stable_baselines3.common.base_class import BaseAlgorithm

__all__ = [
    "ALGORITHMS",
    "DEFAULTS",
    "WRAPPER_DEFAULTS",
    "SB3Agent",
    "SB3PolicyAgent",
    "make_sb3",
    "sb3_hyperparameter_names",
]

#: Algorithm names accepted by :func:`make_sb3`.
ALGORITHMS = ("ppo", "a2c", "dqn", "maskable_ppo")

#: Defaults tuned for this environment (see the module docstring): constructor arguments and, where they
#: differ from :data:`WRAPPER_DEFAULTS`, wrapper options. Anything passed to :func:`make_sb3` overrides them.
DEFAULTS: dict[str, dict[str, Any]] = {
    "ppo": {
        "learning_rate": 3e-4,
        "n_steps": 8192,
        "batch_size": 256,
        "n_epochs": 10,
        "gamma": 0.99,
        "gae_lambda": 0.95,
        "ent_coef": 0.0,
    },
    "maskable_ppo": {
        "learning_rate": 3e-4,
        "n_steps": 8192,
        "batch_size": 256,
        "n_epochs": 10,
        "gamma": 0.99,
        "gae_lambda": 0.95,
        "ent_coef": 0.0,
    },
    "a2c": {
        "learning_rate": 7e-4,
        "n_steps": 16,
        "gamma": 0.99,
        "gae_lambda": 0.95,
        "ent_coef": 0.01,
    },
    "dqn": {
        "learning_rate": 1e-4,
        "buffer_size": 100_000,
        "learning_starts": 1_000,
        "batch_size": 64,
        "train_freq": 4,
        "target_update_interval": 1_000,
        "exploration_fraction": 0.2,
        "exploration_final_eps": 0.05,
        "gamma": 0.99,
        "norm_obs": True,
    },
}

#: Options of the wrapper rather than of the SB3 constructor: VecNormalize's ``norm_obs``,
#: ``norm_reward``, ``clip_obs`` and ``clip_reward``; ``torch_threads`` (``torch.set_num_threads``);
#: ``net_arch`` (shorthand for ``policy_kwargs={"net_arch": ...}``, default SB3's [64, 64]); ``n_envs``,
#: campaigns collected side by side (1: ``DummyVecEnv([Monitor(env)])`` as always; more: the native
#: vector env on ``env``'s market through :class:`agents.vec_env.InfluencerMatchingVecEnv` under
#: ``VecMonitor``, or ``DummyVecEnv`` of copies for an env it cannot vectorise). SB3's ``n_steps`` is
#: per env: a rollout holds ``n_steps * n_envs`` steps.
WRAPPER_DEFAULTS: dict[str, Any] = {
    "norm_obs": False,
    "norm_reward": False,
    "clip_obs": 10.0,
    "clip_reward": 10.0,
    "torch_threads": 1,
    "net_arch": None,
    "n_envs": 1,
}

_META_NAME = "influmatch.json"
_META_FORMAT = "influmatch.agents.sb3"
_META_VERSION = 1
#: Constructor arguments that the factory sets itself.
_RESERVED = {"self", "policy", "env", "seed", "device", "_init_setup_model"}


def _algorithm_class(name: str) -> type[BaseAlgorithm]:
    if name == "ppo":
        from stable_baselines3 import PPO

        return PPO
    if name == "a2c":
        from stable_baselines3 import A2C

        return A2C
    if name == "dqn":
        from stable_baselines3 import DQN

        return DQN
    if name == "maskable_ppo":
        from sb3_contrib import MaskablePPO

        return MaskablePPO
    raise ValueError(f"unknown SB3 algorithm {name!r} (known: {', '.join(ALGORITHMS)})")


def sb3_hyperparameter_names(name: str) -> list[str]:
    """Every hyperparameter :func:`make_sb3` accepts for algorithm ``name``, sorted."""
    params = inspect.signature(_algorithm_class(name)).parameters
    return sorted((set(params) - _RESERVED) | set(WRAPPER_DEFAULTS))


def _set_threads(threads: Any) -> int:
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"torch_threads: expected a whole number >= 1, got {threads!r}")
    import torch

    torch.set_num_threads(threads)
    return threads


def _vec_env(env: gym.Env, wrapper: Mapping[str, Any], gamma: float, stats: dict | None = None):
    """``VecNormalize(DummyVecEnv([Monitor(env)]))`` (without VecNormalize if it normalises nothing)."""
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    if not isinstance(env, gym.Env):
        raise ValueError(f"env: expected a single gymnasium.Env, got {type(env).__name__}")
    n_envs = wrapper.get("n_envs", 1)
    if isinstance(n_envs, bool) or not isinstance(n_envs, int) or n_envs < 1:
        raise ValueError(f"n_envs: expected a whole number >= 1, got {n_envs!r}")
    venv = DummyVecEnv([lambda: Monitor(env)]) if n_envs == 1 else _many_envs(env, n_envs)
    if not (wrapper["norm_obs"] or wrapper["norm_reward"]):
        return venv, None
    normalize = VecNormalize(
        venv,
        norm_obs=bool(wrapper["norm_obs"]),
        norm_reward=bool(wrapper["norm_reward"]),
        clip_obs=float(wrapper["clip_obs"]),
        clip_reward=float(wrapper["clip_reward"]),
        gamma=gamma,
    )
    if stats is not None:
        _restore_stats(normalize, stats)
    return normalize, normalize


def _many_envs(env: gym.Env, n_envs: int) -> Any:
    """``n_envs`` campaigns on ``env``'s market: the native vector env where it applies (one compiled
    call per step), else ``DummyVecEnv`` of deep copies (the market is shared, not copied)."""
    import copy
    import functools

    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

    from agents.vec_env import InfluencerMatchingVecEnv
    from envs.matching_env import InfluencerMatchingEnv

    single = env.unwrapped
    if isinstance(single, InfluencerMatchingEnv) and not single.persistent_market:
        return VecMonitor(InfluencerMatchingVecEnv(n_envs, env=single))
    return DummyVecEnv([functools.partial(Monitor, copy.deepcopy(env)) for _ in range(n_envs)])


def _stats_of(normalize: Any) -> dict:
    """VecNormalize's statistics as JSON-ready builtins (floats round-trip exactly)."""
    return {
        "obs_mean": normalize.obs_rms.mean.tolist(),
        "obs_var": normalize.obs_rms.var.tolist(),
        "obs_count": float(normalize.obs_rms.count),
        "ret_mean": float(normalize.ret_rms.mean),
        "ret_var": float(normalize.ret_rms.var),
        "ret_count": float(normalize.ret_rms.count),
        "epsilon": float(normalize.epsilon),
    }


def _restore_stats(normalize: Any, stats: dict) -> None:
    normalize.obs_rms.mean = np.asarray(stats["obs_mean"], dtype=np.float64)
    normalize.obs_rms.var = np.asarray(stats["obs_var"], dtype=np.float64)
    normalize.obs_rms.count = float(stats["obs_count"])
    normalize.ret_rms.mean = np.float64(stats["ret_mean"])
    normalize.ret_rms.var = np.float64(stats["ret_var"])
    normalize.ret_rms.count = float(stats["ret_count"])
    normalize.epsilon = float(stats["epsilon"])


#: Value checks of common hyperparameters that SB3 makes late (deep inside ``learn``) or not at all:
#: name -> (smallest, largest, whole number?). SB3's own checks at construction cover the rest.
_VALUE_RULES: dict[str, tuple[float, float, bool]] = {
    "n_steps": (1, math.inf, True),
    "batch_size": (2, math.inf, True),
    "n_epochs": (1, math.inf, True),
    "buffer_size": (1, math.inf, True),
    "learning_starts": (0, math.inf, True),
    "target_update_interval": (1, math.inf, True),
    "gamma": (0.0, 1.0, False),
    "gae_lambda": (0.0, 1.0, False),
    "tau": (0.0, 1.0, False),
    "exploration_fraction": (0.0, 1.0, False),
    "exploration_initial_eps": (0.0, 1.0, False),
    "exploration_final_eps": (0.0, 1.0, False),
    "learning_rate": (0.0, math.inf, False),
    "ent_coef": (0.0, math.inf, False),
    "vf_coef": (0.0, math.inf, False),
    "max_grad_norm": (0.0, math.inf, False),
}


def check_sb3_values(name: str, hyperparameters: Mapping[str, Any]) -> None:
    """``ValueError`` naming the first hyperparameter whose value is out of its range
    (:data:`_VALUE_RULES`)."""
    for key in sorted(hyperparameters):
        if key not in _VALUE_RULES:
            continue
        low, high, whole = _VALUE_RULES[key]
        value = hyperparameters[key]
        kind = "a whole number" if whole else "a number"
        ok_type = isinstance(value, int) if whole else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok_type or not (low <= value <= high) or value != value:
            bounds = f">= {low:g}" if high == math.inf else f"in [{low:g}, {high:g}]"
            raise ValueError(
                f"hyperparameter '{key}' of {name}: expected {kind} {bounds}, got {_short(value)}"
            )


def _construct(cls: Any, name: str, venv: Any, seed: int | None, kwargs: dict[str, Any]) -> Any:
    """``cls("MlpPolicy", venv, ...)``; SB3's and torch's complaints about a value become a one-line
    ``ValueError`` naming the hyperparameter (found by trying each alone when the message does not)."""
    try:
        return cls("MlpPolicy", venv, seed=seed, device="cpu", **kwargs)
    except (AssertionError, TypeError, ValueError, RuntimeError) as err:
        message = " ".join(str(err).split()) or type(err).__name__
        message = message.split(" See https://")[0]
        culprit = _culprit(cls, venv, kwargs, name)
        if "'policy_kwargs'" in culprit and "net_arch" in (kwargs.get("policy_kwargs") or {}):
            culprit = f"hyperparameter 'net_arch' (= {_short(kwargs['policy_kwargs']['net_arch'])})"
        raise ValueError(f"{culprit} of {name}: {message}") from None


def _culprit(cls: Any, venv: Any, kwargs: dict[str, Any], name: str) -> str:
    defaults = {k: v for k, v in DEFAULTS[name].items() if k not in WRAPPER_DEFAULTS}
    suspects = [k for k in kwargs if k not in defaults or kwargs[k] != defaults[k]]
    for key in sorted(suspects):
        trial = {**defaults, key: kwargs[key]}
        try:
            cls("MlpPolicy", venv, seed=0, device="cpu", **trial)
        except (AssertionError, TypeError, ValueError, RuntimeError):
            return f"hyperparameter '{key}' (= {_short(kwargs[key])})"
    if suspects:
        return "hyperparameters " + ", ".join(f"'{k}'" for k in sorted(suspects))
    return "the hyperparameters"


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def make_sb3(name: str, env: gym.Env, seed: int | None = None, **hyperparameters: Any) -> SB3Agent:
    """Build an SB3 agent for ``env`` with this environment's tuned defaults.

    Parameters
    ----------
    name : {"ppo", "a2c", "dqn", "maskable_ppo"}
    env : gymnasium.Env
        One (not vectorised) environment; it is wrapped in Monitor, DummyVecEnv and VecNormalize.
    seed : int or None
        Passed to the SB3 constructor, which seeds torch, the action space and the env's first reset
        from it (SB3 also seeds Python's and numpy's global generators there; influmatch code never
        reads them).
    **hyperparameters
        Any SB3 constructor argument of the algorithm (overriding :data:`DEFAULTS`) and the wrapper
        options of :data:`WRAPPER_DEFAULTS`. An unknown name raises ``ValueError`` naming it. Setting
        ``n_steps`` below the default ``batch_size`` (and not ``batch_size``) lowers the minibatch to
        ``n_steps``.

    Returns
    -------
    SB3Agent
        :class:`SB3PolicyAgent` (with ``action_probabilities``) for PPO, A2C and MaskablePPO.
    """
    cls = _algorithm_class(name)
    known = set(sb3_hyperparameter_names(name))
    unknown = sorted(set(hyperparameters) - known)
    if unknown:
        raise ValueError(
            f"unknown hyperparameter '{unknown[0]}' for agent '{name}' (known: {', '.join(sorted(known))})"
        )
    check_sb3_values(name, hyperparameters)
    merged = {**WRAPPER_DEFAULTS, **DEFAULTS[name], **hyperparameters}
    if "n_steps" in hyperparameters and "batch_size" not in hyperparameters and "batch_size" in merged:
        # A shorter rollout than the default minibatch (small budgets, tests): one minibatch per rollout
        # rather than SB3's truncated-minibatch warning.
        merged["batch_size"] = min(merged["batch_size"], int(hyperparameters["n_steps"]))
    wrapper = {k: merged.pop(k) for k in WRAPPER_DEFAULTS}
    kwargs = merged
    if wrapper["net_arch"] is not None:
        kwargs["policy_kwargs"] = {**(kwargs.get("policy_kwargs") or {}), "net_arch": wrapper["net_arch"]}
    threads = _set_threads(wrapper["torch_threads"])
    venv, normalize = _vec_env(env, wrapper, float(kwargs.get("gamma", 0.99)))
    model = _construct(cls, name, venv, seed, kwargs)
    agent_cls = SB3Agent if name == "dqn" else SB3PolicyAgent
    return agent_cls(name, model, normalize, wrapper={**wrapper, "torch_threads": threads})


class SB3Agent:
    """An SB3 model with the VecNormalize statistics it was trained with, following the agent protocol.

    ``predict`` normalises the observation as training did (with the statistics frozen at the time of
    the call) before asking the model. ``save`` writes SB3's zip with one more member,
    ``influmatch.json``: the algorithm name, the wrapper options and the normalisation statistics; so
    ``load`` restores everything ``predict`` needs, and with an ``env`` everything ``learn`` needs.

    Attributes
    ----------
    algorithm : str
        ``"ppo"``, ``"a2c"``, ``"dqn"`` or ``"maskable_ppo"``.
    model : stable_baselines3.common.base_class.BaseAlgorithm
    vec_normalize : VecNormalize or None
        The training env's normaliser (``None`` after ``load`` without an env: the statistics are then
        kept in the agent itself).
    """

    def __init__(self, algorithm: str, model: Any, vec_normalize: Any, wrapper: Mapping[str, Any]) -> None:
        self.algorithm = algorithm
        self.model = model
        self.vec_normalize = vec_normalize
        self.wrapper = dict(wrapper)
        self._frozen_stats: dict | None = None

    # ------------------------------------------------------------------ protocol
    def learn(
        self,
        total_timesteps: int,
        callback: Any = None,
        log_interval: int | None = None,
        tb_log_name: str | None = None,
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SB3Agent:
        """``model.learn`` (SB3 callbacks, logger and progress bar as they are); returns ``self``.

        ``log_interval`` and ``tb_log_name`` default (``None``) to the algorithm's own defaults (e.g.
        PPO logs every rollout, DQN every 4 episodes).

        Without a logger of the user's (``set_logger``) or a TensorBoard folder, the agent gets SB3's
        ``Logger`` writing to stdout when ``verbose >= 1`` and nowhere otherwise: SB3's own default
        would also create an empty ``SB3-<date>`` folder in the temporary directory on every call."""
        if self.model.get_env() is None:
            raise ValueError(f"this {self.algorithm} agent has no env: load it with load(path, env=...)")
        if not getattr(self.model, "_custom_logger", False) and self.model.tensorboard_log is None:
            from stable_baselines3.common.logger import HumanOutputFormat, KVWriter, Logger

            outputs: list[KVWriter] = [HumanOutputFormat(sys.stdout)] if self.model.verbose >= 1 else []
            self.model.set_logger(Logger(folder=None, output_formats=outputs))
        defaults = {"log_interval": log_interval, "tb_log_name": tb_log_name}
        self.model.learn(
            total_timesteps,
            callback=callback,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
            **{key: value for key, value in defaults.items() if value is not None},
        )
        return self

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, Any]:
        """The model's action(s) for raw (unnormalised) observation(s).

        ``action_masks`` is used by MaskablePPO and ignored by the other algorithms.
        """
        obs = self.normalize_observation(observation)
        if self.algorithm == "maskable_ppo":
            return self.model.predict(obs, state, episode_start, deterministic, action_masks=action_masks)
        return self.model.predict(obs, state, episode_start, deterministic)

    def normalize_observation(self, observation: np.ndarray) -> np.ndarray:
        """The observation as the network sees it (VecNormalize's transform, statistics not updated)."""
        obs = np.asarray(observation, dtype=np.float32)
        if self.vec_normalize is not None:
            return self.vec_normalize.normalize_obs(obs)
        stats = self._frozen_stats
        if stats is None or not self.wrapper["norm_obs"]:
            return obs
        mean, var = np.asarray(stats["obs_mean"]), np.asarray(stats["obs_var"])
        clip = float(self.wrapper["clip_obs"])
        return np.clip((obs - mean) / np.sqrt(var + stats["epsilon"]), -clip, clip).astype(np.float32)

    # ------------------------------------------------------------------ SB3 model pass-throughs
    @property
    def num_timesteps(self) -> int:
        return int(self.model.num_timesteps)

    @property
    def ep_info_buffer(self) -> Any:
        return self.model.ep_info_buffer

    @property
    def logger(self) -> Any:
        return self.model.logger

    def get_env(self) -> Any:
        return self.model.get_env()

    def set_logger(self, logger: Any) -> None:
        self.model.set_logger(logger)

    # ------------------------------------------------------------------ persistence
    def _metadata(self) -> dict:
        stats = None
        if self.vec_normalize is not None:
            stats = _stats_of(self.vec_normalize)
        elif self._frozen_stats is not None:
            stats = self._frozen_stats
        return {
            "format": _META_FORMAT,
            "version": _META_VERSION,
            "algorithm": self.algorithm,
            "gamma": float(self.model.gamma),
            # n_envs=1 is left out, so a single-env model's file stays what it was before n_envs existed
            "wrapper": {k: v for k, v in self.wrapper.items() if not (k == "n_envs" and v == 1)},
            "normalization": stats,
        }

    def save(self, path: str | Path) -> None:
        """Write SB3's zip (``.zip`` is added to a path without a suffix) plus ``influmatch.json``."""
        path = Path(path)
        if path.suffix == "":
            path = Path(f"{path}.zip")
        self.model.save(path)
        with zipfile.ZipFile(path, "a") as archive:
            archive.writestr(_META_NAME, json.dumps(self._metadata(), indent=1, sort_keys=True))
        _make_deterministic(path)

    @classmethod
    def load(cls, path: str | Path, env: gym.Env | None = None) -> SB3Agent:
        """Read an agent written by :meth:`save`; with ``env`` it can also ``learn`` further."""
        path = Path(path)
        if path.suffix == "" and not path.exists():
            path = Path(f"{path}.zip")
        try:
            with zipfile.ZipFile(path) as archive:
                meta = json.loads(archive.read(_META_NAME))
        except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as err:
            raise ValueError(f"{path}: not an influmatch SB3 model ({err})") from err
        if meta.get("format") != _META_FORMAT or meta.get("version") != _META_VERSION:
            raise ValueError(f"{path}: not an influmatch SB3 model (format {meta.get('format')!r})")
        algorithm, wrapper, stats = meta["algorithm"], meta["wrapper"], meta["normalization"]
        algo_cls = _algorithm_class(algorithm)
        _set_threads(int(wrapper["torch_threads"]))
        normalize = None
        if env is not None:
            venv, normalize = _vec_env(env, wrapper, float(meta["gamma"]), stats)
            if normalize is not None:
                normalize.training = True
            model = algo_cls.load(path, env=venv, device="cpu")
        else:
            model = algo_cls.load(path, device="cpu")
        agent_cls = SB3Agent if algorithm == "dqn" else SB3PolicyAgent
        if cls is not SB3Agent and not issubclass(agent_cls, cls):
            raise ValueError(f"{path}: holds a {algorithm} model, which is not a {cls.__name__}")
        agent = agent_cls(algorithm, model, normalize, wrapper)
        if normalize is None:
            agent._frozen_stats = stats
        return agent

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.algorithm!r}, num_timesteps={self.num_timesteps})"


#: Fixed timestamp of every member of a saved zip (the earliest a zip can hold).
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _make_deterministic(path: Path) -> None:
    """Rewrite SB3's zip so that the same model gives the same bytes: fixed member timestamps and
    permissions, and in the ``data`` member no wall-clock values (``start_time``, the Monitor's
    episode times ``t`` in ``ep_info_buffer``) and no object addresses in the informational reprs.
    Nothing ``load`` or further ``learn`` reads changes (``learn`` resets ``start_time``)."""
    with zipfile.ZipFile(path) as archive:
        members = [(info, archive.read(info)) for info in archive.infolist()]
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with zipfile.ZipFile(tmp, "w") as out:
            for info, data in members:
                if info.filename == "data":
                    data = _stable_data(data)
                member = zipfile.ZipInfo(info.filename, date_time=_ZIP_EPOCH)
                member.compress_type = info.compress_type
                member.external_attr = 0o644 << 16
                out.writestr(member, data)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _stable_data(raw: bytes) -> bytes:
    import base64
    import pickle

    import cloudpickle

    data = json.loads(raw)
    if "start_time" in data:
        data["start_time"] = 0
    buffer = data.get("ep_info_buffer")
    if isinstance(buffer, dict) and ":serialized:" in buffer:
        episodes = pickle.loads(base64.b64decode(buffer[":serialized:"]))  # our own model's buffer
        for episode in episodes:
            if isinstance(episode, dict) and "t" in episode:
                episode["t"] = 0.0
        buffer[":serialized:"] = base64.b64encode(cloudpickle.dumps(episodes)).decode()
    return json.dumps(_without_addresses(data), indent=4).encode()


def _without_addresses(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: v if k == ":serialized:" else _without_addresses(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_addresses(v) for v in value]
    if isinstance(value, str):
        return _ADDRESS.sub(" at 0x0", value)
    return value


class SB3PolicyAgent(SB3Agent):
    """An SB3 agent with an explicit stochastic policy (PPO, A2C, MaskablePPO)."""

    def action_probabilities(self, observation: np.ndarray, action_mask: np.ndarray) -> np.ndarray:
        """The policy's action distribution at ``observation``, restricted to ``action_mask`` and
        renormalised: shape ``(n_actions,)`` (or ``(n, n_actions)`` for a batch). If the policy puts
        no mass at all on the valid actions, uniform over them."""
        import torch

        obs = self.normalize_observation(observation)
        single = obs.ndim == 1
        mask = np.asarray(action_mask, dtype=bool)
        mask2 = mask.reshape(1, -1) if single else mask
        if not mask2.any(axis=1).all():
            raise ValueError("action_mask: expected at least one valid action")
        policy = self.model.policy
        obs_tensor, _ = policy.obs_to_tensor(obs)
        with torch.no_grad():
            if self.algorithm == "maskable_ppo":
                distribution = policy.get_distribution(obs_tensor, action_masks=mask2)
            else:
                distribution = policy.get_distribution(obs_tensor)
            probs = distribution.distribution.probs.cpu().numpy().astype(np.float64)
        probs = np.where(mask2, probs, 0.0)
        total = probs.sum(axis=1, keepdims=True)
        uniform = mask2 / mask2.sum(axis=1, keepdims=True)
        probs = np.where(total > 0, probs / np.where(total > 0, total, 1.0), uniform)
        return probs[0] if single else probs
