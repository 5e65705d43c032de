"""``influmatch plot``: draw a figure from run folders or sweep folders, without re-running anything.

``influmatch plot PATH... --out FILE.png|FILE.pdf|FILE.svg [--kind KIND] [--overwrite]`` (the format
follows the suffix; an existing figure is replaced only with ``--overwrite``) where each PATH is a run folder (``summary.json``,
``eval.csv``; a CQI run also ``model.json`` / ``tree.txt``), a sweep folder (``results.csv``,
``runs/<run_id>/``) or a segment folder (``labels.csv``, ``profiles.csv``, as ``influmatch segment``
writes it). Kinds:

- ``curves`` (the default): learning curves, IQM over seeds with 95 % bootstrap bands, one line per
  agent and variant (``--metric mean_return`` for the return in thousands of USD instead of the
  normalised score);
- ``final``: final normalised score per agent and variant, IQM with its 95 % interval;
- ``tree``: the CQI tree of one run folder, or of a typical run of a sweep's best CQI setting;
- ``tradeoff``: CQI's number of leaves against final score, one point per run, coloured by split
  threshold;
- ``frontier``: normalised score against number of leaves for the tree policies (CQI settings,
  distilled trees), IQM with 95 % intervals, the SB3 agents as reference lines; prints the smallest
  tree within 0.05 of the best neural policy (:mod:`experiments.reporting.frontier`);
- ``timing``: hire now or wait, per brand category and start month, from the planning oracle, and where
  the sweep's policies wait (a sweep's ``timing.csv`` and ``waits.csv``, written by ``influmatch timing``);
- ``segments``: the segment map to ``--out`` and the segment profiles beside it (``NAME_profiles.png``,
  same suffix);
  the default for a segment folder.

The statistics are computed from the runs' CSV/JSON files in a temporary folder (see
:mod:`experiments.stats`); nothing is written but the figure.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd

from experiments import stats
from experiments.cli import run_module
from experiments.files import output_path, staged_files
from experiments.reporting.figures import (
    FIGURE_FORMATS,
    plot_cqi_tradeoff,
    plot_final_scores,
    plot_learning_curves,
    plot_segment_map,
    plot_segment_profiles,
)
from experiments.reporting.trees import plot_cqi_tree

KINDS = ("curves", "final", "tree", "tradeoff", "frontier", "segments", "timing")
SEGMENTS_DIR = "segments"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths", nargs="+", type=Path, metavar="RUN_OR_SWEEP_DIR", help="run or sweep folders"
    )
    parser.add_argument(
        "--out",
        type=output_path,
        required=True,
        help="figure to write: FILE.png, FILE.pdf or FILE.svg (the format follows the suffix)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing figure at --out")
    parser.add_argument(
        "--kind",
        choices=KINDS,
        help="figure to draw (default: curves; segments for a segment folder)",
    )
    parser.add_argument(
        "--metric",
        choices=stats.CURVE_METRICS,
        default="normalized_score",
        help="curves only: normalised score (default) or mean return in thousands of USD",
    )


def classify(path: Path) -> str:
    """``sweep``, ``run`` or ``segments``; a one-line error for anything else."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such folder")
    if not path.is_dir():
        raise NotADirectoryError(f"{path}: expected a run or sweep folder, got a file")
    if (path / stats.RESULTS_FILE).is_file():
        return "sweep"
    if any((path / name).is_file() for name in ("summary.json", "eval.csv", "model.json", "tree.txt")):
        return "run"
    if (path / "labels.csv").is_file() and (path / "profiles.csv").is_file():
        return "segments"
    raise ValueError(
        f"{path}: not a run folder (summary.json), a sweep folder (results.csv) "
        "or a segment folder (labels.csv, profiles.csv)"
    )


def _runs(paths: list[Path], kinds: list[str]) -> pd.DataFrame:
    frames = [stats.read_sweep_runs(p) for p, k in zip(paths, kinds, strict=True) if k == "sweep"]
    run_dirs = [p for p, k in zip(paths, kinds, strict=True) if k == "run"]
    if run_dirs:
        frames.append(stats.read_run_folders(run_dirs))
    if not frames:
        raise ValueError(f"{paths[0]}: a segment folder has no runs to draw; use --kind segments")
    return pd.concat(frames, ignore_index=True)


def _tree_source(path: Path, kind: str) -> tuple[Path, str | None]:
    """(run folder, title or None) of the tree to draw."""
    if kind == "run":
        return path, None
    if kind != "sweep":
        raise ValueError(f"{path}: a segment folder has no CQI tree")
    runs = stats.read_sweep_runs(path)
    run = stats.representative_run(runs, _iqm_only(runs))
    if run is None:
        raise ValueError(f"{path / stats.RESULTS_FILE}: no CQI runs, so no tree to draw")
    title = f"CQI policy tree of run {run['run_id']} (a typical run of {stats.method_label('cqi', run['variant'])})"
    return Path(run["run_dir"]), title


def _iqm_only(runs: pd.DataFrame) -> pd.DataFrame:
    """IQM per method without intervals (enough to pick the best CQI setting)."""
    rows = [
        {"agent": a, "variant": v, "iqm": stats.iqm(g["normalized_score"].to_numpy())}
        for (a, v), g in runs.groupby(["agent", "variant"], sort=True)
    ]
    return pd.DataFrame(rows)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix.lower() not in FIGURE_FORMATS:
        raise ValueError(f"--out {out}: expected a file name ending in {', '.join(FIGURE_FORMATS)}")
    paths = [Path(p) for p in args.paths]
    kinds = [classify(p) for p in paths]
    kind = args.kind or ("segments" if set(kinds) == {"segments"} else "curves")
    outputs = [out, out.with_name(f"{out.stem}_profiles{out.suffix}")] if kind == "segments" else [out]
    with staged_files(outputs, args.overwrite) as tmp:
        _draw(kind, paths, kinds, tmp / out.name, args.metric)
    print(f"Wrote {' and '.join(str(p) for p in outputs)}")
    return 0


def _draw(kind: str, paths: list[Path], kinds: list[str], out: Path, metric: str) -> None:
    """Draw the figure of ``kind`` to ``out`` (and for segments the profiles beside it)."""
    if kind == "segments":
        if len(paths) != 1:
            raise ValueError(f"--kind segments draws one sweep or segment folder, got {len(paths)} paths")
        folder = paths[0] / SEGMENTS_DIR if kinds[0] == "sweep" else paths[0]
        if kinds[0] == "run" or not (folder / "profiles.csv").is_file():
            raise FileNotFoundError(f"{folder / 'profiles.csv'}: no such file (no segments to draw)")
        plot_segment_map(folder / "labels.csv", folder / "profiles.csv", out)
        plot_segment_profiles(folder / "profiles.csv", out.with_name(f"{out.stem}_profiles{out.suffix}"))
        return
    if kind == "timing":
        _draw_timing(paths, kinds, out)
        return
    if kind == "tree":
        if len(paths) != 1:
            raise ValueError(f"--kind tree draws one run or sweep folder, got {len(paths)} paths")
        run_dir, title = _tree_source(paths[0], kinds[0])
        plot_cqi_tree(run_dir, out, title=title)
        return
    runs = _runs(paths, kinds)
    with tempfile.TemporaryDirectory(prefix="influmatch-plot-") as tmp_name:
        tmp = Path(tmp_name)
        if kind == "curves":
            curves = stats.learning_curves(runs)
            if curves.empty:
                raise ValueError(f"{paths[0]}: no eval.csv in any of the runs, so no learning curves to draw")
            stats.write_csv(curves, tmp / stats.CURVES_FILE)
            plot_learning_curves(tmp / stats.CURVES_FILE, out, metric=metric)
        elif kind == "final":
            stats.write_csv(stats.final_scores(runs), tmp / stats.FINAL_FILE)
            stats.write_csv(runs[list(stats.RUN_COLUMNS)], tmp / stats.RUNS_FILE)
            plot_final_scores(tmp / stats.FINAL_FILE, out, runs_csv=tmp / stats.RUNS_FILE)
        elif kind == "frontier":
            from experiments.reporting.frontier import plot_frontier, smallest_tree_within

            final = stats.final_scores(runs)
            stats.write_csv(final, tmp / stats.FINAL_FILE)
            stats.write_csv(runs[list(stats.RUN_COLUMNS)], tmp / stats.RUNS_FILE)
            plot_frontier(tmp / stats.FINAL_FILE, out, runs_csv=tmp / stats.RUNS_FILE)
            print(smallest_tree_within(final).sentence())
        else:  # tradeoff
            if not ((runs["agent"] == "cqi") & runs["n_leaves"].notna()).any():
                raise ValueError(f"{paths[0]}: no CQI runs with a number of leaves, so no trade-off to draw")
            stats.write_csv(runs[list(stats.RUN_COLUMNS)], tmp / stats.RUNS_FILE)
            plot_cqi_tradeoff(tmp / stats.RUNS_FILE, out)


def _draw_timing(paths: list[Path], kinds: list[str], out: Path) -> None:
    """The best-time-to-match figure from a sweep's ``timing.csv`` and ``waits.csv``."""
    from experiments.reporting.timing_figure import plot_timing
    from experiments.timing import TIMING_FILE, WAITS_FILE

    if len(paths) != 1 or kinds[0] != "sweep":
        raise ValueError("--kind timing draws one sweep folder")
    if not (paths[0] / TIMING_FILE).is_file():
        raise FileNotFoundError(
            f"{paths[0] / TIMING_FILE}: no such file; write it with 'influmatch timing {paths[0]}'"
        )
    plot_timing(paths[0] / TIMING_FILE, out, paths[0] / WAITS_FILE)


if __name__ == "__main__":
    run_module("plot")
