"""The single env under the vector APIs every RL library uses: Gymnasium's ``make_vec`` (sync, async),
``SyncVectorEnv`` and ``AsyncVectorEnv``, and Stable-Baselines3's ``make_vec_env`` (``DummyVecEnv``,
``SubprocVecEnv``); and the info contract that makes them work (issue 16)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env

import envs
from envs.matching_env import NO_OFFER, InfluencerMatchingEnv

#: Short campaigns on a small market, so a few dozen steps see waits beside offers and episodes end.
TINY = {"n_influencers": 600, "n_segments": 3, "campaign_weeks": 6, "market_seed": 2}
N_ENVS = 3


def _actions(step: int, masks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sub-env 0 waits on even steps while the others make a random valid offer (or wait if none)."""
    actions = []
    for i, mask in enumerate(masks):
        hires = np.flatnonzero(mask[:-1])
        wait = len(mask) - 1
        if (i == 0 and step % 2 == 0) or not len(hires):
            actions.append(wait)
        else:
            actions.append(int(rng.choice(hires)))
    return np.asarray(actions)


def _check_vector_info(info: dict, n: int, n_actions: int) -> None:
    outcome = info["outcome"]
    assert set(NO_OFFER) <= set(outcome)
    assert outcome["accepted"].dtype == np.bool_ and outcome["accepted"].shape == (n,)
    assert outcome["influencer_id"].shape == (n,)
    assert np.issubdtype(outcome["reach"].dtype, np.integer)
    assert outcome["cost"].dtype == np.float64
    assert info["action_mask"].shape == (n, n_actions) and info["action_mask"].dtype == np.bool_
    assert info["expected_rewards"].shape == (n, n_actions)


def _drive_gymnasium(vec: gym.vector.VectorEnv, steps: int = 40) -> None:
    """Random steps; asserts that waits and offers met in one step and that episodes ended."""
    n_actions = int(vec.single_action_space.n)
    rng = np.random.default_rng(0)
    obs, info = vec.reset(seed=0)
    _check_vector_info(info, vec.num_envs, n_actions)
    mixed = ended = 0
    for step in range(steps):
        actions = _actions(step, info["action_mask"], rng)
        obs, reward, terminated, truncated, info = vec.step(actions)
        assert obs.shape == (vec.num_envs, *vec.single_observation_space.shape)
        assert reward.shape == (vec.num_envs,)
        _check_vector_info(info, vec.num_envs, n_actions)
        waited = actions == n_actions - 1
        mixed += bool(waited.any() and (~waited).any())
        ended += int(np.sum(terminated | truncated))
    assert mixed >= 5 and ended >= vec.num_envs


def test_info_has_the_same_keys_and_types_after_reset_wait_and_offer():
    env = InfluencerMatchingEnv(**TINY)
    _, info = env.reset(seed=1)
    assert info["outcome"] == NO_OFFER
    _, _, _, _, waited = env.step(env.wait_action)
    offer = int(np.flatnonzero(env.action_masks()[:-1])[0])
    _, _, _, _, offered = env.step(offer)
    for step_info in (waited, offered):
        assert step_info.keys() == info.keys()
        for key, value in NO_OFFER.items():
            assert type(step_info["outcome"][key]) is type(value), key
    assert waited["outcome"] == NO_OFFER
    assert offered["outcome"]["influencer_id"] != "" and offered["outcome"]["segment"] >= 0
    waited["outcome"]["cost"] = 1.0  # a copy: the next report is untouched
    assert env.step(env.wait_action)[4]["outcome"] == NO_OFFER


def test_rgb_array_frame_shows_budget_weeks_and_hires():
    env = gym.make(envs.ENV_ID, render_mode="rgb_array", **TINY)
    env.reset(seed=3)
    first = env.render()
    assert isinstance(first, np.ndarray) and first.dtype == np.uint8
    assert first.shape == (4 + 14 * (2 + 3), 168, 3)
    info: dict = {}
    for _ in range(TINY["campaign_weeks"]):
        hires = np.flatnonzero(env.unwrapped.action_masks()[:-1])
        _, _, terminated, truncated, info = env.step(int(hires[0]) if len(hires) else 3 * 3)
        if info["outcome"]["accepted"] or terminated or truncated:
            break
    later = env.render()
    weeks_row = 4 + 14 + 5
    assert (later[weeks_row] != first[weeks_row]).any()  # a week went by
    if info["outcome"]["accepted"]:
        segment_row = 4 + 14 * (2 + info["outcome"]["segment"]) + 5
        assert (later[segment_row] != first[segment_row]).any()


@pytest.mark.parametrize("render_mode", [None, "ansi", "rgb_array"])
def test_gymnasium_checker_through_make(render_mode):
    gym_check_env(gym.make(envs.ENV_ID, render_mode=render_mode, **TINY).unwrapped, skip_render_check=False)


def test_make_vec_sync():
    vec = gym.make_vec(envs.ENV_ID, num_envs=N_ENVS, vectorization_mode="sync", **TINY)
    _drive_gymnasium(vec)
    vec.close()


def test_sync_vector_env():
    vec = gym.vector.SyncVectorEnv([lambda: gym.make(envs.ENV_ID, **TINY)] * N_ENVS)
    _drive_gymnasium(vec)
    vec.close()


@pytest.mark.slow
def test_make_vec_async():
    vec = gym.make_vec(envs.ENV_ID, num_envs=N_ENVS, vectorization_mode="async", **TINY)
    _drive_gymnasium(vec)
    vec.close()


@pytest.mark.slow
def test_async_vector_env():
    vec = gym.vector.AsyncVectorEnv([lambda: gym.make(envs.ENV_ID_V0, **TINY)] * N_ENVS)
    _drive_gymnasium(vec)
    vec.close()


def _drive_sb3(vec, steps: int = 40) -> None:
    n_actions = int(vec.action_space.n)
    rng = np.random.default_rng(0)
    vec.seed(0)
    obs = vec.reset()
    masks = np.stack(vec.env_method("action_masks"))
    mixed = ended = 0
    for step in range(steps):
        actions = _actions(step, masks, rng)
        obs, reward, done, infos = vec.step(actions)
        assert obs.shape == (vec.num_envs, *vec.observation_space.shape) and reward.shape == (vec.num_envs,)
        for info, finished in zip(infos, done, strict=True):
            assert set(NO_OFFER) <= set(info["outcome"])
            assert ("terminal_observation" in info) == bool(finished)
        masks = np.stack(vec.env_method("action_masks"))
        waited = actions == n_actions - 1
        mixed += bool(waited.any() and (~waited).any())
        ended += int(done.sum())
    assert mixed >= 5 and ended >= vec.num_envs


def _ppo_steps(vec) -> None:
    from stable_baselines3 import PPO
    from stable_baselines3.common.logger import Logger

    model = PPO("MlpPolicy", vec, n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.set_logger(Logger(folder=None, output_formats=[]))  # SB3's default leaves a /tmp/SB3-<date>/
    model.learn(256)
    assert model.num_timesteps >= 256


def test_sb3_make_vec_env_dummy():
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv

    vec = make_vec_env(envs.ENV_ID, n_envs=2, env_kwargs=TINY, vec_env_cls=DummyVecEnv)
    assert vec.get_attr("render_mode") == ["rgb_array", "rgb_array"]  # what make_vec_env passes
    _drive_sb3(vec)
    _ppo_steps(vec)
    vec.close()


@pytest.mark.slow
def test_sb3_make_vec_env_subproc():
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv

    # SB3 starts workers with forkserver: a worker imports the main module (a script that imports envs
    # registers the ids there) but not pytest's, so the id names the module that registers it.
    vec = make_vec_env(f"envs:{envs.ENV_ID}", n_envs=2, env_kwargs=TINY, vec_env_cls=SubprocVecEnv)
    _drive_sb3(vec)
    _ppo_steps(vec)
    vec.close()
