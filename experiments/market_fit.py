"""The market fit of ``influmatch fit``: logged matches to the offers table, the fit, the checks, the folder.

:func:`offers_from_logs` turns validated logged matches (:class:`~experiments.ope.logs.LoggedData`) into
the offers table of :data:`envs.fit.offers.OFFER_COLUMNS`: one row per decision that made an offer
(refusals included; waits dropped, and the log format admits no invalid action). The month, brand and
goal come from the context columns through the feature specs; ``offer_ratio`` and ``segment`` from the
offer facts, or from the action and the environment's options when a log predates them. An offer fact
that a log lacks (:data:`FACT_PARAMETERS`) is filled with a neutral value and the parameters it informs
are held at their defaults and reported unidentified, with the column named.

:func:`run_market_fit` fits (:func:`envs.fit.fit_market`), runs the predictive checks
(:func:`envs.fit.predictive_checks`) and writes the folder (:func:`write_fit_folder`) atomically: into a
temporary folder beside ``out`` that is renamed at the end, so a failed fit leaves nothing behind. The
market's dynamics (``v0`` or ``v1``) are those of the logs' environment options (their metadata).
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from envs.calibration import PLATFORMS, Calibration
from envs.fit import OFFER_COLUMN_NAMES, OUTCOME_COLUMNS, MarketFit, fit_market, predictive_checks
from envs.fit.offers import MIN_OFFERS
from envs.observation import find
from envs.population import InfluencerPool
from experiments.files import write_json
from experiments.ope.logs import INFLUENCER, LogFormatError, LoggedData

logger = logging.getLogger(__name__)

__all__ = [
    "FACT_PARAMETERS",
    "FIT_FILES",
    "FitInputError",
    "MarketFitRun",
    "offers_from_logs",
    "run_market_fit",
    "write_fit_folder",
]

#: Files a fit folder holds.
FIT_FILES: tuple[str, ...] = (
    "parameters.csv", "calibration.yaml", "covariance.csv", "checks.csv", "checks.png", "fit.json",
)  # fmt: skip

_REACH = (*(f"reach_rate_at_10k[{p}]" for p in PLATFORMS), "price_quality_correlation", "response_quality_sd")

#: Offer facts a log may lack -> (value it is filled with, parameters that cannot be fitted without it).
#: ``order_value`` informs no parameter (only the revenue checks): it is filled per campaign with
#: revenue / conversions where the campaign converted, else with the median of those.
FACT_PARAMETERS: dict[str, tuple[float, tuple[str, ...]]] = {
    "sponsored_load": (1.0, ("acceptance_load_slope", "engagement_fatigue")),
    "category_share": (Calibration().acceptance_category_pivot, ("acceptance_category_slope",)),
    "fit": (0.5, ("click_rate", "conversion_rate", "sponsored_engagement_multiplier")),
    "overlap_factor": (1.0, _REACH),
}


class FitInputError(ValueError):
    """Logs or a pool that the fit cannot use; the message names the file and the column or row."""


@dataclasses.dataclass(frozen=True)
class MarketFitRun:
    """What :func:`run_market_fit` produced.

    Attributes
    ----------
    fit : MarketFit
        The estimates.
    checks : pandas.DataFrame
        The predictive checks (columns of :data:`envs.fit.CHECK_COLUMNS`).
    offers : pandas.DataFrame
        The offers table fitted.
    missing : dict[str, tuple[str, ...]]
        Offer facts the logs lack -> the parameters left unfitted for it.
    """

    fit: MarketFit
    checks: pd.DataFrame
    offers: pd.DataFrame
    missing: dict[str, tuple[str, ...]]


def offers_from_logs(
    data: LoggedData, pool: InfluencerPool
) -> tuple[pd.DataFrame, dict[str, tuple[str, ...]]]:
    """The offers table of logged matches, and the offer facts the logs lack.

    Parameters
    ----------
    data : LoggedData
        Validated logs (:func:`experiments.ope.logs.read_logs`), with the outcome columns and
        ``influencer_id``.
    pool : InfluencerPool
        The influencers the logs name.

    Returns
    -------
    (pandas.DataFrame, dict)
        One row per offer, columns :data:`envs.fit.offers.OFFER_COLUMN_NAMES`; and, per offer fact the
        logs lack (see :data:`FACT_PARAMETERS`), the parameters that cannot be fitted without it.

    Raises
    ------
    FitInputError
        Logs without outcome columns or ``influencer_id`` (named), without any offer, naming
        influencers outside the pool (the first row named), or with an empty offer fact on an offer row.
    """
    source = data.source
    needed = ("accepted", *OUTCOME_COLUMNS, INFLUENCER)
    lacking = [name for name in needed if name not in data.outcomes]
    if lacking:
        raise FitInputError(
            f"{source}: missing outcome columns {', '.join(lacking)} (the fit needs what every offer "
            f"produced: {', '.join(needed)})"
        )
    offer = np.flatnonzero(data.action != data.n_actions - 1)
    if len(offer) == 0:
        raise FitInputError(f"{source}: no decision made an offer (every logged action waits)")
    ids = data.outcomes[INFLUENCER][offer].astype(str)
    _check_ids(data, offer, ids, pool)
    specs = _specs(data)
    context = data.context[offer]
    month_at = find(specs, "month")[0]
    brand = [j for j, spec in enumerate(specs) if spec.field == "brand_category"]
    goal = [j for j, spec in enumerate(specs) if spec.field == "goal"]
    table: dict[str, object] = {
        "influencer_id": ids,
        "campaign_id": data.campaign_ids[data.campaign[offer]].astype(str),
        "month": np.rint(context[:, month_at]).astype(np.int64),
        "brand_category": np.asarray([specs[brand[k]].value for k in context[:, brand].argmax(axis=1)]),
        "goal": np.asarray([specs[goal[k]].value for k in context[:, goal].argmax(axis=1)]),
    }
    table.update(_action_facts(data, offer))
    missing: dict[str, tuple[str, ...]] = {}
    for name, (fill, parameters) in FACT_PARAMETERS.items():
        if name in data.offer_facts:
            table[name] = _complete(data, name, offer)
        else:
            table[name] = np.full(len(offer), fill)
            missing[name] = parameters
    table["order_value"] = _order_value(data, offer)
    for name in ("accepted", *OUTCOME_COLUMNS):
        table[name] = data.outcomes[name][offer]
    if "order_value" not in data.offer_facts:
        missing["order_value"] = ()
    return pd.DataFrame(table, columns=list(OFFER_COLUMN_NAMES)), missing


def _check_ids(data: LoggedData, offer: np.ndarray, ids: np.ndarray, pool: InfluencerPool) -> None:
    """Refuse an offer whose influencer is empty or not in the pool (naming the file row)."""
    known = pd.Index(pool.influencer_id.astype(str)).get_indexer(ids) >= 0
    if not known.all():
        k = int(np.flatnonzero(~known)[0])
        n_rows = int((~known).sum())
        who = f"'{ids[k]}' is not in the pool" if ids[k] else "empty on a row that made an offer"
        raise FitInputError(
            f"{data.source}: row {data.file_row(int(offer[k]))}, column '{INFLUENCER}': {who} "
            f"({n_rows} of {len(ids)} offers name influencers outside the pool)"
        )


def _specs(data: LoggedData) -> tuple:
    try:
        return data.specs()
    except LogFormatError as err:
        raise FitInputError(f"{err} (the fit reads the month, brand and goal from them)") from None


def _action_facts(data: LoggedData, offer: np.ndarray) -> dict[str, np.ndarray]:
    """``offer_ratio`` and ``segment``: the logged facts, else what the action means in the logs'
    environment (its ``offer_levels``; the defaults without metadata)."""
    levels = np.asarray(_env_options(data)["offer_levels"], dtype=float)
    action = data.action[offer]
    out = {
        "offer_ratio": levels[action % len(levels)],
        "segment": (action // len(levels)).astype(np.int64),
    }
    for name in out:
        if name in data.offer_facts:
            out[name] = _complete(data, name, offer)
    out["segment"] = out["segment"].astype(np.int64)
    return out


def _env_options(data: LoggedData) -> dict:
    """The logs' environment options (their metadata's, the environment's defaults for the rest)."""
    from envs.matching_env import env_option_defaults

    return {**env_option_defaults(), **((data.metadata or {}).get("env") or {})}


def _complete(data: LoggedData, name: str, offer: np.ndarray) -> np.ndarray:
    """A logged offer fact on the offer rows; refuses an empty value there."""
    values = data.offer_facts[name][offer]
    empty = np.isnan(values)
    if empty.any():
        k = int(np.flatnonzero(empty)[0])
        raise FitInputError(
            f"{data.source}: row {data.file_row(int(offer[k]))}, column '{name}': empty on a row that made "
            f"an offer ({int(empty.sum())} offers lack it; drop those rows or the column)"
        )
    return values


def _order_value(data: LoggedData, offer: np.ndarray) -> np.ndarray:
    """Logged order values, else revenue / conversions per campaign (the median where none converted)."""
    if "order_value" in data.offer_facts:
        return _complete(data, "order_value", offer)
    conversions = data.per_campaign(data.outcomes["conversions"].astype(float))
    revenue = data.per_campaign(data.outcomes["revenue"])
    per_campaign = np.divide(revenue, conversions, out=np.full(len(revenue), np.nan), where=conversions > 0)
    known = per_campaign[np.isfinite(per_campaign)]
    per_campaign[~np.isfinite(per_campaign)] = float(np.median(known)) if len(known) else 0.0
    return per_campaign[data.campaign[offer]]


# ------------------------------------------------------------------------------------------ fit
def run_market_fit(
    data: LoggedData,
    pool: InfluencerPool,
    rng: np.random.Generator,
    *,
    base: Calibration | None = None,
    n_sims: int = 200,
    engagement_clusters: str = "independent",
    fit_slopes: bool = False,
) -> MarketFitRun:
    """Fit the market to logged matches and check it.

    Parameters
    ----------
    data : LoggedData
        The logs.
    pool : InfluencerPool
        The influencers they name.
    rng : numpy.random.Generator
        Drives the predictive checks' simulations.
    base : Calibration, optional
        Defaults of what is not estimated (the published defaults).
    n_sims : int
        Simulated replays of the logs in the checks.
    engagement_clusters : str
        How the engagement block weighs an influencer's offers (see :func:`envs.fit.fit_market`).
    fit_slopes : bool
        Also estimate the brand-fit slopes of engagement and conversions (see :func:`envs.fit.fit_market`).

    Raises
    ------
    FitInputError, envs.fit.OffersValidationError, envs.fit.MarketFitError
        One line each: bad logs, a bad offers table, a likelihood that does not converge.
    """
    offers, missing = offers_from_logs(data, pool)
    if len(offers) < MIN_OFFERS:
        raise FitInputError(
            f"{data.source}: {len(offers)} decisions made an offer; the fit needs at least {MIN_OFFERS} "
            "(with fewer, no parameter is identified)"
        )
    reasons = {
        parameter: f"the logs lack column '{column}', which it needs"
        for column, parameters in missing.items()
        for parameter in parameters
    }
    fit = fit_market(offers, pool, base, unfittable=reasons, dynamics=_env_options(data)["dynamics"],
                     engagement_clusters=engagement_clusters, fit_slopes=fit_slopes)  # fmt: skip
    checks = predictive_checks(fit, offers, pool, rng, n_sims=n_sims)
    return MarketFitRun(fit, checks, offers, missing)


def write_fit_folder(run: MarketFitRun, out: str | Path, *, overwrite: bool, config: Mapping) -> Path:
    """Write the fit folder (see :data:`FIT_FILES`) atomically.

    Everything is written into a temporary folder beside ``out``, which then replaces ``out``; a failure
    before the rename leaves ``out`` as it was.

    Raises
    ------
    FitInputError
        ``out`` is a file, or a non-empty folder and ``overwrite`` is False.
    """
    from experiments.reporting.fit_figures import plot_checks

    out = Path(out)
    check_out_dir(out, overwrite=overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        run.fit.write(tmp)
        run.checks.to_csv(tmp / "checks.csv", index=False)
        plot_checks(tmp / "checks.csv", tmp / "checks.png")
        write_json(tmp / "fit.json", {**dict(config), "n_offers": len(run.offers),
                                      "missing_columns": {k: list(v) for k, v in run.missing.items()}})  # fmt: skip
        tmp.chmod(0o777 & ~_umask())
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def check_out_dir(out: Path, *, overwrite: bool) -> None:
    """Refuse an ``out`` that is a file, or a non-empty folder without ``overwrite``."""
    if out.exists() and not out.is_dir():
        raise FitInputError(f"{out}: --out must be a folder, but a file of that name exists")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FitInputError(f"{out}: the folder exists and is not empty (pass --overwrite to replace it)")


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


# -------------------------------------------------------------------------------------- summary
def summary_lines(run: MarketFitRun) -> list[str]:
    """A short plain-text summary: identified estimates, unidentified parameters and why, what the logs
    lack, and how many predictive checks flag."""
    table = run.fit.parameters
    identified = table[table["identified"]]
    lines = [f"Identified ({len(identified)} of {len(table)} parameters):"]
    width = max(len(str(p)) for p in table["parameter"])
    for row in identified.itertuples(index=False):
        lines.append(
            f"  {str(row.parameter):<{width}}  {row.estimate:>10.4g} ± {row.std_error:<9.3g} "
            f"[{row.ci_low:.4g}, {row.ci_high:.4g}]  default {row.default:.4g}"
        )
    unidentified = table[~table["identified"]]
    lines.append(
        f"Unidentified ({len(unidentified)}, kept at their defaults unless the note says otherwise):"
    )
    for row in unidentified.itertuples(index=False):
        lines.append(f"  {str(row.parameter):<{width}}  {run.fit.notes.get(str(row.parameter), '')}")
    for column, parameters in run.missing.items():
        lost = (
            ", ".join(parameters) if parameters else "no parameter (revenue checks use revenue / conversions)"
        )
        lines.append(f"The logs lack column '{column}': cannot fit {lost}.")
    checked = run.checks[run.checks["verdict"] != "too few offers"]
    flagged = checked[checked["verdict"].str.startswith("logged")]
    lines.append(
        f"Predictive checks: {len(flagged)} of {len(checked)} flag (logged outside the model's 95 % interval)"
        + (":" if len(flagged) else ".")
    )
    for row in flagged.head(8).itertuples(index=False):
        where = "overall" if row.group == "overall" else (
            f"segment {row.segment:g}" if row.group == "segment" else f"offer level {row.offer_ratio:g}"
        )  # fmt: skip
        lines.append(f"  {row.statistic} at {where}: logged {row.logged:.4g}, "
                     f"simulated {row.simulated_low:.4g} to {row.simulated_high:.4g}")  # fmt: skip
    if len(flagged) > 8:
        lines.append(f"  ... and {len(flagged) - 8} more (checks.csv)")
    return lines
