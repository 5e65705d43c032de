"""Backtest of the off-policy estimators against the simulator's truth (``influmatch ope-backtest``).

A **scenario** is a market, a logging policy, a number of logged campaigns and a seed: logs are drawn
in the market (:func:`experiments.ope.generation.generate_logs`), and every target policy is evaluated
from them as ``influmatch ope`` does (:func:`experiments.ope.pipeline.estimate_target`, the market
fitted once per scenario and shared by the targets), with its true value on the logged campaigns.

Markets (``markets`` in the config): ``exact``, the default calibration; and markets the fit cannot
describe exactly, where the logs (and the truth) are drawn with calibration fields changed that the
fit holds at their defaults (for example ``conversion_fit_slope`` and ``engagement_fit_slope``, which
the fit does not estimate, or the calendar it takes as known). The analyst's side always starts from the
default calibration: it knows only the logs.

Loggers: ``uniform`` (uniform over the valid actions) and ``epsilon:<e>:<agent>``, epsilon-greedy
around an agent (a heuristic). Targets: agent names (the heuristics, ``random``, ``segment_<k>``).

Outputs (:func:`write_backtest`): ``estimates.csv`` (every scenario x target x scope x estimator with
``truth``, ``error``, ``relative_error``, ``covered`` and ``recommended``), ``metrics.csv`` (per
estimator, scope, market, logger and size: ``bias``, ``rmse``, ``mean_abs_relative_error``,
``within_10pct``, ``coverage``, ``rank_correlation`` (Spearman between estimates and truths over the
targets of a scenario, averaged over scenarios), ``pairs_correct`` (share of target pairs whose true
values differ by at least 10 % that the estimates order correctly) and ``n``; the ``recommended``
estimator appears as its own row), ``goal.csv`` (the issue's goal on the 3,000-campaign scenarios),
``backtest.png`` (drawn from ``metrics.csv``) and ``config.json``.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from experiments.ope.config import OPEConfig

__all__ = ["BacktestConfig", "backtest_metrics", "goal_table", "run_backtest", "write_backtest"]

logger = logging.getLogger(__name__)

#: Goal of issue 15 (on the scenarios with this many logged campaigns).
GOAL_SIZE, GOAL_SHARE, GOAL_TOLERANCE, GOAL_RANK_GAP = 3000, 0.9, 0.10, 0.10


@dataclasses.dataclass(frozen=True)
class BacktestConfig:
    """A backtest grid (validated on construction; an error names the field).

    Parameters
    ----------
    sizes : sequence of int
        Logged campaigns per scenario.
    loggers : sequence of str
        ``uniform`` or ``epsilon:<e>:<agent>``.
    targets : sequence of str
        Agent names evaluated in every scenario (at least two, for the ranking).
    markets : mapping of str to mapping
        Market name -> calibration fields changed from the default for the logs and the truth.
    seeds : sequence of int
        Seeds of the logs (one scenario per seed).
    env : mapping
        Environment options of every market.
    ope : mapping
        Options of :class:`~experiments.ope.config.OPEConfig`.
    truth_paths : float
        Paths per logged campaign on average of the per-campaign truth (see
        :func:`experiments.ope.truth.simulate_target`; 1: the logged reset seed's path only).
    pool_per_seed : bool
        Each seed draws its own pool and segments (the env's ``market_seed`` is the seed), so the
        scenarios of different seeds are different markets rather than one pool's luck counted again;
        False: every scenario on the pool of ``env``.
    """

    sizes: tuple[int, ...] = (500,)
    loggers: tuple[str, ...] = ("uniform", "epsilon:0.3:best_value_per_dollar")
    targets: tuple[str, ...] = ("best_value_per_dollar", "cheapest_per_follower", "best_fit")
    markets: dict[str, dict[str, Any]] = dataclasses.field(default_factory=lambda: {"exact": {}})
    seeds: tuple[int, ...] = (0,)
    env: dict[str, Any] = dataclasses.field(default_factory=lambda: {"dynamics": "v1"})
    ope: dict[str, Any] = dataclasses.field(default_factory=dict)
    truth_paths: float = 4
    pool_per_seed: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.pool_per_seed, bool):
            raise ValueError(f"pool_per_seed: expected true or false, got {self.pool_per_seed!r}")
        paths = self.truth_paths
        if isinstance(paths, bool) or not isinstance(paths, (int, float)) or not 1 <= paths <= 64:
            raise ValueError(f"truth_paths: expected a number from 1 to 64, got {paths!r}")
        for name in ("sizes", "seeds"):
            values = getattr(self, name)
            if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < (1 if name == "sizes" else 0)
                                 for v in values):  # fmt: skip
                raise ValueError(f"{name}: expected a list of whole numbers >= {1 if name == 'sizes' else 0}")
        if len(self.targets) < 2 or len(set(self.targets)) != len(self.targets):
            raise ValueError(f"targets: expected at least two distinct agent names, got {list(self.targets)}")
        for spec in self.loggers:
            _logger_spec(spec)
        if not self.markets or not all(isinstance(v, Mapping) for v in self.markets.values()):
            raise ValueError("markets: expected a mapping of market names to calibration changes")
        OPEConfig(**self.ope)

    @classmethod
    def from_mapping(cls, raw: Any, source: str = "config") -> BacktestConfig:
        """From a parsed YAML mapping (unknown keys refused, lists made tuples)."""
        if not isinstance(raw, Mapping):
            raise ValueError(f"{source}: expected a mapping of backtest options")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"{source}: unknown key '{unknown[0]}' (expected {', '.join(sorted(known))})")
        values: dict[str, Any] = {str(k): tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
        try:
            return cls(**values)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{source}: {err}") from None

    def scenarios(self) -> list[tuple[str, str, int, int]]:
        """(market, logger, size, seed) of every scenario, seed by seed (so the scenarios run first
        cover every market, logger and size)."""
        return [(market, logger, size, seed) for seed, size, market, logger
                in itertools.product(self.seeds, self.sizes, self.markets, self.loggers)]  # fmt: skip

    def scenario_key(self, scenario: tuple[str, str, int, int]) -> str:
        """A file name for one scenario's estimates that changes with every option its results depend on
        (so a cache of finished scenarios is never reused for another grid)."""
        import hashlib
        import json

        market, logger_spec, size, seed = scenario
        facts = {"market": self.markets[market], "logger": logger_spec, "size": size, "seed": seed,
                 "targets": list(self.targets), "env": self.env, "ope": self.ope,
                 "truth_paths": self.truth_paths}  # fmt: skip
        if self.pool_per_seed:  # (absent otherwise, so earlier caches stay valid)
            facts["pool_per_seed"] = True
        digest = hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()[:12]
        safe = "".join(ch if ch.isalnum() else "-" for ch in f"{market}_{logger_spec}_{size}_{seed}")
        return f"{safe}_{digest}.csv"

    def env_options(self, seed: int) -> dict[str, Any]:
        """The environment options of the scenarios of ``seed`` (its own pool with ``pool_per_seed``)."""
        return {**self.env, "market_seed": seed} if self.pool_per_seed else dict(self.env)


def _logger_spec(spec: str) -> tuple[str, float | None]:
    """``uniform`` -> ("random", None); ``epsilon:<e>:<agent>`` -> (agent, e)."""
    if spec == "uniform":
        return "random", None
    parts = str(spec).split(":")
    if len(parts) == 3 and parts[0] == "epsilon":
        try:
            epsilon = float(parts[1])
        except ValueError:
            epsilon = -1.0
        if 0 <= epsilon <= 1:
            return parts[2], epsilon
    raise ValueError(f"loggers: expected 'uniform' or 'epsilon:<e>:<agent>', got {spec!r}")


def _market_env(options: Mapping[str, Any], changes: Mapping[str, Any], base: Any) -> Any:
    """The market of a scenario: ``options`` with ``changes`` to the default calibration (same pool and
    segments as ``base``, the default market). Only the outcomes change: the env's own estimate (the
    value per $ that ranks each segment and that the observation shows) stays the declared market's,
    as a team's tools assume the market the team declares."""
    from envs.calibration import Calibration
    from experiments.ope.policies import make_env

    if not changes:
        return base
    calibration = Calibration.from_dict(dict(changes))
    env = make_env(
        {**options, "calibration": calibration, "estimate_calibration": base.unwrapped.calibration}
    )
    if tuple(env.unwrapped.action_names) != tuple(base.unwrapped.action_names):
        raise ValueError(
            f"markets: the changes {dict(changes)} alter the pool or its segments; change outcome fields"
        )
    return env


def run_backtest(config: BacktestConfig, progress: Any = None, cache: Path | None = None) -> pd.DataFrame:
    """Every scenario's estimates of every target with the truth (the rows of ``estimates.csv``).

    With ``cache`` (a folder), each finished scenario's rows are written there as it ends
    (:meth:`BacktestConfig.scenario_key`) and a scenario already there is read instead of run, so an
    interrupted backtest resumes where it stopped."""
    from experiments.ope.generation import generate_logs
    from experiments.ope.logs import LoggedData
    from experiments.ope.pipeline import estimate_target, prepare_market
    from experiments.ope.policies import build_policy, make_env, policy_source

    ope = OPEConfig(**config.ope)
    base, base_options = None, None  # the default market of the scenarios running (one at a time)
    rows = []
    if cache is not None:
        Path(cache).mkdir(parents=True, exist_ok=True)
    for scenario in config.scenarios():
        market, logger_spec, size, seed = scenario
        cached = None if cache is None else Path(cache) / config.scenario_key(scenario)
        if cached is not None and cached.is_file():
            rows.append(pd.read_csv(cached))
            if progress is not None:
                progress(f"{market} / {logger_spec} / {size} campaigns / seed {seed}: read from {cached}")
            continue
        clock = time.perf_counter()
        scenario_rows = []
        options = config.env_options(seed)
        if base is None or options != base_options:  # scenarios run seed by seed
            base, base_options = make_env(options), options
        unwrapped = base.unwrapped
        true_env = _market_env(options, config.markets[market], base)
        agent, epsilon = _logger_spec(logger_spec)
        logging_policy = build_policy(policy_source(agent), true_env, epsilon, seed=seed)
        frame, meta = generate_logs(true_env, logging_policy, size, seed)
        meta["env"] = options
        data = LoggedData.from_frame(frame, unwrapped.feature_names, unwrapped.action_names, meta)
        model = prepare_market(data, base, dict(options), ope)
        replayed: dict[str, Any] = {}
        for target_name in config.targets:
            target = build_policy(
                policy_source(target_name), true_env, None if target_name == "random" else 0.0
            )
            result = estimate_target(data, base, target, ope, model, truth=True, truth_env=true_env,
                                     cache=replayed, truth_paths=config.truth_paths)  # fmt: skip
            table = result.overall.assign(market=market, logger=logger_spec, n_campaigns_logged=size, seed=seed,
                                          market_seed=int(options.get("market_seed", 0)),
                                          target=target_name,
                                          seconds=result.summary["seconds"]["estimation"]
                                          + result.summary["seconds"].get("truth", 0.0),
                                          checks_flagged_share=(result.summary["market_fit"] or {}).get(
                                              "checks_flagged_share", math.nan))  # fmt: skip
            scenario_rows.append(table)
        frame_rows = pd.concat(scenario_rows, ignore_index=True)
        if cached is not None:
            from experiments.files import write_text_atomic

            write_text_atomic(cached, frame_rows.to_csv(index=False))
            frame_rows = pd.read_csv(cached)  # the same types whether run or read
        rows.append(frame_rows)
        message = (
            f"{market} / {logger_spec} / {size} campaigns / seed {seed}: {time.perf_counter() - clock:.0f} s"
        )
        logger.info(message)
        if progress is not None:
            progress(message)
    return pd.concat(rows, ignore_index=True)


def _with_recommended(estimates: pd.DataFrame) -> pd.DataFrame:
    """The table plus the recommended rows again, as estimator ``recommended``."""
    chosen = estimates[estimates["recommended"].astype(bool)].assign(estimator="recommended")
    return pd.concat([estimates, chosen], ignore_index=True)


def _pairs(part: pd.DataFrame, gap: float) -> tuple[int, int]:
    """(correctly ordered, considered) target pairs whose true values differ by at least ``gap``
    (relative to the larger magnitude)."""
    est, truth = part["estimate"].to_numpy(), part["truth"].to_numpy()
    good = total = 0
    for i, j in itertools.combinations(range(len(part)), 2):
        scale = max(abs(truth[i]), abs(truth[j]))
        if scale > 0 and abs(truth[i] - truth[j]) >= gap * scale:
            total += 1
            good += int(np.sign(est[i] - est[j]) == np.sign(truth[i] - truth[j]))
    return good, total


SCENARIO = ["market", "logger", "n_campaigns_logged", "seed"]
GROUP = ["scope", "estimator", "market", "logger", "n_campaigns_logged"]


def backtest_metrics(estimates: pd.DataFrame) -> pd.DataFrame:
    """Per estimator, scope, market, logger and size: bias, RMSE, mean absolute relative error, share
    within 10 %, coverage, rank correlation and pairs ordered correctly (see the module docstring)."""
    from scipy.stats import spearmanr

    table = _with_recommended(estimates[estimates["estimator"] != "logged"])
    table = table[table["truth"].notna() & np.isfinite(table["estimate"])]
    out = []
    for key, part in table.groupby(GROUP, sort=False):
        error = part["estimate"] - part["truth"]
        relative = error.abs() / part["truth"].abs()
        correlations, good, total = [], 0, 0
        for _, scenario in part.groupby(["seed"]):
            if len(scenario) >= 2 and scenario["truth"].nunique() > 1 and scenario["estimate"].nunique() > 1:
                correlations.append(float(spearmanr(scenario["estimate"], scenario["truth"]).statistic))
            g, t = _pairs(scenario, GOAL_RANK_GAP)
            good, total = good + g, total + t
        out.append({**dict(zip(GROUP, key, strict=True)), "n": len(part), "bias": float(error.mean()),
                    "rmse": float(np.sqrt((error**2).mean())), "mean_abs_relative_error": float(relative.mean()),
                    "within_10pct": float((relative <= GOAL_TOLERANCE).mean()),
                    "coverage": float(part["covered"].astype(float).mean()),
                    "rank_correlation": float(np.mean(correlations)) if correlations else math.nan,
                    "pairs_correct": good / total if total else math.nan, "n_pairs": total})  # fmt: skip
    return pd.DataFrame(out)


def goal_table(estimates: pd.DataFrame, size: int = GOAL_SIZE) -> pd.DataFrame:
    """The issue's goal for the recommended per-campaign estimate on the scenarios with ``size`` logged
    campaigns (every logger and market): scenarios, share within 10 %, coverage, pairs ordered."""
    part = estimates[(estimates["scope"] == "per_campaign") & estimates["recommended"].astype(bool)
                     & (estimates["n_campaigns_logged"] == size)]  # fmt: skip
    if part.empty:
        return pd.DataFrame([{"n_campaigns_logged": size, "scenarios": 0}])
    relative = (part["estimate"] - part["truth"]).abs() / part["truth"].abs()
    good = total = 0
    for _, scenario in part.groupby(SCENARIO):
        g, t = _pairs(scenario, GOAL_RANK_GAP)
        good, total = good + g, total + t
    scenarios = int(part.groupby(SCENARIO).ngroups)
    within = float((relative <= GOAL_TOLERANCE).mean())
    coverage = float(part["covered"].astype(float).mean())
    pairs = good / total if total else math.nan
    met = scenarios >= 20 and within >= GOAL_SHARE and coverage >= GOAL_SHARE and not pairs < GOAL_SHARE
    row = {"n_campaigns_logged": size, "scenarios": scenarios, "estimates": len(part), "within_10pct": within,
           "coverage": coverage, "pairs_correct": pairs, "n_pairs": total,
           "estimators": ", ".join(sorted(part["estimator"].unique())), "goal_met": bool(met)}  # fmt: skip
    return pd.DataFrame([row])


def write_backtest(
    estimates: pd.DataFrame, config: BacktestConfig, out: Path, overwrite: bool = False
) -> Path:
    """Write ``estimates.csv``, ``metrics.csv``, ``goal.csv``, ``backtest.png`` and ``config.json``."""
    from experiments.files import staged_dir, write_json
    from experiments.ope.figures import plot_backtest

    out = Path(out)
    with staged_dir(out, overwrite) as tmp:
        estimates.to_csv(tmp / "estimates.csv", index=False)
        backtest_metrics(estimates).to_csv(tmp / "metrics.csv", index=False)
        goal_table(estimates).to_csv(tmp / "goal.csv", index=False)
        plot_backtest(tmp / "metrics.csv", tmp / "backtest.png")
        write_json(tmp / "config.json", dataclasses.asdict(config))
    return out
