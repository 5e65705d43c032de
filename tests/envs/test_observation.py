"""The observation's typed specs and the env's option list: the homes other layers read."""

import inspect

import numpy as np
import pytest

from envs.calibration import CATEGORIES, GOALS, Calibration
from envs.matching_env import ENV_OPTIONS, InfluencerMatchingEnv, env_option_defaults
from envs.observation import KINDS, FeatureSpec, find, observation_specs

SMALL = {"n_influencers": 600, "n_segments": 3, "campaign_weeks": 8, "market_seed": 2}


@pytest.fixture(scope="module")
def env() -> InfluencerMatchingEnv:
    return InfluencerMatchingEnv(**SMALL)


def test_specs_match_the_feature_names_and_the_observation_bounds(env):
    specs = env.feature_specs
    assert [f.name for f in specs] == env.feature_names
    assert len(specs) == env.observation_space.shape[0] == len(CATEGORIES) + len(GOALS) + 4 + 4 * 3
    np.testing.assert_array_equal(env.observation_space.low, np.float32([f.low for f in specs]))
    np.testing.assert_array_equal(env.observation_space.high, np.float32([f.high for f in specs]))
    assert specs == observation_specs(env.n_segments, env.campaign_weeks)
    assert all(f.kind in KINDS for f in specs)


def test_observations_lie_inside_the_spec_bounds(env):
    obs, info = env.reset(seed=0)
    rng = np.random.default_rng(0)
    low, high = env.observation_space.low, env.observation_space.high
    for _ in range(20):
        assert np.all(obs >= low) and np.all(obs <= high)
        obs, _, term, trunc, info = env.step(int(rng.choice(np.flatnonzero(info["action_mask"]))))
        if term or trunc:
            obs, info = env.reset()


def test_one_hot_specs_name_their_member_and_find_locates_features(env):
    specs = env.feature_specs
    brand = find(specs, "brand_category")
    assert [specs[i].value for i in brand] == list(CATEGORIES)
    assert [specs[i].value for i in find(specs, "goal")] == list(GOALS)
    per_segment = find(specs, "value_per_dollar")
    assert [specs[i].segment for i in per_segment] == [0, 1, 2]
    assert find(specs, "hires", segment=1) == [per_segment[1] + 1]
    assert find(specs, "no such field") == []
    obs, _ = env.reset(seed=1)
    campaign = env.campaign
    assert obs[brand].argmax() == campaign.category and obs[brand].sum() == 1.0
    assert obs[find(specs, "month")[0]] == campaign.start_month
    assert obs[find(specs, "budget_left")[0]] == 1.0


def test_bad_kind_is_refused():
    with pytest.raises(ValueError, match="kind"):
        FeatureSpec("x", "colour", "x")
    assert FeatureSpec("x", "flag", "x").to_dict()["kind"] == "flag"


def test_env_options_are_the_constructor_keywords_with_their_defaults():
    params = inspect.signature(InfluencerMatchingEnv.__init__).parameters
    keywords = [name for name in params if name not in ("self", "render_mode")]
    assert list(ENV_OPTIONS) == keywords
    defaults = env_option_defaults()
    assert list(defaults) == list(ENV_OPTIONS)
    assert all(defaults[name] == params[name].default for name in ENV_OPTIONS)
    assert defaults["n_influencers"] == 10_000 and defaults["offer_levels"] == (0.8, 1.0, 1.25)
    # Every option is accepted by name.
    e = InfluencerMatchingEnv(**{**defaults, **SMALL})
    assert e.n_segments == SMALL["n_segments"] and e.campaign_weeks == SMALL["campaign_weeks"]


def test_estimate_calibration_sets_what_the_env_shows_and_ranks_by_and_not_what_happens():
    """An env whose outcomes are ``Y`` and whose own estimate assumes ``X`` shows the observations of the
    env of ``X`` (the value per $ features, and so the ranking they come from), with the expected
    rewards of ``Y``'s outcomes; by default the estimate assumes the env's own calibration."""
    x = Calibration()
    y = x.replace(conversion_rate=2 * x.conversion_rate, engagement_fit_slope=1.2)
    options = dict(n_influencers=2000, n_segments=4, campaign_weeks=6, dynamics="v1")
    mixed = InfluencerMatchingEnv(**options, calibration=y, estimate_calibration=x)
    env_x = InfluencerMatchingEnv(**options, calibration=x)
    env_y = InfluencerMatchingEnv(**options, calibration=y)
    assert env_y.estimate_calibration is env_y.calibration
    shown_as_x = shown_as_y = rewards_differ = 0
    for seed in range(12):
        (obs, info), (obs_x, info_x), (obs_y, _) = (e.reset(seed=seed) for e in (mixed, env_x, env_y))
        shown_as_x += np.array_equal(obs, obs_x)
        shown_as_y += np.array_equal(obs, obs_y)
        rewards_differ += not np.allclose(info["expected_rewards"], info_x["expected_rewards"])
    assert shown_as_x == 12
    assert shown_as_y < 12 and rewards_differ > 6
    with pytest.raises(ValueError, match="^estimate_calibration: expected a Calibration"):
        InfluencerMatchingEnv(**options, estimate_calibration=3)
