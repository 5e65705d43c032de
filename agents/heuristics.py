"""Rules a marketer would follow, from the candidates' observable features only.

:class:`CheapestPerFollowerPolicy`, :class:`BestFitPolicy`, :class:`BiggestReachPolicy`,
:class:`BestValuePerDollarPolicy` and :class:`FixedSegmentPolicy` are :class:`~agents.references.EnvStatePolicy`
subclasses: they read ``env.unwrapped.candidate_features()`` and ``action_masks()`` when ``predict`` is
called (see :mod:`agents.references`).

**The offer-level rule.** A heuristic first picks, for every segment, the offer level it would use: list
price (the level 1.0, or the level nearest to 1 on a log scale) if that action is valid, otherwise the
valid level next closest to list price on a log scale (ties go to the cheaper level), so with the
default levels (0.8, 1.0, 1.25) it tries 1.0, then 0.8, then 1.25. It then scores each segment's
candidate for that action with its own rule and offers the deal to the best one (ties go to the lowest
segment). When no segment has a valid action it waits. Heuristics never wait voluntarily: a marketer
with budget left spends it.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from agents._checks import check_int
from agents.references import EnvStatePolicy

__all__ = [
    "BestFitPolicy",
    "BestValuePerDollarPolicy",
    "BiggestReachPolicy",
    "CheapestPerFollowerPolicy",
    "FixedSegmentPolicy",
    "HeuristicPolicy",
    "offer_level_preference",
]


def offer_level_preference(offer_levels: Any) -> np.ndarray:
    """Indices of ``offer_levels`` in the order the heuristics try them.

    Closest to list price (ratio 1) first, on a log scale (so 0.8 and 1.25 are equally far from 1.0);
    ties go to the cheaper level. For (0.8, 1.0, 1.25): ``[1, 0, 2]``.
    """
    levels = np.asarray(offer_levels, dtype=float)
    distance = np.round(np.abs(np.log(levels)), 12)
    return np.lexsort((levels, distance))


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
        self.segment = check_int("segment", segment, 0)
        unwrapped: Any = None if env is None else env.unwrapped  # an influmatch env: it has n_segments
        n_segments = None if unwrapped is None else int(unwrapped.n_segments)
        if n_segments is not None and self.segment >= n_segments:
            raise ValueError(f"segment: expected a segment in [0, {n_segments - 1}], got {segment!r}")

    def get_params(self) -> dict[str, Any]:
        return {"segment": self.segment, "seed": self.seed}

    def score(self, features: dict[str, np.ndarray]) -> np.ndarray:
        return np.zeros(len(features["segment"]))

    def _segment_allowed(self, n_segments: int) -> np.ndarray:
        if self.segment >= n_segments:
            raise ValueError(f"segment: expected a segment in [0, {n_segments - 1}], got {self.segment}")
        return np.arange(n_segments) == self.segment
