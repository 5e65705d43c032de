"""Off-policy evaluation end to end: logs and a target policy in, the estimate table out (``influmatch ope``).

:func:`evaluate_logs` reads and validates the logs in the environment they were made in (the options of
their metadata, or of the target's run folder, overridden by ``env_overrides``), computes the target's
probabilities at every logged context, fits the reward model and fitted-Q evaluation, and estimates
with the brand, goal and segment breakdown (features found by the environment's ``feature_specs``);
with ``truth`` also the true values in the simulator. :func:`write_results` writes the files of
``influmatch ope``. Per campaign it also fits the market to the logs and runs the target in it
(:mod:`experiments.ope.model_based`: ``MB`` and ``MB-DR``) and fits fitted-Q with action features
(``DM-AF``, ``DR-AF``). Logs and a policy trained in another market are refused
(:func:`~experiments.ope.policies.check_same_market`) unless ``allow_different_market``.

**The recommended estimate** (the ``recommended`` column, one row per scope; :func:`recommend`):

- per decision: ``DR`` (the cross-fitted reward model with the importance-weighted correction; the
  weights of one decision are well behaved);
- per campaign, when the market was fitted and its predictive checks pass (at most
  ``max_flagged_share`` of them flag): ``MB-DR`` if the per-campaign importance weights are usable
  (effective sample at least ``min_ess_share`` of the campaigns), else ``MB``;
- per campaign otherwise (the fit failed, or its checks flag a market the model does not describe):
  ``DR-AF`` if the weights are usable, else ``MB`` if it ran, else ``DR-AF``.

The rule and the reason are in ``summary.json`` (``recommended``).
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
from experiments.ope.models import (
    ActionFeatures,
    cross_fitted_reward_model,
    fitted_q_action_features,
    fitted_q_evaluation,
)
from experiments.ope.policies import (
    PolicyError,
    StochasticPolicy,
    build_policy,
    check_same_market,
    make_env,
    policy_source,
)
from experiments.ope.truth import (
    TruthError,
    replay_expected_rewards,
    simulate_target,
    truth_table,
    with_truth,
)

__all__ = ["MarketModel", "OPEResult", "estimate_target", "evaluate_logs", "prepare_market", "recommend",
           "write_results"]  # fmt: skip

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


@dataclasses.dataclass(frozen=True, eq=False)
class MarketModel:
    """The market fitted to one set of logs, shared by every target evaluated on them: the fit, the
    simulated markets and the logged campaigns (``fitted`` None when the fit could not be made:
    ``reason`` says why)."""

    fitted: Any = None
    markets: list | None = None
    campaigns: Any = None
    reason: str = ""
    seconds: float = 0.0


def prepare_market(data: LoggedData, env: Any, env_options: dict, config: OPEConfig) -> MarketModel:
    """Fit the market to the logs and build the simulated markets (:mod:`experiments.ope.model_based`);
    a fit the logs do not allow is reported in ``reason`` (the model-based estimates are then left out)."""
    from envs.fit import MarketFitError, OffersValidationError
    from experiments.market_fit import FitInputError
    from experiments.ope import model_based

    if not config.model_based:
        return MarketModel(reason="model_based is off")
    clock = time.perf_counter()
    try:
        fitted = model_based.fit_logged_market(data, env, env_options, config)
    except (FitInputError, OffersValidationError, MarketFitError) as err:
        logger.warning("no model-based estimates: %s", err)
        return MarketModel(reason=str(err))
    markets = model_based.build_markets(fitted, config)
    if tuple(markets[0].unwrapped.action_names) != tuple(data.action_names):
        return MarketModel(
            reason="the simulated market's segments differ from the logs' (other action names)"
        )
    campaigns = model_based.logged_campaigns(data, env)
    return MarketModel(fitted, markets, campaigns, seconds=time.perf_counter() - clock)


def evaluate_logs(
    logs: Path,
    policy: str,
    epsilon: float | None,
    config: OPEConfig,
    *,
    env_overrides: dict[str, Any] | None = None,
    truth: bool = False,
    allow_different_market: bool = False,
    truth_paths: float = 1,
) -> OPEResult:
    """Estimate the value of ``policy`` (a run folder, an agent name or ``module:function``,
    epsilon-greedy with ``epsilon`` or its own distribution with None) from the log file ``logs``; see
    the module docstring.

    Raises
    ------
    PolicyError
        The target reads the hidden truth (the oracles), or decides from candidate facts the logs do not
        record.
    MarketMismatchError
        The logs and the policy's run folder come from different markets (unless
        ``allow_different_market``).
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
        differ = check_same_market(meta["env"], source.env_options, f"the policy {source.label}", f"the logs {logs}",
                                   allow=allow_different_market)  # fmt: skip
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
    if target.reads_env_state and not target.reads_candidates:
        raise PolicyError(
            f"--policy {source.name} reads the simulator's hidden state when it decides, so it "
            "can log matches (influmatch log) but cannot be evaluated from logs; evaluate a policy that "
            "acts on what is logged (cqi, ppo, a2c, dqn, maskable_ppo, logistic_bandit, random, the "
            "heuristics, a module:function rule)"
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
    market = prepare_market(data, env, env_options, config)
    timings["market_fit"] = market.seconds
    result = estimate_target(data, env, target, config, market, truth=truth, timings=timings, source=logs,
                             truth_paths=truth_paths)  # fmt: skip
    summary = {
        "logs": str(logs),
        "logging_policy": (meta or {}).get("policy", {}).get("description"),
        "env": env_options,
        **result.summary,
    }
    return OPEResult(result.table, data, summary)


def estimate_target(
    data: LoggedData,
    env: Any,
    target: StochasticPolicy,
    config: OPEConfig,
    market: MarketModel,
    *,
    truth: bool = False,
    timings: dict[str, float] | None = None,
    source: Path | str = "logs",
    truth_env: Any = None,
    cache: dict[str, Any] | None = None,
    truth_paths: float = 1,
) -> OPEResult:
    """Every estimate of ``target`` from validated logs ``data`` made in ``env`` (the market fitted to
    them in ``market``, see :func:`prepare_market`), the recommended one marked; with ``truth`` the true
    values in the simulator: in ``truth_env`` (default ``env``), which must be the logs' own market.
    ``cache`` (a dict kept between targets of the same logs) keeps the replayed expected rewards;
    ``truth_paths`` paths per campaign on average make the per-campaign truth (see
    :func:`experiments.ope.truth.simulate_target`)."""
    from experiments.ope import model_based

    timings = {} if timings is None else timings
    unwrapped = env.unwrapped
    started = clock = time.perf_counter()
    probs = target_probabilities(target, data)
    timings["target_probabilities"] = time.perf_counter() - clock
    clock = time.perf_counter()
    q_hat = cross_fitted_reward_model(data, probs, config)
    timings["reward_model"] = time.perf_counter() - clock
    specs = unwrapped.feature_specs
    features = ActionFeatures(specs, unwrapped.offer_levels, data.n_actions)
    fqe, models, worker = None, {}, None
    if config.fitted_q and config.n_jobs > 1 and market.fitted is not None:
        # beside the model-based simulation, in a private worker (loky's, which needs no __main__
        # guard): joblib's reusable executor is shared with joblib.Parallel (the sweeps), which expects
        # it set up by joblib itself
        from joblib.externals.loky import ProcessPoolExecutor

        worker = ProcessPoolExecutor(max_workers=1)
    try:
        pending = None if worker is None else worker.submit(fitted_q_both, data, probs, features, config)
        if config.fitted_q and pending is None:
            fqe, models["fqe_af"], seconds = fitted_q_both(data, probs, features, config)
            timings.update(seconds)
        values, mb = None, None
        if market.fitted is not None:
            clock = time.perf_counter()
            values = model_based.simulate_target(
                market.fitted, market.campaigns, target, config, markets=market.markets
            )
            mb = model_based.model_based_q(data, probs, values, features, config)
            timings["model_based"] = time.perf_counter() - clock
        if pending is not None:
            fqe, models["fqe_af"], seconds = pending.result()
            timings.update(seconds)
    finally:
        if worker is not None:
            worker.shutdown(wait=True, kill_workers=True)
    if mb is not None:
        models["mb"] = mb
    clock = time.perf_counter()
    segments = action_segments(data.n_actions, int(unwrapped.n_segments))
    table = estimate(data, probs, q_hat=q_hat, fqe=fqe, config=config, segments=segments,
                     segment_names=list(unwrapped.segment_names), breakdown=True, feature_specs=specs,
                     models=models, model_based=values)  # fmt: skip
    timings["estimates_and_bootstrap"] = time.perf_counter() - clock
    check_finite_estimates(table, Path(source))
    table, recommended = recommend(table, market, config)
    timings["estimation"] = time.perf_counter() - started  # the wall clock: fitted-Q may have run beside
    if truth:
        clock = time.perf_counter()
        true_env = env if truth_env is None else truth_env
        cache = {} if cache is None else cache
        if "q_true" not in cache:
            cache["q_true"] = replay_expected_rewards(true_env, data)
        simulated = simulate_target(true_env, target, data, seed=config.random_state, segments=segments,
                                    n_paths=truth_paths)  # fmt: skip
        truths = truth_table(data, probs, cache["q_true"], simulated, table, segments, feature_specs=specs)
        table = with_truth(table, truths)
        timings["truth"] = time.perf_counter() - clock
    fit = market.fitted
    summary = {
        "n_decisions": data.n_decisions,
        "n_campaigns": data.n_campaigns,
        "target_policy": target.describe(),
        "config": dataclasses.asdict(config),
        "seconds": {k: round(v, 3) for k, v in timings.items()},
        "reward_model_r2": _r2(data.reward, q_hat[np.arange(data.n_decisions), data.action]),
        "recommended": recommended,
        "market_fit": None if fit is None else {
            "n_offers": len(fit.run.offers), "offers_left_out": fit.n_left_out,
            "checks_flagged_share": fit.flagged_share(), "checks_pass": fit.checks_pass(config.max_flagged_share),
            "campaign_fields": market.campaigns.notes,
        },
        "market_fit_skipped": market.reason or None,
    }  # fmt: skip
    return OPEResult(table, data, summary)


def fitted_q_both(
    data: LoggedData, probs: np.ndarray, features: ActionFeatures, config: OPEConfig
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray], dict[str, float]]:
    """Fitted-Q evaluation one-hot and with action features, and the seconds of each (a function of
    its arguments only, so it runs the same in another process)."""
    clock = time.perf_counter()
    fqe = fitted_q_evaluation(data, probs, config)
    seconds = {"fitted_q": time.perf_counter() - clock}
    clock = time.perf_counter()
    fqe_af = fitted_q_action_features(data, probs, features, config)
    seconds["fitted_q_action_features"] = time.perf_counter() - clock
    return fqe, fqe_af, seconds


def recommend(table: pd.DataFrame, market: MarketModel, config: OPEConfig) -> tuple[pd.DataFrame, dict]:
    """``table`` with a ``recommended`` column (True on one overall row per scope, see the module
    docstring for the rule) and, per scope, the estimator and why."""
    overall = table["group_by"] == "all"
    available = set(table.loc[overall & (table["scope"] == "per_campaign"), "estimator"])
    ips = table[overall & (table["scope"] == "per_campaign") & (table["estimator"] == "IPS")]
    ess = float(ips["ess"].iloc[0]) if len(ips) else 0.0
    n_campaigns = int(ips["n_campaigns"].iloc[0]) if len(ips) else 0
    usable = ess >= config.min_ess_share * n_campaigns
    weights = f"per-campaign effective sample {ess:.3g} of {n_campaigns} campaigns"
    fit = market.fitted
    if fit is not None and fit.checks_pass(config.max_flagged_share):
        choice = "MB-DR" if usable else "MB"
        why = f"the fitted market passes its predictive checks; {weights} ({'usable' if usable else 'degenerate'})"
    else:
        failed = market.reason or f"{fit.flagged_share():.0%} of the fit's predictive checks flag"
        choice = "DR-AF" if usable or "MB" not in available else "MB"
        why = f"{failed}; {weights} ({'usable' if usable else 'degenerate'})"
    if choice not in available:
        choice = next((c for c in ("DR-AF", "DR", "MB", "IPS") if c in available), "DR")
    chosen = {"per_decision": ("DR", "per decision the importance weights are well behaved"),
              "per_campaign": (choice, why)}  # fmt: skip
    table = table.copy()
    table["recommended"] = False
    for scope, (name, _) in chosen.items():
        table.loc[overall & (table["scope"] == scope) & (table["estimator"] == name), "recommended"] = True
    return table, {scope: {"estimator": name, "why": why_} for scope, (name, why_) in chosen.items()}


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
