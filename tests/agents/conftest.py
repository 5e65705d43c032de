"""Shared builders of the agent tests: one small influmatch market, copies of it, an evaluator."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from envs.matching_env import InfluencerMatchingEnv
from experiments.evaluation import Evaluator

#: A small market: 2,000 influencers in 4 segments (fast to build, still every mechanism of the env).
SMALL = {"n_influencers": 2_000, "n_segments": 4, "market_seed": 0}


@pytest.fixture(scope="session")
def market() -> InfluencerMatchingEnv:
    """The small market, shared by every test: do not step it, step a copy (``env``)."""
    return InfluencerMatchingEnv(**SMALL)


@pytest.fixture()
def env(market) -> InfluencerMatchingEnv:
    """An independent copy of the shared market."""
    return copy.deepcopy(market)


@pytest.fixture(scope="session")
def evaluator(market) -> Evaluator:
    """100 evaluation campaigns on the small market (seed 0)."""
    return Evaluator(market, seed=0, n_episodes=100)


def play(policy, env, seed: int, steps: int = 80) -> list[int]:
    """Actions of ``policy`` over ``steps`` steps of ``env``, checking each is valid when taken."""
    obs, info = env.reset(seed=seed)
    actions = []
    for _ in range(steps):
        action, state = policy.predict(obs, action_masks=info["action_mask"])
        assert state is None and np.shape(action) == ()
        assert info["action_mask"][int(action)], f"{type(policy).__name__} chose a masked action"
        actions.append(int(action))
        obs, _, terminated, truncated, info = env.step(int(action))
        if terminated or truncated:
            obs, info = env.reset()
    return actions
