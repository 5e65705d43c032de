"""agents.tensorboard: one helper gives an SB3 agent and a BaseAgent the same TensorBoard scalars."""

from __future__ import annotations

import pytest

from agents.registry import make_agent
from agents.tensorboard import tensorboard_logger
from envs.matching_env import InfluencerMatchingEnv

pytest.importorskip("tensorboard")


def _scalars(folder) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return set(events.Tags()["scalars"])


@pytest.mark.parametrize(("name", "hyperparameters"), [("ppo", {"n_steps": 64}), ("logistic_bandit", {})])
def test_agents_write_episode_returns_to_tensorboard(tmp_path, name, hyperparameters):
    env = InfluencerMatchingEnv(n_influencers=600, n_segments=3, campaign_weeks=6)
    agent = make_agent(name, env, seed=0, **hyperparameters)
    agent.set_logger(tensorboard_logger(tmp_path, f"{name}_seed0"))
    agent.learn(256, log_interval=1)
    agent.logger.close()
    assert "rollout/ep_rew_mean" in _scalars(tmp_path / f"{name}_seed0")


def test_bad_run_name_is_refused(tmp_path):
    with pytest.raises(ValueError, match="run_name"):
        tensorboard_logger(tmp_path, "../elsewhere")
