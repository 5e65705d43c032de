"""Logged matches: the file format, reading, writing and validation.

(This module is over 600 lines because the format's specification, its docstring below, and the
validator that enforces it column by column are kept side by side: a change to one shows in the other.)

A log records, for every decision a match policy made, what it saw, what it did, how likely it was to do
that, and what happened. :func:`read_logs` validates such a file into a :class:`LoggedData`;
:func:`experiments.ope.generation.generate_logs` makes one in the simulator from any agent made
stochastic by :class:`~experiments.ope.policies.StochasticPolicy`; :mod:`experiments.ope.estimators`
estimates from it what another policy would earn.

Logged-data format
------------------
A CSV file (``.csv``) or, when pyarrow is installed, a Parquet file (``.parquet``) with **one row per
decision**: one week of one brand campaign. Rows may come in any order. Columns:

=====================  ============================  =================================================
column                 values                        meaning
=====================  ============================  =================================================
``campaign_id``        any id (int or text)          the campaign (one brand's campaign = one episode)
``step``               whole number >= 0             the week of the campaign; a campaign's rows have
                                                     steps 0, 1, 2, ... with no gap or repeat
*context features*     numbers                       one column per entry of the environment's
                                                     ``feature_names``, named exactly so (e.g.
                                                     ``brand is beauty``, ``goal is conversion``,
                                                     ``log10 budget``, ``seg 3 value per $``): the
                                                     observation the policy acted on
``action``             whole number in [0, A)        the decision; A = S·K + 1 for S segments and K
                                                     offer levels: ``a < S·K`` offers level ``a % K``
                                                     to the best candidate of segment ``a // K``,
                                                     ``A - 1`` waits a week
``action_name``        text, optional                if present, must equal ``action_names[action]``
``propensity``         number in (0, 1]              probability that the logging policy chose
                                                     ``action`` in this context
``reward``             number                        net value of the decision, thousands of USD
                                                     (value - cost; 0 for waiting or a refusal)
``mask_0`` ..          0 or 1                        the valid actions in this context (the
``mask_<A-1>``                                       environment's ``action_masks()``); the logged
                                                     action must be valid
``accepted``           0 or 1, optional              outcome: the influencer accepted the offer
``reach``,             whole numbers >= 0, optional  outcome counts (0 when no deal was made)
``engagements``,
``clicks``,
``conversions``
``cost``, ``revenue``  numbers >= 0, optional        outcome, USD (not thousands)
``value``              number >= 0, optional         the deal's value to the brand, USD
``influencer_id``      text, optional                who was approached (empty when waiting)
*offer facts*          optional, see below           what the market fit (``influmatch fit``) needs
                                                     about each offer at the time it was made
=====================  ============================  =================================================

**Offer facts** (optional columns, added with ``influmatch fit``; logs without them still read, and
``influmatch fit`` says which parameters their absence leaves unfitted). Their one home is
:data:`envs.fit.offers.OFFER_COLUMNS`; on a row that made an offer they hold the facts at the time of
the offer, on a waiting row they are empty, and an empty value on an offer row means "not known". The
offer's month, brand category and goal are not repeated: they are the context columns ``month``,
``brand is <category>`` and ``goal is <goal>`` (found through the feature specs' fields of those names,
:data:`CONTEXT_FACTS`).

=====================  ============================  =================================================
``offer_ratio``        number > 0                    offer / list price (the action's offer level)
``sponsored_load``     number >= 0, posts            the influencer's sponsored load when offered
``order_value``        number >= 0, USD              the brand's revenue per conversion
``category_share``     number in [0, 1]              the influencer's category mix at the brand's
                                                     category
``fit``                number in [0, 1]              brand fit from observables (category and
                                                     audience)
``overlap_factor``     number in (0, 1]              share of the reach that is new given the
                                                     campaign's earlier hires in the segment
``segment``            whole number >= 0             segment of the influencer (the action's)
=====================  ============================  =================================================

``influmatch log`` writes them (:class:`envs.fit.simulate.OfferRecorder`, from the environment's
public API); a value the API does not show (the load or overlap of a newcomer of a churning market) is
left empty.

**Candidate facts** (optional columns): what a rule that reads the candidates (the heuristics of
:mod:`agents.heuristics`) saw before deciding, so it can be evaluated from the logs. For every field of
:data:`CANDIDATE_FIELDS` and every hire action ``a`` (``0 .. A - 2``), a column
``candidate_<field>_<a>``: the environment's ``candidate_features()[field][a]`` at that decision, empty
where the action had no candidate. A field's columns are all present or all absent.

=====================  ============================  =================================================
``followers``          number >= 0                   the candidate's followers
``cost``               number >= 0, USD              the offer at the action's level (month premium in)
``fit``                number in [0, 1]              brand fit from observables
``value_per_dollar``   number                        the environment's estimated value per dollar
=====================  ============================  =================================================

Any other column, a missing required column, a missing value, a non-number, a propensity outside
(0, 1], an action outside [0, A), a mask value other than 0/1, a logged action that its own mask marks
invalid, a repeated or missing step, or an empty file is refused with the file, row (0-based data row;
CSV line = row + 2) and column named.

**Metadata.** ``influmatch log`` also writes ``<name>.json`` beside ``<name>.csv``: the environment
options, ``feature_names``, ``action_names``, every campaign's id and reset seed, the logging policy and
the seed. It is optional for logs you bring, but ``influmatch ope --truth`` needs it: the true value of
a target policy is computed *at estimation time* by simulation, replaying the logged campaigns (same
reset seeds, same environment options) and running the target policy on them.

**Propensities** are exact when the logs come from :class:`~experiments.ope.policies.StochasticPolicy`
(see there).

**Feature specs.** The context columns are the environment's observation;
:meth:`LoggedData.specs` gives their typed :class:`~envs.observation.FeatureSpec` (built from the
metadata's ``n_segments`` and ``campaign_weeks``), through which the estimators find the brand and goal
columns.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from envs.fit.offers import OFFER_COLUMNS, OfferColumn
from envs.observation import FeatureSpec
from experiments.files import write_json

__all__ = [
    "CAMPAIGN",
    "CANDIDATE_FIELDS",
    "CONTEXT_FACTS",
    "OFFER_FACTS",
    "OUTCOME_COLUMNS",
    "LogFormatError",
    "LoggedData",
    "candidate_columns",
    "check_suffix",
    "mask_columns",
    "metadata_path",
    "parquet_engine",
    "read_logs",
    "read_metadata",
    "write_logs",
]

CAMPAIGN, STEP, ACTION, ACTION_NAME, PROPENSITY, REWARD = (
    "campaign_id",
    "step",
    "action",
    "action_name",
    "propensity",
    "reward",
)
#: Optional outcome columns: (name, kind) with kind "flag" (0/1), "count" (whole >= 0) or "amount" (>= 0).
OUTCOME_COLUMNS: tuple[tuple[str, str], ...] = (
    ("accepted", "flag"),
    ("reach", "count"),
    ("engagements", "count"),
    ("clicks", "count"),
    ("conversions", "count"),
    ("cost", "amount"),
    ("revenue", "amount"),
    ("value", "amount"),
)
INFLUENCER = "influencer_id"
#: Decision columns of the offers table that the context already holds: the feature specs' fields of
#: these names (``month``; the one-hots ``brand is <category>``, ``goal is <goal>``).
CONTEXT_FACTS: tuple[str, ...] = ("month", "brand_category", "goal")
#: Optional offer-fact columns: those of :data:`envs.fit.offers.OFFER_COLUMNS` the rest of the format
#: does not already hold, in the order they are written.
OFFER_FACTS: tuple[OfferColumn, ...] = tuple(
    c
    for c in OFFER_COLUMNS
    if c.group == "decision" and c.name not in (INFLUENCER, CAMPAIGN, "accepted", *CONTEXT_FACTS)
)
#: Candidate facts a log may record per hire action (see the module docstring): (field, lower bound).
CANDIDATE_FIELDS: tuple[str, ...] = ("followers", "cost", "fit", "value_per_dollar")
_CANDIDATE_LOWER: dict[str, float | None] = {
    "followers": 0.0,
    "cost": 0.0,
    "fit": 0.0,
    "value_per_dollar": None,
}
SUFFIXES = (".csv", ".parquet")
META_FORMAT = "influmatch.logs"
META_VERSION = 1


class LogFormatError(ValueError):
    """A log file (or its metadata) breaks the format; the message names the file, row and column."""


def mask_columns(n_actions: int) -> list[str]:
    """``mask_0`` .. ``mask_<n_actions - 1>``."""
    return [f"mask_{a}" for a in range(n_actions)]


def candidate_columns(field: str, n_actions: int) -> list[str]:
    """``candidate_<field>_0`` .. ``candidate_<field>_<n_actions - 2>`` (one per hire action)."""
    return [f"candidate_{field}_{a}" for a in range(n_actions - 1)]


def metadata_path(path: str | Path) -> Path:
    """The metadata file beside a log file: ``logs.csv`` -> ``logs.json``."""
    return Path(path).with_suffix(".json")


# ------------------------------------------------------------------------------------------ data
@dataclasses.dataclass(frozen=True, eq=False)
class LoggedData:
    """Validated logged decisions, sorted by campaign and step.

    Attributes
    ----------
    campaign_ids : numpy.ndarray, shape (C,)
        The campaigns' ids, sorted (in order of first appearance if they cannot be sorted).
    campaign : numpy.ndarray of int, shape (n,)
        Index into ``campaign_ids`` of every decision.
    step : numpy.ndarray of int, shape (n,)
        Week of every decision (0, 1, ... within a campaign).
    context : numpy.ndarray of float, shape (n, d)
        The observations, columns as ``feature_names``.
    action : numpy.ndarray of int, shape (n,)
    propensity : numpy.ndarray of float, shape (n,)
        Logging policy's probability of ``action``, in (0, 1].
    reward : numpy.ndarray of float, shape (n,)
        Thousands of USD.
    action_mask : numpy.ndarray of bool, shape (n, A)
    feature_names, action_names : tuple of str
    outcomes : dict of str to numpy.ndarray
        The optional outcome columns present in the file.
    offer_facts : dict of str to numpy.ndarray
        The optional offer-fact columns present in the file (:data:`OFFER_FACTS`), floats with NaN
        where empty.
    candidates : dict of str to numpy.ndarray, each (n, A)
        The optional candidate facts present in the file (:data:`CANDIDATE_FIELDS`), one column per
        action (NaN for waiting and where an action had no candidate).
    row : numpy.ndarray of int, shape (n,)
        Data row of every decision in the file (for messages).
    source : str
        Where the data came from (a path).
    metadata : dict or None
        The metadata file's content, when there is one.
    """

    campaign_ids: np.ndarray
    campaign: np.ndarray
    step: np.ndarray
    context: np.ndarray
    action: np.ndarray
    propensity: np.ndarray
    reward: np.ndarray
    action_mask: np.ndarray
    feature_names: tuple[str, ...]
    action_names: tuple[str, ...]
    outcomes: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    offer_facts: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    candidates: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    row: np.ndarray | None = None
    source: str = "logs"
    metadata: dict | None = None

    def __post_init__(self) -> None:
        n = len(self.action)
        if n == 0:
            raise LogFormatError(f"{self.source}: no decisions")
        A, d = len(self.action_names), len(self.feature_names)
        shapes = {
            "campaign": (n,),
            "step": (n,),
            "context": (n, d),
            "propensity": (n,),
            "reward": (n,),
            "action_mask": (n, A),
        }
        for name, shape in shapes.items():
            if np.shape(getattr(self, name)) != shape:
                raise LogFormatError(
                    f"{self.source}: {name}: expected shape {shape}, got {np.shape(getattr(self, name))}"
                )
        if not ((self.propensity > 0) & (self.propensity <= 1)).all():
            raise LogFormatError(f"{self.source}: propensity: expected values in (0, 1]")
        if not ((self.action >= 0) & (self.action < A)).all():
            raise LogFormatError(f"{self.source}: action: expected whole numbers in [0, {A})")
        if not self.action_mask[np.arange(n), self.action].all():
            raise LogFormatError(f"{self.source}: action_mask: a logged action is marked invalid")
        order = np.lexsort((self.step, self.campaign))
        if not np.array_equal(order, np.arange(n)):
            raise LogFormatError(f"{self.source}: decisions must be sorted by campaign and step")
        for name, values in self.candidates.items():
            if np.shape(values) != (n, A):
                raise LogFormatError(f"{self.source}: candidates[{name}]: expected shape {(n, A)}")
        if self.row is None:
            object.__setattr__(self, "row", np.arange(n))

    def subset(self, rows: np.ndarray) -> LoggedData:
        """The decisions ``rows`` (sorted indices), every campaign kept in ``campaign_ids``."""
        rows = np.asarray(rows, dtype=np.int64)
        return dataclasses.replace(
            self,
            campaign=self.campaign[rows],
            step=self.step[rows],
            context=self.context[rows],
            action=self.action[rows],
            propensity=self.propensity[rows],
            reward=self.reward[rows],
            action_mask=self.action_mask[rows],
            outcomes={k: v[rows] for k, v in self.outcomes.items()},
            offer_facts={k: v[rows] for k, v in self.offer_facts.items()},
            candidates={k: v[rows] for k, v in self.candidates.items()},
            row=None if self.row is None else self.row[rows],
        )

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        feature_names: Sequence[str],
        action_names: Sequence[str],
        metadata: dict | None = None,
        source: str = "logs",
    ) -> LoggedData:
        """Validate a frame in the file format (as :func:`read_logs` does a file)."""
        return _from_frame(frame.copy(), source, list(feature_names), list(action_names), metadata)

    @property
    def n_decisions(self) -> int:
        return len(self.action)

    @property
    def n_campaigns(self) -> int:
        return len(self.campaign_ids)

    @property
    def n_actions(self) -> int:
        return len(self.action_names)

    @property
    def horizon(self) -> int:
        """Most steps of any campaign."""
        return int(self.step.max()) + 1

    def padded(self, values: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """Per-decision ``values`` as a (campaigns, horizon) array, ``fill`` after a campaign ended."""
        out = np.full((self.n_campaigns, self.horizon), fill, dtype=np.float64)
        out[self.campaign, self.step] = values
        return out

    def per_campaign(self, values: np.ndarray) -> np.ndarray:
        """Sum of per-decision ``values`` over each campaign, shape (C,)."""
        return np.bincount(self.campaign, weights=values, minlength=self.n_campaigns)

    def file_row(self, i: int) -> int:
        """Data row in the file of decision ``i`` (for messages)."""
        return int(self.row[i]) if self.row is not None else int(i)

    def campaign_first_rows(self) -> np.ndarray:
        """Index of every campaign's first decision (step 0)."""
        return np.flatnonzero(self.step == 0)

    def specs(self) -> tuple[FeatureSpec, ...]:
        """The typed specs of the context columns, built from the metadata's environment options
        (``n_segments``, ``campaign_weeks``; the environment's defaults where absent).

        Raises ``LogFormatError`` if the context columns are not that environment's observation (then
        pass the environment's ``feature_specs`` to whatever needs them).
        """
        from envs.matching_env import env_option_defaults
        from envs.observation import observation_specs

        options = {**env_option_defaults(), **((self.metadata or {}).get("env") or {})}
        specs = observation_specs(int(options["n_segments"]), int(options["campaign_weeks"]))
        if tuple(spec.name for spec in specs) != tuple(self.feature_names):
            raise LogFormatError(
                f"{self.source}: the context columns are not the observation of an environment with "
                f"{options['n_segments']} segments and {options['campaign_weeks']} weeks; give the "
                "environment's feature_specs"
            )
        return specs

    def to_frame(self) -> pd.DataFrame:
        """The decisions as a frame in the file format (column order of :func:`generate_logs`)."""
        columns: dict[str, Any] = {
            CAMPAIGN: self.campaign_ids[self.campaign],
            STEP: self.step,
        }
        for j, name in enumerate(self.feature_names):
            columns[name] = self.context[:, j]
        columns[ACTION] = self.action
        columns[ACTION_NAME] = np.asarray(self.action_names, dtype=object)[self.action]
        columns[PROPENSITY] = self.propensity
        columns[REWARD] = self.reward
        for name, _ in OUTCOME_COLUMNS:
            if name in self.outcomes:
                columns[name] = self.outcomes[name]
        if INFLUENCER in self.outcomes:
            columns[INFLUENCER] = self.outcomes[INFLUENCER]
        for spec in OFFER_FACTS:
            if spec.name in self.offer_facts:
                values = self.offer_facts[spec.name]
                columns[spec.name] = pd.array(values, dtype="Int64") if spec.kind == "int" else values
        for field in CANDIDATE_FIELDS:
            if field in self.candidates:
                for a, name in enumerate(candidate_columns(field, self.n_actions)):
                    columns[name] = self.candidates[field][:, a]
        for a, name in enumerate(mask_columns(self.n_actions)):
            columns[name] = self.action_mask[:, a].astype(np.int8)
        return pd.DataFrame(columns)


# ------------------------------------------------------------------------------------- reading
def parquet_engine(path: Path, doing: str) -> None:
    if importlib.util.find_spec("pyarrow") is None and importlib.util.find_spec("fastparquet") is None:
        raise LogFormatError(
            f"{path}: {doing} Parquet needs pyarrow, which is not installed "
            "(pip install pyarrow), or use a .csv file"
        )


def check_suffix(path: Path) -> None:
    if path.suffix.lower() not in SUFFIXES:
        raise LogFormatError(f"{path}: expected a .csv or .parquet file, got '{path.suffix or path.name}'")


def read_metadata(path: str | Path) -> dict | None:
    """The metadata beside log file ``path`` (see the module docstring), or None if there is none."""
    meta_path = metadata_path(path)
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise LogFormatError(f"{meta_path}: not valid JSON ({err.msg} at line {err.lineno})") from None
    if not isinstance(meta, dict) or meta.get("format") != META_FORMAT:
        raise LogFormatError(f"{meta_path}: not influmatch log metadata (expected format '{META_FORMAT}')")
    if meta.get("version") != META_VERSION:
        raise LogFormatError(f"{meta_path}: unsupported version {meta.get('version')!r}")
    for key, kind in (("env", dict), ("campaign_ids", list), ("campaign_seeds", list)):
        if not isinstance(meta.get(key), kind):
            raise LogFormatError(f"{meta_path}: {key}: expected a {kind.__name__}")
    if len(meta["campaign_ids"]) != len(meta["campaign_seeds"]):
        raise LogFormatError(f"{meta_path}: campaign_seeds: expected one seed per campaign id")
    return meta


def read_logs(
    path: str | Path,
    feature_names: Sequence[str] | None = None,
    action_names: Sequence[str] | None = None,
) -> LoggedData:
    """Read and validate a log file (CSV, or Parquet when pyarrow is installed).

    Parameters
    ----------
    path : path
        The log file; its metadata ``<name>.json`` is read too when present.
    feature_names, action_names : sequence of str, optional
        The environment's (``env.unwrapped.feature_names`` / ``action_names``). Default: those of the
        metadata file; without either, ``LogFormatError``.

    Raises
    ------
    LogFormatError
        Naming the file, row and column of the first defect (see the module docstring).
    FileNotFoundError
        No such file.
    """
    path = Path(path)
    check_suffix(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    meta = read_metadata(path)
    if feature_names is None or action_names is None:
        if meta is None or "feature_names" not in meta or "action_names" not in meta:
            raise LogFormatError(
                f"{path}: cannot tell the environment's features and actions: keep {metadata_path(path).name} "
                "beside the logs or give the environment"
            )
        feature_names = meta["feature_names"] if feature_names is None else feature_names
        action_names = meta["action_names"] if action_names is None else action_names
    parquet = path.suffix.lower() == ".parquet"
    if parquet:
        parquet_engine(path, "reading")
        frame = pd.read_parquet(path)
    else:
        if path.stat().st_size == 0:
            raise LogFormatError(f"{path}: empty file")
        try:
            frame = pd.read_csv(path, low_memory=False)
        except pd.errors.EmptyDataError:
            raise LogFormatError(f"{path}: empty file") from None
        except pd.errors.ParserError as err:
            raise LogFormatError(f"{path}: not a readable CSV ({str(err).strip().splitlines()[0]})") from None
    return _from_frame(frame, str(path), list(feature_names), list(action_names), meta, csv=not parquet)


class _Checker:
    """Row- and column-named errors for one file."""

    def __init__(self, source: str, csv: bool) -> None:
        self.source, self.csv = source, csv

    def offer_fact(self, frame: pd.DataFrame, spec: OfferColumn) -> np.ndarray:
        """An optional offer-fact column (see :data:`OFFER_FACTS`), empty cells allowed."""
        return _offer_fact_check(self, frame[spec.name], spec)

    def fail(self, row: int, column: str, what: str) -> None:
        where = f"row {row} (line {row + 2})" if self.csv else f"row {row}"
        raise LogFormatError(f"{self.source}: {where}, column '{column}': {what}")

    def numbers(self, frame: pd.DataFrame, column: str, *, whole: bool = False, low: float | None = None,
                low_open: bool = False, high: float | None = None, flag: bool = False) -> np.ndarray:  # fmt: skip
        raw = frame[column]
        if raw.dtype == bool:
            raw = raw.astype(np.int8)
        values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.isnan(values)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            original = raw.iloc[i]
            if pd.isna(original) or (isinstance(original, str) and not original.strip()):
                self.fail(i, column, "missing value")
            self.fail(i, column, f"expected a number, got '{original}'")
        bad = ~np.isfinite(values)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            self.fail(i, column, f"expected a finite number, got '{raw.iloc[i]}'")
        if flag:
            bad = (values != 0) & (values != 1)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                self.fail(i, column, f"expected 0 or 1, got '{raw.iloc[i]}'")
            return values
        if whole:
            bad = values != np.round(values)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                self.fail(i, column, f"expected a whole number, got '{raw.iloc[i]}'")
        if low is not None or high is not None:
            too_low = (
                np.zeros(len(values), bool) if low is None else (values <= low if low_open else values < low)
            )
            too_high = np.zeros(len(values), bool) if high is None else values > high
            bad = too_low | too_high
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                if high is None:
                    allowed = f"{'>' if low_open else '>='} {low:g}"
                elif low is None:
                    allowed = f"<= {high:g}"
                else:
                    allowed = f"in {'(' if low_open else '['}{low:g}, {high:g}]"
                self.fail(i, column, f"expected a value {allowed}, got '{raw.iloc[i]}'")
        return values


def _present(raw: pd.Series) -> np.ndarray:
    """Cells that hold something (not NaN, not blank text)."""
    if pd.api.types.is_numeric_dtype(raw.dtype):  # no text to strip (the usual case: 20 s of a read when
        return raw.notna().to_numpy(dtype=bool)  # every column went through text at 75k rows)
    text = raw.astype("string").str.strip()
    return (raw.notna() & (text != "")).to_numpy(dtype=bool, na_value=False)


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _offer_fact_check(check: _Checker, raw: pd.Series, spec: OfferColumn) -> np.ndarray:
    """One (numeric) offer-fact column checked against its spec; NaN where empty."""
    present = _present(raw)
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = present & ~np.isfinite(values)
    if bad.any():
        check.fail(_first(bad), spec.name, f"expected a number or nothing, got '{raw.iloc[_first(bad)]}'")
    if spec.kind == "int":
        bad = present & (values != np.round(values))
        if bad.any():
            check.fail(_first(bad), spec.name, f"expected a whole number, got '{raw.iloc[_first(bad)]}'")
    for limit, outside, word in ((spec.lower, np.less, ">="), (spec.upper, np.greater, "<=")):
        if limit is not None:
            bad = present & outside(np.where(present, values, limit), limit)
            if bad.any():
                i = _first(bad)
                check.fail(i, spec.name, f"expected a value {word} {limit:g}, got '{raw.iloc[i]}'")
    return np.where(present, values, np.nan)


def _check_columns(frame: pd.DataFrame, source: str, feature_names: list[str], masks: list[str]) -> None:
    """Refuse a duplicated, unknown or missing column, and a file without rows."""
    A = len(masks)
    required = [CAMPAIGN, STEP, *feature_names, ACTION, PROPENSITY, REWARD, *masks]
    optional = [
        ACTION_NAME,
        INFLUENCER,
        *(name for name, _ in OUTCOME_COLUMNS),
        *(c.name for c in OFFER_FACTS),
        *(name for field in CANDIDATE_FIELDS for name in candidate_columns(field, A)),
    ]
    known = set(required) | set(optional)
    columns = [str(c) for c in frame.columns]
    duplicated = pd.Index(columns)[pd.Index(columns).duplicated()]
    if len(duplicated):
        raise LogFormatError(f"{source}: column '{duplicated[0]}' appears more than once")
    for column in columns:
        if column not in known:
            if column.startswith("mask_"):
                raise LogFormatError(
                    f"{source}: unknown column '{column}': the environment has {A} actions (mask_0..mask_{A - 1})"
                )
            raise LogFormatError(
                f"{source}: unknown column '{column}' (expected campaign_id, step, the {len(feature_names)} "
                f"feature columns, action, propensity, reward, mask_0..mask_{A - 1} and optional outcome, "
                "offer-fact and candidate columns)"
            )
    for column in required:
        if column not in columns:
            if column in feature_names:
                n_present = sum(c in feature_names for c in columns)
                raise LogFormatError(
                    f"{source}: missing feature column '{column}' (the file has {n_present} of the "
                    f"environment's {len(feature_names)} features)"
                )
            raise LogFormatError(f"{source}: missing column '{column}'")
    if frame.empty:
        raise LogFormatError(f"{source}: no rows")


def _campaigns(frame: pd.DataFrame, check: _Checker) -> tuple[np.ndarray, Any]:
    """(index of every row's campaign, the campaign ids): sorted ids, or in order of first appearance
    when they cannot be sorted."""
    ids = frame[CAMPAIGN]
    missing = ids.isna().to_numpy()
    if missing.any():
        check.fail(int(np.flatnonzero(missing)[0]), CAMPAIGN, "missing value")
    try:
        return pd.factorize(ids, sort=True)
    except TypeError:  # ids of mixed types: order of first appearance
        return pd.factorize(ids, sort=False)


def _action_masks(
    frame: pd.DataFrame, check: _Checker, action: np.ndarray, action_names: list[str], masks: list[str]
) -> np.ndarray:
    """The action mask of every row; the logged action must be valid and match its name."""
    A = len(action_names)
    action_mask = np.empty((len(frame), A), dtype=bool)
    for a, name in enumerate(masks):
        action_mask[:, a] = check.numbers(frame, name, flag=True) == 1
    invalid = ~action_mask[np.arange(len(frame)), action]
    if invalid.any():
        i = int(np.flatnonzero(invalid)[0])
        check.fail(i, f"mask_{action[i]}", f"the logged action {action[i]} is marked invalid by its own mask")
    if ACTION_NAME in frame.columns:
        names = frame[ACTION_NAME].astype(str).to_numpy()
        expected = np.asarray(action_names, dtype=object)[action]
        wrong = names != expected
        if wrong.any():
            i = int(np.flatnonzero(wrong)[0])
            check.fail(i, ACTION_NAME, f"action {action[i]} is '{expected[i]}' here, got '{names[i]}'")
    return action_mask


def _outcomes(frame: pd.DataFrame, check: _Checker) -> dict[str, np.ndarray]:
    """The optional outcome columns present in the file, checked by kind."""
    outcomes: dict[str, np.ndarray] = {}
    for name, kind in OUTCOME_COLUMNS:
        if name in frame.columns:
            if kind == "flag":
                outcomes[name] = check.numbers(frame, name, flag=True).astype(np.int64)
            elif kind == "count":
                outcomes[name] = check.numbers(frame, name, whole=True, low=0).astype(np.int64)
            else:
                outcomes[name] = check.numbers(frame, name, low=0)
    if INFLUENCER in frame.columns:
        outcomes[INFLUENCER] = frame[INFLUENCER].fillna("").astype(str).to_numpy(dtype=object)
    return outcomes


def _offer_facts(frame: pd.DataFrame, check: _Checker) -> dict[str, np.ndarray]:
    """The optional offer-fact columns present in the file, checked against their spec (empty allowed)."""
    facts: dict[str, np.ndarray] = {}
    for spec in OFFER_FACTS:
        if spec.name in frame.columns:
            facts[spec.name] = check.offer_fact(frame, spec)
    return facts


def _candidates(frame: pd.DataFrame, check: _Checker, n_actions: int) -> dict[str, np.ndarray]:
    """The optional candidate facts present in the file, (n, A) each (NaN where empty and for waiting);
    a field's columns must be all present or all absent."""
    out: dict[str, np.ndarray] = {}
    for field in CANDIDATE_FIELDS:
        names = candidate_columns(field, n_actions)
        present = [name in frame.columns for name in names]
        if not any(present):
            continue
        if not all(present):
            absent = names[present.index(False)]
            raise LogFormatError(
                f"{check.source}: missing column '{absent}': the {field} candidate columns must all be present "
                "or all absent"
            )
        values = np.full((len(frame), n_actions), np.nan)
        spec = OfferColumn(field, "float", "", "decision", field, _CANDIDATE_LOWER[field])
        for a, name in enumerate(names):
            values[:, a] = _offer_fact_check(check, frame[name], dataclasses.replace(spec, name=name))
        out[field] = values
    return out


def _sorted_steps(
    campaign: np.ndarray, step: np.ndarray, campaign_ids: Any, check: _Checker
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row order by campaign and step, sorted campaign, sorted step); every campaign must hold steps
    0, 1, ..., without repeats."""
    order = np.lexsort((step, campaign))
    c, s = campaign[order], step[order]
    first = np.r_[True, c[1:] != c[:-1]]
    expected_step = np.arange(len(s)) - np.maximum.accumulate(np.where(first, np.arange(len(s)), 0))
    wrong = s != expected_step
    if wrong.any():
        k = int(np.flatnonzero(wrong)[0])
        i = int(order[k])
        cid = campaign_ids[c[k]]
        if not first[k] and s[k] == s[k - 1]:
            check.fail(i, STEP, f"campaign {cid} has step {s[k]} twice")
        check.fail(i, STEP, f"campaign {cid} jumps to step {s[k]}; expected step {expected_step[k]}")
    return order, c, s


def _from_frame(
    frame: pd.DataFrame,
    source: str,
    feature_names: list[str],
    action_names: list[str],
    meta: dict | None,
    csv: bool = True,
) -> LoggedData:
    masks = mask_columns(len(action_names))
    frame.columns = [str(c) for c in frame.columns]
    _check_columns(frame, source, feature_names, masks)
    check = _Checker(source, csv)
    campaign, campaign_ids = _campaigns(frame, check)
    step = check.numbers(frame, STEP, whole=True, low=0).astype(np.int64)
    context = np.empty((len(frame), len(feature_names)), dtype=np.float64)
    for j, name in enumerate(feature_names):
        context[:, j] = check.numbers(frame, name)
    action = check.numbers(frame, ACTION, whole=True, low=0, high=len(action_names) - 1).astype(np.int64)
    propensity = check.numbers(frame, PROPENSITY, low=0, low_open=True, high=1)
    reward = check.numbers(frame, REWARD)
    action_mask = _action_masks(frame, check, action, action_names, masks)
    outcomes = _outcomes(frame, check)
    facts = _offer_facts(frame, check)
    candidates = _candidates(frame, check, len(action_names))
    order, c, s = _sorted_steps(campaign, step, campaign_ids, check)
    if meta is not None and "feature_names" in meta and list(meta["feature_names"]) != feature_names:
        raise LogFormatError(f"{metadata_path(source)}: feature_names differ from the environment's")
    return LoggedData(
        campaign_ids=np.asarray(campaign_ids),
        campaign=c.astype(np.int64),
        step=s,
        context=context[order],
        action=action[order],
        propensity=propensity[order],
        reward=reward[order],
        action_mask=action_mask[order],
        feature_names=tuple(feature_names),
        action_names=tuple(action_names),
        outcomes={k: v[order] for k, v in outcomes.items()},
        offer_facts={k: v[order] for k, v in facts.items()},
        candidates={k: v[order] for k, v in candidates.items()},
        row=order.astype(np.int64),
        source=source,
        metadata=meta,
    )


# ------------------------------------------------------------------------------------- writing
def write_logs(frame: pd.DataFrame, path: str | Path, metadata: Mapping[str, Any] | None = None) -> Path:
    """Write a log frame to ``path`` (CSV, or Parquet when pyarrow is installed) and, when given, its
    metadata beside it; each file is written atomically. Returns the path."""
    path = Path(path)
    check_suffix(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path}: --out must be a file, but a folder of that name exists")
    parquet = path.suffix.lower() == ".parquet"
    if parquet:
        parquet_engine(path, "writing")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        if parquet:
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if metadata is not None:
        write_json(metadata_path(path), dict(metadata))
    return path
