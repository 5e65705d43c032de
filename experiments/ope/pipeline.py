"""Off-policy evaluation end to end: logs and a target policy in, the estimate table out (``influmatch ope``).

:func:`evaluate_logs` reads and validates the logs in the environment they were made in (the options of
their metadata, or of the target's run folder, overridden by ``env_overrides``), computes the target's
probabilities at every logged context, fits the reward model and fitted-Q evaluation, and estimates
with the brand, goal and segment breakdown (features found by the environment's ``feature_specs``);
with ``truth`` also the true values in the simulator. :func:`write_results` writes the files of
``influmatch ope``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from experiments.files import check_input_file, decode_error, staged_dir, write_json
from experiments.ope.config import OPEConfig
from experiments.ope.estimators import action_segments, estimate, target_probabilities
from experiments.ope.logs import LoggedData, metadata_path, read_logs, read_metadata
from experiments.ope.models import cross_fitted_reward_model, fitted_q_evaluation
from experiments.ope.policies import PolicyError, build_policy, differing_options, make_env, policy_source
from experiments.ope.truth import (
    TruthError,
    replay_expected_rewards,
    simulate_target,
    truth_table,
    with_truth,
)

__all__ = ["OPEResult", "evaluate_logs", "write_results"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, eq=False)
class OPEResult:
    """What :func:`evaluate_logs` found: the full table (overall rows have ``group_by == "all"``), the
    logs, and the facts of ``summary.json``."""

    table: pd.DataFrame
    data: LoggedData
    summary: dict[str, Any]

    @property
    def overall(self) -> pd.DataFrame:
        """The overall estimates (``estimates.csv``)."""
        rows = self.table[self.table["group_by"] == "all"]
        return rows.drop(columns=["group_by", "group", "target_share"])

    @property
    def breakdown(self) -> pd.DataFrame:
        """The per-brand, per-goal and per-segment estimates (``breakdown.csv``)."""
        return self.table[self.table["group_by"] != "all"]


def _r2(y: np.ndarray, prediction: np.ndarray) -> float:
    variance = float(np.var(y))
    return float(1.0 - np.mean((y - prediction) ** 2) / variance) if variance > 0 else math.nan


#: Largest reward magnitude accepted, in thousands of USD per decision (a trillion dollars): beyond it
#: sums over decisions and bootstrap resamples lose precision or overflow.
MAX_ABS_REWARD = 1e9


def check_reward_scale(data: LoggedData) -> None:
    """``ValueError`` naming the file and row of the first reward beyond :data:`MAX_ABS_REWARD`."""
    too_big = np.flatnonzero(np.abs(data.reward) > MAX_ABS_REWARD)
    if too_big.size:
        i = int(too_big[0])
        row = i if data.row is None else int(data.row[i])
        raise ValueError(
            f"{data.source}: row {row}, column 'reward': {data.reward[i]:.6g} thousand USD is beyond "
            f"the ±{MAX_ABS_REWARD:.0e} a decision can be worth (rewards are in thousands of USD)"
        )


def check_finite_estimates(table: pd.DataFrame, logs: Path) -> None:
    """``ValueError`` if an estimate or interval came out infinite or NaN where the data has rows."""
    overall = table[table["group_by"] == "all"]
    estimate = overall["estimate"].to_numpy(dtype=float)
    bounds = overall[[c for c in ("low", "high") if c in overall.columns]].to_numpy(dtype=float)
    bad = ~np.isfinite(estimate) | np.isinf(bounds).any(axis=1)
    if bad.any():
        row = overall.iloc[int(np.flatnonzero(bad)[0])]
        raise ValueError(
            f"{logs}: the {row['estimator']} estimate ({row['scope']}) is not a finite number; the rewards are "
            "too large or too spread to estimate with"
        )


def evaluate_logs(
    logs: Path,
    policy: str,
    epsilon: float | None,
    config: OPEConfig,
    *,
    env_overrides: dict[str, Any] | None = None,
    truth: bool = False,
) -> OPEResult:
    """Estimate the value of ``policy`` (a run folder or an agent name, epsilon-greedy with ``epsilon``
    or its own distribution with None) from the log file ``logs``; see the module docstring.

    Raises
    ------
    PolicyError
        The target reads the simulator's state (it cannot be evaluated from logged contexts).
    TruthError
        ``truth`` without the logs' metadata, or logs the simulator does not reproduce.
    """
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    logs = Path(logs)
    check_input_file(logs)
    try:
        meta = read_metadata(logs)
    except UnicodeDecodeError as err:
        raise decode_error(metadata_path(logs), err) from None
    source = policy_source(policy)
    env_options = dict(meta["env"]) if meta is not None else dict(source.env_options)
    env_options.update(env_overrides or {})
    if meta is not None and source.run_dir is not None:
        differ = differing_options(source.env_options, env_options)
        if differ:
            logger.warning(
                "%s was trained in an environment with other options (%s) than the logs'; it is evaluated as "
                "a function of the observation in the logs' environment",
                source.label,
                ", ".join(differ),
            )
    env = make_env(env_options)
    unwrapped = env.unwrapped
    target = build_policy(source, env, epsilon, seed=config.random_state)
    if target.reads_env_state:
        raise PolicyError(
            f"--policy {source.name} reads the simulator's state when it decides, not the observation, so it "
            "can log matches (influmatch log) but cannot be evaluated from logs; evaluate a policy that "
            "acts on the observation (cqi, ppo, a2c, dqn, maskable_ppo, logistic_bandit, random)"
        )
    if truth and meta is None:
        raise TruthError(
            f"{logs}: --truth needs {metadata_path(logs).name} beside the logs "
            "(environment options and campaign seeds, written by influmatch log)"
        )
    try:
        data = read_logs(logs, unwrapped.feature_names, unwrapped.action_names)
    except UnicodeDecodeError as err:
        raise decode_error(logs, err) from None
    check_reward_scale(data)
    timings["read"] = time.perf_counter() - clock

    clock = time.perf_counter()
    probs = target_probabilities(target, data)
    timings["target_probabilities"] = time.perf_counter() - clock
    clock = time.perf_counter()
    q_hat = cross_fitted_reward_model(data, probs, config)
    timings["reward_model"] = time.perf_counter() - clock
    clock = time.perf_counter()
    fqe = fitted_q_evaluation(data, probs, config)
    timings["fitted_q"] = time.perf_counter() - clock
    clock = time.perf_counter()
    segments = action_segments(data.n_actions, int(unwrapped.n_segments))
    specs = unwrapped.feature_specs
    table = estimate(data, probs, q_hat=q_hat, fqe=fqe, config=config, segments=segments,
                     segment_names=list(unwrapped.segment_names), breakdown=True, feature_specs=specs)  # fmt: skip
    timings["estimates_and_bootstrap"] = time.perf_counter() - clock

    check_finite_estimates(table, logs)
    if truth:
        clock = time.perf_counter()
        q_true = replay_expected_rewards(env, data)
        simulated = simulate_target(env, target, data, seed=config.random_state, segments=segments)
        truths = truth_table(data, probs, q_true, simulated, table, segments, feature_specs=specs)
        table = with_truth(table, truths)
        timings["truth"] = time.perf_counter() - clock

    summary = {
        "logs": str(logs),
        "n_decisions": data.n_decisions,
        "n_campaigns": data.n_campaigns,
        "logging_policy": (meta or {}).get("policy", {}).get("description"),
        "target_policy": target.describe(),
        "env": env_options,
        "config": dataclasses.asdict(config),
        "seconds": {k: round(v, 3) for k, v in timings.items()},
        "reward_model_r2": _r2(data.reward, q_hat[np.arange(data.n_decisions), data.action]),
    }
    return OPEResult(table, data, summary)


def write_results(result: OPEResult, out: Path, overwrite: bool = False) -> Path:
    """Write ``estimates.csv``, ``breakdown.csv`` (by brand, goal, segment), ``estimates.png`` and
    ``summary.json`` into the folder ``out`` (new or empty; ``overwrite`` replaces an earlier one, in
    one rename once complete); returns it."""
    from experiments.reporting.figures import plot_estimates

    out = Path(out)
    with staged_dir(out, overwrite) as tmp:
        result.overall.to_csv(tmp / "estimates.csv", index=False)
        result.breakdown.to_csv(tmp / "breakdown.csv", index=False)
        plot_estimates(tmp / "estimates.csv", tmp / "estimates.png")
        write_json(tmp / "summary.json", result.summary)
    return out
