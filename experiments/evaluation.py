"""Evaluating any agent on a fixed set of seeded campaigns, and the normalised score.

An :class:`Evaluator` holds the evaluation campaigns of one run: ``n_episodes`` reset seeds spawned from
one evaluation seed (``SeedSequence(seed)``: the first ``n`` campaigns are the same whatever
``n_episodes`` is), played on copies of the environment taken before training, so evaluating never
touches the training environment and every agent of a run meets the same campaigns.

Normalised score: ``(mean return - random) / (oracle - random)`` where *random* and *oracle* are the
mean returns of :class:`~agents.RandomPolicy` and :class:`~agents.MyopicOracle` on
the same campaigns (computed once per evaluator and cached). By construction the oracle scores 1 (it is
deterministic and meets the same campaigns) and any random policy scores 0: a ``RandomPolicy`` has no
learned state, so it is evaluated as the random reference itself, with action draws seeded by the
evaluation seed (its own seed drives only its training-time draws).

Score against the ceiling: ``score_vs_planner = (mean return - random) / (planner - random)``, where
*planner* is :class:`~agents.PlanningOracle` (it reads hidden truth and plans by rollouts: the best
policy found, a reference, never deployable) on the same campaigns. The myopic oracle is not a ceiling
(a planner beats it by pacing the budget and timing hires), so this scale says how much of the way from
random to the best known policy a policy goes. Its standard error treats the campaigns as the sample
(paired differences, delta method). The planner's returns are computed once per evaluator and shared,
within a process, by evaluators of the same environment options and campaigns; with ``cache_dir``
(a sweep passes one folder to all its workers) also between processes, in one ``.npy`` file per
options, campaigns and planner source (the planner is the costliest part of a run's evaluation, and
a sweep's agents meet the same campaigns seed by seed).

Learned agents act deterministically (``deterministic=True``). Agents whose ``predict`` accepts
``action_masks`` (MaskablePPO, the bandit) get the environment's mask; policies that read the
environment's state (``reads_env_state``) are rebound to the evaluation copy with ``with_env``.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import io
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from agents import MyopicOracle, PlanningOracle, RandomPolicy
from agents.base import accepts_action_masks
from experiments.files import write_bytes_atomic

__all__ = [
    "EvaluationResult",
    "Evaluator",
    "episode_seeds",
    "normalized_score",
    "play_episodes",
    "ratio_score",
]

#: Planner returns by (environment options, campaign seeds), shared by the evaluators of one process
#: (the runs of a sweep worker meet the same evaluation campaigns seed by seed).
_PLANNER_RETURNS: dict[tuple[str, tuple[int, ...]], np.ndarray] = {}


@functools.cache
def _planner_source_digest() -> str:
    """A digest of the source the planner's returns depend on: the planner, the myopic choice it
    rolls out, and the environment."""
    import agents.planning
    import agents.references
    import envs

    files = [Path(agents.planning.__file__), Path(agents.references.__file__)]
    files += sorted(Path(envs.__file__).parent.rglob("*.py"))
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _save_array(path: Path, values: np.ndarray) -> None:
    """``values`` as ``path`` (``.npy``), written whole or not at all (concurrent writers of the same
    values may race; the last rename wins)."""
    buffer = io.BytesIO()
    np.save(buffer, values, allow_pickle=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, buffer.getvalue())


def _seed_int(seed_sequence: np.random.SeedSequence) -> int:
    return int(seed_sequence.generate_state(1, dtype=np.uint32)[0])


def episode_seeds(seed: int, n_episodes: int) -> list[int]:
    """The reset seeds of the evaluation campaigns of ``seed`` (prefix-stable in ``n_episodes``)."""
    campaigns, _ = np.random.SeedSequence(seed).spawn(2)
    return [_seed_int(child) for child in campaigns.spawn(n_episodes)]


def _random_reference_seed(seed: int) -> int:
    _, draws = np.random.SeedSequence(seed).spawn(2)
    return _seed_int(draws)


def normalized_score(mean_return: float, random_return: float, oracle_return: float) -> float:
    """``(mean - random) / (oracle - random)``; NaN when the oracle does not beat random."""
    span = oracle_return - random_return
    if not span > 1e-12:
        return math.nan
    return float((mean_return - random_return) / span)


def ratio_score(
    returns: np.ndarray, random_returns: np.ndarray, top_returns: np.ndarray
) -> tuple[float, float]:
    """``mean(returns - random) / mean(top - random)`` over paired campaigns, and its standard error
    (delta method on the paired differences); NaNs when ``top`` does not beat random."""
    a = np.asarray(returns, float) - random_returns
    b = np.asarray(top_returns, float) - random_returns
    n, b_mean = len(a), float(b.mean())
    if not b_mean > 1e-12:
        return math.nan, math.nan
    ratio = float(a.mean()) / b_mean
    if n < 2:
        return ratio, math.nan
    cov = np.cov(a, b, ddof=1)
    var = (cov[0, 0] - 2 * ratio * cov[0, 1] + ratio**2 * cov[1, 1]) / (n * b_mean**2)
    return ratio, float(math.sqrt(max(var, 0.0)))


@dataclasses.dataclass(frozen=True)
class EvaluationResult:
    """One agent's returns on the evaluation campaigns (thousands of USD per campaign).

    ``std_return`` is the sample standard deviation over campaigns (ddof 1), ``std_error`` the standard
    error of the mean; ``random_return`` and ``oracle_return`` are the references' mean returns on the
    same campaigns.
    """

    returns: tuple[float, ...]
    mean_return: float
    std_return: float
    std_error: float
    normalized_score: float
    random_return: float
    oracle_return: float
    planner_return: float = math.nan
    score_vs_planner: float = math.nan
    score_vs_planner_se: float = math.nan

    @property
    def n_episodes(self) -> int:
        return len(self.returns)

    @classmethod
    def from_returns(
        cls, returns: Sequence[float] | np.ndarray, random_return: float, oracle_return: float
    ) -> EvaluationResult:
        values = np.asarray(returns, dtype=np.float64)
        n = len(values)
        std = float(values.std(ddof=1)) if n > 1 else 0.0
        mean = float(values.mean())
        return cls(
            returns=tuple(float(x) for x in values),
            mean_return=mean,
            std_return=std,
            std_error=std / math.sqrt(n) if n > 1 else 0.0,
            normalized_score=normalized_score(mean, random_return, oracle_return),
            random_return=float(random_return),
            oracle_return=float(oracle_return),
        )

    def to_dict(self, include_returns: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mean_return": self.mean_return,
            "std_return": self.std_return,
            "std_error": self.std_error,
            "normalized_score": self.normalized_score,
            "random_return": self.random_return,
            "oracle_return": self.oracle_return,
            "planner_return": self.planner_return,
            "score_vs_planner": self.score_vs_planner,
            "score_vs_planner_se": self.score_vs_planner_se,
            "eval_episodes": self.n_episodes,
        }
        if include_returns:
            out["returns"] = list(self.returns)
        return out


def _actor(agent: Any, deterministic: bool) -> Callable[[np.ndarray, np.ndarray], int]:
    """``(observation, mask) -> action`` for any agent of the protocol."""
    if accepts_action_masks(agent):
        return lambda obs, mask: int(agent.predict(obs, deterministic=deterministic, action_masks=mask)[0])
    return lambda obs, mask: int(agent.predict(obs, deterministic=deterministic)[0])


def play_episodes(agent: Any, env: gym.Env, seeds: Sequence[int], deterministic: bool = True) -> np.ndarray:
    """Return of ``agent`` on one campaign per reset seed, played in order on ``env``.

    Returns
    -------
    numpy.ndarray
        Shape ``(len(seeds),)``, each campaign's net value in thousands of USD.
    """
    act = _actor(agent, deterministic)
    returns = np.zeros(len(seeds))
    for i, seed in enumerate(seeds):
        obs, info = env.reset(seed=int(seed))
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, info = env.step(act(obs, info["action_mask"]))
            total += float(reward)
            done = terminated or truncated
        returns[i] = total
    return returns


class Evaluator:
    """The fixed evaluation campaigns of one run, with cached reference returns.

    Parameters
    ----------
    env : gymnasium.Env
        Evaluation plays on copies of ``env.unwrapped`` as it is now (pass one before training; with a
        persistent market, its loads and followers at this moment are every evaluation's start).
    seed : int
        The evaluation seed: it fixes the campaigns and the random reference's draws.
    n_episodes : int
        Campaigns per evaluation.
    planner : bool, default True
        Also score against the planning oracle (:meth:`planner_returns`).
    cache_dir : path, optional
        A folder shared by processes that evaluate the same campaigns: the planner's returns are read
        from it when another process has written them, and written to it otherwise.
    """

    def __init__(
        self,
        env: gym.Env,
        seed: int,
        n_episodes: int,
        *,
        planner: bool = True,
        cache_dir: str | Path | None = None,
    ) -> None:
        if isinstance(n_episodes, bool) or not isinstance(n_episodes, (int, np.integer)) or n_episodes < 1:
            raise ValueError(f"eval_episodes: expected a whole number >= 1, got {n_episodes!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"eval seed: expected a whole number >= 0, got {seed!r}")
        self.seed = int(seed)
        self.n_episodes = int(n_episodes)
        self.seeds = episode_seeds(self.seed, self.n_episodes)
        self._template = copy.deepcopy(env.unwrapped)
        self._references: tuple[np.ndarray, np.ndarray] | None = None
        self.planner = bool(planner)
        spec = getattr(env, "spec", None)
        options = json.dumps(spec.kwargs, sort_keys=True, default=repr) if spec is not None else None
        self._planner_key = None if options is None else (options, tuple(self.seeds))
        self._planner: np.ndarray | None = None
        self.cache_dir = None if cache_dir is None else Path(cache_dir)

    def new_env(self) -> gym.Env:
        """A fresh copy of the evaluation environment (shares the fixed market, not the state)."""
        return copy.deepcopy(self._template)

    def reference_returns(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-campaign returns of the random policy and of the myopic oracle (computed once)."""
        if self._references is None:
            env = self.new_env()
            random_policy = RandomPolicy(env, seed=_random_reference_seed(self.seed))
            random_returns = play_episodes(random_policy, env, self.seeds)
            env = self.new_env()
            oracle_returns = play_episodes(MyopicOracle(env), env, self.seeds)
            self._references = (random_returns, oracle_returns)
        return self._references

    def planner_returns(self) -> np.ndarray | None:
        """Per-campaign returns of the planning oracle (computed once; None when ``planner=False``)."""
        if not self.planner:
            return None
        if self._planner is None:
            cached = _PLANNER_RETURNS.get(self._planner_key) if self._planner_key else None
            shared = self._shared_planner_file()
            if cached is None and shared is not None and shared.is_file():
                cached = np.load(shared, allow_pickle=False)
            if cached is None:
                env = self.new_env()
                cached = play_episodes(
                    PlanningOracle(env, seed=_random_reference_seed(self.seed)), env, self.seeds
                )
                if shared is not None:
                    _save_array(shared, cached)
            if self._planner_key:
                _PLANNER_RETURNS[self._planner_key] = cached
            self._planner = cached
        return self._planner

    def _shared_planner_file(self) -> Path | None:
        """The planner's returns in ``cache_dir``: one file per environment options, campaigns and
        source of the planner and the environment (a changed planner never reads old returns)."""
        if self.cache_dir is None or self._planner_key is None:
            return None
        key = json.dumps([*self._planner_key, _planner_source_digest()])
        return self.cache_dir / f"planner-{hashlib.sha256(key.encode()).hexdigest()[:32]}.npy"

    def evaluate(self, agent: Any, deterministic: bool = True, planner: bool = False) -> EvaluationResult:
        """``agent``'s returns on the evaluation campaigns and its normalised score; with ``planner``
        (and an evaluator built with ``planner=True``) also its score against the planning oracle, whose
        returns are computed the first time they are asked for (runs ask at their final evaluation)."""
        random_returns, oracle_returns = self.reference_returns()
        if isinstance(agent, RandomPolicy):
            returns = random_returns
        else:
            env = self.new_env()
            if getattr(agent, "reads_env_state", False):
                agent = agent.with_env(env)
            returns = play_episodes(agent, env, self.seeds, deterministic=deterministic)
        result = EvaluationResult.from_returns(
            returns, float(random_returns.mean()), float(oracle_returns.mean())
        )
        top = self.planner_returns() if planner else None
        if top is None:
            return result
        score, se = ratio_score(np.asarray(returns), random_returns, top)
        return dataclasses.replace(
            result, planner_return=float(top.mean()), score_vs_planner=score, score_vs_planner_se=se
        )
