import copy
import dataclasses

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import envs
from envs.campaigns import sample_campaign
from envs.matching_env import DAYS_PER_STEP, NO_OFFER, InfluencerMatchingEnv
from envs.observation import find
from envs.outcomes import SPONSORED_POST_LOAD, burn_followers, load_decay_factor
from matching.profiles import segment_profiles

SMALL = {"n_influencers": 3_000, "n_segments": 4, "market_seed": 1}


@pytest.fixture(scope="module")
def env() -> InfluencerMatchingEnv:
    return InfluencerMatchingEnv(**SMALL)


def fresh(env: InfluencerMatchingEnv, seed: int) -> InfluencerMatchingEnv:
    """An independent copy of the shared environment, reset with ``seed``."""
    clone = copy.deepcopy(env)
    clone.reset(seed=seed)
    return clone


def random_valid(rng: np.random.Generator, mask: np.ndarray) -> int:
    valid = np.flatnonzero(mask)
    return int(valid[rng.integers(len(valid))])


def test_registered_and_spaces():
    e = gym.make(envs.ENV_ID, **SMALL)
    u = e.unwrapped
    assert isinstance(u, InfluencerMatchingEnv)
    assert u.action_space.n == 4 * 3 + 1
    assert len(u.action_names) == u.action_space.n and u.action_names[-1] == "wait"
    assert u.action_names[0].startswith("seg 0 · ") and u.action_names[0].endswith("0.8×")
    assert len(u.feature_names) == u.observation_space.shape[0] == 19 + 4 * 4
    assert u.observation_space.dtype == np.float32


def test_gymnasium_env_checker(env):
    gym_check_env(copy.deepcopy(env), skip_render_check=False)


def test_sb3_env_checker(env):
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    sb3_check_env(copy.deepcopy(env), warn=True)


def rollout(env: InfluencerMatchingEnv, seed: int, steps: int = 60) -> list:
    rng = np.random.default_rng(99)
    obs, info = env.reset(seed=seed)
    trace = [obs.tobytes()]
    for _ in range(steps):
        obs, reward, term, trunc, info = env.step(random_valid(rng, info["action_mask"]))
        trace += [
            obs.tobytes(),
            reward,
            term,
            trunc,
            info["expected_rewards"].tobytes(),
            repr(info["outcome"]),
        ]
        if term or trunc:
            obs, info = env.reset()
            trace.append(obs.tobytes())
    return trace


def test_same_seed_same_rollout_different_seed_different(env):
    a = rollout(copy.deepcopy(env), seed=5)
    b = rollout(InfluencerMatchingEnv(**SMALL), seed=5)
    c = rollout(copy.deepcopy(env), seed=6)
    assert a == b
    assert a != c


def test_market_seed_changes_the_pool():
    a = InfluencerMatchingEnv(n_influencers=500, n_segments=3, market_seed=0)
    b = InfluencerMatchingEnv(n_influencers=500, n_segments=3, market_seed=1)
    assert not np.array_equal(a.pool.followers, b.pool.followers)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), policy_seed=st.integers(0, 10_000), invalid_every=st.integers(2, 6))
def test_invariants_over_random_episodes(env, seed, policy_seed, invalid_every):
    e = fresh(env, seed)
    rng = np.random.default_rng(policy_seed)
    mask = e.action_masks()
    hired: list[str] = []
    done, step = False, 0
    while not done:
        budget = e.budget_left
        invalid = np.flatnonzero(~mask)
        if step % invalid_every == 0 and len(invalid):
            action, masked = int(rng.choice(invalid)), True
        else:
            action, masked = random_valid(rng, mask), False
        obs, reward, term, trunc, info = e.step(action)
        assert e.observation_space.contains(obs)
        assert e.budget_left >= 0
        outcome = info["outcome"]
        assert outcome.keys() == NO_OFFER.keys()
        assert all(type(outcome[k]) is type(v) for k, v in NO_OFFER.items())
        if masked or action == e.wait_action:
            assert outcome == NO_OFFER and reward == 0 and e.budget_left == budget
        else:
            spent = budget - e.budget_left
            if outcome["accepted"]:
                assert spent == pytest.approx(outcome["cost"]) and outcome["cost"] > 0
                hired.append(outcome["influencer_id"])
            else:
                assert spent == 0 and outcome["cost"] == 0 and reward == 0
                assert outcome["reach"] == outcome["conversions"] == 0
        assert info["action_mask"][-1]
        mask = info["action_mask"]
        done = term or trunc
        step += 1
    assert len(hired) == len(set(hired)) == len(e.hired_ids())
    assert step <= e.campaign_weeks


def best_valid_by_brute_force(e: InfluencerMatchingEnv, s: int, k: int) -> int:
    """The candidate rule computed over the whole segment (the env keeps short ranked prefixes)."""
    st_ = e._state
    members = np.flatnonzero(e._market.segment == s)  # incumbents and possible newcomers
    ok = (
        (st_.join[members] <= st_.week)
        & (st_.leave[members] > st_.week)
        & ~st_.hired[members]
        & (e._market.pool.price[members] * e.offer_levels[k] * st_.premium <= st_.budget_left)
    )
    if not ok.any():
        return -1
    cands = members[ok]
    score = st_.value_per_dollar[cands]
    best = cands[score == score.max()]
    return int(best.min())


@pytest.mark.parametrize("seed", range(6))
def test_candidate_is_the_best_valid_influencer_of_its_segment(env, seed):
    """Through hires, churn, falling budgets and the January price drop, every action's candidate is the
    influencer with the highest estimated value per dollar among the valid ones of its segment."""
    e = copy.deepcopy(env)
    e.churn_rate = 0.05  # more churn than the default, to exercise joiners and leavers
    rng = np.random.default_rng(seed)
    campaign = dataclasses.replace(sample_campaign(rng), budget=float(rng.choice([800.0, 5_000.0, 60_000.0])),
                                   start_month=int(rng.choice([0, 9, 11])))  # fmt: skip
    e.reset(seed=seed, options={"campaign": campaign})
    for _ in range(e.campaign_weeks):
        for s in range(e.n_segments):
            for k in range(len(e.offer_levels)):
                assert e._state.candidate[s, k] == best_valid_by_brute_force(e, s, k), (s, k, e.week)
        mask = e.action_masks()
        hire = np.flatnonzero(mask[:-1])
        action = int(rng.choice(hire)) if len(hire) and rng.random() < 0.8 else e.wait_action
        _, _, term, trunc, _ = e.step(action)
        if term or trunc:
            break


def test_churn_brings_newcomers_and_removes_leavers(env):
    e = copy.deepcopy(env)
    e.churn_rate = 0.05
    seen_new = False
    for seed in range(3):
        e.reset(seed=seed)
        for _ in range(e.campaign_weeks):
            ids = [i for i in e.candidate_ids() if i is not None]
            seen_new |= any(i.startswith("new") for i in ids)
            _, _, term, trunc, _ = e.step(e.wait_action)
            if term or trunc:
                break
    assert seen_new
    st_ = e._state
    assert np.any(st_.leave < e.campaign_weeks) and np.any(
        st_.join[e._market.n_incumbents :] < e.campaign_weeks
    )


@pytest.mark.slow
def test_expected_rewards_match_simulated_means(env):
    """From one state (with earlier hires, so overlap counts), each action's expected reward equals the
    mean reward of 3,000 simulated copies within five standard errors."""
    e = fresh(env, 11)
    rng = np.random.default_rng(0)
    for _ in range(6):
        mask = e.action_masks()
        e.step(int(rng.choice(np.flatnonzero(mask[:-1]))))
    assert e.hired_ids(), "the state should include hires"
    expected = e.expected_rewards()
    for action in np.flatnonzero(e.action_masks()):
        rewards = []
        for i in range(3_000):
            clone = copy.deepcopy(e)
            clone._np_random = np.random.default_rng(i)
            rewards.append(clone.step(int(action))[1])
        rewards = np.asarray(rewards)
        se = rewards.std() / np.sqrt(len(rewards))
        assert abs(rewards.mean() - expected[action]) <= 5 * se + 1e-9, (
            e.action_names[action],
            rewards.mean(),
            expected[action],
        )


def test_deepcopy_is_independent(env):
    e = fresh(env, 3)
    clone = copy.deepcopy(e)
    before = (e.budget_left, e.week, e.hired_ids())
    for _ in range(5):
        clone.step(int(np.flatnonzero(clone.action_masks())[0]))
    assert (e.budget_left, e.week, e.hired_ids()) == before
    assert clone.week == 5


def run_policy(env, policy, seeds) -> np.ndarray:
    returns = []
    for seed in seeds:
        e = fresh(env, seed)
        rng = np.random.default_rng(seed)
        info = {"action_mask": e.action_masks(), "expected_rewards": e.expected_rewards()}
        total, done = 0.0, False
        while not done:
            _, reward, term, trunc, info = e.step(policy(info, rng))
            total += reward
            done = term or trunc
        returns.append(total)
    return np.asarray(returns)


def test_myopic_oracle_beats_random_by_a_wide_margin(env):
    seeds = range(40)
    oracle = run_policy(env, lambda info, rng: int(np.argmax(info["expected_rewards"])), seeds)
    random_ = run_policy(env, lambda info, rng: random_valid(rng, info["action_mask"]), seeds)
    # Returns are heavy-tailed across campaigns (budgets span three orders of magnitude), so "wide" is
    # judged by the ratio of means and the share of campaigns won rather than by a t-statistic.
    assert oracle.mean() >= 2 * random_.mean() > 0
    assert np.mean(oracle >= random_) >= 0.65  # outcome noise lets random win some campaigns


def test_waiting_forever_earns_nothing(env):
    returns = run_policy(env, lambda info, rng: len(info["action_mask"]) - 1, range(5))
    assert np.all(returns == 0)


def test_holidays_raise_conversions_and_prices(env):
    e = copy.deepcopy(env)
    base = dataclasses.replace(sample_campaign(np.random.default_rng(4)), goal=2, budget=1e6, start_month=5)
    e.reset(seed=0, options={"campaign": base})
    june = e.expected_outcomes()
    e.reset(seed=0, options={"campaign": dataclasses.replace(base, start_month=11)})
    december = e.expected_outcomes()
    valid = june["cost"] > 0
    np.testing.assert_allclose(december["cost"][valid] / june["cost"][valid], 1.12)
    np.testing.assert_allclose(december["conversions"][valid] / june["conversions"][valid], 1.35 / 0.95)
    assert np.all(december["accept_probability"][valid] < june["accept_probability"][valid])


def test_render_ansi():
    e = InfluencerMatchingEnv(n_influencers=500, n_segments=3, render_mode="ansi")
    e.reset(seed=0)
    e.step(0)
    text = e.render()
    assert "Week 1/26" in text and "Last offer" in text and "seg" not in text.splitlines()[0]


def test_vector_envs():
    from stable_baselines3.common.vec_env import DummyVecEnv

    vec = gym.make_vec(envs.ENV_ID, num_envs=2, vectorization_mode="sync", **SMALL)
    obs, info = vec.reset(seed=0)
    assert obs.shape == (2, 35)
    obs, reward, term, trunc, info = vec.step(np.array([0, 12]))
    assert reward.shape == (2,) and "expected_rewards" in info
    sb3 = DummyVecEnv([lambda: gym.make(envs.ENV_ID, **SMALL)] * 2)
    sb3.seed(0)
    assert sb3.reset().shape == (2, 35)
    assert sb3.step(np.array([1, 12]))[0].shape == (2, 35)


def test_pool_from_csv(tmp_path, small_pool):
    path = tmp_path / "pool.csv"
    small_pool.write_csv(path)
    e = InfluencerMatchingEnv(pool=str(path), n_segments=3)
    assert len(e.pool) == len(small_pool)
    e.reset(seed=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_segments": 0}, "n_segments: expected a whole number >= 1"),
        ({"offer_levels": ()}, "offer_levels: expected a non-empty list"),
        ({"offer_levels": (1.0, -1.0)}, "offer_levels"),
        ({"offer_levels": (1.0, 1.0)}, "distinct"),
        ({"campaign_weeks": 0}, "campaign_weeks"),
        ({"population_mode": "mars"}, "population_mode"),
        ({"churn_rate": 1.5}, "churn_rate"),
        ({"render_mode": "human"}, "render_mode"),
        ({"calibration": {"conversion_rat": 1}}, "unknown calibration field 'conversion_rat'"),
        ({"pool": 42}, "pool: expected an InfluencerPool or a CSV path"),
    ],
)
def test_bad_options_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        InfluencerMatchingEnv(**{"n_influencers": 200, "n_segments": 2, **kwargs})


def test_step_before_reset_and_bad_action(env):
    e = copy.deepcopy(env)
    e._state = None
    with pytest.raises(RuntimeError, match="reset"):
        e.step(0)
    e.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        e.step(99)


def test_persistent_market_carries_fatigue_and_burn():
    e = InfluencerMatchingEnv(**SMALL, persistent_market=True)
    e.reset(seed=0)
    for _ in range(10):
        e.step(int(np.argmax(e.expected_rewards())))
    # No public view of the market's carried-over state: read it from the campaign state.
    hired, weeks = list(e._state.hired_index), e.week
    assert hired
    # Each influencer is hired at most once a campaign: one post's burn and one post's load each.
    np.testing.assert_array_equal(
        e._state.followers[hired], [burn_followers(f, e.calibration) for f in e.pool.followers[hired]]
    )
    e.reset(seed=1)
    decay = load_decay_factor(weeks * DAYS_PER_STEP, e.calibration)
    np.testing.assert_array_equal(e._state.extra_load[hired], SPONSORED_POST_LOAD * decay)
    np.testing.assert_array_less(e._state.followers[hired], e.pool.followers[hired])


def test_a_hire_raises_its_segment_load_which_then_decays():
    e = InfluencerMatchingEnv(**SMALL, churn_rate=0.0)
    obs, info = e.reset(seed=3)
    load_at = {s: find(e.feature_specs, "mean_load", s)[0] for s in range(e.n_segments)}
    before = obs[list(load_at.values())].astype(float)
    members = np.bincount(e.segment_labels, minlength=e.n_segments)
    for _ in range(e.campaign_weeks):
        obs, _, term, trunc, info = e.step(int(np.argmax(info["expected_rewards"])))
        if info["outcome"]["accepted"]:
            break
        assert not (term or trunc)
    s = info["outcome"]["segment"]
    factor = load_decay_factor(DAYS_PER_STEP, e.calibration)
    for week in range(1, 4):  # one week of decay per step, the first one included
        added = (obs[load_at[s]] - before[s]) * members[s]
        assert added == pytest.approx(SPONSORED_POST_LOAD * factor**week, rel=2e-3), (
            week
        )  # float32 observation
        obs, _, term, trunc, info = e.step(e.wait_action)
        if term or trunc:
            break


def test_candidate_features_describe_the_candidates(env):
    e = fresh(env, 2)
    features, mask = e.candidate_features(), e.action_masks()
    valid = mask[:-1]
    assert np.all(np.isnan(features["followers"][:-1][~valid]))
    assert np.all(features["followers"][:-1][valid] >= 1_000)
    ids = e.candidate_ids()
    pool = e._market.pool
    for action in np.flatnonzero(valid):
        i = int(np.flatnonzero(pool.influencer_id == ids[action])[0])
        assert features["price"][action] == pool.price[i]
        assert features["cost"][action] == pytest.approx(
            pool.price[i] * features["offer_ratio"][action] * e._state.premium
        )
    assert features["segment"][-1] == -1


@pytest.mark.parametrize("goal", [0, 1, 2])
def test_expected_outcomes_agree_with_expected_rewards(env, goal):
    """The compiled per-week path (expected_rewards, and the means _offer samples around) and the numpy
    reference (expected_outcomes, on envs.outcomes) give the same numbers, through hires (audience
    overlap), churn and month changes, for every goal."""
    e = copy.deepcopy(env)
    e.churn_rate = 0.05
    rng = np.random.default_rng(goal)
    campaign = dataclasses.replace(sample_campaign(rng), goal=goal, budget=50_000.0, start_month=10)
    e.reset(seed=goal, options={"campaign": campaign})
    hires_seen = 0
    for _ in range(e.campaign_weeks):
        out = e.expected_outcomes()
        np.testing.assert_allclose(e.expected_rewards(), out["reward"], rtol=1e-12, atol=1e-15)
        terms, valid = e._state.terms, e.action_masks()[:-1]
        np.testing.assert_allclose(terms[valid, 0], out["accept_probability"][:-1][valid], rtol=1e-12)
        np.testing.assert_allclose(terms[valid, 5], out["cost"][:-1][valid], rtol=1e-12)
        reach_noise = np.exp(e.calibration.reach_post_sd**2 / 2)
        np.testing.assert_allclose(terms[valid, 1] * reach_noise, out["reach"][:-1][valid], rtol=1e-12)
        ok = out["cost"] > 0
        np.testing.assert_allclose(
            out["reward"][ok], out["accept_probability"][ok] * (out["value"][ok] - out["cost"][ok]) / 1000
        )
        hires_seen = len(e.hired_ids())
        _, _, term, trunc, _ = e.step(
            int(np.argmax(e.expected_rewards())) if rng.random() < 0.7 else e.wait_action
        )
        if term or trunc:
            break
    assert hires_seen >= 3  # overlap between hires of a segment was exercised


def test_calibration_tier_edges_reach_segment_names():
    # Edges above every account: the whole pool is nano, and the segment names and tier mix say so.
    edges = [1e9, 2e9, 3e9, 4e9]
    e = InfluencerMatchingEnv(**SMALL, calibration={"tier_edges": edges})
    profiles = e.segment_profiles
    assert all(name.startswith("nano · ") for name in e.segment_names)
    np.testing.assert_array_equal(profiles["tier_nano"], 1.0)
    hire_names = e.action_names[: e.n_hire_actions : len(e.offer_levels)]
    assert all(f"· {name} ·" in action for name, action in zip(e.segment_names, hire_names, strict=True))
    # The same profiles as segmenting the pool's frame with the calibration's edges.
    expected = segment_profiles(e.pool.to_frame(), e.segment_labels, tier_edges=edges)
    assert list(profiles["name"]) == list(expected["name"])
