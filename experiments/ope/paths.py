"""A policy's expected value on given campaigns, from several simulated paths per campaign.

A campaign's value under a policy, ``sum_t sum_a pi(a|x_t) q(x_t, a)`` along one simulated path, still
depends on the path: who accepted, what the budget then allowed, the pool's churn. On these markets a
few campaigns (brands that value an engagement highly and pay for the largest accounts) carry most of
the value and most of this path noise: one path per campaign leaves the mean of 3,000 campaigns about
10-20 % from its expectation (measured on ``best_fit``, uniform logs of 3,000 campaigns).

:func:`campaign_values` estimates each campaign's expected value with paths allocated where the noise
is: a **pilot** path per campaign is used only to allocate (so the allocation does not bias the
estimate), then every campaign gets ``r_c >= 1`` fresh paths with ``r_c`` proportional to its pilot's
magnitude (Neyman allocation with the value as a proxy of its spread), ``n_paths`` per campaign on
average. The value of a campaign is the mean of its fresh paths; the path variance ``s_c^2`` comes from
its fresh paths (``r_c >= 2``) or from the pilot and the fresh path, which are independent given the
campaign (``r_c = 1``). The standard error of the mean over campaigns is ``sqrt(sum_c s_c^2 / r_c) / C``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from experiments.ope.generation import rollouts
from experiments.ope.policies import StochasticPolicy

__all__ = ["CampaignValues", "allocate_paths", "campaign_values", "path_values"]

#: Most fresh paths one campaign is given.
MAX_PATHS = 64


@dataclasses.dataclass(frozen=True, eq=False)
class CampaignValues:
    """Per-campaign expected values from repeated paths.

    Attributes
    ----------
    value : numpy.ndarray, shape (C,)
        Mean over the campaign's fresh paths (thousands of USD).
    path_variance : numpy.ndarray, shape (C,)
        Estimated variance of one path's value around the campaign's expected value.
    paths : numpy.ndarray, shape (C,)
        Fresh paths of each campaign.
    by_segment : numpy.ndarray or None, shape (C, S + 1)
        With ``segments``: the part of ``value`` from each segment's actions (last column: waiting).
    steps : dict of str to numpy.ndarray
        Every decision of the fresh paths (``campaign``, ``path``, ``context``, ``step``, ``action``,
        ``probabilities``, ``expected_rewards``).
    """

    value: np.ndarray
    path_variance: np.ndarray
    paths: np.ndarray
    by_segment: np.ndarray | None
    steps: dict[str, np.ndarray]

    def std_error(self, member: np.ndarray | None = None) -> float:
        """Path-noise standard error of the mean value over the campaigns with ``member > 0``."""
        keep = np.ones(len(self.value), bool) if member is None else np.asarray(member) > 0
        n = int(keep.sum())
        if n == 0:
            return math.nan
        return float(math.sqrt(float((self.path_variance[keep] / self.paths[keep]).sum())) / n)


def allocate_paths(pilot: np.ndarray, n_paths: float) -> np.ndarray:
    """Fresh paths per campaign: at least one each, ``n_paths`` per campaign on average, the rest in
    proportion to ``|pilot|`` (largest remainders rounded up; at most :data:`MAX_PATHS`)."""
    C = len(pilot)
    total = max(C, int(round(n_paths * C)))
    size = np.abs(np.asarray(pilot, dtype=float))
    paths = np.ones(C, dtype=np.int64)
    extra = total - C
    if extra > 0 and size.sum() > 0:
        ideal = extra * size / size.sum()
        whole = np.floor(ideal).astype(np.int64)
        short = extra - int(whole.sum())  # largest remainders first, ties by position
        whole[np.argsort(-(ideal - whole), kind="stable")[:short]] += 1
        paths += np.minimum(whole, MAX_PATHS - 1)
    return paths


def path_values(
    env: Any,
    policy: StochasticPolicy,
    campaigns: Sequence[Any],
    reset_seeds: Sequence[int],
    streams: Sequence[np.random.SeedSequence],
    segments: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None, dict[str, np.ndarray]]:
    """One path of each campaign (``campaigns[k]`` reset with ``reset_seeds[k]``, actions drawn from
    ``streams[k]``): its value, with ``segments`` its value by segment, and the decisions."""
    from experiments.ope.estimators import segment_order

    sim = rollouts(env, policy, list(reset_seeds), list(streams), expected=True, outcomes=False,
                   campaigns=list(campaigns))  # fmt: skip
    per_step = sim["probabilities"] * sim["expected_rewards"]
    n = len(campaigns)
    value = np.bincount(sim["campaign"], weights=per_step.sum(axis=1), minlength=n)
    by_segment = None
    if segments is not None:
        cols = [per_step[:, segments == s].sum(axis=1) for s in segment_order(segments)]
        by_segment = np.stack([np.bincount(sim["campaign"], weights=c, minlength=n) for c in cols], axis=1)
    return value, by_segment, sim


def campaign_values(
    env: Any,
    policy: StochasticPolicy,
    campaigns: Sequence[Any] | Callable[[np.ndarray], Sequence[Any]],
    pilot: np.ndarray,
    n_paths: float,
    seed: np.random.SeedSequence,
    *,
    pilot_paths: np.ndarray | None = None,
    segments: np.ndarray | None = None,
    keep_steps: bool = False,
) -> CampaignValues:
    """Every campaign's expected value under ``policy`` in ``env`` from fresh paths allocated by the
    ``pilot`` values (see the module docstring); ``pilot_paths`` (default ones) is the number of paths
    the pilot value of each campaign averages, for the variance of campaigns given one fresh path.
    ``campaigns`` may be a function of the paths' campaign indices giving one campaign per path (for
    fields drawn anew on every path)."""
    C = len(pilot)
    paths = allocate_paths(pilot, n_paths)
    index = np.repeat(np.arange(C), paths)
    reset_stream, draw_stream = seed.spawn(2)
    reset_seeds = np.random.default_rng(reset_stream).integers(0, 2**31 - 1, size=len(index)).tolist()
    streams = draw_stream.spawn(len(index))
    chosen = campaigns(index) if callable(campaigns) else [campaigns[int(c)] for c in index]
    value, by_segment, sim = path_values(env, policy, chosen, reset_seeds, streams, segments)
    counts = paths.astype(float)
    mean = np.bincount(index, weights=value, minlength=C) / counts
    squares = np.bincount(index, weights=(value - mean[index]) ** 2, minlength=C)
    pilot_n = np.ones(C) if pilot_paths is None else np.asarray(pilot_paths, dtype=float)
    # One fresh path: the pilot is an independent path of the same campaign (a mean of pilot_n paths).
    single = (np.asarray(pilot, dtype=float) - mean) ** 2 / (1.0 + 1.0 / pilot_n)
    variance = np.where(paths >= 2, squares / np.maximum(counts - 1, 1), single)
    by_mean = None
    if by_segment is not None:
        by_mean = (
            np.stack(
                [
                    np.bincount(index, weights=by_segment[:, j], minlength=C)
                    for j in range(by_segment.shape[1])
                ],
                axis=1,
            )
            / counts[:, None]
        )
    steps: dict[str, np.ndarray] = {}
    if keep_steps:
        steps = {"campaign": index[sim["campaign"]], "path": sim["campaign"], "context": sim["context"],
                 "step": sim["step"], "action": sim["action"], "probabilities": sim["probabilities"],
                 "expected_rewards": sim["expected_rewards"]}  # fmt: skip
    return CampaignValues(mean, variance, paths, by_mean, steps)
