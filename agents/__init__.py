"""Policies that match brands with influencers, behind one protocol (the one SB3 models satisfy).

``learn(total_timesteps, callback=None, log_interval=..., tb_log_name=..., reset_num_timesteps=True,
progress_bar=False) -> self``, ``predict(observation, state=None, episode_start=None,
deterministic=False) -> (actions, None)``, ``save(path)`` and ``load(path, env=None)`` (a class method):
:class:`agents.base.Agent`. Build any agent by name with :func:`make_agent` and read one back with
:func:`load_agent`.

Modules: :mod:`agents.base` (the protocol and the one learn loop), :mod:`agents.cqi` (CQI),
:mod:`agents.bandit` (the logistic bandit), :mod:`agents.heuristics` (a marketer's rules),
:mod:`agents.references` (the random and myopic-oracle references), :mod:`agents.planning` (the
planning oracle, the ceiling scores are also reported against), :mod:`agents.distill` (trees distilled
from a teacher, VIPER), :mod:`agents.sb3` (PPO, A2C, DQN, MaskablePPO) and :mod:`agents.registry`
(every agent by name).
"""

from agents.bandit import LogisticBandit
from agents.base import Agent, BaseAgent
from agents.cqi import CQI
from agents.distill import DistilledTree
from agents.heuristics import (
    BestFitPolicy,
    BestValuePerDollarPolicy,
    BiggestReachPolicy,
    CheapestPerFollowerPolicy,
    FixedSegmentPolicy,
    HeuristicPolicy,
)
from agents.planning import PlanningOracle
from agents.references import EnvStatePolicy, MyopicOracle, RandomPolicy
from agents.registry import (
    AGENT_NAMES,
    LEARNING_AGENTS,
    SEGMENT_AGENT_PATTERN,
    agent_class,
    agent_names,
    check_agent_name,
    check_hyperparameters,
    hyperparameter_names,
    load_agent,
    make_agent,
    model_filename,
)
from agents.sb3 import SB3Agent

__all__ = [
    "AGENT_NAMES",
    "CQI",
    "LEARNING_AGENTS",
    "SEGMENT_AGENT_PATTERN",
    "Agent",
    "BaseAgent",
    "BestFitPolicy",
    "BestValuePerDollarPolicy",
    "BiggestReachPolicy",
    "CheapestPerFollowerPolicy",
    "DistilledTree",
    "EnvStatePolicy",
    "FixedSegmentPolicy",
    "HeuristicPolicy",
    "LogisticBandit",
    "MyopicOracle",
    "PlanningOracle",
    "RandomPolicy",
    "SB3Agent",
    "agent_class",
    "agent_names",
    "check_agent_name",
    "check_hyperparameters",
    "hyperparameter_names",
    "load_agent",
    "make_agent",
    "model_filename",
]
