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
* TensorBoard (``tensorboard=DIR``): each run's training scalars (through the SB3 logger every agent
  takes: episode return and length, for CQI its tree size) land in ``DIR/<run_id>/``. A worker writes
  its events into its temporary run folder and returns them with the run's files; the driver renames
  them into place just before the run folder, so every backend (a Ray cluster without a shared disk
  too) gives the same folders, a run's curve appears when the run finishes, an interrupted run leaves
  no half curve, and a resumed sweep never logs a run twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import os
import re
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from experiments.config import ExperimentConfig
from experiments.files import is_nonempty, staged_dir, temp_sibling, write_text_atomic

logger = logging.getLogger(__name__)

BACKENDS = ("joblib", "ray")
SWEEP_FILE = "sweep.yaml"
_RUN_TMP_PREFIX = "influmatch-run-"


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
    overwrite: bool = False,
    tensorboard: str | Path | None = None,
) -> pd.DataFrame:
    """Run every unfinished run of ``config`` into ``out_dir``; returns the results table.

    With ``tensorboard``, each run that trains here also writes its TensorBoard events to
    ``tensorboard/<run_id>/`` (finished runs that are skipped are not logged again). A pending run's
    folder there that holds files is replaced when this sweep resumes (it is what an interrupted
    attempt left) or with ``overwrite``, and refused otherwise.

    Everything that can be checked is checked before anything is written: the backend (Ray installed),
    the folder (empty, or holding this same sweep; with ``overwrite`` a folder holding anything else is
    replaced once the new sweep is complete), and every pending run's environment options and
    hyperparameters (by building its environment and agent). On Ctrl-C the workers are stopped and
    the runs in flight leave nothing behind.
    """
    if backend not in BACKENDS:
        raise ValueError(f"--backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "ray":
        _import_ray()
    out_dir = Path(out_dir)
    planned = plan(config)
    text = _config_text(config)
    same = _holds_this_sweep(out_dir, text, overwrite)
    runs_dir = out_dir / "runs"
    pending = [r for r in planned if not (same and (runs_dir / r.run_id / "summary.json").exists())]
    board = None if tensorboard is None else _check_tensorboard(Path(tensorboard), out_dir, planned, pending,
                                                                 replace=same or overwrite)  # fmt: skip
    check_specs([r.spec for r in pending], source=config.source)
    _remove_stale_run_folders()
    if same or not out_dir.exists() or not any(out_dir.iterdir()):
        out_dir.mkdir(parents=True, exist_ok=True)
        return _run_into(config, out_dir, planned, pending, text, backend, n_jobs, address, progress, board)
    with staged_dir(out_dir, overwrite=True) as tmp:  # replacing another sweep: only once complete
        staged_board = None if board is None else _inside(board, out_dir, tmp)
        table = _run_into(
            config, tmp, planned, pending, text, backend, n_jobs, address, progress, staged_board
        )
    return table


def _check_tensorboard(
    board: Path, out_dir: Path, planned: list[PlannedRun], pending: list[PlannedRun], replace: bool
) -> Path:
    """Refuse a TensorBoard folder that cannot be used (a file, tensorboard not installed, a pending run's
    folder there holding events that are not this sweep's to replace), before anything is written.
    Warns about finished runs that are skipped and so get no events."""
    from agents.tensorboard import require_tensorboard

    require_tensorboard()
    if not str(board).strip():
        raise ValueError("--tensorboard: expected a folder, got an empty string")
    for path in (board, *board.parents):
        if path.exists() and not path.is_dir():
            raise NotADirectoryError(f"--tensorboard {board}: {path} is a file; TensorBoard needs a folder")
    where = board.resolve()
    for owned in (out_dir, out_dir / "runs", out_dir / "segments"):
        if where == owned.resolve() or (owned != out_dir and owned.resolve() in where.parents):
            raise ValueError(
                f"--tensorboard {board}: is the sweep's own folder {owned}; give a folder beside the "
                f"sweep or a new one inside it (e.g. {out_dir / 'tensorboard'})"
            )
    existing = next(p for p in (board, *board.parents) if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(f"--tensorboard {board}: {existing} is not writable")
    if not replace:
        held = [r.run_id for r in pending if is_nonempty(board / r.run_id)]
        if held:
            raise FileExistsError(
                f"--tensorboard {board}: {board / held[0]} already holds another sweep's events "
                f"({len(held)} of this sweep's runs do); choose another folder or pass --overwrite"
            )
    skipped = [r.run_id for r in planned if r not in pending and not (board / r.run_id).is_dir()]
    if skipped:
        logger.warning(
            "%d finished runs are skipped and get no TensorBoard events in %s (first: %s)",
            len(skipped), board, skipped[0],
        )  # fmt: skip
    return board


def _inside(path: Path, old_root: Path, new_root: Path) -> Path:
    """``path`` moved from under ``old_root`` to under ``new_root`` (itself when it is not under it)."""
    try:
        return new_root / path.resolve().relative_to(old_root.resolve())
    except ValueError:
        return path


def _run_into(
    config: ExperimentConfig,
    out_dir: Path,
    planned: list[PlannedRun],
    pending: list[PlannedRun],
    text: str,
    backend: str,
    n_jobs: int,
    address: str | None,
    progress: bool,
    board: Path | None = None,
) -> pd.DataFrame:
    if not (out_dir / SWEEP_FILE).exists():
        write_text_atomic(out_dir / SWEEP_FILE, text)
    runs_dir = out_dir / "runs"
    runs_dir.mkdir(exist_ok=True)
    _remove_leftovers(runs_dir)
    logger.info("%d runs planned, %d already finished", len(planned), len(planned) - len(pending))
    _write_segments(config, out_dir)
    if pending:
        events = board is not None
        executions = (
            _execute_joblib(pending, n_jobs, events)
            if backend == "joblib"
            else _execute_ray(pending, n_jobs, address, events)
        )
        bar = _progress(len(pending), progress)
        try:
            for planned_run, files in executions:
                if board is not None and files.events:  # first: a finished run is never logged again
                    board.mkdir(parents=True, exist_ok=True)
                    _materialise(files.events, board / planned_run.run_id)
                _materialise(files.run, runs_dir / planned_run.run_id)
                write_results(out_dir, planned)
                bar.update(1)
        finally:
            executions.close()  # on an error or Ctrl-C: stops the workers (see _execute_joblib)
            bar.close()
    return write_results(out_dir, planned)


def check_specs(specs: Sequence[Any], source: str = "config") -> None:
    """Build the environment and the agent of every spec (without training), so that a bad environment
    value or hyperparameter is refused before anything is written; ``ValueError`` naming ``source``
    and the agent. Specs differing only in their seed share one check."""
    from agents import make_agent
    from experiments.runner import make_env

    envs: dict[str, Any] = {}
    checked: set[str] = set()
    try:
        for spec in specs:
            env_key = json.dumps(dict(spec.env), sort_keys=True)
            if env_key not in envs:
                try:
                    envs[env_key] = make_env(spec)
                except ValueError as err:
                    raise ValueError(f"{source}: env: {err}") from None
            agent_key = json.dumps([spec.agent, dict(spec.hyperparameters), env_key], sort_keys=True)
            if agent_key in checked:
                continue
            try:
                make_agent(spec.agent, envs[env_key], seed=0, **spec.hyperparameters)
            except ValueError as err:
                raise ValueError(f"{source}: agents.{spec.agent}: {err}") from None
            checked.add(agent_key)
    finally:
        for env in envs.values():
            env.close()


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
@dataclasses.dataclass(frozen=True)
class RunFiles:
    """What a run returns to the driver: its folder's files and its TensorBoard event files (each
    relative path -> bytes; ``events`` empty unless asked for)."""

    run: dict[str, bytes]
    events: dict[str, bytes]


def execute_run(spec: Any, tensorboard: bool = False, references: str | None = None) -> RunFiles:
    """Run one spec in a temporary folder and return its files (and, with ``tensorboard``, its events).
    ``references``: a folder the sweep's workers share for the planner's returns (see
    :class:`experiments.evaluation.Evaluator`)."""
    from experiments.runner import run

    with tempfile.TemporaryDirectory(prefix=f"{_RUN_TMP_PREFIX}{os.getpid()}-") as tmp:
        run_dir, board = Path(tmp) / "run", Path(tmp) / "tensorboard"
        run(spec, run_dir, tensorboard=board if tensorboard else None, reference_cache=references)
        # the runner names its one TensorBoard run <agent>_seed<seed>/; the sweep names it by run id
        events = {p.name: p.read_bytes() for p in _files_under(board)} if tensorboard else {}
        return RunFiles({str(p.relative_to(run_dir)): p.read_bytes() for p in _files_under(run_dir)}, events)


def _files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []


def _execute_joblib(
    pending: list[PlannedRun], n_jobs: int, tensorboard: bool = False
) -> Generator[tuple[PlannedRun, RunFiles], None, None]:
    """Run the pending runs on joblib's loky workers, yielding each as it finishes. When the consumer
    stops early (an error, Ctrl-C) the workers are killed rather than left to finish. The workers
    share the planner's returns through a temporary folder (one process shares them in memory)."""
    if n_jobs == 1:
        for r in pending:
            yield r, execute_run(r.spec, tensorboard)
        return
    from joblib import Parallel, delayed

    references = tempfile.mkdtemp(prefix=f"{_RUN_TMP_PREFIX}{os.getpid()}-references-")
    parallel = Parallel(n_jobs=n_jobs, return_as="generator_unordered")
    results = parallel(delayed(_tagged)(i, r.spec, tensorboard, references) for i, r in enumerate(pending))
    finished = False
    try:
        for i, files in results:
            yield pending[i], files
        finished = True
    finally:
        if not finished:
            backend = getattr(parallel, "_backend", None)
            with contextlib.suppress(Exception):
                if backend is not None and getattr(backend, "_workers", None) is not None:
                    backend.abort_everything(ensure_ready=False)
            with contextlib.suppress(Exception):
                results.close()
            _remove_stale_run_folders()  # the killed workers' temporary run folders
        shutil.rmtree(references, ignore_errors=True)


def _tagged(i: int, spec: Any, tensorboard: bool, references: str) -> tuple[int, RunFiles]:
    _become_worker()
    return i, execute_run(spec, tensorboard, references)


@functools.cache
def _become_worker() -> None:
    """Once per worker process: leave Ctrl-C to the parent (which stops the workers, so a sweep's
    Ctrl-C prints one line, not a traceback per worker) and exit when the parent is gone (a killed
    sweep leaves no worker training on)."""
    parent = os.getppid()
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="influmatch-parent-watch", daemon=True).start()


def _remove_stale_run_folders() -> None:
    """Remove the temporary run folders (``influmatch-run-<pid>-*``) of worker processes that are gone."""
    from experiments.files import pid_alive

    root = Path(tempfile.gettempdir())
    for path in root.glob(f"{_RUN_TMP_PREFIX}*"):
        match = re.match(rf"{re.escape(_RUN_TMP_PREFIX)}(\d+)-", path.name)
        if match and path.is_dir() and not pid_alive(int(match[1])):
            shutil.rmtree(path, ignore_errors=True)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ValueError("--backend ray: Ray is not installed (pip install 'influmatch[ray]')") from None
    return ray


def _execute_ray(
    pending: list[PlannedRun], n_jobs: int, address: str | None, tensorboard: bool = False
) -> Generator[tuple[PlannedRun, RunFiles], None, None]:
    ray = _import_ray()
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
        refs = {remote.remote(r.spec, tensorboard): r for r in pending}
        waiting = list(refs)
        while waiting:
            done, waiting = ray.wait(waiting, num_returns=1)
            yield refs[done[0]], ray.get(done[0])
    finally:
        if started_here:
            ray.shutdown()


def _materialise(files: dict[str, bytes], final: Path) -> None:
    """Write a run's files beside ``final`` and rename the folder into place in one step."""
    tmp = temp_sibling(final, ".partial", directory=True)
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


def _config_text(config: ExperimentConfig) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)


def _holds_this_sweep(out_dir: Path, text: str, overwrite: bool) -> bool:
    """True if ``out_dir`` holds this sweep (resume); False if it is new or empty, or (with
    ``overwrite``) holds something else; otherwise the refusal naming the folder."""
    if not out_dir.exists():
        return False
    if not out_dir.is_dir():
        raise NotADirectoryError(f"--out {out_dir}: a file of that name exists; a sweep needs a folder")
    existing = out_dir / SWEEP_FILE
    if existing.is_file():
        if existing.read_text(encoding="utf-8") == text:
            return True
        problem = "holds a different sweep (sweep.yaml differs)"
    elif any(out_dir.iterdir()):
        problem = "is not empty and holds no sweep"
    else:
        return False
    if not overwrite:
        raise FileExistsError(f"--out {out_dir}: {problem}; choose another --out or pass --overwrite")
    return False


def _write_segments(config: ExperimentConfig, out_dir: Path) -> None:
    """The first seed's market segmentation as CSVs (labels, profiles, map), for the report."""
    seg_dir = out_dir / "segments"
    if (seg_dir / "profiles.csv").exists():
        return
    from experiments.runner import make_env
    from experiments.segments import write_segment_files

    first = plan(config)[0].spec
    env: Any = make_env(first).unwrapped  # an InfluencerMatchingEnv (pool, segmenter)
    tmp = temp_sibling(seg_dir, ".partial", directory=True)
    write_segment_files(env.pool.to_frame(), env.segmenter, tmp)
    shutil.rmtree(seg_dir, ignore_errors=True)
    tmp.rename(seg_dir)


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="runs", unit="run", disable=not enabled)
