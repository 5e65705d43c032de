"""One seed, two independent random streams: the agent's own draws and the environment's resets."""

from __future__ import annotations

import numpy as np


def seed_streams(seed: int | None) -> tuple[np.random.Generator, int | None]:
    """The agent's generator and the seed for its first ``env.reset``, both derived from ``seed``.

    Seeding both with the same integer would make them the *same* stream (gymnasium seeds an env's
    ``np_random`` exactly as ``np.random.default_rng`` does), so an agent's exploration draws would
    replay the environment's draws. ``SeedSequence.spawn`` gives two independent children instead.
    ``seed=None``: fresh entropy for the agent, and an unseeded reset.
    """
    if seed is None:
        return np.random.default_rng(), None
    agent, env = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(agent), int(env.generate_state(1)[0])
