"""The registry: every agent by name, its model file, load round trips, and errors that name the problem."""

from __future__ import annotations

import copy

import pytest

import agents
from agents import AGENT_NAMES, agent_names, load_agent, make_agent, model_filename
from agents.registry import SB3_AGENTS, hyperparameter_names


def test_agent_names():
    assert AGENT_NAMES == (
        "cqi", "ppo", "a2c", "dqn", "maskable_ppo", "logistic_bandit", "random", "oracle",
        "planning_oracle", "distilled_tree", "cheapest_per_follower", "best_fit", "biggest_reach", "best_value_per_dollar",
    )  # fmt: skip
    assert agent_names(3)[-3:] == ("segment_0", "segment_1", "segment_2")
    assert agents.SEGMENT_AGENT_PATTERN == "segment_<k>"


@pytest.mark.parametrize("name", agent_names(4))
def test_every_agent_is_made_learns_predicts_and_round_trips(name, market, tmp_path):
    env = copy.deepcopy(market)
    hyper = {"n_steps": 64, "batch_size": 32} if name in ("ppo", "maskable_ppo") else {}
    agent = make_agent(name, env, seed=0, **hyper)
    assert agent.learn(64) is agent
    obs, info = env.reset(seed=5)
    predict_kwargs = {"deterministic": True}
    if name != "cqi":
        predict_kwargs["action_masks"] = info["action_mask"]
    action, _ = agent.predict(obs, **predict_kwargs)
    assert 0 <= int(action) < env.action_space.n
    path = tmp_path / model_filename(name)
    agent.save(path)
    loaded = load_agent(name, path, env=env)
    assert type(loaded) is type(agent)
    assert int(loaded.predict(obs, **predict_kwargs)[0]) == int(agent.predict(obs, **predict_kwargs)[0])


def test_model_files():
    assert [model_filename(n) for n in ("cqi", "ppo", "maskable_ppo", "random", "segment_2")] == [
        "model.json", "model.zip", "model.zip", "model.json", "model.json",
    ]  # fmt: skip


def test_unknown_agent_names_list_the_known_ones(market):
    for bad in ("sac", "segment_", "segment_01", "Random", 3):
        with pytest.raises(
            ValueError, match=r"unknown agent .* \(known: cqi, ppo, .*best_value_per_dollar, segment_<k>\)"
        ):
            make_agent(bad, market)
    with pytest.raises(ValueError, match=r"unknown agent 'segment_4': this environment has segments 0\.\.3"):
        make_agent("segment_4", market)


def test_unknown_hyperparameters_are_named(market):
    with pytest.raises(
        ValueError, match="unknown hyperparameter 'learning_rat' for agent 'cqi' \\(known: .*learning_rate"
    ):
        make_agent("cqi", market, learning_rat=0.1)
    with pytest.raises(ValueError, match="unknown hyperparameter 'gamma' for agent 'random' \\(known: none"):
        make_agent("random", market, gamma=0.9)
    with pytest.raises(ValueError, match="unknown hyperparameter 'alpha' for agent 'dqn'"):
        make_agent("dqn", market, alpha=0.9)
    assert "split_threshold" in hyperparameter_names("cqi") and "seed" not in hyperparameter_names("cqi")
    assert {"norm_obs", "torch_threads", "n_steps"} <= set(hyperparameter_names("ppo"))
    assert "wait_threshold" in hyperparameter_names("logistic_bandit")


def test_hyperparameters_reach_the_agent(market):
    assert make_agent("cqi", market, seed=0, split_threshold=0.3).split_threshold == 0.3
    assert make_agent("logistic_bandit", market, seed=0, train_freq=4).train_freq == 4
    assert make_agent("segment_2", market).segment == 2


def test_load_agent_checks_the_name(market, tmp_path):
    make_agent("segment_1", market).save(tmp_path / "s.json")
    with pytest.raises(ValueError, match="holds segment_1, not segment_2"):
        load_agent("segment_2", tmp_path / "s.json")
    with pytest.raises(ValueError, match="not a CQI|not a saved"):
        load_agent("cqi", tmp_path / "s.json")
    make_agent("a2c", copy.deepcopy(market), seed=0).save(tmp_path / "m.zip")
    with pytest.raises(ValueError, match="holds an 'a2c' model, not 'ppo'"):
        load_agent("ppo", tmp_path / "m.zip")
    assert set(SB3_AGENTS) <= set(AGENT_NAMES)
