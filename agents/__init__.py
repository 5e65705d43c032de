"""Policies that match brands with influencers, behind one protocol (the one SB3 models satisfy).

``learn(total_timesteps, callback=None, progress_bar=False) -> self``,
``predict(observation, state=None, episode_start=None, deterministic=False) -> (actions, None)``,
``save(path)`` and ``load(path, env=None)`` (a class method). Build any agent by name with
:func:`make_agent` and read one back with :func:`load_agent`.
"""

from agents.baselines import (
    BestFitPolicy,
    BestValuePerDollarPolicy,
    BiggestReachPolicy,
    CheapestPerFollowerPolicy,
    FixedSegmentPolicy,
    LogisticBandit,
    MyopicOracle,
    RandomPolicy,
)
from agents.cqi import CQI
from agents.registry import (
    AGENT_NAMES,
    LEARNING_AGENTS,
    SEGMENT_AGENT_PATTERN,
    agent_names,
    check_agent_name,
    check_hyperparameters,
    hyperparameter_names,
    load_agent,
    make_agent,
    model_filename,
)

__all__ = [
    "AGENT_NAMES",
    "CQI",
    "LEARNING_AGENTS",
    "SEGMENT_AGENT_PATTERN",
    "BestFitPolicy",
    "BestValuePerDollarPolicy",
    "BiggestReachPolicy",
    "CheapestPerFollowerPolicy",
    "FixedSegmentPolicy",
    "LogisticBandit",
    "MyopicOracle",
    "RandomPolicy",
    "agent_names",
    "check_agent_name",
    "check_hyperparameters",
    "hyperparameter_names",
    "load_agent",
    "make_agent",
    "model_filename",
]
