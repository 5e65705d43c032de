"""The market one seed builds, the same in every command.

A run's integer seed becomes ``SeedSequence(seed)``; :func:`seed_ints` spawns its children: the
environment's (whose first child gives the ``market_seed``, whose second the training campaigns'
reset seed), the agent's and the evaluation campaigns'. The environment turns ``market_seed`` into four
streams of its own (``SeedSequence(market_seed).spawn(4)``: pool generation, segmentation, the churn
reservoir of newcomers, and the columns sampled for a user's CSV; see
``envs.matching_env.InfluencerMatchingEnv``). :func:`market_streams` gives those same streams to the
commands that build a pool or a segmentation outside an environment (``influmatch market``,
``influmatch segment``), so ``--seed S`` names the same market, the same pool and the same segments
as ``influmatch train --seed S`` (a test holds the two to each other).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from envs.calibration import Calibration

__all__ = ["MarketStreams", "load_calibration", "market_streams", "seed_ints"]


def _seed_int(seed_sequence: np.random.SeedSequence) -> int:
    return int(seed_sequence.generate_state(1, dtype=np.uint32)[0])


def seed_ints(seed: int) -> dict[str, int]:
    """The integer seeds of a run of seed ``seed``: ``market_seed``, ``reset_seed``, ``agent_seed``,
    ``eval_seed``."""
    env_ss, agent_ss, eval_ss = np.random.SeedSequence(seed).spawn(3)
    market_ss, reset_ss = env_ss.spawn(2)
    return {
        "market_seed": _seed_int(market_ss),
        "reset_seed": _seed_int(reset_ss),
        "agent_seed": _seed_int(agent_ss),
        "eval_seed": _seed_int(eval_ss),
    }


@dataclasses.dataclass(frozen=True)
class MarketStreams:
    """The seed sequences of one market, as the environment spawns them from its ``market_seed``,
    plus ``checks`` (the calibration check of ``influmatch market``, a fifth child)."""

    market_seed: int
    pool: np.random.SeedSequence
    segmentation: np.random.SeedSequence
    reservoir: np.random.SeedSequence
    fill: np.random.SeedSequence
    checks: np.random.SeedSequence

    @property
    def segmentation_seed(self) -> int:
        """The ``random_state`` the environment gives its segmenter."""
        return int(self.segmentation.generate_state(1)[0])


def market_streams(seed: int, market_seed: int | None = None) -> MarketStreams:
    """The streams of the market of a run of seed ``seed`` (or of an explicit ``market_seed``)."""
    if market_seed is None:
        market_seed = seed_ints(seed)["market_seed"]
    pool, segmentation, reservoir, fill, checks = np.random.SeedSequence(market_seed).spawn(5)
    return MarketStreams(market_seed, pool, segmentation, reservoir, fill, checks)


def load_calibration(path: str | Path | None) -> Calibration:
    """The defaults, or the defaults overridden by a YAML (or JSON) file's fields; the file is read
    strictly (:mod:`experiments.strict_yaml`: duplicate keys, alias bombs, non-UTF-8 bytes refused)."""
    if path is None:
        return Calibration()
    from experiments.files import read_text
    from experiments.strict_yaml import MAX_BYTES, load_yaml

    path = Path(path)
    text = read_text(path, MAX_BYTES)
    if path.suffix.lower() == ".json":
        try:
            values = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON at line {err.lineno} ({err.msg})") from None
    else:
        values = load_yaml(text, source=str(path))
    if values is None:
        values = {}
    return Calibration.from_dict(values, source=str(path))
