"""The native vector env (envs.vector): each sub-env plays exactly the single env's campaign with the
matching seed, through autoresets, in both autoreset modes; batched masks and expected rewards; the info
layout of SyncVectorEnv."""

from __future__ import annotations

import gymnasium as gym
import numba
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import envs
from envs.matching_env import NO_OFFER, InfluencerMatchingEnv
from envs.vector import InfluencerMatchingVectorEnv

#: Short campaigns, churn and (for v1) a launch and a deadline: many autoresets, refills and calendar effects.
OPTIONS = {"n_influencers": 1_500, "n_segments": 4, "campaign_weeks": 7, "churn_rate": 0.02, "market_seed": 3}
N = 3


def _singles(env_id: str, seed: int, **options) -> list[gym.Env]:
    singles = [gym.make(env_id, **{**OPTIONS, **options}).unwrapped for _ in range(N)]
    for i, single in enumerate(singles):
        single.reset(seed=seed + i)
    return singles


def _outcome_row(outcome: dict, i: int) -> dict:
    return {key: outcome[key][i].item() if key != "influencer_id" else outcome[key][i] for key in NO_OFFER}


def _policy_actions(rng: np.random.Generator, masks: np.ndarray, step: int) -> np.ndarray:
    """Random valid actions, with a wait every third step and an invalid one every seventh."""
    actions = np.array([int(rng.choice(np.flatnonzero(mask))) for mask in masks])
    if step % 3 == 0:
        actions[0] = masks.shape[1] - 1
    if step % 7 == 0 and not masks[1].all():
        actions[1] = int(np.flatnonzero(~masks[1])[0])
    return actions


@pytest.mark.parametrize("values", ["where-read", "where-read-past-the-scan-table", "every-value"])
@pytest.mark.parametrize(
    ("env_id", "extra"), [(envs.ENV_ID_V0, {}), (envs.ENV_ID, {"launch_week": 1, "deadline_week": 3})]
)
def test_every_sub_env_follows_the_single_env_with_the_matching_seed(env_id, extra, values):
    vec = gym.make_vec(env_id, num_envs=N, vectorization_mode="vector_entry_point", **OPTIONS, **extra)
    assert isinstance(vec.unwrapped, InfluencerMatchingVectorEnv)
    lazy = values != "every-value"
    if lazy and not vec.unwrapped._lazy:
        pytest.skip("this BLAS sums the audience product in an order envs._vector_kernels does not write out")
    vec.unwrapped._lazy = lazy  # False: every value computed at each reset (the path for any other BLAS)
    if values == "where-read-past-the-scan-table":  # the ranking's scans read on in the market's arrays
        unwrapped = vec.unwrapped
        shallow = unwrapped._scan_table(unwrapped._values[3], 2)
        unwrapped._lazy_arrays = (*unwrapped._lazy_arrays[:-1], shallow)
    assert vec.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    ended, offers = _follow(vec, _singles(env_id, 40, **extra), 40, 90)
    assert ended >= 2 * N and offers >= 30


def test_campaigns_too_long_for_weeks_in_a_byte_follow_the_single_env():
    """From 127 weeks a week does not fit a byte: the join and leave rows are then int16, and every sub-env
    still plays the single env's campaign."""
    long = {"campaign_weeks": 130, "churn_rate": 0.005}
    vec = InfluencerMatchingVectorEnv(N, **{**OPTIONS, **long}, dynamics="v1")  # as gym.make(envs.ENV_ID)
    assert vec._join.dtype == vec._leave.dtype == np.int16
    _, offers = _follow(vec, _singles(envs.ENV_ID, 3, **long), 3, 40)
    assert offers >= 20


def _follow(vec, singles: list, seed: int, steps: int, options: dict | None = None) -> tuple[int, int]:
    """Step ``vec`` (NEXT_STEP autoresets) and ``singles`` (reset with ``seed + i``) with the same random
    actions, asserting every observation, reward, end, mask, expected reward and outcome equal; returns
    the campaigns ended and the offers made."""
    obs, info = vec.reset(seed=seed, options=options)
    for i, single in enumerate(singles):
        assert np.array_equal(obs[i], single._state.observation)
    rng, restart, ended, offers = np.random.default_rng(1), [False] * N, 0, 0
    for step in range(steps):
        actions = _policy_actions(rng, info["action_mask"], step)
        obs, reward, terminated, truncated, info = vec.step(actions)
        features = vec.unwrapped.candidate_features()
        assert np.array_equal(vec.unwrapped.action_masks(), info["action_mask"])
        assert vec.unwrapped.action_masks().shape == (N, singles[0].action_space.n)
        for i, single in enumerate(singles):
            if restart[i]:  # NEXT_STEP: the step after the end resets, ignoring the action
                o, single_info = single.reset()
                r, term, trunc = 0.0, False, False
            else:
                o, r, term, trunc, single_info = single.step(int(actions[i]))
            restart[i] = term or trunc
            assert np.array_equal(obs[i], o), (step, i)
            assert (reward[i], terminated[i], truncated[i]) == (r, term, trunc), (step, i)
            assert np.array_equal(info["action_mask"][i], single_info["action_mask"])
            assert np.array_equal(info["expected_rewards"][i], single_info["expected_rewards"])
            assert _outcome_row(info["outcome"], i) == single_info["outcome"], (step, i)
            for key, values in single.candidate_features().items():
                np.testing.assert_array_equal(
                    features[key][i], values, err_msg=f"{key}, step {step}, row {i}"
                )
            view = vec.unwrapped.sub_env(i)  # what an offer recorder reads of the sub-env
            assert view.campaign is vec.unwrapped.campaigns[i]
            for key, value in single.campaign.__dict__.items():
                np.testing.assert_array_equal(getattr(view.campaign, key), value, err_msg=key)
            assert (view.candidate_ids(), view.hired_ids()) == (single.candidate_ids(), single.hired_ids())
            everyone = np.arange(len(single.pool))
            np.testing.assert_array_equal(
                view.sponsored_load_now(everyone), single.sponsored_load_now(everyone)
            )
            ended += term or trunc
            offers += single_info["outcome"]["influencer_id"] != ""
    return ended, offers


def test_given_campaigns_start_as_in_the_single_env():
    """``reset(options={"campaigns": ...})`` plays each given campaign as the single env's
    ``reset(options={"campaign": ...})`` does (None: drawn); autoresets draw their own again."""
    from envs.campaigns import sample_campaign

    vec = InfluencerMatchingVectorEnv(N, **OPTIONS, dynamics="v1")
    rng = np.random.default_rng(8)
    given = [sample_campaign(rng, vec.env.calibration), None, sample_campaign(rng, vec.env.calibration)]
    singles = [gym.make(envs.ENV_ID, **OPTIONS).unwrapped for _ in range(N)]
    for i, single in enumerate(singles):
        single.reset(seed=11 + i, options=None if given[i] is None else {"campaign": given[i]})
    vec.reset(seed=11, options={"campaigns": given})
    assert vec.campaigns[0] is given[0] and vec.campaigns[2] is given[2] and vec.campaigns[1] is not None
    _follow(vec, singles, 11, 20, options={"campaigns": given})
    for bad in (given[:2], 5, "abc", [given[0], None, "campaign"]):
        with pytest.raises(ValueError, match=r"options\['campaigns'\]: expected a list of 3"):
            vec.reset(seed=1, options={"campaigns": bad})
    with pytest.raises(ValueError, match="takes only 'campaigns'"):
        vec.reset(seed=1, options={"campaign": given[0]})
    every = vec.candidate_features()
    some = vec.candidate_features(["value_per_dollar", "cost"])
    assert list(some) == ["cost", "value_per_dollar"]  # in the single env's order
    np.testing.assert_array_equal(some["cost"], every["cost"])
    assert list(vec.candidate_features("fit")) == ["fit"]
    with pytest.raises(ValueError, match=r"fields: expected some of .*got \['shoe size'\]"):
        vec.candidate_features(["shoe size"])


def test_same_step_autoreset_reports_the_final_observation_and_info():
    vec = InfluencerMatchingVectorEnv(N, autoreset_mode="SameStep", **OPTIONS, dynamics="v1")
    assert vec.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    obs, info = vec.reset(seed=[5, 9, 2])
    singles = [InfluencerMatchingEnv(**OPTIONS, dynamics="v1") for _ in range(N)]
    for single, seed in zip(singles, [5, 9, 2], strict=True):
        single.reset(seed=seed)
    rng, ended = np.random.default_rng(2), 0
    for step in range(40):
        actions = _policy_actions(rng, info["action_mask"], step)
        obs, reward, terminated, truncated, info = vec.step(actions)
        for i, single in enumerate(singles):
            o, r, term, trunc, single_info = single.step(int(actions[i]))
            assert (reward[i], terminated[i], truncated[i]) == (r, term, trunc)
            if term or trunc:
                ended += 1
                assert info["_final_obs"][i] and np.array_equal(info["final_obs"][i], o)
                assert np.array_equal(
                    info["final_info"]["expected_rewards"][i], single_info["expected_rewards"]
                )
                assert _outcome_row(info["final_info"]["outcome"], i) == single_info["outcome"]
                o, single_info = single.reset()
                assert _outcome_row(info["outcome"], i) == NO_OFFER
            else:
                assert "_final_obs" not in info or not info["_final_obs"][i]
            assert np.array_equal(obs[i], o)
            assert np.array_equal(info["action_mask"][i], single_info["action_mask"])
    assert ended >= N


def test_info_has_sync_vector_envs_layout():
    native = gym.make_vec(envs.ENV_ID, num_envs=2, vectorization_mode="vector_entry_point", **OPTIONS)
    sync = gym.make_vec(envs.ENV_ID, num_envs=2, vectorization_mode="sync", **OPTIONS)
    (obs_a, info_a), (obs_b, info_b) = native.reset(seed=0), sync.reset(seed=0)
    assert np.array_equal(obs_a, obs_b) and info_a.keys() == info_b.keys()
    assert info_a["outcome"].keys() == info_b["outcome"].keys()
    for key, value in info_b["outcome"].items():
        assert info_a["outcome"][key].dtype == value.dtype, key
    step_a, step_b = native.step(np.array([0, 12])), sync.step(np.array([0, 12]))
    for a, b in zip(step_a[:4], step_b[:4], strict=True):
        assert np.array_equal(a, b)
    assert np.array_equal(step_a[4]["expected_rewards"], step_b[4]["expected_rewards"])


def test_seeding_repeats_and_unseeded_resets_continue():
    vec = InfluencerMatchingVectorEnv(2, **OPTIONS)
    first, _ = vec.reset(seed=7)
    again, _ = vec.reset(seed=7)
    assert np.array_equal(first, again)
    single = InfluencerMatchingEnv(**OPTIONS)
    single.reset(seed=8)
    later, _ = vec.reset()
    assert np.array_equal(later[1], single.reset()[0])  # sub-env 1 continues seed 8's stream
    with pytest.raises(ValueError, match="seed"):
        vec.reset(seed=[1, 2, 3])


@pytest.mark.slow  # compiling the parallel kernels takes about 50 s on a cold cache
@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="numba has one thread here")
@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_threads_give_the_numbers_of_one_thread(mode):
    """Rows shared among threads are stepped and restarted by the same code from their own generators: every
    observation, reward, flag and info entry is the one-thread run's, through many autoresets."""
    runs = [InfluencerMatchingVectorEnv(9, num_threads=t, autoreset_mode=mode, **OPTIONS) for t in (1, 2)]
    assert [run.num_threads for run in runs] == [1, 2]
    first = [run.reset(seed=11) for run in runs]
    assert np.array_equal(first[0][0], first[1][0])
    rng, ended = np.random.default_rng(5), 0
    for step in range(40):
        actions = _policy_actions(rng, runs[0].action_masks(), step)
        (obs, reward, terminated, truncated, info), (obs2, reward2, terminated2, truncated2, info2) = (
            run.step(actions) for run in runs
        )
        for mine, theirs in [
            (obs, obs2),
            (reward, reward2),
            (terminated, terminated2),
            (truncated, truncated2),
        ]:
            assert np.array_equal(mine, theirs)
        for key in ("action_mask", "expected_rewards"):
            assert np.array_equal(info[key], info2[key])
        for key, value in info["outcome"].items():
            assert np.array_equal(value, info2["outcome"][key]), key
        if mode == AutoresetMode.SAME_STEP and "final_obs" in info:
            for i in np.flatnonzero(info["_final_obs"]):
                assert np.array_equal(info["final_obs"][i], info2["final_obs"][i])
        ended += int((terminated | truncated).sum())
    assert ended >= 3 * 9  # campaigns of 7 weeks: every row restarted several times


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="num_envs"):
        InfluencerMatchingVectorEnv(0, **OPTIONS)
    for bad in (0, 1.5, True, numba.config.NUMBA_NUM_THREADS + 1):
        with pytest.raises(ValueError, match="num_threads"):
            InfluencerMatchingVectorEnv(2, num_threads=bad, **OPTIONS)
    with pytest.raises(ValueError, match="autoreset_mode"):
        InfluencerMatchingVectorEnv(2, autoreset_mode="Disabled", **OPTIONS)
    with pytest.raises(ValueError, match="persistent_market"):
        InfluencerMatchingVectorEnv(2, persistent_market=True, **OPTIONS)
    vec = InfluencerMatchingVectorEnv(2, **OPTIONS)
    with pytest.raises(RuntimeError, match="reset"):
        vec.step(np.array([0, 0]))
    vec.reset(seed=0)
    with pytest.raises(ValueError, match="actions"):
        vec.step(np.array([0, 99]))
    with pytest.raises(ValueError, match="actions"):
        vec.step(np.array([0]))


def test_render_gives_one_frame_per_sub_env():
    vec = InfluencerMatchingVectorEnv(2, render_mode="rgb_array", **OPTIONS)
    vec.reset(seed=0)
    vec.step(np.array([0, 12]))
    frames = vec.render()
    single = InfluencerMatchingEnv(render_mode="rgb_array", **OPTIONS)
    single.reset(seed=0)
    single.step(0)
    assert frames is not None and len(frames) == 2 and np.array_equal(frames[0], single.render())


def test_sub_env_is_refused_before_a_reset_and_out_of_range():
    vec = InfluencerMatchingVectorEnv(N, **OPTIONS)
    with pytest.raises(RuntimeError, match="reset"):
        vec.sub_env(0)
    vec.reset(seed=0)
    with pytest.raises(IndexError, match=r"sub_env: expected an index in \[0, 3\)"):
        vec.sub_env(N)
