"""Fixtures shared by the experiment tests (builders live in tests/experiments/helpers.py)."""

from __future__ import annotations

import pytest

from envs.matching_env import InfluencerMatchingEnv
from tests.experiments.helpers import ENV_OPTIONS


@pytest.fixture(scope="module")
def env() -> InfluencerMatchingEnv:
    """A small market (2,000 influencers, 4 segments, 6-week campaigns), one per test module."""
    return InfluencerMatchingEnv(**ENV_OPTIONS)
