"""agents.vec_env: the native vector env as an SB3 VecEnv (SB3's autoreset and info conventions, masks
for MaskablePPO), the same campaigns as DummyVecEnv of single envs, and make_sb3's n_envs."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from agents.sb3 import make_sb3
from agents.vec_env import InfluencerMatchingVecEnv
from envs.matching_env import NO_OFFER, InfluencerMatchingEnv

OPTIONS = {"n_influencers": 800, "n_segments": 3, "campaign_weeks": 6, "market_seed": 4, "dynamics": "v1"}


@pytest.fixture(scope="module")
def single() -> InfluencerMatchingEnv:
    return InfluencerMatchingEnv(**OPTIONS)


def test_steps_like_dummy_vec_env_of_single_envs(single):
    native = InfluencerMatchingVecEnv(3, env=single)
    dummy = DummyVecEnv([lambda: InfluencerMatchingEnv(**OPTIONS)] * 3)
    native.seed(11)
    dummy.seed(11)
    assert np.array_equal(native.reset(), dummy.reset())
    rng, ended = np.random.default_rng(0), 0
    for _ in range(40):
        masks = np.stack(native.env_method("action_masks"))
        assert np.array_equal(masks, np.stack(dummy.env_method("action_masks")))
        actions = np.array([int(rng.choice(np.flatnonzero(m))) for m in masks])
        obs_a, rew_a, done_a, infos_a = native.step(actions)
        obs_b, rew_b, done_b, infos_b = dummy.step(actions)
        assert (
            np.array_equal(obs_a, obs_b) and np.array_equal(rew_a, rew_b) and np.array_equal(done_a, done_b)
        )
        assert rew_a.dtype == np.float32
        for a, b in zip(infos_a, infos_b, strict=True):
            assert a["outcome"] == b["outcome"] and a["outcome"].keys() == NO_OFFER.keys()
            assert np.array_equal(a["expected_rewards"], b["expected_rewards"])
            assert a.get("TimeLimit.truncated") == b.get("TimeLimit.truncated")
            if "terminal_observation" in b:
                assert np.array_equal(a["terminal_observation"], b["terminal_observation"])
                ended += 1
            else:
                assert "terminal_observation" not in a
    assert ended >= 3


def test_masks_and_attributes_for_maskable_ppo(single):
    from sb3_contrib.common.maskable.utils import get_action_masks, is_masking_supported

    venv = InfluencerMatchingVecEnv(2, env=single)
    venv.seed(0)
    venv.reset()
    assert is_masking_supported(venv)
    assert get_action_masks(venv).shape == (2, single.action_space.n)
    assert venv.get_attr("action_names") == [single.action_names] * 2
    assert [c.budget for c in venv.get_attr("campaign")] == list(venv.vector_env.budget_left)
    assert venv.env_method("expected_rewards", indices=[1])[0].shape == (single.action_space.n,)
    assert venv.env_is_wrapped(Monitor) == [False, False]
    with pytest.raises(AttributeError, match="env_method"):
        venv.env_method("candidate_ids")
    with pytest.raises(AttributeError, match="set_attr"):
        venv.set_attr("week", 3)


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["ppo", "a2c", "dqn", "maskable_ppo"])
def test_every_sb3_algorithm_trains_on_the_native_vector_env(single, algorithm):
    small = {"ppo": {"n_steps": 32}, "maskable_ppo": {"n_steps": 32}, "a2c": {"n_steps": 8},
             "dqn": {"learning_starts": 64, "buffer_size": 2_000}}[algorithm]  # fmt: skip
    agent = make_sb3(algorithm, single, seed=0, n_envs=4, **small)
    assert isinstance(agent.get_env().unwrapped, InfluencerMatchingVecEnv)
    agent.learn(512)
    assert agent.num_timesteps >= 512 and len(agent.ep_info_buffer) > 0  # VecMonitor's episode returns
    obs = single.reset(seed=1)[0]
    action, _ = agent.predict(obs, deterministic=True)
    assert 0 <= int(action) < single.action_space.n


def test_n_envs_1_is_the_single_env_path_byte_for_byte(single, tmp_path):
    import copy

    import torch

    default = make_sb3("ppo", copy.deepcopy(single), seed=3, n_steps=64).learn(128)
    explicit = make_sb3("ppo", copy.deepcopy(single), seed=3, n_steps=64, n_envs=1).learn(128)
    assert isinstance(explicit.get_env(), DummyVecEnv)
    for a, b in zip(default.model.policy.parameters(), explicit.model.policy.parameters(), strict=True):
        assert torch.equal(a, b)
    explicit.save(tmp_path / "model.zip")
    with zipfile.ZipFile(tmp_path / "model.zip") as archive:
        assert "n_envs" not in json.loads(archive.read("influmatch.json"))["wrapper"]
    with pytest.raises(ValueError, match="n_envs"):
        make_sb3("ppo", single, n_envs=0)
