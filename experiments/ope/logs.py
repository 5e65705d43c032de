"""Logged matches: the file format, its validation, policies with exact propensities, ``influmatch log``.

A log records, for every decision a match policy made, what it saw, what it did, how likely it was to do
that, and what happened. :func:`read_logs` validates such a file into a :class:`LoggedData`;
:func:`generate_logs` makes one in the simulator from any agent made stochastic by
:class:`StochasticPolicy`; :mod:`experiments.ope` estimates from it what another policy would earn.

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

**Propensities.** A policy is made stochastic with exact action probabilities by
:class:`StochasticPolicy`: either the agent's own distribution (``action_probabilities``: uniform for
``random``, the masked and renormalised policy of PPO, A2C and MaskablePPO, the bandit's exploration)
or epsilon-greedy around ``predict(observation, deterministic=True)``:
``(1 - epsilon) * 1{a = greedy} + epsilon / |valid|`` on the valid actions. An invalid greedy action
is a no-op that wastes the week in the environment, exactly like waiting, so it is recorded as waiting.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import importlib.util
import inspect
import json
import logging
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from experiments.cli import run_module
from experiments.files import positive_int, write_json

__all__ = [
    "CAMPAIGN",
    "OUTCOME_COLUMNS",
    "LogFormatError",
    "LoggedData",
    "PolicyError",
    "PolicySource",
    "StochasticPolicy",
    "build_policy",
    "generate_logs",
    "make_env",
    "mask_columns",
    "metadata_path",
    "parse_env_options",
    "policy_source",
    "read_logs",
    "read_metadata",
    "rollouts",
    "write_logs",
]

logger = logging.getLogger(__name__)

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
SUFFIXES = (".csv", ".parquet")
_META_FORMAT = "influmatch.logs"
_META_VERSION = 1
#: Environments stepped side by side when simulating (one batched policy call per week).
LOCKSTEP = 64


class LogFormatError(ValueError):
    """A log file (or its metadata) breaks the format; the message names the file, row and column."""


class PolicyError(ValueError):
    """A policy cannot be used as asked (no distribution of its own, reads the simulator's state, ...)."""


def mask_columns(n_actions: int) -> list[str]:
    """``mask_0`` .. ``mask_<n_actions - 1>``."""
    return [f"mask_{a}" for a in range(n_actions)]


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
        if self.row is None:
            object.__setattr__(self, "row", np.arange(n))

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

    def campaign_first_rows(self) -> np.ndarray:
        """Index of every campaign's first decision (step 0)."""
        return np.flatnonzero(self.step == 0)

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
        for a, name in enumerate(mask_columns(self.n_actions)):
            columns[name] = self.action_mask[:, a].astype(np.int8)
        return pd.DataFrame(columns)


# ------------------------------------------------------------------------------------- reading
def _parquet_engine(path: Path, doing: str) -> None:
    if importlib.util.find_spec("pyarrow") is None and importlib.util.find_spec("fastparquet") is None:
        raise LogFormatError(
            f"{path}: {doing} Parquet needs pyarrow, which is not installed "
            "(pip install pyarrow), or use a .csv file"
        )


def _check_suffix(path: Path) -> None:
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
    if not isinstance(meta, dict) or meta.get("format") != _META_FORMAT:
        raise LogFormatError(f"{meta_path}: not influmatch log metadata (expected format '{_META_FORMAT}')")
    if meta.get("version") != _META_VERSION:
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
    _check_suffix(path)
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
        _parquet_engine(path, "reading")
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


def _from_frame(
    frame: pd.DataFrame,
    source: str,
    feature_names: list[str],
    action_names: list[str],
    meta: dict | None,
    csv: bool = True,
) -> LoggedData:
    A = len(action_names)
    masks = mask_columns(A)
    required = [CAMPAIGN, STEP, *feature_names, ACTION, PROPENSITY, REWARD, *masks]
    optional = [ACTION_NAME, INFLUENCER, *(name for name, _ in OUTCOME_COLUMNS)]
    known = set(required) | set(optional)
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
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
                f"feature columns, action, propensity, reward, mask_0..mask_{A - 1} and optional outcome columns)"
            )
    for column in required:
        if column not in frame.columns:
            if column in feature_names:
                n_present = sum(c in feature_names for c in columns)
                raise LogFormatError(
                    f"{source}: missing feature column '{column}' (the file has {n_present} of the "
                    f"environment's {len(feature_names)} features)"
                )
            raise LogFormatError(f"{source}: missing column '{column}'")
    if frame.empty:
        raise LogFormatError(f"{source}: no rows")

    check = _Checker(source, csv)
    ids = frame[CAMPAIGN]
    missing = ids.isna().to_numpy()
    if missing.any():
        check.fail(int(np.flatnonzero(missing)[0]), CAMPAIGN, "missing value")
    try:
        campaign, campaign_ids = pd.factorize(ids, sort=True)
    except TypeError:  # ids of mixed types: order of first appearance
        campaign, campaign_ids = pd.factorize(ids, sort=False)
    step = check.numbers(frame, STEP, whole=True, low=0).astype(np.int64)
    context = np.empty((len(frame), len(feature_names)), dtype=np.float64)
    for j, name in enumerate(feature_names):
        context[:, j] = check.numbers(frame, name)
    action = check.numbers(frame, ACTION, whole=True, low=0, high=A - 1).astype(np.int64)
    propensity = check.numbers(frame, PROPENSITY, low=0, low_open=True, high=1)
    reward = check.numbers(frame, REWARD)
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

    # Sort by campaign and step; every campaign must hold steps 0, 1, ..., without repeats.
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
        row=order.astype(np.int64),
        source=source,
        metadata=meta,
    )


# ------------------------------------------------------------------------------------- writing
def write_logs(frame: pd.DataFrame, path: str | Path, metadata: Mapping[str, Any] | None = None) -> Path:
    """Write a log frame to ``path`` (CSV, or Parquet when pyarrow is installed) and, when given, its
    metadata beside it; each file is written atomically. Returns the path."""
    path = Path(path)
    _check_suffix(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path}: --out must be a file, but a folder of that name exists")
    parquet = path.suffix.lower() == ".parquet"
    if parquet:
        _parquet_engine(path, "writing")
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


# ------------------------------------------------------------------------------------- policies
def _predict_takes_masks(agent: Any) -> bool:
    try:
        return "action_masks" in inspect.signature(agent.predict).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return False


def _agent_dimensions(agent: Any) -> tuple[int | None, int | None]:
    """(observation size, number of actions) an agent expects, where it says."""
    for holder in (agent, getattr(agent, "model", None)):
        obs_space = getattr(holder, "observation_space", None)
        act_space = getattr(holder, "action_space", None)
        if obs_space is not None and act_space is not None and getattr(obs_space, "shape", None):
            return int(np.prod(obs_space.shape)), int(getattr(act_space, "n", 0)) or None
    n_features, n_actions = getattr(agent, "n_features", None), getattr(agent, "n_actions", None)
    return (int(n_features) if n_features else None), (int(n_actions) if n_actions else None)


class StochasticPolicy:
    """An agent as a stochastic policy with exact action probabilities.

    Parameters
    ----------
    agent : object
        Any agent of the :mod:`agents` protocol.
    epsilon : float in [0, 1] or None
        ``None``: the agent's own distribution (its ``action_probabilities(observation, action_mask)``;
        uniform for :class:`~agents.baselines.RandomPolicy`). A number: epsilon-greedy around
        ``predict(observation, deterministic=True)`` over the valid actions, probability
        ``(1 - epsilon) * 1{a = greedy} + epsilon / |valid|``. A greedy action the mask marks invalid
        is waiting (in the environment both are a no-op that wastes the week); if the mask marks
        waiting invalid too, its ``1 - epsilon`` is spread over the valid actions.
    wait_action : int
        Index of waiting.
    label : str
        How the policy is named in messages and tables.

    Notes
    -----
    :class:`~agents.baselines.RandomPolicy` is uniform over the valid actions whatever ``epsilon`` is.
    Policies that read the environment's state when they decide (``reads_env_state``: the oracle and
    the heuristics) can log matches (:meth:`probabilities` with ``envs``) but cannot be evaluated
    from logged contexts: :meth:`probabilities` without ``envs`` raises :class:`PolicyError`.
    """

    def __init__(self, agent: Any, epsilon: float | None, *, wait_action: int, label: str = "policy") -> None:
        from agents.baselines import RandomPolicy

        if epsilon is not None and (
            isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not 0 <= epsilon <= 1
        ):
            raise PolicyError(f"epsilon: expected a number in [0, 1] or 'own', got {epsilon!r}")
        self.agent = agent
        self.label = label
        self.wait_action = int(wait_action)
        self.uniform = isinstance(agent, RandomPolicy)
        self.epsilon = None if (epsilon is None or self.uniform) else float(epsilon)
        self.reads_env_state = bool(getattr(agent, "reads_env_state", False)) and not self.uniform
        if self.epsilon is None and not self.uniform and not hasattr(agent, "action_probabilities"):
            raise PolicyError(
                f"{label} has no stochastic policy of its own (no action_probabilities): "
                "give --epsilon E to make it epsilon-greedy"
            )
        self._takes_masks = _predict_takes_masks(agent)
        self._bound: dict[int, Any] = {}
        self.n_features, self.n_actions = _agent_dimensions(agent)

    def describe(self) -> str:
        """E.g. ``cqi (runs/cqi), epsilon-greedy (epsilon 0.1)``."""
        if self.uniform:
            return f"{self.label}, uniform over the valid actions"
        if self.epsilon is None:
            return f"{self.label}, its own action distribution"
        if self.epsilon == 0:
            return f"{self.label}, greedy"
        return f"{self.label}, epsilon-greedy (epsilon {self.epsilon:g})"

    def check_dimensions(self, n_features: int, n_actions: int, where: str) -> None:
        """``PolicyError`` if the agent was made for other observation or action sizes."""
        if self.n_features is not None and self.n_features != n_features:
            raise PolicyError(
                f"{self.label} takes observations of {self.n_features} features, {where} has {n_features}"
            )
        if self.n_actions is not None and self.n_actions != n_actions:
            raise PolicyError(f"{self.label} has {self.n_actions} actions, {where} has {n_actions}")

    def probabilities(
        self, observations: np.ndarray, action_masks: np.ndarray, envs: Sequence[Any] | None = None
    ) -> np.ndarray:
        """Action probabilities for a batch of contexts.

        Parameters
        ----------
        observations : numpy.ndarray, shape (n, d)
        action_masks : numpy.ndarray of bool, shape (n, A)
        envs : sequence of environments, optional
            The environment each row comes from; required by (and only used for) policies that read
            the environment's state.

        Returns
        -------
        numpy.ndarray, shape (n, A)
            Rows sum to 1 and are 0 on invalid actions.
        """
        obs = np.asarray(observations, dtype=np.float64)
        masks = np.asarray(action_masks, dtype=bool)
        if obs.ndim != 2 or masks.ndim != 2 or len(obs) != len(masks):
            raise ValueError(f"expected observations (n, d) and masks (n, A), got {obs.shape}, {masks.shape}")
        if not masks.any(axis=1).all():
            raise PolicyError(f"row {int(np.flatnonzero(~masks.any(axis=1))[0])}: no valid action")
        n, A = masks.shape
        if self.uniform:
            return masks / masks.sum(axis=1, keepdims=True)
        if self.reads_env_state and envs is None:
            raise PolicyError(
                f"{self.label} reads the simulator's state when it decides, not the observation, so it "
                "can log matches (influmatch log) but cannot be evaluated from logged contexts; evaluate "
                "a policy that acts on the observation (cqi, ppo, a2c, dqn, maskable_ppo, logistic_bandit, random)"
            )
        if self.epsilon is None:
            return self._own(obs, masks)
        greedy = self._greedy(obs, masks, envs)
        valid = masks.sum(axis=1, keepdims=True)
        probs = self.epsilon * masks / valid
        rows = np.arange(n)
        greedy_valid = masks[rows, greedy]
        wait_valid = masks[:, self.wait_action]
        target = np.where(greedy_valid, greedy, self.wait_action)
        ok = greedy_valid | wait_valid
        probs[rows[ok], target[ok]] += 1.0 - self.epsilon
        if not ok.all():
            probs[~ok] += (1.0 - self.epsilon) * masks[~ok] / valid[~ok]
        return probs

    def _greedy(self, obs: np.ndarray, masks: np.ndarray, envs: Sequence[Any] | None) -> np.ndarray:
        if self.reads_env_state:
            return np.array(
                [
                    int(self._bind(env).predict(o, deterministic=True)[0])
                    for o, env in zip(obs, envs, strict=True)
                ],
                dtype=np.int64,
            )
        if self._takes_masks:
            actions = self.agent.predict(obs, deterministic=True, action_masks=masks)[0]
        else:
            actions = self.agent.predict(obs, deterministic=True)[0]
        actions = np.asarray(actions, dtype=np.int64).reshape(-1)
        if actions.shape != (len(obs),) or not ((actions >= 0) & (actions < masks.shape[1])).all():
            raise PolicyError(f"{self.label}: predict returned {actions!r} for {len(obs)} observations")
        return actions

    def _bind(self, env: Any) -> Any:
        agent = self._bound.get(id(env))
        if agent is None:
            agent = self.agent.with_env(env) if hasattr(self.agent, "with_env") else self.agent
            if agent is self.agent:
                self.agent.set_env(env)
            self._bound[id(env)] = agent
        return agent

    def _own(self, obs: np.ndarray, masks: np.ndarray) -> np.ndarray:
        probs = None
        try:
            probs = np.asarray(self.agent.action_probabilities(obs, masks), dtype=np.float64)
        except (ValueError, TypeError, RuntimeError):
            probs = None
        if probs is None or probs.shape != masks.shape or not np.allclose(probs.sum(axis=1), 1.0, atol=1e-6):
            probs = np.stack(
                [np.asarray(self.agent.action_probabilities(o, m), dtype=np.float64) for o, m in zip(obs, masks, strict=True)]
            )  # fmt: skip
        probs = np.where(masks, np.clip(probs, 0.0, None), 0.0)
        total = probs.sum(axis=1, keepdims=True)
        if not (total > 0).all():
            raise PolicyError(f"{self.label} puts no probability on any valid action")
        return probs / total


@dataclasses.dataclass(frozen=True)
class PolicySource:
    """Where a policy comes from: an agent name, or a run folder (``config.json`` + the saved model)."""

    spec: str
    name: str
    run_dir: Path | None
    env_options: dict
    model_file: str | None = None

    @property
    def label(self) -> str:
        return f"{self.name} ({self.run_dir})" if self.run_dir is not None else self.name


def policy_source(spec: str) -> PolicySource:
    """Resolve ``--policy``: a run folder written by ``influmatch train`` or an agent name.

    A run folder's ``config.json`` is read in the layout of :mod:`experiments.runner` (``spec.agent``,
    ``env_options``, ``model_file``) or in the plain one (``agent``, ``env``; the model file named by
    :func:`agents.model_filename`).
    """
    from agents import AGENT_NAMES, SEGMENT_AGENT_PATTERN, check_agent_name
    from agents.registry import LEARNING_AGENTS

    path = Path(spec)
    if path.is_dir():
        config_path = path / "config.json"
        if not config_path.is_file():
            raise FileNotFoundError(
                f"{path}: no config.json (expected a run folder written by influmatch train)"
            )
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{config_path}: not valid JSON ({err.msg} at line {err.lineno})") from None
        if not isinstance(config, dict):
            raise ValueError(f"{config_path}: expected a run config (a JSON object)")
        run_spec = config.get("spec") if isinstance(config.get("spec"), dict) else config
        if not isinstance(run_spec.get("agent"), str):
            raise ValueError(f"{config_path}: agent: expected the agent's name")
        name = check_agent_name(run_spec["agent"])
        env_options = config.get("env_options", run_spec.get("env")) or {}
        if not isinstance(env_options, dict):
            raise ValueError(f"{config_path}: env: expected a mapping of environment options")
        model_file = config.get("model_file")
        if model_file is not None and not isinstance(model_file, str):
            raise ValueError(f"{config_path}: model_file: expected a file name")
        return PolicySource(spec, name, path, dict(env_options), model_file)
    if path.exists():
        raise NotADirectoryError(f"{path}: --policy must be a run folder or an agent name")
    try:
        name = check_agent_name(spec)
    except ValueError:
        raise ValueError(
            f"--policy: '{spec}' is neither a run folder nor an agent name "
            f"(known: {', '.join(AGENT_NAMES)}, {SEGMENT_AGENT_PATTERN})"
        ) from None
    if name in LEARNING_AGENTS:
        raise ValueError(
            f"--policy: {name} learns; give the run folder of a trained one "
            f"(influmatch train --agent {name} --out DIR)"
        )
    return PolicySource(spec, name, None, {})


def build_policy(source: PolicySource, env: Any, epsilon: float | None, seed: int = 0) -> StochasticPolicy:
    """The policy of ``source`` acting in ``env``, made stochastic (see :class:`StochasticPolicy`)."""
    from agents import load_agent, make_agent, model_filename
    from agents.registry import LEARNING_AGENTS

    unwrapped = env.unwrapped
    if source.run_dir is None:
        agent = make_agent(source.name, env, seed=seed)
    else:
        model = source.run_dir / (source.model_file or model_filename(source.name))
        if not model.is_file():
            raise FileNotFoundError(f"{source.run_dir}: no {model.name} (the run did not save its model)")
        agent = load_agent(source.name, model, env=None if source.name in LEARNING_AGENTS else env)
    policy = StochasticPolicy(agent, epsilon, wait_action=int(unwrapped.wait_action), label=source.label)
    policy.check_dimensions(len(unwrapped.feature_names), int(unwrapped.action_space.n), "the environment")
    return policy


# ---------------------------------------------------------------------------------- environment
def parse_env_options(pairs: Sequence[str] | None) -> dict[str, Any]:
    """``["n_segments=4", "offer_levels=[0.8, 1.0]"]`` -> options (values read as YAML, as
    ``influmatch train --env`` reads them); unknown keys raise ``ValueError`` naming them."""
    from envs.matching_env import InfluencerMatchingEnv
    from experiments.train import parse_assignments

    allowed = set(inspect.signature(InfluencerMatchingEnv).parameters) - {"render_mode"}
    options = parse_assignments(list(pairs or ()), "--env")
    for key in options:
        if key not in allowed:
            raise ValueError(
                f"--env: unknown environment option '{key}' (known: {', '.join(sorted(allowed))})"
            )
    return options


def make_env(options: Mapping[str, Any]) -> Any:
    """``InfluencerMatchingEnv(**options)`` with a message naming the options on failure."""
    from envs.matching_env import InfluencerMatchingEnv

    options = dict(options)
    if isinstance(options.get("offer_levels"), list):
        options["offer_levels"] = tuple(options["offer_levels"])
    try:
        return InfluencerMatchingEnv(**options)
    except TypeError as err:
        raise ValueError(f"environment options {options}: {err}") from None


# ----------------------------------------------------------------------------------- simulation
def _campaign_streams(seed: int, n_campaigns: int) -> tuple[list[int], list[np.random.SeedSequence]]:
    """Reset seeds of the campaigns (those of :func:`experiments.evaluation.episode_seeds`) and one
    action-draw stream per campaign, so results do not depend on how campaigns are batched."""
    from experiments.evaluation import episode_seeds

    _, draws = np.random.SeedSequence(seed).spawn(2)
    return episode_seeds(seed, n_campaigns), draws.spawn(n_campaigns)


def rollouts(
    env: Any,
    policy: StochasticPolicy,
    reset_seeds: Sequence[int],
    draw_seeds: Sequence[np.random.SeedSequence | int],
    *,
    expected: bool = False,
    outcomes: bool = True,
    lockstep: int = LOCKSTEP,
) -> dict[str, np.ndarray]:
    """Play one campaign per reset seed with ``policy``, sampling actions from its probabilities.

    Campaign ``c`` starts with ``reset(seed=reset_seeds[c])`` on a copy of ``env.unwrapped`` and draws
    its actions from ``default_rng(draw_seeds[c])``; ``lockstep`` campaigns run side by side so the
    policy is asked once per week for all of them (the result does not depend on ``lockstep``).

    Returns
    -------
    dict of str to numpy.ndarray
        One entry per decision, sorted by campaign and step: ``campaign``, ``step``, ``context``
        (n, d), ``action_mask`` (n, A), ``probabilities`` (n, A), ``action``, ``propensity``,
        ``reward`` (thousands of USD); with ``outcomes`` the outcome columns and ``influencer_id``;
        with ``expected`` also ``expected_rewards`` (n, A), the exact expected reward of every action
        under the hidden truth (thousands of USD).
    """
    base = env.unwrapped
    n = len(reset_seeds)
    width = max(1, min(int(lockstep), n))
    envs = [copy.deepcopy(base) for _ in range(width)]
    records: dict[str, list] = {k: [] for k in ("campaign", "step", "context", "action_mask", "probabilities",
                                                   "action", "reward", "expected_rewards", "outcome")}  # fmt: skip
    for start in range(0, n, width):
        block = list(range(start, min(n, start + width)))
        obs, masks, rngs, steps = {}, {}, {}, {}
        for j, c in enumerate(block):
            o, info = envs[j].reset(seed=int(reset_seeds[c]))
            obs[j], masks[j] = o, np.asarray(info["action_mask"], dtype=bool)
            rngs[j], steps[j] = np.random.default_rng(draw_seeds[c]), 0
        active = list(range(len(block)))
        while active:
            observations = np.stack([obs[j] for j in active]).astype(np.float64)
            action_masks = np.stack([masks[j] for j in active])
            probs = policy.probabilities(observations, action_masks, envs=[envs[j] for j in active])
            still = []
            for row, j in enumerate(active):
                p = probs[row]
                cumulative = np.cumsum(p)
                a = int(np.searchsorted(cumulative, rngs[j].random() * cumulative[-1], side="right"))
                a = min(a, len(p) - 1)
                if expected:
                    records["expected_rewards"].append(envs[j].expected_rewards())
                o2, reward, terminated, truncated, info = envs[j].step(a)
                records["campaign"].append(block[j])
                records["step"].append(steps[j])
                records["context"].append(observations[row])
                records["action_mask"].append(action_masks[row])
                records["probabilities"].append(p)
                records["action"].append(a)
                records["reward"].append(float(reward))
                if outcomes:
                    records["outcome"].append(info.get("outcome"))
                if not (terminated or truncated):
                    obs[j], masks[j] = o2, np.asarray(info["action_mask"], dtype=bool)
                    steps[j] += 1
                    still.append(j)
            active = still
    campaign = np.asarray(records["campaign"], dtype=np.int64)
    step = np.asarray(records["step"], dtype=np.int64)
    order = np.lexsort((step, campaign))
    probabilities = np.stack(records["probabilities"])[order]
    action = np.asarray(records["action"], dtype=np.int64)[order]
    out = {
        "campaign": campaign[order],
        "step": step[order],
        "context": np.stack(records["context"])[order],
        "action_mask": np.stack(records["action_mask"])[order],
        "probabilities": probabilities,
        "action": action,
        "propensity": probabilities[np.arange(len(action)), action],
        "reward": np.asarray(records["reward"])[order],
    }
    if expected:
        out["expected_rewards"] = np.stack(records["expected_rewards"])[order]
    if outcomes:
        taken = [records["outcome"][i] for i in order]
        for name, kind in OUTCOME_COLUMNS:
            dtype = np.float64 if kind == "amount" else np.int64
            out[name] = np.array([0 if o is None else o[name] for o in taken], dtype=dtype)
        out[INFLUENCER] = np.array(["" if o is None else o["influencer_id"] for o in taken], dtype=object)
    return out


def generate_logs(
    env: Any, policy: StochasticPolicy, n_campaigns: int, seed: int, *, lockstep: int = LOCKSTEP
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Logs of ``n_campaigns`` campaigns played by ``policy`` in ``env``.

    The campaigns are those of :func:`experiments.evaluation.episode_seeds` for ``seed``; actions are
    drawn from the policy's probabilities with streams spawned from ``seed``, and ``propensity`` is the
    exact probability of the action drawn. ``lockstep`` campaigns are simulated side by side (see
    :func:`rollouts`); it changes the speed, not the logs.

    Returns
    -------
    (pandas.DataFrame, dict)
        The log in the file format (``campaign_id`` = 0 .. n_campaigns - 1) and its metadata, except
        the ``env`` options and ``policy`` entries, which the caller adds.
    """
    if isinstance(n_campaigns, bool) or not isinstance(n_campaigns, (int, np.integer)) or n_campaigns < 1:
        raise ValueError(f"campaigns: expected a whole number >= 1, got {n_campaigns!r}")
    unwrapped = env.unwrapped
    reset_seeds, draw_seeds = _campaign_streams(seed, int(n_campaigns))
    sim = rollouts(env, policy, reset_seeds, draw_seeds, lockstep=lockstep)
    data = LoggedData(
        campaign_ids=np.arange(n_campaigns),
        campaign=sim["campaign"],
        step=sim["step"],
        context=sim["context"],
        action=sim["action"],
        propensity=sim["propensity"],
        reward=sim["reward"],
        action_mask=sim["action_mask"],
        feature_names=tuple(unwrapped.feature_names),
        action_names=tuple(unwrapped.action_names),
        outcomes={k: sim[k] for k in [*(name for name, _ in OUTCOME_COLUMNS), INFLUENCER]},
        source="generated logs",
    )
    returns = data.per_campaign(data.reward)
    metadata = {
        "format": _META_FORMAT,
        "version": _META_VERSION,
        "seed": int(seed),
        "n_campaigns": int(n_campaigns),
        "n_decisions": data.n_decisions,
        "mean_return": float(returns.mean()),
        "feature_names": list(unwrapped.feature_names),
        "action_names": list(unwrapped.action_names),
        "campaign_ids": list(range(n_campaigns)),
        "campaign_seeds": [int(s) for s in reset_seeds],
    }
    return data.to_frame(), metadata


# ------------------------------------------------------------------------------------- command
def epsilon_argument(text: str) -> float | None:
    """argparse type: a number in [0, 1], or ``own`` (None)."""
    if text.strip().lower() == "own":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1] or 'own', got '{text}'") from None
    if not 0 <= value <= 1 or math.isnan(value):
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1] or 'own', got '{text}'")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", required=True, help="run folder of a trained agent, or an agent name")
    parser.add_argument(
        "--epsilon",
        type=epsilon_argument,
        required=True,
        metavar="E|own",
        help="epsilon-greedy around the policy's greedy action with this epsilon, "
        "or 'own': the agent's own action distribution (random, ppo, a2c, maskable_ppo, logistic_bandit)",
    )
    parser.add_argument("--campaigns", type=positive_int, required=True, help="campaigns to log")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the campaigns and action draws (default 0)"
    )
    parser.add_argument("--out", type=Path, required=True, help="log file to write (.csv or .parquet)")
    parser.add_argument(
        "--env",
        action="extend",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="environment options overriding the run folder's, e.g. n_segments=4 (repeatable)",
    )


def run(args: argparse.Namespace) -> int:
    _check_suffix(args.out)
    if args.out.suffix.lower() == ".parquet":
        _parquet_engine(args.out, "writing")
    if args.seed < 0:
        raise ValueError(f"--seed: expected a whole number >= 0, got {args.seed}")
    source = policy_source(args.policy)
    env_options = {**source.env_options, **parse_env_options(args.env)}
    env = make_env(env_options)
    policy = build_policy(source, env, args.epsilon, seed=args.seed)
    frame, metadata = generate_logs(env, policy, args.campaigns, args.seed)
    metadata["env"] = env_options
    metadata["policy"] = {
        "spec": source.spec,
        "agent": source.name,
        "run_dir": None if source.run_dir is None else str(source.run_dir),
        "epsilon": "own" if args.epsilon is None else args.epsilon,
        "description": policy.describe(),
    }
    write_logs(frame, args.out, metadata)
    print(
        f"Logged {metadata['n_decisions']:,} decisions of {args.campaigns:,} campaigns by {policy.describe()}: "
        f"mean return {metadata['mean_return']:.3f} thousand USD per campaign. "
        f"Wrote {args.out} and {metadata_path(args.out).name}"
    )
    return 0


if __name__ == "__main__":
    run_module("log")
