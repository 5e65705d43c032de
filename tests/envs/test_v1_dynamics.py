"""InfluencerMatching-v1: the calendar moves acceptance, prices, conversions and value in the documented
directions; the compiled path agrees with the numpy reference; v0 is unchanged byte for byte."""

from __future__ import annotations

import dataclasses
import hashlib

import gymnasium as gym
import numpy as np
import pytest

import envs
from envs.calibration import CATEGORIES, Calibration
from envs.campaigns import sample_campaign
from envs.matching_env import NO_OFFER, InfluencerMatchingEnv

SMALL = {"n_influencers": 1_500, "n_segments": 4}


@pytest.fixture(scope="module")
def v1():
    return InfluencerMatchingEnv(**SMALL, dynamics="v1", churn_rate=0.0)


@pytest.fixture(scope="module")
def v0():
    return InfluencerMatchingEnv(**SMALL, dynamics="v0", churn_rate=0.0)


def _campaign(category: str, month: int, goal: int = 2, seed: int = 4):
    base = sample_campaign(np.random.default_rng(seed))
    return dataclasses.replace(
        base, category=CATEGORIES.index(category), goal=goal, budget=1e6, start_month=month
    )


def _outcomes(env, campaign):
    env.reset(seed=0, options={"campaign": campaign})
    return env.expected_outcomes()


def test_both_versions_are_registered_and_v1_is_the_default_id():
    assert envs.ENV_ID == "influmatch/InfluencerMatching-v1"
    assert gym.spec("influmatch/InfluencerMatching-v1").kwargs["dynamics"] == "v1"
    assert gym.spec("influmatch/InfluencerMatching-v0").kwargs["dynamics"] == "v0"


def test_v0_rollouts_are_unchanged_byte_for_byte():
    """3,000 random valid steps on the default v0 env hash to the digest recorded before v1 existed.

    The outcome of a step without an offer is hashed as ``None``, as v0 reported it before the info
    contract of issue 16 (now :data:`envs.matching_env.NO_OFFER`): observations, rewards, expected
    rewards and the outcomes of offers are unchanged byte for byte.

    The bits depend on the CPU: numpy's SIMD exp and log and OpenBLAS's kernels round differently with
    AVX-512 than with AVX2 only. The first digest was recorded on an AVX-512 machine; the second on an
    AVX2-only one (an AMD EPYC), where the code of the commit before this test's change gives it too."""
    env = gym.make("influmatch/InfluencerMatching-v0")
    digest, rng = hashlib.sha256(), np.random.default_rng(0)
    obs, info = env.reset(seed=0)
    for _ in range(3_000):
        obs, reward, terminated, truncated, info = env.step(
            int(rng.choice(np.flatnonzero(info["action_mask"])))
        )
        digest.update(obs.tobytes())
        digest.update(np.float64(reward).tobytes())
        digest.update(info["expected_rewards"].tobytes())
        outcome = None if info["outcome"] == NO_OFFER else info["outcome"]
        digest.update(repr(outcome).encode())
        if terminated or truncated:
            obs, info = env.reset()
    from numpy._core._multiarray_umath import __cpu_features__

    expected = "3def04f6de8412a5" if __cpu_features__.get("AVX512F") else "fe908afe2ac03f04"
    assert digest.hexdigest()[:16] == expected


def test_fitness_demand_peaks_in_january(v1, v0):
    """Conversions of the same candidates: January over July is the demand ratio times the month ratio."""
    cal = Calibration()
    row = cal.category_month_demand[CATEGORIES.index("fitness")]
    jan, jul = _outcomes(v1, _campaign("fitness", 0)), _outcomes(v1, _campaign("fitness", 6))
    ok = (jan["cost"] > 0) & (jul["cost"] > 0)
    expected = row[0] / row[6] * cal.month_conversion[0] / cal.month_conversion[6]
    np.testing.assert_allclose(jan["conversions"][ok] / jul["conversions"][ok], expected, rtol=1e-9)
    # In v0 the category does not matter: only the calendar's month_conversion.
    jan0, jul0 = _outcomes(v0, _campaign("fitness", 0)), _outcomes(v0, _campaign("fitness", 6))
    ok0 = (jan0["cost"] > 0) & (jul0["cost"] > 0)
    np.testing.assert_allclose(
        jan0["conversions"][ok0] / jul0["conversions"][ok0], cal.month_conversion[0] / cal.month_conversion[6]
    )


@pytest.mark.parametrize("goal", [0, 1])
def test_demand_scales_the_value_of_reach_and_engagement(v1, goal):
    travel = CATEGORIES.index("travel")
    row = Calibration().category_month_demand[travel]
    feb = _outcomes(v1, _campaign("travel", 1, goal=goal))
    nov = _outcomes(v1, _campaign("travel", 10, goal=goal))
    ok = (feb["cost"] > 0) & (nov["cost"] > 0)
    ratio = (feb["value"][ok] / feb["reach" if goal == 0 else "engagements"][ok]) / (
        nov["value"][ok] / nov["reach" if goal == 0 else "engagements"][ok]
    )
    np.testing.assert_allclose(ratio, row[1] / row[10], rtol=1e-9)


def test_creators_book_up_ahead_of_the_holidays(v1, v0):
    """October: v1 refuses more and charges more than v0 (v0 has no October effect); January is slack."""
    oct1, oct0 = _outcomes(v1, _campaign("beauty", 9)), _outcomes(v0, _campaign("beauty", 9))
    ok = (oct1["cost"] > 0) & (oct0["cost"] > 0)
    assert np.all(oct1["accept_probability"][ok] < oct0["accept_probability"][ok])
    np.testing.assert_allclose(oct1["cost"][ok] / oct0["cost"][ok], 1.08)
    jan1, jan0 = _outcomes(v1, _campaign("beauty", 0)), _outcomes(v0, _campaign("beauty", 0))
    ok = (jan1["cost"] > 0) & (jan0["cost"] > 0)
    assert np.all(jan1["accept_probability"][ok] > jan0["accept_probability"][ok])
    np.testing.assert_allclose(jan1["cost"][ok] / jan0["cost"][ok], 0.95)


def test_acceptance_falls_before_the_peak_on_a_large_sample():
    """Sampled acceptances of many offers, September-October against May-June (v1, 10k influencers)."""
    env = InfluencerMatchingEnv(n_influencers=4_000, n_segments=4, dynamics="v1", churn_rate=0.0)
    rates = {}
    for months in ((4, 5), (8, 9)):
        accepted = offers = 0
        for seed in range(300):
            campaign = _campaign("fashion", months[seed % 2], seed=seed)
            _, info = env.reset(seed=seed, options={"campaign": campaign})
            for _ in range(3):
                _, _, term, trunc, info = env.step(int(np.flatnonzero(info["action_mask"][:-1])[0]))
                offers += 1
                accepted += info["outcome"]["accepted"]
                if term or trunc:
                    break
        rates[months] = accepted / offers
    assert rates[(8, 9)] < rates[(4, 5)] - 0.03


def test_a_fatigued_candidate_recovers_with_time(v1):
    """Loads revert to the pool's mean: the load of week w is mean + (start - mean) x decay^w, and the
    acceptance of a candidate above the mean rises week by week while nothing happens."""
    e = v1
    e.reset(seed=3, options={"campaign": _campaign("lifestyle", 3)})
    index = np.arange(len(e.pool))
    start = e.sponsored_load_now(index)
    p0 = e.expected_outcomes()["accept_probability"]
    for _ in range(4):
        e.step(e.wait_action)
    later = e.sponsored_load_now(index)
    mean = float(e.pool.sponsored_load.mean())
    np.testing.assert_allclose(later, mean + (start - mean) * e._load_decay**4)
    tired = np.flatnonzero(start > mean + 1)
    assert tired.size and np.all(later[tired] < start[tired])
    assert np.isfinite(p0).all()


def test_the_deadline_decays_value_from_its_week():
    e = InfluencerMatchingEnv(**SMALL, dynamics="v1", churn_rate=0.0, deadline_week=2, deadline_decay=0.5)
    assert [e.value_factor(w) for w in range(5)] == [1.0, 1.0, 0.5, 0.25, 0.125]
    e.reset(seed=0, options={"campaign": _campaign("food", 5)})
    before = e.expected_outcomes()
    for _ in range(3):
        e.step(e.wait_action)
    after = e.expected_outcomes()
    ok = (before["cost"] > 0) & (after["cost"] > 0)
    assert ok.any()
    assert np.all(
        after["value"][ok] / after["conversions"][ok] < before["value"][ok] / before["conversions"][ok]
    )
    with pytest.raises(ValueError, match="deadline_decay"):
        InfluencerMatchingEnv(**SMALL, deadline_decay=1.5)
    with pytest.raises(ValueError, match="dynamics"):
        InfluencerMatchingEnv(**SMALL, dynamics="v2")


def test_a_launch_week_leaves_posts_before_it_their_prelaunch_value():
    e = InfluencerMatchingEnv(**SMALL, dynamics="v1", churn_rate=0.0, launch_week=2, prelaunch_value=0.3,
                              deadline_week=4, deadline_decay=0.5)  # fmt: skip
    assert [e.value_factor(w) for w in range(7)] == [0.3, 0.3, 1.0, 1.0, 0.5, 0.25, 0.125]
    plain = InfluencerMatchingEnv(**SMALL, dynamics="v1", churn_rate=0.0)
    campaign = _campaign("lifestyle", 5)
    for goal in range(3):
        before, after = (_outcomes(x, dataclasses.replace(campaign, goal=goal)) for x in (e, plain))
        ok = after["cost"] > 0
        assert ok.any()
        np.testing.assert_allclose(before["value"][ok], 0.3 * after["value"][ok], rtol=1e-12)
        np.testing.assert_array_equal(before["cost"], after["cost"])
    for x in (e, plain):  # from the launch on, the same values
        x.reset(seed=0, options={"campaign": campaign})
        for _ in range(2):
            x.step(x.wait_action)
    np.testing.assert_array_equal(e.expected_outcomes()["value"], plain.expected_outcomes()["value"])
    for bad, match in (({"launch_week": 5, "deadline_week": 4}, "launch_week: expected a week no later than"),
                       ({"launch_week": -1}, "launch_week"), ({"prelaunch_value": 1.5}, "prelaunch_value"),
                       ({"prelaunch_value": True}, "prelaunch_value")):  # fmt: skip
        with pytest.raises(ValueError, match=match):
            InfluencerMatchingEnv(**SMALL, **bad)


def test_the_planner_considers_waiting_for_the_launch():
    from agents.planning import month_horizons

    e = InfluencerMatchingEnv(**SMALL, dynamics="v1", churn_rate=0.0, launch_week=3)
    e.reset(seed=0, options={"campaign": _campaign("lifestyle", 0)})  # months start in weeks 5, 9, 13, ...
    assert month_horizons(e)[:3] == (0, 3, 5)
    for _ in range(4):
        e.step(e.wait_action)
    assert 3 - e.week not in month_horizons(e)  # the launch is behind


@pytest.mark.parametrize("goal", [0, 1, 2])
def test_compiled_path_agrees_with_the_reference_under_v1(goal):
    e = InfluencerMatchingEnv(**SMALL, dynamics="v1", churn_rate=0.05, deadline_week=5, deadline_decay=0.9)
    campaign = dataclasses.replace(_campaign("gaming", 8, goal=goal), budget=50_000.0)
    e.reset(seed=goal, options={"campaign": campaign})
    rng = np.random.default_rng(goal)
    for _ in range(e.campaign_weeks):
        out = e.expected_outcomes()
        np.testing.assert_allclose(e.expected_rewards(), out["reward"], rtol=1e-12, atol=1e-15)
        _, _, term, trunc, info = e.step(int(rng.choice(np.flatnonzero(e.action_masks()))))
        if term or trunc:
            break


def test_sampled_value_follows_the_calendar():
    """The sampled outcome's value carries the demand and the deadline like the expectation does."""
    e = InfluencerMatchingEnv(**SMALL, dynamics="v1", churn_rate=0.0, deadline_week=0, deadline_decay=0.5)
    campaign = _campaign("fitness", 0, goal=1)
    for seed in range(40):
        e.reset(seed=seed, options={"campaign": campaign})
        _, _, _, _, info = e.step(int(np.argmax(e.expected_outcomes()["accept_probability"])))
        outcome = info["outcome"]
        if outcome["accepted"]:
            demand = Calibration().category_month_demand[CATEGORIES.index("fitness")][0]
            assert outcome["value"] == pytest.approx(
                outcome["engagements"] * float(campaign.value_per_engagement) * demand * 0.5
            )
            return
    pytest.fail("no offer accepted in 40 campaigns")


@pytest.mark.parametrize("persistent", [False, True])
def test_fork_plays_like_a_deep_copy_and_leaves_the_original_alone(persistent):
    import copy

    e = InfluencerMatchingEnv(**SMALL, dynamics="v1", churn_rate=0.01, persistent_market=persistent)
    e.reset(seed=1)
    for _ in range(3):
        e.step(int(np.flatnonzero(e.action_masks())[-2]))
    before = (e.budget_left, e.week, e.expected_rewards(), e.action_masks(), list(e.hired_ids()))
    fork, twin = e.fork(np.random.default_rng(9)), copy.deepcopy(e)
    twin.np_random = np.random.default_rng(9)
    rng = np.random.default_rng(2)
    for _ in range(30):
        action = int(rng.choice(np.flatnonzero(fork.action_masks())))
        a, b = fork.step(action), twin.step(action)
        assert np.array_equal(a[0], b[0]) and a[1:4] == b[1:4]
        assert np.array_equal(a[4]["expected_rewards"], b[4]["expected_rewards"])
        if a[2] or a[3]:
            break
    after = (e.budget_left, e.week, e.expected_rewards(), e.action_masks(), list(e.hired_ids()))
    assert before[:2] == after[:2] and before[4] == after[4]
    assert np.array_equal(before[2], after[2]) and np.array_equal(before[3], after[3])
