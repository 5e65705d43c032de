"""Statistics of a sweep: interquartile means with bootstrap intervals, probability of improvement, curves.

(This module is over 600 lines because it is one pipeline over one table of runs: reading run folders,
the IQM and bootstrap estimates, the probability of improvement and the learning curves share the
seeding and method keys that make every number reproducible.)

Following Agarwal et al., "Deep Reinforcement Learning at the Edge of the Statistical Precipice"
(NeurIPS 2021), the final score of a method (an agent with one env/hyperparameter variant) is the
*interquartile mean* (IQM) of its runs' final normalised scores (0 = random policy, 1 = myopic oracle),
with a 95 % percentile bootstrap confidence interval over runs, and two methods are compared by the
*probability of improvement* P(X > Y) that a run of X scores higher than a run of Y.

The point estimates are rliable's (:func:`rliable.metrics.aggregate_iqm`,
:func:`rliable.metrics.probability_of_improvement`). The resampling is :func:`scipy.stats.bootstrap`
(percentile method, the runs of each method resampled on their own: rliable's stratified bootstrap
on our single task). ``rliable.library.get_interval_estimates`` cannot be used: it needs ``arch < 8``,
and no ``arch < 8`` imports with pandas 3, while ``arch >= 8`` rejects the ``random_state`` rliable
passes. Each bootstrap draws from ``numpy.random.default_rng([seed, crc32(method)])``, so the same runs
give the same numbers, byte for byte, whatever other methods the sweep holds.

A method with a single run gets its score without an interval, and a ``note`` column says so.

Files (see :func:`summarize_sweep`): ``stats_final.csv``, ``stats_pairs.csv``, ``stats_curves.csv``
and ``stats_runs.csv`` in the sweep folder.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import re
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.stats
from rliable import metrics

from experiments.files import write_text_atomic

logger = logging.getLogger(__name__)

RESULTS_FILE = "results.csv"
RUNS_DIR = "runs"
FINAL_FILE = "stats_final.csv"
PAIRS_FILE = "stats_pairs.csv"
CURVES_FILE = "stats_curves.csv"
RUNS_FILE = "stats_runs.csv"

#: Bootstrap resamples of the final scores and of the probabilities of improvement.
FINAL_RESAMPLES = 10_000
#: Bootstrap resamples per learning-curve point (a band needs less precision than a headline number).
CURVE_RESAMPLES = 2_000
CONFIDENCE = 0.95
DEFAULT_VARIANT = "default"
#: Metrics of ``eval.csv`` aggregated into learning curves.
CURVE_METRICS = ("normalized_score", "mean_return")

#: Columns of the per-run table (``stats_runs.csv``), in order.
RUN_COLUMNS = (
    "run_id",
    "agent",
    "variant",
    "seed",
    "normalized_score",
    "mean_return",
    "std_error",
    "train_seconds",
    "n_leaves",
    "depth",
    "split_threshold",
)
_REQUIRED_RESULTS = ("run_id", "agent", "seed", "normalized_score")
_FLOAT_FORMAT = "%.6g"
ONE_RUN_NOTE = "1 run: no confidence interval (needs 2 or more seeds)"


# ---------------------------------------------------------------------------------------------- reading


def _read_table(path: Path, required: Sequence[str]) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as err:
        raise ValueError(f"{path}: not a readable CSV file ({str(err).splitlines()[0]})") from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column '{missing[0]}'")
    return frame


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data


def split_threshold_of(variant: str, hyperparameters: dict[str, Any] | None = None) -> float:
    """CQI's split threshold of a run: from its variant label (``split_threshold=0.3``) or hyperparameters.

    Returns NaN when neither names one.
    """
    match = re.search(r"split_threshold\s*=\s*([-+0-9.eE]+)", str(variant))
    if match:
        try:
            return float(match.group(1))
        except ValueError:
            pass
    value = (hyperparameters or {}).get("split_threshold")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return math.nan


def _number(value: Any) -> float:
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return float(value)
    return math.nan


def _run_config(run_dir: Path) -> tuple[dict[str, Any], str | None]:
    """(hyperparameters, env options as sorted JSON or None) of a run, from its ``config.json``.

    Reads the runner's layout (``spec.hyperparameters``, ``spec.env``) and a flat one (``hyperparameters``,
    ``env``).
    """
    config = _read_json(run_dir / "config.json")
    raw_spec = config.get("spec")
    spec: dict[str, Any] = raw_spec if isinstance(raw_spec, dict) else {}
    hyper = config.get("hyperparameters", spec.get("hyperparameters"))
    env = config.get("env", spec.get("env"))
    env_key = json.dumps(env, sort_keys=True, default=str) if isinstance(env, dict) else None
    return (hyper if isinstance(hyper, dict) else {}), env_key


def _complete_runs(frame: pd.DataFrame, run_dirs: list[Path]) -> pd.DataFrame:
    """Add the optional columns of :data:`RUN_COLUMNS` (NaN where unknown), the split threshold,
    ``run_dir`` and ``env`` (the run's env options as JSON, None when unknown)."""
    frame = frame.copy()
    for column in RUN_COLUMNS:
        if column not in frame.columns:
            frame[column] = DEFAULT_VARIANT if column == "variant" else math.nan
    frame["variant"] = frame["variant"].fillna(DEFAULT_VARIANT).astype(str)
    frame["agent"] = frame["agent"].astype(str)
    frame["run_id"] = frame["run_id"].astype(str)
    thresholds: list[float] = []
    envs: list[str | None] = []
    for (_, row), run_dir in zip(frame.iterrows(), run_dirs, strict=True):
        hyper, env_key = _run_config(run_dir)
        value = _number(row["split_threshold"])
        if math.isnan(value) and row["agent"] == "cqi":
            value = split_threshold_of(row["variant"], hyper)
        thresholds.append(value)
        envs.append(env_key)
    frame["split_threshold"] = thresholds
    frame["normalized_score"] = pd.to_numeric(frame["normalized_score"], errors="coerce")
    frame = frame[list(RUN_COLUMNS)].assign(
        run_dir=[str(p) for p in run_dirs], env=pd.Series(envs, index=frame.index, dtype=object)
    )
    return frame.sort_values(["agent", "variant", "seed", "run_id"], kind="stable").reset_index(drop=True)


def read_sweep_runs(sweep_dir: Path) -> pd.DataFrame:
    """The finished runs of a sweep, one row each, from its ``results.csv``.

    Parameters
    ----------
    sweep_dir : path
        A sweep folder (``results.csv`` and ``runs/<run_id>/``).

    Returns
    -------
    DataFrame
        The columns of :data:`RUN_COLUMNS` (``normalized_score`` 0 = random, 1 = myopic oracle;
        ``mean_return`` and ``std_error`` in thousands of USD per campaign; NaN where a run does not have
        a field) and ``run_dir``, the run's folder. Sorted by agent, variant, seed.
    """
    sweep_dir = Path(sweep_dir)
    path = sweep_dir / RESULTS_FILE
    frame = _read_table(path, _REQUIRED_RESULTS)
    if frame.empty:
        raise ValueError(f"{path}: no finished runs yet")
    if frame["run_id"].duplicated().any():
        duplicate = frame.loc[frame["run_id"].duplicated(), "run_id"].iloc[0]
        raise ValueError(f"{path}: run_id '{duplicate}' appears twice")
    scores = pd.to_numeric(frame["normalized_score"], errors="coerce")
    if scores.isna().any():
        row = int(np.flatnonzero(scores.isna().to_numpy())[0])
        raise ValueError(
            f"{path}: row {row + 1}, column 'normalized_score': expected a number, "
            f"got '{frame['normalized_score'].iloc[row]}'"
        )
    run_dirs = [sweep_dir / RUNS_DIR / str(run_id) for run_id in frame["run_id"]]
    return _complete_runs(frame, run_dirs)


def read_run_folders(run_dirs: Iterable[Path]) -> pd.DataFrame:
    """The runs of individual run folders (``summary.json`` and ``config.json``), one row each.

    The run id is the folder name; the variant is the config's ``variant`` or ``"default"``.
    Same columns as :func:`read_sweep_runs`.
    """
    rows, folders = [], []
    for run_dir in map(Path, run_dirs):
        path = run_dir / "summary.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file (not a finished run folder)")
        summary = _read_json(path)
        config = _read_json(run_dir / "config.json")
        for key in ("agent", "normalized_score"):
            if key not in summary:
                raise ValueError(f"{path}: missing field '{key}'")
        score = _number(summary["normalized_score"])
        if math.isnan(score):
            raise ValueError(
                f"{path}: field 'normalized_score': expected a number, got {summary['normalized_score']!r}"
            )
        hyper = summary.get("hyperparameters") or _run_config(run_dir)[0]
        variant = str(config.get("variant") or summary.get("variant") or DEFAULT_VARIANT)
        rows.append(
            {
                "run_id": run_dir.resolve().name,
                "agent": str(summary["agent"]),
                "variant": variant,
                "seed": summary.get("seed", config.get("seed")),
                "normalized_score": score,
                "mean_return": _number(summary.get("mean_return")),
                "std_error": _number(summary.get("std_error")),
                "train_seconds": _number(summary.get("train_seconds")),
                "n_leaves": _number(summary.get("n_leaves")),
                "depth": _number(summary.get("depth")),
                "split_threshold": (
                    split_threshold_of(variant, hyper if isinstance(hyper, dict) else {})
                    if summary["agent"] == "cqi"
                    else math.nan
                ),
            }
        )
        folders.append(run_dir)
    if not rows:
        raise ValueError("no run folders given")
    return _complete_runs(pd.DataFrame(rows), folders)


# ------------------------------------------------------------------------------------------ estimates


def iqm(scores: Sequence[float] | np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50 % of the scores (rliable's ``aggregate_iqm``).

    ``scipy.stats.trim_mean`` with a cut of 25 % each side; it cuts ``int(0.25 n)`` scores from each end,
    so with fewer than 4 scores it is the plain mean.
    """
    values = np.asarray(scores, dtype=float).reshape(-1, 1)
    if values.size == 0:
        raise ValueError("iqm of no scores")
    return float(metrics.aggregate_iqm(values))


def probability_of_improvement(
    scores_x: Sequence[float] | np.ndarray, scores_y: Sequence[float] | np.ndarray
) -> float:
    """P(X > Y) + P(X = Y) / 2 for a random run of X and one of Y (rliable's estimate)."""
    x = np.asarray(scores_x, dtype=float).reshape(-1, 1)
    y = np.asarray(scores_y, dtype=float).reshape(-1, 1)
    return float(metrics.probability_of_improvement(x, y))


def _iqm_along(values: np.ndarray, axis: int = -1) -> np.ndarray:
    # The statistic of aggregate_iqm, vectorised over bootstrap resamples.
    return scipy.stats.trim_mean(values, proportiontocut=0.25, axis=axis)


def _improvement_along(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    # The Mann-Whitney U / (n_x n_y) of probability_of_improvement, vectorised over resamples.
    x = np.moveaxis(x, axis, -1)[..., :, None]
    y = np.moveaxis(y, axis, -1)[..., None, :]
    return (x > y).mean(axis=(-2, -1)) + 0.5 * (x == y).mean(axis=(-2, -1))


def _rng(seed: int, key: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(key.encode("utf-8"))])


_RNG_KEYWORD = "rng" if "rng" in inspect.signature(scipy.stats.bootstrap).parameters else "random_state"


def _bootstrap(
    samples: tuple[np.ndarray, ...], statistic, n_resamples: int, confidence: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval of ``statistic`` with every sample resampled on its own (axis 0)."""
    result = scipy.stats.bootstrap(
        samples,
        statistic,
        n_resamples=n_resamples,
        vectorized=True,
        paired=False,
        axis=0,
        confidence_level=confidence,
        method="percentile",
        **{_RNG_KEYWORD: rng},
    )
    return np.asarray(result.confidence_interval.low), np.asarray(result.confidence_interval.high)


def _methods(runs: pd.DataFrame) -> list[tuple[str, str]]:
    return sorted({(str(a), str(v)) for a, v in zip(runs["agent"], runs["variant"], strict=True)})


def method_label(agent: str, variant: str) -> str:
    """How a method is named in tables and legends: ``cqi`` or ``cqi (split_threshold=0.3)``."""
    return agent if variant == DEFAULT_VARIANT else f"{agent} ({variant})"


def final_scores(
    runs: pd.DataFrame,
    *,
    n_resamples: int = FINAL_RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> pd.DataFrame:
    """IQM of the final normalised score of every method, with a bootstrap confidence interval.

    Parameters
    ----------
    runs : DataFrame
        One row per run with ``agent``, ``variant``, ``normalized_score`` (0 = random, 1 = myopic oracle)
        and, optionally, ``mean_return`` and ``std_error`` (thousands of USD per campaign),
        ``train_seconds``, ``n_leaves``, ``depth`` (as from :func:`read_sweep_runs`).
    n_resamples : int
        Bootstrap resamples.
    confidence : float
        Coverage of the interval (0.95 for 95 %).
    seed : int
        Seed of the bootstrap (one stream per method, see the module docstring).

    Returns
    -------
    DataFrame
        One row per (agent, variant), sorted by agent then variant: ``agent``, ``variant``, ``label``,
        ``n_runs``, ``iqm``, ``ci_low``, ``ci_high`` (NaN with a single run), ``mean``, ``median``, ``min``,
        ``max`` (of the normalised score), ``mean_return`` (mean over runs, $k per campaign),
        ``mean_return_se`` (standard error over runs; with one run, that run's evaluation standard
        error), ``train_seconds``, ``n_leaves``, ``depth`` (means over runs) and ``note``.
    """
    rows = []
    for agent, variant in _methods(runs):
        group = runs[(runs["agent"] == agent) & (runs["variant"] == variant)]
        scores = group["normalized_score"].to_numpy(dtype=float)
        n = scores.size
        point = iqm(scores)
        low = high = math.nan
        note = ""
        if n >= 2:
            rng = _rng(seed, f"final|{agent}|{variant}")
            lo, hi = _bootstrap((scores,), _iqm_along, n_resamples, confidence, rng)
            low, high = float(lo), float(hi)
        else:
            note = ONE_RUN_NOTE
            logger.warning("%s: %s", method_label(agent, variant), ONE_RUN_NOTE)
        returns = _column(group, "mean_return")
        if n >= 2:
            return_se = float(np.std(returns, ddof=1) / math.sqrt(n))
        else:
            return_se = float(_column(group, "std_error")[0])
        rows.append(
            {
                "agent": agent,
                "variant": variant,
                "label": method_label(agent, variant),
                "n_runs": n,
                "iqm": point,
                "ci_low": low,
                "ci_high": high,
                "mean": float(scores.mean()),
                "median": float(np.median(scores)),
                "min": float(scores.min()),
                "max": float(scores.max()),
                "mean_return": _nanmean(returns),
                "mean_return_se": return_se,
                "train_seconds": _nanmean(_column(group, "train_seconds")),
                "n_leaves": _nanmean(_column(group, "n_leaves")),
                "depth": _nanmean(_column(group, "depth")),
                "note": note,
            }
        )
    return pd.DataFrame(rows)


def _column(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame.columns:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)


def _nanmean(values: np.ndarray) -> float:
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else math.nan


def _variant_settings(variant: str) -> dict[str, str]:
    """``{"churn_rate": "0.0", "split_threshold": "0.5"}`` of a label ``churn_rate=0.0,split_threshold=0.5``."""
    settings = {}
    for part in str(variant).split(","):
        key, sep, value = part.partition("=")
        if sep:
            settings[key.strip()] = value.strip()
    return settings


def _comparable(
    methods: list[tuple[str, str]], envs: dict[tuple[str, str], str | None]
) -> list[tuple[tuple[str, str], tuple[str, str]]]:
    """Pairs of methods of different agents that face the same market.

    When both methods' env options are known (from their runs' ``config.json``), they must be equal.
    Otherwise their variant labels must agree on every setting both name (``ppo`` / ``default`` is compared
    with every split threshold of ``cqi``; ``churn_rate=0.0`` is not compared with ``churn_rate=0.002,...``).
    """
    pairs = []
    for i, (a, va) in enumerate(methods):
        for b, vb in methods[i + 1 :]:
            if a == b:
                continue
            env_a, env_b = envs.get((a, va)), envs.get((b, vb))
            if env_a is not None and env_b is not None:
                same = env_a == env_b
            else:
                sa, sb = _variant_settings(va), _variant_settings(vb)
                same = all(sa[k] == sb[k] for k in sa.keys() & sb.keys())
            if same:
                pairs.append(((a, va), (b, vb)))
    return pairs


def improvement_pairs(
    runs: pd.DataFrame,
    *,
    n_resamples: int = FINAL_RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> pd.DataFrame:
    """Probability of improvement between every two methods that face the same market.

    Methods of the same agent are not paired; methods of two agents are paired when their runs' env
    options are equal (or, unknown, when their variant labels agree; see :func:`_comparable`).

    Parameters
    ----------
    runs, n_resamples, confidence, seed
        As in :func:`final_scores`.

    Returns
    -------
    DataFrame
        One row per pair, the method with the higher IQM as ``x`` (ties: alphabetical):
        ``agent_x``, ``variant_x``, ``label_x``, ``agent_y``, ``variant_y``, ``label_y``, ``n_x``, ``n_y``,
        ``probability_of_improvement`` (P(X > Y) + P(X = Y) / 2 over runs of X and Y; 0.5 is a tie),
        ``ci_low``, ``ci_high`` (NaN when either method has a single run) and ``note``.
    """
    scores = {
        m: runs[(runs["agent"] == m[0]) & (runs["variant"] == m[1])]["normalized_score"].to_numpy(dtype=float)
        for m in _methods(runs)
    }
    envs: dict[tuple[str, str], str | None] = {}
    if "env" in runs.columns:
        for (agent, variant), group in runs.groupby(["agent", "variant"], sort=True):
            known = group["env"].dropna().unique()
            envs[(str(agent), str(variant))] = str(known[0]) if len(known) == 1 else None
    rows = []
    for first, second in _comparable(_methods(runs), envs):
        x, y = (first, second) if iqm(scores[first]) >= iqm(scores[second]) else (second, first)
        sx, sy = scores[x], scores[y]
        low = high = math.nan
        note = ""
        if sx.size >= 2 and sy.size >= 2:
            rng = _rng(seed, f"pair|{x[0]}|{x[1]}|{y[0]}|{y[1]}")
            lo, hi = _bootstrap((sx, sy), _improvement_along, n_resamples, confidence, rng)
            low, high = float(lo), float(hi)
        else:
            note = "a method with 1 run: no confidence interval"
        rows.append(
            {
                "agent_x": x[0],
                "variant_x": x[1],
                "label_x": method_label(*x),
                "agent_y": y[0],
                "variant_y": y[1],
                "label_y": method_label(*y),
                "n_x": sx.size,
                "n_y": sy.size,
                "probability_of_improvement": probability_of_improvement(sx, sy),
                "ci_low": low,
                "ci_high": high,
                "note": note,
            }
        )
    columns = [
        "agent_x",
        "variant_x",
        "label_x",
        "agent_y",
        "variant_y",
        "label_y",
        "n_x",
        "n_y",
        "probability_of_improvement",
        "ci_low",
        "ci_high",
        "note",
    ]
    return pd.DataFrame(rows, columns=columns)


# ------------------------------------------------------------------------------------- learning curves


def _read_eval(run_dir: Path, metric: str) -> pd.Series | None:
    path = Path(run_dir) / "eval.csv"
    if not path.is_file():
        return None
    frame = _read_table(path, ("timesteps", metric))
    frame = frame[["timesteps", metric]].apply(pd.to_numeric, errors="coerce").dropna()
    if frame.empty:
        return None
    frame = frame.drop_duplicates("timesteps", keep="last").sort_values("timesteps")
    return pd.Series(frame[metric].to_numpy(dtype=float), index=frame["timesteps"].to_numpy(dtype=float))


def _align(curves: list[pd.Series]) -> tuple[np.ndarray, np.ndarray, str]:
    """Runs' curves on common timesteps: ``(timesteps, matrix (n_runs, n_timesteps), how)``.

    The timesteps every run was evaluated at, if there are at least two (or all runs have one and the
    same); otherwise each curve is interpolated linearly on the union of the timesteps inside the range
    all runs cover. Empty when the runs' ranges do not overlap.
    """
    common = curves[0].index
    for curve in curves[1:]:
        common = common.intersection(curve.index)
    if len(common) >= 2 or (len(common) == 1 and all(len(c) == 1 for c in curves)):
        steps = np.sort(np.asarray(common, dtype=float))
        return steps, np.vstack([c.loc[steps].to_numpy() for c in curves]), "common timesteps"
    start = max(float(c.index.min()) for c in curves)
    stop = min(float(c.index.max()) for c in curves)
    union = np.unique(np.concatenate([np.asarray(c.index, dtype=float) for c in curves]))
    steps = union[(union >= start) & (union <= stop)]
    if steps.size == 0:
        return steps, np.empty((len(curves), 0)), "no overlap"
    matrix = np.vstack([np.interp(steps, np.asarray(c.index, dtype=float), c.to_numpy()) for c in curves])
    return steps, matrix, "interpolated"


def learning_curves(
    runs: pd.DataFrame,
    *,
    metric_names: Sequence[str] = CURVE_METRICS,
    n_resamples: int = CURVE_RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> pd.DataFrame:
    """IQM across seeds of every method's evaluation curve, with a bootstrap band per timestep.

    Parameters
    ----------
    runs : DataFrame
        Runs with ``agent``, ``variant`` and ``run_dir`` (a folder holding ``eval.csv``); runs without
        ``eval.csv`` are left out.
    metric_names : sequence of str
        Columns of ``eval.csv`` to aggregate: ``normalized_score`` and ``mean_return`` (thousands of USD
        per evaluation campaign).
    n_resamples, confidence, seed
        As in :func:`final_scores`.

    Returns
    -------
    DataFrame
        Long format, one row per (agent, variant, metric, timesteps): ``label``, ``n_runs``, ``iqm``,
        ``mean``, ``ci_low``, ``ci_high`` (NaN with one run) and ``aligned`` (``common timesteps`` or
        ``interpolated``, see :func:`_align`). Timesteps are environment steps.
    """
    columns = [
        "agent",
        "variant",
        "label",
        "metric",
        "timesteps",
        "n_runs",
        "iqm",
        "mean",
        "ci_low",
        "ci_high",
        "aligned",
    ]
    pieces = []
    for agent, variant in _methods(runs):
        group = runs[(runs["agent"] == agent) & (runs["variant"] == variant)]
        for metric in metric_names:
            curves = [c for c in (_read_eval(Path(d), metric) for d in group["run_dir"]) if c is not None]
            if not curves:
                continue
            steps, matrix, how = _align(curves)
            if steps.size == 0:
                logger.warning(
                    "%s: the runs' evaluation timesteps do not overlap", method_label(agent, variant)
                )
                continue
            low = high = np.full(steps.size, np.nan)
            if len(curves) >= 2:
                rng = _rng(seed, f"curve|{agent}|{variant}|{metric}")
                low, high = _bootstrap((matrix,), _iqm_along, n_resamples, confidence, rng)
            pieces.append(
                pd.DataFrame(
                    {
                        "agent": agent,
                        "variant": variant,
                        "label": method_label(agent, variant),
                        "metric": metric,
                        "timesteps": steps,
                        "n_runs": len(curves),
                        "iqm": _iqm_along(matrix, axis=0),
                        "mean": matrix.mean(axis=0),
                        "ci_low": np.broadcast_to(low, steps.shape),
                        "ci_high": np.broadcast_to(high, steps.shape),
                        "aligned": how,
                    }
                )
            )
    if not pieces:
        return pd.DataFrame(columns=columns)
    return pd.concat(pieces, ignore_index=True)[columns]


# ------------------------------------------------------------------------------------------ summaries


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """Write a table atomically with six significant digits (stable bytes for the same numbers)."""
    path = Path(path)
    write_text_atomic(path, frame.to_csv(index=False, float_format=_FLOAT_FORMAT, lineterminator="\n"))
    return path


def summarize_runs(
    runs: pd.DataFrame, out_dir: Path | None = None, *, seed: int = 0
) -> dict[str, pd.DataFrame]:
    """Final scores, pairs, curves and the per-run table of ``runs``; written to ``out_dir`` if given.

    Returns
    -------
    dict
        ``{"final": ..., "pairs": ..., "curves": ..., "runs": ...}`` (see :func:`final_scores`,
        :func:`improvement_pairs`, :func:`learning_curves`; ``runs`` has :data:`RUN_COLUMNS`).
        Written as ``stats_final.csv``, ``stats_pairs.csv``, ``stats_curves.csv``, ``stats_runs.csv``.
    """
    tables = {
        "final": final_scores(runs, seed=seed),
        "pairs": improvement_pairs(runs, seed=seed),
        "curves": learning_curves(runs, seed=seed),
        "runs": runs[list(RUN_COLUMNS)].reset_index(drop=True),
    }
    if out_dir is not None:
        files = {"final": FINAL_FILE, "pairs": PAIRS_FILE, "curves": CURVES_FILE, "runs": RUNS_FILE}
        for key, name in files.items():
            write_csv(tables[key], Path(out_dir) / name)
    return tables


def summarize_sweep(sweep_dir: Path, *, seed: int = 0, write: bool = True) -> dict[str, pd.DataFrame]:
    """Statistics of a sweep folder, written into it (``stats_final.csv``, ``stats_pairs.csv``,
    ``stats_curves.csv``, ``stats_runs.csv``) unless ``write`` is False.

    Parameters
    ----------
    sweep_dir : path
        The sweep folder (``results.csv``, ``runs/<run_id>/eval.csv``).
    seed : int
        Seed of the bootstraps; the same sweep and seed give the same files, byte for byte.

    Returns
    -------
    dict of DataFrame
        As :func:`summarize_runs`.
    """
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"{sweep_dir}: no such folder")
    runs = read_sweep_runs(sweep_dir)
    return summarize_runs(runs, sweep_dir if write else None, seed=seed)


def representative_run(runs: pd.DataFrame, final: pd.DataFrame, agent: str = "cqi") -> pd.Series | None:
    """A typical run of ``agent``'s best variant: the (lower) median of its runs by final score.

    Parameters
    ----------
    runs : DataFrame
        Per-run table (:func:`read_sweep_runs`).
    final : DataFrame
        :func:`final_scores` of the same runs.
    agent : str
        The agent.

    Returns
    -------
    The run's row (with ``run_dir``), or None when the agent has no runs. Ties go to the lower seed.
    """
    rows = final[final["agent"] == agent]
    if rows.empty:
        return None
    best = rows.sort_values(["iqm", "variant"], ascending=[False, True], kind="stable").iloc[0]
    group = runs[(runs["agent"] == agent) & (runs["variant"] == best["variant"])]
    group = group.sort_values(["normalized_score", "seed", "run_id"], kind="stable")
    return group.iloc[(len(group) - 1) // 2]
