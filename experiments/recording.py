"""The progress and evaluation rows of one run (``progress.csv``, ``eval.csv``; see
:mod:`experiments.runner`): a :class:`Recorder` fed by an SB3 callback while an agent learns, or by
:func:`play_fixed_policy` for the policies that do not learn. Evaluation time and numba compile time
(:class:`experiments.compile_clock.CompileClock`) are kept out of the training seconds."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from experiments.compile_clock import CompileClock
from experiments.evaluation import EvaluationResult, Evaluator

__all__ = ["Recorder", "episode_returns", "play_fixed_policy", "recording_callback"]

logger = logging.getLogger(__name__)


class Recorder:
    """Progress and evaluation rows of one run, at fixed step intervals."""

    def __init__(
        self,
        agent: Any,
        evaluator: Evaluator,
        eval_every: int,
        progress_every: int,
        fixed: bool,
        start: int = 0,
    ) -> None:
        self.agent = agent
        self.evaluator = evaluator
        self.eval_every = eval_every
        self.progress_every = progress_every
        self.fixed = fixed
        self.is_cqi = hasattr(agent, "n_leaves")
        self.progress_rows: list[dict] = []
        self.eval_rows: list[dict] = []
        self.episodes = 0
        self.eval_seconds = 0.0
        self.compile_clock = CompileClock()
        self.last: EvaluationResult | None = None
        self._start = time.perf_counter()
        self._next_eval = start + eval_every  # start: the step count a resumed run continues from
        self._next_progress = start + progress_every

    def step(self, timesteps: int, recent_returns: Callable[[], Any]) -> None:
        """Record what is due at ``timesteps``; ``recent_returns()`` gives the last training returns."""
        if timesteps >= self._next_progress:
            self.progress(timesteps, recent_returns())
            self._next_progress = (timesteps // self.progress_every + 1) * self.progress_every
        if timesteps >= self._next_eval:
            self.evaluate(timesteps)
            self._next_eval = (timesteps // self.eval_every + 1) * self.eval_every

    def progress(self, timesteps: int, recent_returns: Any) -> None:
        if self.progress_rows and self.progress_rows[-1]["timesteps"] == timesteps:
            return
        returns = [float(r) for r in recent_returns]
        row = {
            "timesteps": timesteps,
            "episodes": self.episodes,
            "mean_return": float(np.mean(returns)) if returns else float("nan"),
        }
        if self.is_cqi:
            row["n_leaves"] = int(self.agent.n_leaves)
            row["depth"] = int(self.agent.depth)
        elapsed = time.perf_counter() - self._start - self.eval_seconds - self.compile_clock.total
        row["train_seconds"] = round(elapsed, 3)
        self.progress_rows.append(row)

    def evaluate(self, timesteps: int, final: bool = False) -> None:
        if self.eval_rows and self.eval_rows[-1]["timesteps"] == timesteps and not final:
            return
        start, compiling = time.perf_counter(), self.compile_clock.total
        if final:  # the summary's evaluation: also the score against the planning oracle
            self.last = self.evaluator.evaluate(self.agent, deterministic=True, planner=True)
            if self.eval_rows and self.eval_rows[-1]["timesteps"] == timesteps:
                self.eval_seconds += time.perf_counter() - start - (self.compile_clock.total - compiling)
                return
        elif not (self.fixed and self.last is not None):
            self.last = self.evaluator.evaluate(self.agent, deterministic=True)
        seconds = time.perf_counter() - start - (self.compile_clock.total - compiling)
        self.eval_seconds += seconds
        result = self.last
        self.eval_rows.append(
            {
                "timesteps": timesteps,
                "mean_return": result.mean_return,
                "std_return": result.std_return,
                "std_error": result.std_error,
                "normalized_score": result.normalized_score,
                "eval_seconds": round(seconds, 3),
            }
        )
        logger.info(
            "%s: step %d, mean return %.3f ± %.3f, normalised score %.3f",
            type(self.agent).__name__,
            timesteps,
            result.mean_return,
            result.std_error,
            result.normalized_score,
        )

    def finish(self, timesteps: int, recent_returns: Any) -> None:
        self.progress(timesteps, recent_returns)
        self.evaluate(timesteps, final=True)


def episode_returns(agent: Any) -> list[float]:
    buffer = getattr(agent, "ep_info_buffer", None) or []
    return [float(ep["r"]) for ep in buffer]


def recording_callback(recorder: Recorder, agent: Any, stop_at: int) -> Any:
    """An SB3 callback that records progress and evaluations and stops at exactly ``stop_at`` steps."""
    from stable_baselines3.common.callbacks import BaseCallback

    class RecordingCallback(BaseCallback):
        def _on_training_start(self) -> None:
            recorder.evaluate(self.model.num_timesteps)

        def _on_step(self) -> bool:
            dones = self.locals.get("dones")
            if dones is not None:
                recorder.episodes += int(np.sum(dones))
            timesteps = self.model.num_timesteps
            recorder.step(timesteps, lambda: episode_returns(agent))
            if timesteps < stop_at:
                return True
            # At the budget: let a just-completed on-policy rollout be trained on; stop anything else.
            n_steps, n_rollout = self.locals.get("n_steps"), self.locals.get("n_rollout_steps")
            return n_steps is not None and n_rollout is not None and n_steps + 1 >= n_rollout

    return RecordingCallback()


def play_fixed_policy(agent: Any, env: gym.Env, recorder: Recorder, timesteps: int) -> int:
    """The simple loop of the policies that do not learn: act for ``timesteps`` steps."""
    recorder.evaluate(0)
    recent: deque[float] = deque(maxlen=100)
    obs, info = env.reset()
    episode_return = 0.0
    for t in range(1, timesteps + 1):
        action, _ = agent.predict(obs, action_masks=info["action_mask"])
        obs, reward, terminated, truncated, info = env.step(int(action))
        episode_return += float(reward)
        if terminated or truncated:
            recent.append(episode_return)
            recorder.episodes += 1
            episode_return = 0.0
            obs, info = env.reset()
        recorder.step(t, lambda: recent)
    agent.num_timesteps = timesteps
    recorder.finish(timesteps, recent)
    return timesteps
