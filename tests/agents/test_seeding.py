import gymnasium as gym
import numpy as np

from agents.cqi import CQI
from agents.seeding import seed_streams


def test_agent_and_env_streams_are_independent_and_reproducible():
    rng, env_seed = seed_streams(7)
    again, env_seed_again = seed_streams(7)
    assert env_seed == env_seed_again and rng.random() == again.random()
    # Neither stream is the one a plain seed of 7 would give the env (the old defect: one shared stream).
    plain = np.random.default_rng(7).random(5)
    assert not np.allclose(seed_streams(7)[0].random(5), plain)
    env = gym.make("CartPole-v1")
    env.reset(seed=env_seed)
    assert not np.allclose(env.unwrapped.np_random.random(5), plain)
    assert seed_streams(None)[1] is None


def test_cqi_explores_on_its_own_stream():
    env = gym.make("CartPole-v1")
    agent = CQI(env, seed=3)
    env.reset(seed=3)
    assert agent._rng.random() != env.unwrapped.np_random.random()
