"""The agent protocol and the one learn loop: every registered agent satisfies :class:`agents.base.Agent`
with SB3's ``learn`` signature, and every agent built on :class:`agents.base.BaseAgent` drives SB3
callbacks the same way (events, locals, stopping, resuming, logs)."""

from __future__ import annotations

import copy
import inspect
import re
from typing import Any

import numpy as np
import pytest
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import KVWriter, Logger

from agents import Agent, BaseAgent, RandomPolicy, agent_class, agent_names, make_agent

#: Agents on the one learn loop: the two learners and fixed policies of both kinds.
LOOP_AGENTS = ("cqi", "logistic_bandit", "random", "oracle", "best_fit", "segment_1")
STEP_LOCALS = {"actions", "new_obs", "rewards", "dones", "infos"}


class Recorder(BaseCallback):
    """Every callback event as a letter (T training start, R rollout start, s step, d the step that
    ends an episode, E rollout end, F training end), and the step locals' shapes."""

    def __init__(self, stop_at: int | None = None) -> None:
        super().__init__()
        self.stop_at = stop_at
        self.events: list[str] = []
        self.timesteps: list[int] = []
        self.actions: list[int] = []

    def _on_training_start(self) -> None:
        self.events.append("T")

    def _on_rollout_start(self) -> None:
        self.events.append("R")

    def _on_step(self) -> bool:
        loc = self.locals
        assert STEP_LOCALS <= set(loc)
        assert loc["actions"].shape == (1,) and loc["rewards"].shape == (1,) and loc["dones"].shape == (1,)
        assert loc["new_obs"].shape == (1, *self.model.env.observation_space.shape)
        done = bool(loc["dones"][0])
        assert ("terminal_observation" in loc["infos"][0]) == done
        self.events.append("d" if done else "s")
        self.timesteps.append(self.model.num_timesteps)
        self.actions.append(int(loc["actions"][0]))
        return self.stop_at is None or self.model.num_timesteps < self.stop_at

    def _on_rollout_end(self) -> None:
        self.events.append("E")

    def _on_training_end(self) -> None:
        self.events.append("F")


#: One rollout per episode: an episode's last step closes its rollout; a run may stop mid-episode.
EVENT_GRAMMAR = re.compile(r"T(Rs*dE)*(Rs+E)?F")


def _sb3_learn_parameters() -> list[str]:
    return [name for name in inspect.signature(BaseAlgorithm.learn).parameters if name != "self"]


@pytest.mark.parametrize("name", agent_names(4))
def test_every_registered_agent_satisfies_the_protocol_with_sb3_learn_signature(name, env):
    agent = make_agent(name, env, seed=0)
    assert isinstance(agent, Agent)
    assert list(inspect.signature(agent.learn).parameters) == _sb3_learn_parameters()
    predict = list(inspect.signature(agent.predict).parameters)
    assert predict[:4] == ["observation", "state", "episode_start", "deterministic"]
    assert inspect.ismethod(agent_class(name).load)  # a class method: bound to the class
    assert list(inspect.signature(agent_class(name).load).parameters) == ["path", "env"]


def test_the_protocol_is_the_one_sb3_models_satisfy(env):
    assert isinstance(make_agent("a2c", env, seed=0).model, Agent)


@pytest.mark.parametrize("name", LOOP_AGENTS)
def test_callbacks_receive_sb3_events_from_every_agent_on_the_loop(name, env):
    agent = make_agent(name, env, seed=0)
    assert isinstance(agent, BaseAgent)
    recorder = Recorder()
    assert agent.learn(300, callback=recorder) is agent
    assert recorder.model is agent and recorder.training_env.num_envs == 1
    events = "".join(recorder.events)
    assert EVENT_GRAMMAR.fullmatch(events), events
    assert recorder.timesteps == list(range(1, 301)) and agent.num_timesteps == 300
    assert events.count("d") == len(agent.ep_info_buffer) > 0


@pytest.mark.parametrize("name", LOOP_AGENTS)
def test_returning_false_from_on_step_stops_learning(name, env):
    recorder = Recorder(stop_at=37)
    agent = make_agent(name, env, seed=0).learn(300, callback=[recorder])
    assert agent.num_timesteps == 37 == len(recorder.timesteps)
    assert EVENT_GRAMMAR.fullmatch("".join(recorder.events))
    assert recorder.events[-2:] == ["E", "F"]


def test_a_fixed_policy_learn_plays_the_env_like_a_plain_loop(env, market):
    """``learn`` of a fixed policy takes the actions ``predict`` would, on the same campaigns."""
    twin = copy.deepcopy(market)
    for e in (env, twin):
        e.reset(seed=5)
    recorder = Recorder()
    RandomPolicy(env, seed=2).learn(200, callback=recorder)
    policy = RandomPolicy(twin, seed=2)
    obs, info = twin.reset()
    actions = []
    for _ in range(200):
        action = int(policy.predict(obs, action_masks=info["action_mask"])[0])
        actions.append(action)
        obs, _, terminated, truncated, info = twin.step(action)
        if terminated or truncated:
            obs, info = twin.reset()
    assert recorder.actions == actions


def test_learning_on_with_reset_num_timesteps_false_continues_the_episode(env, market):
    twin = copy.deepcopy(market)
    for e in (env, twin):
        e.reset(seed=6)  # fixed policies reset unseeded: the campaigns come from the env's own stream
    whole, parts = Recorder(), Recorder()
    RandomPolicy(env, seed=4).learn(150, callback=whole)
    policy = RandomPolicy(twin, seed=4).learn(100, callback=parts)
    policy.learn(50, callback=parts, reset_num_timesteps=False)
    assert policy.num_timesteps == 150
    assert parts.actions == whole.actions
    assert parts.timesteps == whole.timesteps


def test_a_second_learn_starts_over(env):
    agent = make_agent("logistic_bandit", env, seed=0).learn(120)
    agent.learn(80)
    assert agent.num_timesteps == 80
    assert sum(ep["l"] for ep in agent.ep_info_buffer) <= 80


class Rows(KVWriter):
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def write(self, key_values: dict[str, Any], key_excluded: Any, step: int = 0) -> None:
        self.rows.append(dict(key_values, step=step))


@pytest.mark.parametrize(
    ("name", "own_key"), [("cqi", "cqi/n_leaves"), ("logistic_bandit", "bandit/fitted_actions")]
)
def test_the_logger_gets_episode_statistics_every_log_interval_episodes(name, own_key, env):
    writer = Rows()
    agent = make_agent(name, env, seed=0)
    agent.set_logger(Logger(folder=None, output_formats=[writer]))
    agent.learn(400, log_interval=2)
    assert len(writer.rows) == agent._episode_num // 2 > 0
    last = writer.rows[-1]
    assert {"rollout/ep_rew_mean", "rollout/exploration_rate", own_key, "time/total_timesteps"} <= set(last)
    assert np.isfinite(last["rollout/ep_rew_mean"])


def test_learn_refuses_bad_arguments_and_a_missing_env(env, tmp_path):
    agent = make_agent("random", env, seed=0)
    with pytest.raises(ValueError, match="total_timesteps: expected a whole number >= 0"):
        agent.learn(-1)
    with pytest.raises(ValueError, match="log_interval: expected a whole number >= 1"):
        agent.learn(10, log_interval=0)
    agent.save(tmp_path / "r.json")
    with pytest.raises(ValueError, match="this RandomPolicy has no env"):
        RandomPolicy.load(tmp_path / "r.json").learn(10)
