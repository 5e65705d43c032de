"""Rules a marketer would follow, from the candidates' observable features only.

:class:`CheapestPerFollowerPolicy`, :class:`BestFitPolicy`, :class:`BiggestReachPolicy`,
:class:`BestValuePerDollarPolicy` and :class:`FixedSegmentPolicy` are :class:`~agents.references.EnvStatePolicy`
subclasses: they read ``env.unwrapped.candidate_features()`` and ``action_masks()`` when ``predict`` is
called (see :mod:`agents.references`). :meth:`HeuristicPolicy.choose` is the same rule on recorded
candidate features and masks (a batch of them, e.g. the candidate columns of logged matches), so a
heuristic can be evaluated from logs that recorded what it reads.

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

    #: The candidate features :meth:`score` reads (what logs must record to evaluate the rule from them).
    reads: tuple[str, ...] = ()

    def score(self, features: dict[str, np.ndarray]) -> np.ndarray:  # pragma: no cover - abstract
        """Score of every action's candidate (higher is better; NaN where there is none); the arrays
        may be of any shape, one entry per action in the last axis."""
        raise NotImplementedError

    def _segment_allowed(self, n_segments: int) -> np.ndarray:
        return np.ones(n_segments, dtype=bool)

    def _act(self, env: Any) -> int:
        features = {key: np.asarray(value)[None] for key, value in env.candidate_features().items()}
        masks = env.action_masks()[None]
        return int(self.choose(features, masks, env.n_segments, env.offer_levels)[0])

    def choose(
        self, features: dict[str, np.ndarray], action_masks: np.ndarray, n_segments: int, offer_levels: Any
    ) -> np.ndarray:
        """The rule's action for a batch of states, from what it reads.

        Parameters
        ----------
        features : dict of str to numpy.ndarray, each (n, A)
            Every action's candidate features (the keys of ``candidate_features()`` that :meth:`score`
            reads; NaN where an action has no candidate).
        action_masks : numpy.ndarray of bool, shape (n, A)
        n_segments : int
        offer_levels : sequence of float

        Returns
        -------
        numpy.ndarray of int, shape (n,)
            The action of every state; waiting (the last action) where no segment is usable.
        """
        masks = np.asarray(action_masks, dtype=bool)
        n, n_levels = len(masks), len(offer_levels)
        valid = masks[:, : n_segments * n_levels].reshape(n, n_segments, n_levels)
        preference = offer_level_preference(offer_levels)
        valid_in_order = valid[:, :, preference]
        level = preference[valid_in_order.argmax(axis=2)]
        actions = np.arange(n_segments)[None, :] * n_levels + level
        score = np.take_along_axis(np.asarray(self.score(features), dtype=float), actions, axis=1)
        usable = valid_in_order.any(axis=2) & self._segment_allowed(n_segments)[None] & ~np.isnan(score)
        best = np.argmax(np.where(usable, score, -np.inf), axis=1)
        chosen = actions[np.arange(n), best]
        return np.where(usable.any(axis=1), chosen, masks.shape[1] - 1).astype(np.int64)


class CheapestPerFollowerPolicy(HeuristicPolicy):
    """Offer to the candidate with the lowest offer cost per follower (USD per follower)."""

    reads = ("cost", "followers")

    def score(self, features: dict[str, np.ndarray]) -> np.ndarray:
        return -features["cost"] / features["followers"]


class BestFitPolicy(HeuristicPolicy):
    """Offer to the candidate with the best brand fit (category mix and audience, ``fit``)."""

    reads = ("fit",)

    def score(self, features: dict[str, np.ndarray]) -> np.ndarray:
        return features["fit"]


class BiggestReachPolicy(HeuristicPolicy):
    """Offer to the affordable candidate with the most followers (biggest reach within budget)."""

    reads = ("followers",)

    def score(self, features: dict[str, np.ndarray]) -> np.ndarray:
        return features["followers"]


class BestValuePerDollarPolicy(HeuristicPolicy):
    """Offer to the candidate with the best estimated value per dollar (from observables only)."""

    reads = ("value_per_dollar",)

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
        return np.zeros(np.shape(features["segment"]))

    def _segment_allowed(self, n_segments: int) -> np.ndarray:
        if self.segment >= n_segments:
            raise ValueError(f"segment: expected a segment in [0, {n_segments - 1}], got {self.segment}")
        return np.arange(n_segments) == self.segment
