"""The agent protocol, and the one learn loop every influmatch agent inherits.

:class:`Agent` is the interface Stable-Baselines3 models already have: ``learn`` (with SB3's
parameters in SB3's order), ``predict``, ``save`` and the class method ``load``. Every agent of
:mod:`agents.registry` satisfies it, SB3 models included.

:class:`BaseAgent` writes the interaction with a single gymnasium environment once, on the model of
SB3's ``BaseAlgorithm.learn``: :meth:`BaseAgent._setup_learn` (counters, callbacks, the first reset),
:meth:`BaseAgent._collect_steps` (the env loop, episode bookkeeping, callbacks, logging) and the two
hooks an algorithm fills in, :meth:`BaseAgent._select_action` (act on the current observation) and
:meth:`BaseAgent._process_transition` (learn from one transition; SB3's ``train``). The SB3 model
surface that callbacks read (``get_env``, ``logger``, ``num_timesteps``, ``ep_info_buffer``...) lives
here too, so SB3 callbacks drive these agents as they drive an SB3 model.
"""

from __future__ import annotations

import inspect
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

import gymnasium as gym
import numpy as np

from agents._checks import check_int

if TYPE_CHECKING:
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.logger import Logger
    from stable_baselines3.common.vec_env import VecEnv

    #: What ``learn`` takes as ``callback`` (as in SB3): a callback, a list of them, a function or None.
    MaybeCallback = BaseCallback | list[BaseCallback] | Callable[[dict, dict], bool] | None

__all__ = ["EPISODE_WINDOW", "Agent", "BaseAgent", "accepts_action_masks"]

_AgentT = TypeVar("_AgentT", bound="BaseAgent")

#: Finished training episodes kept in ``ep_info_buffer`` (SB3's ``stats_window_size``).
EPISODE_WINDOW = 100


@runtime_checkable
class Agent(Protocol):
    """What every influmatch agent offers: the interface of a Stable-Baselines3 model."""

    def learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = ...,
        tb_log_name: str = ...,
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> Any:
        """Interact with the environment for ``total_timesteps`` steps and return the agent."""
        ...

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]:
        """``(actions, None)`` for one observation or a batch."""
        ...

    def save(self, path: str | Path) -> None:
        """Write the agent to ``path``."""
        ...

    @classmethod
    def load(cls, path: str | Path, env: gym.Env | None = None) -> Any:
        """Read an agent written by ``save``; ``env`` is the environment it acts on or learns on."""
        ...


def accepts_action_masks(agent: Any) -> bool:
    """Whether ``agent.predict`` takes ``action_masks=`` (MaskablePPO, CQI, the heuristics...)."""
    try:
        return "action_masks" in inspect.signature(agent.predict).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return False


class BaseAgent:
    """The learn loop on one gymnasium environment, callbacks and logger, written once.

    ``learn`` runs, per environment step: :meth:`_select_action` on the current observation, ``env.step``,
    ``num_timesteps += 1``, :meth:`_process_transition`, the episode bookkeeping (``ep_info_buffer``,
    a logger dump every ``log_interval`` episodes, the reset), then the callbacks. Callbacks are driven
    as SB3 drives them: ``on_training_start``, per episode ``on_rollout_start`` / ``on_rollout_end``
    (one episode is one rollout), per step ``update_locals`` with VecEnv-shaped ``actions``,
    ``new_obs``, ``rewards``, ``dones`` and ``infos`` (an episode's last step carries
    ``terminal_observation`` in its info, ``new_obs`` then being the next reset), and ``on_step``
    (``False`` stops learning), then ``on_training_end``.

    The first reset of the environment uses ``_env_seed`` (later ones continue its stream). Subclasses
    call :meth:`_init_loop` while constructing, set ``env``, and fill in the two hooks; optional hooks
    are :meth:`_on_learn_start`, :meth:`_on_learn_end` and :meth:`_record_algorithm_logs`.

    Attributes
    ----------
    env : gymnasium.Env or None
        The environment ``learn`` steps.
    num_timesteps : int
        Environment steps taken by ``learn`` so far (since the last ``reset_num_timesteps=True``).
    ep_info_buffer : collections.deque
        The last :data:`EPISODE_WINDOW` finished training episodes as ``{"r": return, "l": length,
        "t": seconds}``.
    n_envs : int
        Always 1 (SB3 callbacks read it).
    verbose : int
        0: no output; 1 or more: the default logger prints its table to stdout.
    """

    env: gym.Env | None
    verbose: int = 0
    n_envs = 1

    def _init_loop(self, env_seed: int | None) -> None:
        """Fresh learn-loop state; ``env_seed`` seeds the first ``env.reset`` (``None``: unseeded)."""
        self._env_seed = env_seed
        self._env_seeded = False
        self.num_timesteps = 0
        self._total_timesteps = 0
        self._num_timesteps_at_start = 0
        self._episode_num = 0
        self.ep_info_buffer: deque[dict[str, float]] = deque(maxlen=EPISODE_WINDOW)
        self._last_obs: np.ndarray | None = None
        self._last_info: dict[str, Any] = {}
        self._episode_return = 0.0
        self._episode_length = 0
        self._episode_start_time = time.time()
        self._start_time = time.time()
        self._logger: Logger | None = None
        self._vec_env: VecEnv | None = None

    # ------------------------------------------------------------------ what an algorithm fills in
    def _select_action(self, observation: np.ndarray, info: dict[str, Any]) -> int:
        """The action to take at ``observation`` (with the ``info`` that came with it) while learning."""
        raise NotImplementedError

    def _process_transition(
        self,
        observation: np.ndarray,
        action: int,
        reward: float,
        next_observation: np.ndarray,
        terminated: bool,
        truncated: bool,
        info: dict[str, Any],
    ) -> None:
        """Learn from one transition (``num_timesteps`` already counts it). Default: nothing."""

    def _on_learn_start(self) -> None:
        """Called by :meth:`_setup_learn` once the counters are set, before the callbacks start."""

    def _on_learn_end(self) -> None:
        """Called after the last step, before ``on_rollout_end`` / ``on_training_end``."""

    def _record_algorithm_logs(self, log: Logger) -> None:
        """Record the algorithm's own statistics; :meth:`dump_logs` adds the episode and time ones."""

    # ------------------------------------------------------------------ the loop
    def learn(
        self: _AgentT,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: str = "run",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> _AgentT:
        """Interact with the environment for ``total_timesteps`` steps, learning as the agent does.

        Parameters
        ----------
        total_timesteps : int
            Environment steps to take (in addition to previous ones when ``reset_num_timesteps`` is
            false).
        callback : BaseCallback, list of BaseCallback, or callable, optional
            Stable-Baselines3 callback(s), driven as in the class docstring.
        log_interval : int, default 4
            Dump the logger every this many episodes. Skipped when nothing could read it: ``verbose=0``,
            no callback and no :meth:`set_logger`.
        tb_log_name : str
            Accepted for SB3 compatibility; unused.
        reset_num_timesteps : bool, default True
            Start counting (and any schedule that depends on progress) from zero, resetting the env;
            with ``False``, continue the previous call.
        progress_bar : bool, default False
            Show SB3's progress bar (tqdm + rich).

        Returns
        -------
        self
        """
        log_interval = check_int("log_interval", log_interval, 1)
        total_timesteps, cb = self._setup_learn(total_timesteps, callback, reset_num_timesteps, progress_bar)
        # Without outputs, a callback, or a logger set by the user, nobody could read the records:
        # skip them (and the import of Stable-Baselines3 and torch that the logger needs).
        log_enabled = self._logger is not None or self.verbose >= 1 or cb is not None
        if cb is not None:
            cb.on_training_start(locals(), globals())
        rollout_open = self._collect_steps(total_timesteps, cb, log_interval if log_enabled else None)
        self._on_learn_end()
        if cb is not None:
            if rollout_open:
                cb.on_rollout_end()
            cb.on_training_end()
        return self

    def _setup_learn(
        self, total_timesteps: int, callback: MaybeCallback, reset_num_timesteps: bool, progress_bar: bool
    ) -> tuple[int, BaseCallback | None]:
        """Counters, the callback and the first reset: the total step count to reach and the callback."""
        total_timesteps = check_int("total_timesteps", total_timesteps, 0)
        if self.env is None:
            raise ValueError(
                f"this {type(self).__name__} has no env: pass one to load(path, env=...) or call set_env(env)"
            )
        if reset_num_timesteps:
            self.num_timesteps = 0
            self._episode_num = 0
            self.ep_info_buffer.clear()
            self._last_obs = None
        else:
            total_timesteps += self.num_timesteps
        self._total_timesteps = total_timesteps
        self._num_timesteps_at_start = self.num_timesteps
        self._start_time = time.time()
        self._on_learn_start()
        cb = self._init_callback(callback, progress_bar)
        if self._last_obs is None:
            self._last_obs, self._last_info = self._reset_env()
        return total_timesteps, cb

    def _collect_steps(self, total_timesteps: int, cb: BaseCallback | None, log_interval: int | None) -> bool:
        """Step the environment until ``num_timesteps`` reaches ``total_timesteps`` or a callback stops
        it; ``log_interval`` ``None`` records no logs. Returns whether a rollout is still open."""
        env = self.env
        assert env is not None  # checked by _setup_learn
        obs, info = self._last_obs, self._last_info
        assert obs is not None
        rollout_open = False
        while self.num_timesteps < total_timesteps:
            if cb is not None and not rollout_open:
                cb.on_rollout_start()
                rollout_open = True
            action = self._select_action(obs, info)
            next_obs, raw_reward, terminated, truncated, step_info = env.step(action)
            reward = float(raw_reward)
            self.num_timesteps += 1
            self._process_transition(obs, action, reward, next_obs, terminated, truncated, step_info)
            self._episode_return += reward
            self._episode_length += 1
            done = bool(terminated or truncated)
            if done:
                self._end_episode(log_interval)
                obs, info = self._reset_env()
            else:
                obs, info = next_obs, step_info
            if cb is None:
                continue
            if done:
                step_info = {**step_info, "terminal_observation": next_obs}
            cb.update_locals(
                {
                    "actions": np.array([action]),
                    "new_obs": np.asarray(obs)[None],
                    "rewards": np.array([reward], dtype=np.float32),
                    "dones": np.array([done]),
                    "infos": [step_info],
                }
            )
            keep_going = cb.on_step()
            if done:
                cb.on_rollout_end()
                rollout_open = False
            if not keep_going:
                break
        self._last_obs, self._last_info = obs, info
        return rollout_open

    def _reset_env(self) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset the env (seeded the first time) and start a new episode's bookkeeping."""
        assert self.env is not None
        obs, info = self.env.reset(seed=None if self._env_seeded else self._env_seed)
        self._env_seeded = True
        self._episode_return = 0.0
        self._episode_length = 0
        self._episode_start_time = time.time()
        return np.asarray(obs), info

    def _end_episode(self, log_interval: int | None) -> None:
        self._episode_num += 1
        self.ep_info_buffer.append(
            {
                "r": self._episode_return,
                "l": self._episode_length,
                "t": round(time.time() - self._episode_start_time, 6),
            }
        )
        if log_interval is not None and self._episode_num % log_interval == 0:
            self.dump_logs()

    # ------------------------------------------------------------------ the SB3 model surface
    def _init_callback(self, callback: MaybeCallback, progress_bar: bool) -> BaseCallback | None:
        """One SB3 callback from a callback, a list of them or a plain function, plus a progress bar;
        ``None`` when there is nothing to call."""
        if callback is None and not progress_bar:
            return None
        from stable_baselines3.common.callbacks import (
            BaseCallback,
            CallbackList,
            ConvertCallback,
            ProgressBarCallback,
        )

        if isinstance(callback, list):
            callback = CallbackList(callback)
        if callback is not None and not isinstance(callback, BaseCallback):
            callback = ConvertCallback(callback)
        if progress_bar:
            callback = (
                ProgressBarCallback() if callback is None else CallbackList([callback, ProgressBarCallback()])
            )
        assert callback is not None
        callback.init_callback(self)  # type: ignore[arg-type]  # duck-typed: the surface SB3 reads
        return callback

    @property
    def logger(self) -> Logger:
        """The Stable-Baselines3 logger (no outputs unless ``verbose >= 1`` or set with :meth:`set_logger`)."""
        if self._logger is None:
            from stable_baselines3.common.logger import HumanOutputFormat, KVWriter, Logger

            outputs: list[KVWriter] = [HumanOutputFormat(sys.stdout)] if self.verbose >= 1 else []
            self._logger = Logger(folder=None, output_formats=outputs)
        return self._logger

    def set_logger(self, logger: Logger) -> None:
        """Use ``logger`` (e.g. ``stable_baselines3.common.logger.configure(folder, ["csv"])``)."""
        self._logger = logger

    def dump_logs(self) -> None:
        """Record the current statistics and write them (SB3's ``LogEveryNTimesteps`` calls this)."""
        log = self.logger
        if self.ep_info_buffer:
            log.record("rollout/ep_rew_mean", float(np.mean([ep["r"] for ep in self.ep_info_buffer])))
            log.record("rollout/ep_len_mean", float(np.mean([ep["l"] for ep in self.ep_info_buffer])))
        self._record_algorithm_logs(log)
        elapsed = max(time.time() - self._start_time, 1e-9)
        log.record("time/episodes", self._episode_num, exclude="tensorboard")
        log.record("time/fps", int((self.num_timesteps - self._num_timesteps_at_start) / elapsed))
        log.record("time/total_timesteps", self.num_timesteps, exclude="tensorboard")
        log.dump(step=self.num_timesteps)

    def get_env(self) -> VecEnv | None:
        """A one-env ``DummyVecEnv`` view of the training env (for SB3 callbacks), or ``None``."""
        if self.env is None:
            return None
        if self._vec_env is None:
            from stable_baselines3.common.vec_env import DummyVecEnv

            env = self.env
            self._vec_env = DummyVecEnv([lambda: env])
        return self._vec_env

    def get_vec_normalize_env(self) -> None:
        """Always ``None``: these agents do not normalise observations through a VecNormalize."""
        return None

    def set_env(self, env: gym.Env) -> None:
        """Learn on ``env`` from now on; the next ``learn`` resets it (seeded from the agent's seed)."""
        self.env = env
        self._vec_env = None
        self._env_seeded = False
        self._last_obs = None
