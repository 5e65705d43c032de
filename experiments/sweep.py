"""Sweeps: an experiment config's agents x variants x seeds, run in parallel, resumably (``influmatch sweep``).

The sweep folder holds ``sweep.yaml`` (the config), ``runs/<run_id>/`` (one run folder each, see
:mod:`experiments.runner`), ``results.csv`` (one row per finished run) and ``segments/`` (the
segmentation of the first seed's market, for the report).

* Backends: joblib (default, local processes) or Ray (``--backend ray``; ``--address auto`` joins a
  running cluster, ``--address local`` starts a local instance). Every run executes in a temporary folder
  on whichever machine runs it and returns its files; the driver writes them into the sweep, so a
  multi-node cluster needs no shared disk.
* Resumable: a run whose folder holds ``summary.json`` is finished and skipped. A run's folder appears
  in one rename, after all its files are written, so killing a sweep loses at most the runs in flight
  and never leaves a half-written run under its final name.
* Safe: a folder that holds a *different* sweep is refused instead of mixed.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from experiments.config import ExperimentConfig
from experiments.files import prepare_out_dir, write_text_atomic

logger = logging.getLogger(__name__)

BACKENDS = ("joblib", "ray")


@dataclasses.dataclass(frozen=True)
class PlannedRun:
    run_id: str
    variant: str
    spec: Any  # experiments.runner.RunSpec


def run_id(agent: str, variant: str, seed: int) -> str:
    """A folder name: ``<agent>__<variant>__seed<seed>`` with unsafe characters replaced."""
    slug = re.sub(r"[^A-Za-z0-9_.=-]+", "-", variant)
    return f"{agent}__{slug}__seed{seed}"


def plan(config: ExperimentConfig) -> list[PlannedRun]:
    """Every run of the config, in a stable order."""
    runs = [
        PlannedRun(run_id(spec.agent, variant, spec.seed), variant, spec)
        for variant, spec in config.run_specs()
    ]
    ids = [r.run_id for r in runs]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ValueError(
            f"{config.source}: two runs share the folder name '{dup}'; make the variants distinct"
        )
    return runs


def run_sweep(
    config: ExperimentConfig,
    out_dir: Path,
    *,
    backend: str = "joblib",
    n_jobs: int = 2,
    address: str | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Run every unfinished run of ``config`` into ``out_dir``; returns the results table."""
    if backend not in BACKENDS:
        raise ValueError(f"--backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    out_dir = prepare_out_dir(out_dir)
    _claim_folder(config, out_dir)
    runs_dir = out_dir / "runs"
    runs_dir.mkdir(exist_ok=True)
    _remove_leftovers(runs_dir)
    planned = plan(config)
    pending = [r for r in planned if not (runs_dir / r.run_id / "summary.json").exists()]
    logger.info("%d runs planned, %d already finished", len(planned), len(planned) - len(pending))
    _write_segments(config, out_dir)
    if pending:
        executions = (
            _execute_joblib(pending, n_jobs)
            if backend == "joblib"
            else _execute_ray(pending, n_jobs, address)
        )
        bar = _progress(len(pending), progress)
        try:
            for planned_run, files in executions:
                _materialise(files, runs_dir / planned_run.run_id)
                write_results(out_dir, planned)
                bar.update(1)
        finally:
            bar.close()
    return write_results(out_dir, planned)


def write_results(out_dir: Path, planned: list[PlannedRun]) -> pd.DataFrame:
    """``results.csv``: one row per finished run (summary fields, variant), in plan order."""
    rows = []
    for r in planned:
        summary_path = out_dir / "runs" / r.run_id / "summary.json"
        if summary_path.exists():
            summary = json.loads(summary_path.read_text())
            rows.append({"run_id": r.run_id, "agent": r.spec.agent, "variant": r.variant, "seed": r.spec.seed,
                         **{k: v for k, v in summary.items() if k not in {"agent", "seed"} and not isinstance(v, (dict, list))}})  # fmt: skip
    table = pd.DataFrame(rows)
    write_text_atomic(out_dir / "results.csv", table.to_csv(index=False))
    return table


# ------------------------------------------------------------------------------------- execution
def execute_run(spec: Any) -> dict[str, bytes]:
    """Run one spec in a temporary folder and return its files (relative path -> bytes)."""
    from experiments.runner import run

    with tempfile.TemporaryDirectory(prefix="influmatch-run-") as tmp:
        run_dir = Path(tmp) / "run"
        run(spec, run_dir)
        return {
            str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()
        }


def _execute_joblib(pending: list[PlannedRun], n_jobs: int) -> Iterator[tuple[PlannedRun, dict]]:
    if n_jobs == 1:
        for r in pending:
            yield r, execute_run(r.spec)
        return
    from joblib import Parallel, delayed

    results = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
        delayed(_tagged)(i, r.spec) for i, r in enumerate(pending)
    )
    for i, files in results:
        yield pending[i], files


def _tagged(i: int, spec: Any) -> tuple[int, dict]:
    return i, execute_run(spec)


def _execute_ray(
    pending: list[PlannedRun], n_jobs: int, address: str | None
) -> Iterator[tuple[PlannedRun, dict]]:
    try:
        import ray
    except ImportError:
        raise ValueError("--backend ray: Ray is not installed (pip install 'influmatch[ray]')") from None
    started_here = not ray.is_initialized()
    if started_here:
        if address in (None, "local"):
            ray.init(num_cpus=n_jobs, include_dashboard=False, log_to_driver=False, configure_logging=False)
        else:
            try:
                ray.init(address=address, log_to_driver=False, configure_logging=False)
            except ConnectionError as exc:
                raise ValueError(f"--address {address}: cannot reach a Ray cluster ({exc})") from None
    try:
        remote = ray.remote(num_cpus=1)(execute_run)
        refs = {remote.remote(r.spec): r for r in pending}
        waiting = list(refs)
        while waiting:
            done, waiting = ray.wait(waiting, num_returns=1)
            yield refs[done[0]], ray.get(done[0])
    finally:
        if started_here:
            ray.shutdown()


def _materialise(files: dict[str, bytes], final: Path) -> None:
    """Write a run's files beside ``final`` and rename the folder into place in one step."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    try:
        for rel, data in files.items():
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        if final.exists():  # an unfinished leftover without summary.json
            shutil.rmtree(final)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _remove_leftovers(runs_dir: Path) -> None:
    """Remove partial folders of runs that were in flight when an earlier sweep was killed."""
    for path in runs_dir.iterdir():
        if path.is_dir() and (path.name.endswith(".partial") or not (path / "summary.json").exists()):
            shutil.rmtree(path, ignore_errors=True)


def _claim_folder(config: ExperimentConfig, out_dir: Path) -> None:
    """Write ``sweep.yaml``, or check that the folder holds this same sweep."""
    text = yaml.safe_dump(config.to_dict(), sort_keys=False)
    existing = out_dir / "sweep.yaml"
    if existing.exists():
        if existing.read_text() != text:
            raise ValueError(f"{out_dir}: holds a different sweep (sweep.yaml differs); choose another --out")
        return
    if any(out_dir.iterdir()):
        raise ValueError(f"{out_dir}: is not empty and holds no sweep; choose another --out")
    write_text_atomic(existing, text)


def _write_segments(config: ExperimentConfig, out_dir: Path) -> None:
    """The first seed's market segmentation as CSVs (labels, profiles, map), for the report."""
    seg_dir = out_dir / "segments"
    if (seg_dir / "profiles.csv").exists():
        return
    from experiments.runner import make_env
    from experiments.segments import write_segment_files

    first = plan(config)[0].spec
    env: Any = make_env(first).unwrapped  # an InfluencerMatchingEnv (pool, segmenter)
    tmp = Path(tempfile.mkdtemp(prefix=".segments.", suffix=".partial", dir=out_dir))
    write_segment_files(env.pool.to_frame(), env.segmenter, tmp)
    shutil.rmtree(seg_dir, ignore_errors=True)
    tmp.rename(seg_dir)


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="runs", unit="run", disable=not enabled)
