"""A sweep stopped by Ctrl-C exits 130 with one line and stops its workers; a killed sweep's workers
die with it; what either leaves in the temporary folder is cleaned."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

CONFIG = (
    "timesteps: 3000000\nseeds: 4\neval: {every: 1000000, episodes: 2}\n"
    "env: {n_influencers: 400, n_segments: 2, campaign_weeks: 4}\nagents: {random: {}}\n"
)


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _start(tmp_path: Path) -> subprocess.Popen:
    config = tmp_path / "long.yaml"
    config.write_text(CONFIG)
    argv = [sys.executable, "-m", "experiments.cli.sweep", str(config), "--out", str(tmp_path / "s")]
    process = subprocess.Popen(
        [*argv, "--n-jobs", "2", "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "PYTHONFAULTHANDLER": "1"},  # a SIGABRT dumps every thread's stack
        preexec_fn=_as_a_terminal_starts_it,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until both workers hold a run folder
        if len(_run_folders(_children(process.pid))) >= 2 or process.poll() is not None:
            break
        time.sleep(0.5)
    return process


def _as_a_terminal_starts_it() -> None:
    """Ctrl-C at its default, as a shell gives a foreground job. A test process started in the
    background of a script (``make test &``) ignores SIGINT, and a child inherits that: its Ctrl-C would
    then do nothing, which is right for a background job and not what this test is about."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _run_folders(pids) -> list[Path]:
    root = Path(tempfile.gettempdir())
    return [p for pid in pids for p in root.glob(f"influmatch-run-{pid}-*")]


def _session(sid: int) -> str:
    out = subprocess.run(
        ["ps", "-s", str(sid), "-o", "pid,ppid,stat,etime,wchan:20,args"], capture_output=True, text=True
    )
    return out.stdout


def _signal_masks(pid: int) -> str:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return "gone"
    return " ".join(line for line in lines if line.startswith(("SigBlk", "SigIgn", "SigCgt")))


def _alive(pids) -> list[int]:
    alive = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                if handle.read().split()[2] != "Z":
                    alive.append(pid)
        except FileNotFoundError:
            pass
    return alive


@pytest.mark.slow
def test_ctrl_c_stops_the_sweep_and_its_workers(tmp_path):
    process = _start(tmp_path)
    workers = _children(process.pid)
    assert _run_folders(workers), "the workers never started a run"
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    # A few seconds when it works: the bound is a hang detector, not a speed goal.
    try:
        _, err = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        state = _session(process.pid)  # who is still there: the sweep itself, or something holding its pipes
        exited = process.poll()
        masks = _signal_masks(process.pid)
        here = signal.getsignal(signal.SIGINT)
        if exited is None:
            os.kill(process.pid, signal.SIGABRT)  # faulthandler: where the sweep is stuck
            time.sleep(2)
        os.killpg(process.pid, signal.SIGKILL)
        _, err = process.communicate()
        raise AssertionError(
            f"no EOF 120 s after Ctrl-C; sweep exit code {exited}; signal masks {masks}; SIGINT in the test "
            f"process {here}; session:\n{state}\nstderr:\n{err}"
        ) from None
    assert process.returncode == 130
    assert err.strip() == "influmatch sweep: interrupted"
    time.sleep(1)
    assert _alive(workers) == []
    assert _run_folders(workers) == []
    assert list((tmp_path / "s" / "runs").iterdir()) == []


@pytest.mark.slow
def test_workers_die_with_a_killed_sweep_and_the_next_start_cleans_up(tmp_path):
    process = _start(tmp_path)
    workers = [pid for pid in _children(process.pid) if _run_folders([pid])]
    assert workers, "the workers never started a run"
    os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=30)
    deadline = time.monotonic() + 15
    while _alive(workers) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _alive(workers) == []
    assert _run_folders(workers)  # a SIGKILL leaves them; the next sweep removes them
    from experiments.sweep import _remove_stale_run_folders

    _remove_stale_run_folders()
    assert _run_folders(workers) == []
