"""Reference policies, a marketer's heuristics, and a logistic contextual bandit.

Every class follows the agent protocol of :mod:`agents` (``learn``, ``predict``, ``save``, ``load``).

**Policies that read the environment.** :class:`RandomPolicy`, :class:`MyopicOracle` and the heuristics
(:class:`CheapestPerFollowerPolicy`, :class:`BestFitPolicy`, :class:`BiggestReachPolicy`,
:class:`BestValuePerDollarPolicy`, :class:`FixedSegmentPolicy`) are constructed with the environment and
read ``env.unwrapped`` (its action mask, its candidates' observable features, or, for the oracle, the
hidden expected rewards) when ``predict`` is called; ``predict`` ignores the observation it is given.
They are meant for sequential, single-environment use: evaluation, generating logs. ``predict`` refuses a
batch of more than one observation, since the environment has one current state. Use
:meth:`EnvStatePolicy.with_env` to run the same policy on another environment (evaluation does). They
do not learn: ``learn`` returns ``self`` at once and ``save`` writes their configuration as JSON.

**The offer-level rule of the heuristics.** A heuristic first picks, for every segment, the offer level
it would use: list price (the level 1.0, or the level nearest to 1 on a log scale) if that action is
valid, otherwise the valid level next closest to list price on a log scale (ties go to the cheaper
level), so with the default levels (0.8, 1.0, 1.25) it tries 1.0, then 0.8, then 1.25. It then scores each
segment's candidate for that action with its own rule and offers the deal to the best one (ties go to the
lowest segment). When no segment has a valid action it waits. Heuristics never wait voluntarily: a
marketer with budget left spends it.

**MyopicOracle is not a deployable policy.** It reads the hidden truth (``expected_rewards()``, which no
real marketer observes) and is the reference that defines a normalised score of 1; its return is an
upper reference line for one-step-greedy play, not an upper bound on what a planning policy can earn.

:class:`LogisticBandit` learns from the observation alone; see its docstring.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import numbers
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from agents.callback_host import CallbackHost
from agents.seeding import seed_streams

if TYPE_CHECKING:
    import pandas as pd
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.logger import Logger
    from stable_baselines3.common.vec_env import VecEnv

__all__ = [
    "BestFitPolicy",
    "BestValuePerDollarPolicy",
    "BiggestReachPolicy",
    "CheapestPerFollowerPolicy",
    "EnvStatePolicy",
    "FixedSegmentPolicy",
    "HeuristicPolicy",
    "LogisticBandit",
    "MyopicOracle",
    "RandomPolicy",
    "offer_level_preference",
]

logger = logging.getLogger(__name__)

_SAVE_FORMAT = "influmatch.agents.baselines"
_SAVE_VERSION = 1


# ---------------------------------------------------------------------------------------- checks
def _check_seed(seed: Any) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or int(seed) < 0:
        raise ValueError(f"seed: expected a whole number >= 0 or None, got {seed!r}")
    return int(seed)


def _check_number(name: str, value: Any, low: float, high: float) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))
    if not ok or not low <= float(value) <= high:
        raise ValueError(f"{name}: expected a number in [{low:g}, {high:g}], got {value!r}")
    return float(value)


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < minimum:
        raise ValueError(f"{name}: expected a whole number >= {minimum}, got {value!r}")
    return int(value)


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


def offer_level_preference(offer_levels: Any) -> np.ndarray:
    """Indices of ``offer_levels`` in the order the heuristics try them.

    Closest to list price (ratio 1) first, on a log scale (so 0.8 and 1.25 are equally far from 1.0);
    ties go to the cheaper level. For (0.8, 1.0, 1.25): ``[1, 0, 2]``.
    """
    levels = np.asarray(offer_levels, dtype=float)
    distance = np.round(np.abs(np.log(levels)), 12)
    return np.lexsort((levels, distance))


def _write_json(path: str | Path, data: dict) -> None:
    Path(path).write_text(
        json.dumps(data, indent=1, sort_keys=True, allow_nan=False) + "\n", encoding="utf-8"
    )


def _read_saved(path: str | Path, expected_class: str) -> dict:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not a saved influmatch policy ({err})") from err
    if not isinstance(data, dict) or data.get("format") != _SAVE_FORMAT:
        raise ValueError(f"{path}: not a saved influmatch policy (expected format {_SAVE_FORMAT!r})")
    if data.get("version") != _SAVE_VERSION:
        raise ValueError(f"{path}: unsupported file version {data.get('version')!r}")
    if data.get("class") != expected_class:
        raise ValueError(f"{path}: holds a {data.get('class')}, not a {expected_class}")
    return data


# ---------------------------------------------------------------------------- env-state policies
class EnvStatePolicy:
    """Base of the policies that act on the environment's current state (see the module docstring).

    Parameters
    ----------
    env : gymnasium.Env or None
        The environment whose ``unwrapped`` state ``predict`` reads. ``None`` is allowed (e.g. after
        ``load`` without an env) until ``predict`` is called.
    seed : int or None
        Seed of the policy's own random stream (only :class:`RandomPolicy` draws from it).
    """

    #: ``predict`` reads ``env.unwrapped`` and ignores the observation.
    reads_env_state = True

    def __init__(self, env: gym.Env | None, *, seed: int | None = None) -> None:
        self.env = env
        self.seed = _check_seed(seed)
        self._rng = np.random.default_rng(self.seed)
        self.num_timesteps = 0

    # -- protocol
    def learn(self, total_timesteps: int, callback: Any = None, progress_bar: bool = False) -> EnvStatePolicy:
        """Nothing to learn: returns ``self`` (``callback`` and ``progress_bar`` are ignored)."""
        _check_int("total_timesteps", total_timesteps, 0)
        return self

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

    # -- environment
    def _unwrapped(self) -> Any:
        if self.env is None:
            raise ValueError(
                f"{type(self).__name__} has no env: pass one to the constructor, to load(path, env=...) "
                "or to set_env(env)"
            )
        return self.env.unwrapped

    def set_env(self, env: gym.Env) -> None:
        """Act on ``env`` from now on."""
        self.env = env

    def get_env(self) -> gym.Env | None:
        return self.env

    def with_env(self, env: gym.Env) -> EnvStatePolicy:
        """A copy of this policy (same parameters, a copy of its random stream) acting on ``env``."""
        clone = copy.copy(self)
        clone._rng = copy.deepcopy(self._rng)
        clone.env = env
        return clone

    # -- configuration and persistence
    def get_params(self) -> dict[str, Any]:
        """The constructor's keyword arguments (besides ``env``)."""
        return {"seed": self.seed}

    def save(self, path: str | Path) -> None:
        """Write the policy's configuration (and random-stream state) to ``path`` as JSON."""
        _write_json(
            path,
            {
                "format": _SAVE_FORMAT,
                "version": _SAVE_VERSION,
                "class": type(self).__name__,
                "params": self.get_params(),
                "state": {"rng": self._rng.bit_generator.state, "num_timesteps": self.num_timesteps},
            },
        )

    @classmethod
    def load(cls, path: str | Path, env: gym.Env | None = None) -> EnvStatePolicy:
        """Read a policy written by :meth:`save`; ``env`` is the environment it will act on."""
        data = _read_saved(path, cls.__name__)
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

    def _act(self, env: Any) -> int:
        rewards = np.where(env.action_masks(), env.expected_rewards(), -np.inf)
        rewards[env.wait_action] = -np.inf
        best = int(np.argmax(rewards))
        return best if rewards[best] > 0 else int(env.wait_action)


class HeuristicPolicy(EnvStatePolicy):
    """A rule a marketer could follow, from the candidates' observable features only.

    Uses ``env.unwrapped.candidate_features()`` and ``action_masks()``; the offer level follows the
    module's list-price rule (see the module docstring). Subclasses define :meth:`score`.
    """

    def score(self, features: dict[str, np.ndarray]) -> np.ndarray:  # pragma: no cover - abstract
        """Score of every action's candidate (higher is better; NaN where there is none)."""
        raise NotImplementedError

    def _segment_allowed(self, n_segments: int) -> np.ndarray:
        return np.ones(n_segments, dtype=bool)

    def _act(self, env: Any) -> int:
        n_segments, n_levels = env.n_segments, len(env.offer_levels)
        valid = env.action_masks()[: n_segments * n_levels].reshape(n_segments, n_levels)
        preference = offer_level_preference(env.offer_levels)
        valid_in_order = valid[:, preference]
        level = preference[valid_in_order.argmax(axis=1)]
        actions = np.arange(n_segments) * n_levels + level
        score = np.asarray(self.score(env.candidate_features()), dtype=float)[actions]
        usable = valid_in_order.any(axis=1) & self._segment_allowed(n_segments) & ~np.isnan(score)
        if not usable.any():
            return int(env.wait_action)
        return int(actions[np.argmax(np.where(usable, score, -np.inf))])


class CheapestPerFollowerPolicy(HeuristicPolicy):
    """Offer to the candidate with the lowest offer cost per follower (USD per follower)."""

    def score(self, features: dict[str, np.ndarray]) -> np.ndarray:
        return -features["cost"] / features["followers"]


class BestFitPolicy(HeuristicPolicy):
    """Offer to the candidate with the best brand fit (category mix and audience, ``fit``)."""

    def score(self, features: dict[str, np.ndarray]) -> np.ndarray:
        return features["fit"]


class BiggestReachPolicy(HeuristicPolicy):
    """Offer to the affordable candidate with the most followers (biggest reach within budget)."""

    def score(self, features: dict[str, np.ndarray]) -> np.ndarray:
        return features["followers"]


class BestValuePerDollarPolicy(HeuristicPolicy):
    """Offer to the candidate with the best estimated value per dollar (from observables only)."""

    def score(self, features: dict[str, np.ndarray]) -> np.ndarray:
        return features["value_per_dollar"]


class FixedSegmentPolicy(HeuristicPolicy):
    """Always offer to segment ``segment`` (at the list-price rule's level); wait when it has nothing.

    The best fixed segment, chosen in hindsight, is a reference line: it shows how much an agent gains
    by choosing segments by context rather than always the same one.
    """

    def __init__(self, env: gym.Env | None, segment: int, *, seed: int | None = None) -> None:
        super().__init__(env, seed=seed)
        self.segment = _check_int("segment", segment, 0)
        if env is not None and self.segment >= env.unwrapped.n_segments:
            raise ValueError(
                f"segment: expected a segment in [0, {env.unwrapped.n_segments - 1}], got {segment!r}"
            )

    def get_params(self) -> dict[str, Any]:
        return {"segment": self.segment, "seed": self.seed}

    def score(self, features: dict[str, np.ndarray]) -> np.ndarray:
        return np.zeros(len(features["segment"]))

    def _segment_allowed(self, n_segments: int) -> np.ndarray:
        if self.segment >= n_segments:
            raise ValueError(f"segment: expected a segment in [0, {n_segments - 1}], got {self.segment}")
        return np.arange(n_segments) == self.segment


# -------------------------------------------------------------------------------- the bandit
class LogisticBandit(CallbackHost):
    r"""A contextual bandit: one online logistic regression per offer action, epsilon-greedy.

    For every hire action ``a`` a scikit-learn ``SGDClassifier(loss="log_loss")`` predicts from the
    standardised observation ``z`` whether taking ``a`` now gives a *profitable week*, reward > 0 (a
    refused offer, reward 0, counts as not profitable, so the probability folds in acceptance). The
    classifiers are updated online with ``partial_fit`` every ``train_freq`` steps on the transitions
    gathered since. Waiting has no classifier (its reward is always 0).

    **Standardisation.** ``z = clip((x - mean) / sqrt(var + 1e-8), -clip_obs, clip_obs)`` with the running
    mean and variance (Welford) of every observation seen while learning; early updates therefore use
    early statistics, which is harmless once they settle.

    **Acting.** ``P(profitable | z) = sigmoid(w_a . z + b_a)``; an action never updated has 0.5 (so
    untried actions look as good as a coin flip). The score of a valid hire action is, with
    ``score="profit_weighted"`` (the default), ``P(profitable | z) x g_a`` where ``g_a`` is the mean reward
    (thousands of USD) of action ``a``'s profitable weeks so far (the mean over all actions while ``a``
    has none, 1 before any): the chance of a profitable week times what such a week typically brings,
    so a big influencer who is profitable less often can still win. With ``score="probability"`` it is
    ``P(profitable | z)`` alone. (Tuning, default env, 30k steps, two seeds, 200 campaigns: mean return
    27.1 and 17.1 profit-weighted against 11.8 and 10.9 for the probability alone; random 4.7, oracle
    33.5.) The greedy action is the best-scoring valid hire action, unless its ``P(profitable)`` is
    below ``wait_threshold`` (default 0: never wait while an offer is possible), then waiting. Ties go
    to the lowest index. Exploration is epsilon-greedy: with probability epsilon a uniformly random
    *valid* action (waiting included). Epsilon decays linearly from ``exploration_initial_eps`` to
    ``exploration_final_eps`` over the first ``exploration_fraction`` of ``total_timesteps`` (the
    schedule of SB3's DQN and of :class:`agents.cqi.CQI`); :meth:`action_probabilities` returns that
    distribution. The bandit is myopic: it ignores what an offer does to the budget's later use.

    ``predict`` acts on the observation alone; valid actions come from ``action_masks`` if given, else
    from the environment's current mask (single observations only), else every action counts as valid.

    Parameters
    ----------
    env : gymnasium.Env
        A single environment with a 1-D ``Box`` observation space and a ``Discrete`` action space whose
        unwrapped env has ``action_masks()`` and ``wait_action`` (the last action if it has none).
    alpha : float, default 1e-4
        L2 penalty of the classifiers.
    learning_rate : {"optimal", "constant", "invscaling"}, default "invscaling"
        scikit-learn's schedule; with ``eta0`` and ``power_t``.
    eta0 : float, default 0.05
    power_t : float, default 0.25
    exploration_initial_eps, exploration_final_eps : float, default 1.0 and 0.05
    exploration_fraction : float, default 0.2
    wait_threshold : float, default 0.0
        Minimum ``P(profitable)`` for the greedy policy to make an offer rather than wait, in [0, 1].
    score : {"profit_weighted", "probability"}, default "profit_weighted"
        The greedy score (see Acting).
    train_freq : int, default 64
        Steps between ``partial_fit`` calls (each classifier is fitted on its own new transitions).
    clip_obs : float, default 5.0
        Clip of the standardised observation.
    seed : int or None
        Seed of the bandit's random stream, also passed to the first ``env.reset``.

    Attributes
    ----------
    coef_ : numpy.ndarray, shape (n_hire_actions, n_features)
    intercept_ : numpy.ndarray, shape (n_hire_actions,)
    fitted_ : numpy.ndarray of bool, shape (n_hire_actions,)
        Whether each hire action's classifier has been updated at least once.
    obs_mean_, obs_var_ : numpy.ndarray
        The standardisation statistics.
    exploration_rate : float
        The current epsilon.
    ep_info_buffer : collections.deque
        The last 100 finished training episodes as ``{"r": return, "l": length, "t": seconds}``.
    """

    def __init__(
        self,
        env: gym.Env,
        *,
        alpha: float = 1e-4,
        learning_rate: str = "invscaling",
        eta0: float = 0.05,
        power_t: float = 0.25,
        exploration_initial_eps: float = 1.0,
        exploration_final_eps: float = 0.05,
        exploration_fraction: float = 0.2,
        wait_threshold: float = 0.0,
        score: str = "profit_weighted",
        train_freq: int = 64,
        clip_obs: float = 5.0,
        seed: int | None = None,
    ) -> None:
        self.alpha = _check_number("alpha", alpha, 0.0, math.inf)
        if learning_rate not in ("optimal", "constant", "invscaling"):
            raise ValueError(
                f"learning_rate: expected 'optimal', 'constant' or 'invscaling', got {learning_rate!r}"
            )
        self.learning_rate = learning_rate
        self.eta0 = _check_number("eta0", eta0, 0.0, math.inf)
        self.power_t = _check_number("power_t", power_t, 0.0, math.inf)
        self.exploration_initial_eps = _check_number("exploration_initial_eps", exploration_initial_eps, 0, 1)
        self.exploration_final_eps = _check_number("exploration_final_eps", exploration_final_eps, 0, 1)
        self.exploration_fraction = _check_number("exploration_fraction", exploration_fraction, 0, 1)
        self.wait_threshold = _check_number("wait_threshold", wait_threshold, 0, 1)
        if score not in ("probability", "profit_weighted"):
            raise ValueError(f"score: expected 'probability' or 'profit_weighted', got {score!r}")
        self.score = score
        self.train_freq = _check_int("train_freq", train_freq, 1)
        self.clip_obs = _check_number("clip_obs", clip_obs, 0.0, math.inf)
        self.seed = _check_seed(seed)
        if env is None:
            raise ValueError("env: expected a gymnasium.Env, got None")
        obs_space, act_space = env.observation_space, env.action_space
        if not isinstance(obs_space, spaces.Box) or len(obs_space.shape) != 1:
            raise ValueError(f"env.observation_space: expected a 1-D Box, got {obs_space!r}")
        if not isinstance(act_space, spaces.Discrete) or int(act_space.start) != 0:
            raise ValueError(f"env.action_space: expected Discrete(n) starting at 0, got {act_space!r}")
        self.env: gym.Env | None = env
        unwrapped = env.unwrapped
        self._setup(
            n_features=int(obs_space.shape[0]),
            n_actions=int(act_space.n),
            wait_action=int(getattr(unwrapped, "wait_action", int(act_space.n) - 1)),
            feature_names=list(getattr(unwrapped, "feature_names", []) or []),
            action_names=list(getattr(unwrapped, "action_names", []) or []),
        )

    def _setup(
        self, n_features: int, n_actions: int, wait_action: int, feature_names: list, action_names: list
    ) -> None:
        if wait_action != n_actions - 1:
            raise ValueError(f"LogisticBandit expects waiting to be the last action, got {wait_action}")
        self.n_features, self.n_actions, self.wait_action = n_features, n_actions, wait_action
        self.feature_names = [str(n) for n in feature_names] or [f"x[{i}]" for i in range(n_features)]
        self.action_names = [str(n) for n in action_names] or [f"action {a}" for a in range(n_actions)]
        n_hire = n_actions - 1
        self._classifiers: list[Any] = [None] * n_hire
        self.coef_ = np.zeros((n_hire, n_features))
        self.intercept_ = np.zeros(n_hire)
        self.fitted_ = np.zeros(n_hire, dtype=bool)
        self.profit_sum_ = np.zeros(n_hire)
        self.profit_count_ = np.zeros(n_hire)
        self.obs_count_ = 0
        self.obs_mean_ = np.zeros(n_features)
        self._obs_m2 = np.zeros(n_features)
        self.obs_var_ = np.ones(n_features)
        self._rng, self._env_seed = seed_streams(self.seed)
        self.exploration_rate = self.exploration_initial_eps
        self.num_timesteps = 0
        self._total_timesteps = 0
        self.ep_info_buffer: deque[dict[str, float]] = deque(maxlen=100)
        self._buffer: list[tuple[int, np.ndarray, int]] = []
        self._env_seeded = False
        self._last_obs: np.ndarray | None = None
        self._last_mask: np.ndarray | None = None
        self._logger: Logger | None = None
        self._vec_env: VecEnv | None = None

    # ------------------------------------------------------------------ model
    def _standardise(self, obs: np.ndarray) -> np.ndarray:
        z = (obs - self.obs_mean_) / np.sqrt(self.obs_var_ + 1e-8)
        return np.clip(z, -self.clip_obs, self.clip_obs)

    def _observe(self, obs: np.ndarray) -> None:
        """Welford's update of the running mean and variance."""
        self.obs_count_ += 1
        delta = obs - self.obs_mean_
        self.obs_mean_ = self.obs_mean_ + delta / self.obs_count_
        self._obs_m2 = self._obs_m2 + delta * (obs - self.obs_mean_)
        if self.obs_count_ > 1:
            self.obs_var_ = self._obs_m2 / self.obs_count_

    def profit_probabilities(self, observation: np.ndarray) -> np.ndarray:
        """``P(profitable | observation)`` of every hire action: shape ``(n_hire_actions,)`` for one
        observation, ``(n, n_hire_actions)`` for a batch (0.5 for actions never updated)."""
        obs = np.asarray(observation, dtype=np.float64)
        z = self._standardise(obs)
        logits = z @ self.coef_.T + self.intercept_
        p = 1.0 / (1.0 + np.exp(-np.clip(logits, -500, 500)))
        return np.where(self.fitted_, p, 0.5)

    def _greedy(self, p: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Greedy actions from profit probabilities ``(n, A-1)`` and masks ``(n, A)``."""
        scores = p * self._typical_profit() if self.score == "profit_weighted" else p
        scores = np.where(mask[:, : self.wait_action], scores, -np.inf)
        best = scores.argmax(axis=1)
        rows = np.arange(len(best))
        hire = np.isfinite(scores[rows, best]) & (p[rows, best] >= self.wait_threshold)
        return np.where(hire, best, self.wait_action)

    def _typical_profit(self) -> np.ndarray:
        """Mean reward of each action's profitable weeks (all actions' mean where it has none yet)."""
        overall = self.profit_sum_.sum() / self.profit_count_.sum() if self.profit_count_.any() else 1.0
        return np.where(self.profit_count_ > 0, self.profit_sum_ / np.maximum(self.profit_count_, 1), overall)

    def _masks_for(self, n: int, action_masks: np.ndarray | None, single: bool) -> np.ndarray:
        if action_masks is not None:
            mask = np.asarray(action_masks, dtype=bool).reshape(-1, self.n_actions)
            if mask.shape[0] != n:
                raise ValueError(f"action_masks: expected {n} masks of {self.n_actions}, got {mask.shape}")
            return mask
        if single and self.env is not None and hasattr(self.env.unwrapped, "action_masks"):
            return np.asarray(self.env.unwrapped.action_masks(), dtype=bool)[None]
        return np.ones((n, self.n_actions), dtype=bool)

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, None]:
        """Greedy (``deterministic=True``) or epsilon-greedy action(s) for one observation or a batch.

        Returns ``(actions, None)``: a 0-d integer array for one observation, shape ``(n,)`` for a batch.
        """
        obs = np.asarray(observation, dtype=np.float64)
        single = obs.ndim == 1
        obs2 = obs[None] if single else obs
        if obs2.ndim != 2 or obs2.shape[1] != self.n_features:
            raise ValueError(
                f"observation: expected shape ({self.n_features},) or (n, {self.n_features}), got {obs.shape}"
            )
        mask = self._masks_for(len(obs2), action_masks, single)
        actions = self._greedy(self.profit_probabilities(obs2), mask)
        if not deterministic and self.exploration_rate > 0:
            for i in np.flatnonzero(self._rng.random(len(actions)) < self.exploration_rate):
                valid = np.flatnonzero(mask[i])
                actions[i] = valid[self._rng.integers(len(valid))]
        return (np.asarray(actions[0]) if single else actions), None

    def action_probabilities(self, observation: np.ndarray, action_mask: np.ndarray) -> np.ndarray:
        """The epsilon-greedy distribution over actions, shape ``(n_actions,)`` (``(n, n_actions)`` for a
        batch): ``epsilon / n_valid`` on every valid action plus ``1 - epsilon`` on the greedy one, with
        the current :attr:`exploration_rate`."""
        obs = np.asarray(observation, dtype=np.float64)
        single = obs.ndim == 1
        obs = obs.reshape(-1, self.n_features)
        mask = np.asarray(action_mask, dtype=bool).reshape(len(obs), self.n_actions)
        counts = mask.sum(axis=1, keepdims=True)
        if not (counts > 0).all():
            raise ValueError("action_mask: expected at least one valid action")
        greedy = self._greedy(self.profit_probabilities(obs), mask)
        probs = self.exploration_rate * mask / counts
        probs[np.arange(len(obs)), greedy] += 1.0 - self.exploration_rate
        return probs[0] if single else probs

    def coefficients(self, include_intercept: bool = False) -> pd.DataFrame:
        """Per hire action (rows, by action name) the classifier's weight on every feature (columns,
        by feature name), in log-odds of a profitable week per standard deviation of the feature; with
        ``include_intercept`` a last column ``intercept``. Rows of never-updated actions are 0."""
        import pandas as pd

        frame = pd.DataFrame(
            self.coef_, index=self.action_names[: self.wait_action], columns=self.feature_names
        )
        if include_intercept:
            frame["intercept"] = self.intercept_
        frame.index.name = "action"
        return frame

    def _new_classifier(self) -> Any:
        from sklearn.linear_model import SGDClassifier

        return SGDClassifier(
            loss="log_loss",
            alpha=self.alpha,
            learning_rate=self.learning_rate,
            eta0=self.eta0,
            power_t=self.power_t,
            shuffle=False,
        )

    def _train(self) -> None:
        """``partial_fit`` every action's classifier on its buffered transitions."""
        if not self._buffer:
            return
        actions = np.array([a for a, _, _ in self._buffer])
        obs = np.array([x for _, x, _ in self._buffer])
        labels = np.array([y for _, _, y in self._buffer])
        self._buffer.clear()
        z = self._standardise(obs)
        for a in np.unique(actions):
            rows = actions == a
            classifier = self._classifiers[a]
            if classifier is None:
                classifier = self._classifiers[a] = self._new_classifier()
            classifier.partial_fit(z[rows], labels[rows], classes=np.array([0, 1]))
            self.coef_[a] = classifier.coef_[0]
            self.intercept_[a] = classifier.intercept_[0]
            self.fitted_[a] = True

    # ------------------------------------------------------------------ learning
    def _exploration_schedule(self) -> float:
        progress = self.num_timesteps / self._total_timesteps if self._total_timesteps > 0 else 1.0
        if self.exploration_fraction == 0 or progress >= self.exploration_fraction:
            return self.exploration_final_eps
        return self.exploration_initial_eps + (progress / self.exploration_fraction) * (
            self.exploration_final_eps - self.exploration_initial_eps
        )

    def _reset_env(self) -> tuple[np.ndarray, dict]:
        obs, info = self.env.reset(seed=None if self._env_seeded else self._env_seed)
        self._env_seeded = True
        self._episode_return, self._episode_length, self._episode_start = 0.0, 0, time.time()
        return np.asarray(obs, dtype=np.float64), info

    def _env_mask(self, info: dict) -> np.ndarray:
        mask = info.get("action_mask") if isinstance(info, dict) else None
        if mask is None:
            mask = self.env.unwrapped.action_masks()
        return np.asarray(mask, dtype=bool)

    def learn(
        self,
        total_timesteps: int,
        callback: BaseCallback | list | None = None,
        progress_bar: bool = False,
        reset_num_timesteps: bool = True,
    ) -> LogisticBandit:
        """Interact with the environment for ``total_timesteps`` steps, learning online.

        ``callback`` (SB3 ``BaseCallback``, a list of them, or a callable) is driven as SB3 drives it:
        ``on_training_start``, per episode ``on_rollout_start``/``on_rollout_end``, per step
        ``update_locals`` (VecEnv-shaped ``actions``, ``new_obs``, ``rewards``, ``dones``, ``infos``)
        and ``on_step`` (returning ``False`` stops training), then ``on_training_end``.
        """
        total_timesteps = _check_int("total_timesteps", total_timesteps, 0)
        if self.env is None:
            raise ValueError(
                "this LogisticBandit has no env: pass one to load(path, env=...) or set_env(env)"
            )
        if reset_num_timesteps:
            self.num_timesteps = 0
            self._last_obs = None
        else:
            total_timesteps += self.num_timesteps
        self._total_timesteps = total_timesteps
        cb = self._init_callback(callback, progress_bar)
        if self._last_obs is None:
            self._last_obs, info = self._reset_env()
            self._last_mask = self._env_mask(info)
        obs, mask = self._last_obs, self._last_mask
        if cb is not None:
            cb.on_training_start(locals(), globals())
        rollout_open = False
        while self.num_timesteps < total_timesteps:
            if cb is not None and not rollout_open:
                cb.on_rollout_start()
                rollout_open = True
            self._observe(obs)
            self.exploration_rate = self._exploration_schedule()
            action = int(self.predict(obs, action_masks=mask)[0])
            next_obs, reward, terminated, truncated, info = self.env.step(action)
            reward = float(reward)
            self.num_timesteps += 1
            if action != self.wait_action:
                self._buffer.append((action, obs, int(reward > 0)))
                if reward > 0:
                    self.profit_sum_[action] += reward
                    self.profit_count_[action] += 1
            if len(self._buffer) >= self.train_freq:
                self._train()
            self._episode_return += reward
            self._episode_length += 1
            done = bool(terminated or truncated)
            if done:
                self.ep_info_buffer.append(
                    {
                        "r": self._episode_return,
                        "l": self._episode_length,
                        "t": round(time.time() - self._episode_start, 6),
                    }
                )
                obs, info_reset = self._reset_env()
                mask = self._env_mask(info_reset)
            else:
                obs = np.asarray(next_obs, dtype=np.float64)
                mask = self._env_mask(info)
            if cb is not None:
                if done:
                    info = {**info, "terminal_observation": next_obs}
                cb.update_locals(
                    {
                        "actions": np.array([action]),
                        "new_obs": obs[None],
                        "rewards": np.array([reward], dtype=np.float32),
                        "dones": np.array([done]),
                        "infos": [info],
                    }
                )
                keep_going = cb.on_step()
                if done:
                    cb.on_rollout_end()
                    rollout_open = False
                if not keep_going:
                    break
        self._train()
        self._last_obs, self._last_mask = obs, mask
        if cb is not None:
            if rollout_open:
                cb.on_rollout_end()
            cb.on_training_end()
        return self

    # ------------------------------------------------------------------ SB3 model protocol
    @property
    def logger(self) -> Logger:
        """A Stable-Baselines3 logger (no outputs unless set with :meth:`set_logger`)."""
        if self._logger is None:
            from stable_baselines3.common.logger import Logger

            self._logger = Logger(folder=None, output_formats=[])
        return self._logger

    def set_env(self, env: gym.Env) -> None:
        """Learn on ``env`` from now on (same spaces)."""
        if env.observation_space.shape != (self.n_features,) or int(env.action_space.n) != self.n_actions:
            raise ValueError(
                f"env spaces {env.observation_space}, {env.action_space} do not match the bandit's "
                f"({self.n_features} features, {self.n_actions} actions)"
            )
        self.env = env
        self._vec_env = None
        self._env_seeded = False
        self._last_obs = None

    # ------------------------------------------------------------------ persistence
    def get_params(self) -> dict[str, Any]:
        """The constructor's keyword arguments (besides ``env``)."""
        return {
            "alpha": self.alpha,
            "learning_rate": self.learning_rate,
            "eta0": self.eta0,
            "power_t": self.power_t,
            "exploration_initial_eps": self.exploration_initial_eps,
            "exploration_final_eps": self.exploration_final_eps,
            "exploration_fraction": self.exploration_fraction,
            "wait_threshold": self.wait_threshold,
            "score": self.score,
            "train_freq": self.train_freq,
            "clip_obs": self.clip_obs,
            "seed": self.seed,
        }

    def save(self, path: str | Path) -> None:
        """Write the bandit (parameters, classifiers, statistics, random state) to ``path`` as JSON."""
        self._train()
        _write_json(
            path,
            {
                "format": _SAVE_FORMAT,
                "version": _SAVE_VERSION,
                "class": type(self).__name__,
                "params": self.get_params(),
                "spaces": {
                    "n_features": self.n_features,
                    "n_actions": self.n_actions,
                    "wait_action": self.wait_action,
                    "feature_names": self.feature_names,
                    "action_names": self.action_names,
                },
                "state": {
                    "coef": self.coef_.tolist(),
                    "intercept": self.intercept_.tolist(),
                    "fitted": self.fitted_.tolist(),
                    "profit_sum": self.profit_sum_.tolist(),
                    "profit_count": self.profit_count_.tolist(),
                    "t": [None if c is None else float(c.t_) for c in self._classifiers],
                    "obs_count": self.obs_count_,
                    "obs_mean": self.obs_mean_.tolist(),
                    "obs_m2": self._obs_m2.tolist(),
                    "obs_var": self.obs_var_.tolist(),
                    "exploration_rate": self.exploration_rate,
                    "num_timesteps": self.num_timesteps,
                    "rng": self._rng.bit_generator.state,
                },
            },
        )

    @classmethod
    def load(cls, path: str | Path, env: gym.Env | None = None) -> LogisticBandit:
        """Read a bandit written by :meth:`save`; ``env`` (optional) must have the same spaces."""
        data = _read_saved(path, cls.__name__)
        bandit = cls.__new__(cls)
        params = dict(data["params"])
        shapes = data["spaces"]
        stand_in = gym.Env()
        stand_in.observation_space = spaces.Box(-np.inf, np.inf, (shapes["n_features"],), np.float32)
        stand_in.action_space = spaces.Discrete(shapes["n_actions"])
        stand_in.wait_action = shapes["wait_action"]
        stand_in.feature_names = shapes["feature_names"]
        stand_in.action_names = shapes["action_names"]
        try:
            cls.__init__(bandit, stand_in, **params)
        except TypeError as err:
            raise ValueError(f"{path}: bad LogisticBandit parameters ({err})") from err
        bandit.env = None
        if env is not None:
            bandit.set_env(env)
        state = data["state"]
        bandit.coef_ = np.asarray(state["coef"], dtype=np.float64).reshape(bandit.coef_.shape)
        bandit.intercept_ = np.asarray(state["intercept"], dtype=np.float64)
        bandit.fitted_ = np.asarray(state["fitted"], dtype=bool)
        bandit.profit_sum_ = np.asarray(state["profit_sum"], dtype=np.float64)
        bandit.profit_count_ = np.asarray(state["profit_count"], dtype=np.float64)
        for a, t in enumerate(state["t"]):
            if t is None:
                continue
            classifier = bandit._new_classifier()
            classifier.classes_ = np.array([0, 1])
            classifier.coef_ = bandit.coef_[a : a + 1].copy()
            classifier.intercept_ = bandit.intercept_[a : a + 1].copy()
            classifier.t_ = float(t)
            classifier.n_features_in_ = bandit.n_features
            bandit._classifiers[a] = classifier
        bandit.obs_count_ = int(state["obs_count"])
        bandit.obs_mean_ = np.asarray(state["obs_mean"], dtype=np.float64)
        bandit._obs_m2 = np.asarray(state["obs_m2"], dtype=np.float64)
        bandit.obs_var_ = np.asarray(state["obs_var"], dtype=np.float64)
        bandit.exploration_rate = float(state["exploration_rate"])
        bandit.num_timesteps = int(state["num_timesteps"])
        bandit._rng.bit_generator.state = state["rng"]
        return bandit

    def __repr__(self) -> str:
        return (
            f"LogisticBandit(num_timesteps={self.num_timesteps}, fitted={int(self.fitted_.sum())}/"
            f"{len(self.fitted_)}, exploration_rate={self.exploration_rate:.3g})"
        )
