"""Sweeps: every file appears, interrupted sweeps resume without touching finished runs, Ray works."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from experiments.config import ExperimentConfig
from experiments.sweep import plan, run_sweep

TINY = {
    "name": "tiny",
    "timesteps": 400,
    "seeds": 2,
    "eval": {"every": 200, "episodes": 4},
    "env": {"n_influencers": 1200, "n_segments": 3},
    "agents": {"cqi": {"grid": {"split_threshold": [0.5, 2.0]}}, "random": {}, "oracle": {}},
}


def tiny_config(**changes) -> ExperimentConfig:
    return ExperimentConfig.from_dict({**TINY, **changes}, source="tiny.yaml")


def run_files(run_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


def without_timing(files: dict[str, bytes]) -> dict:
    """CSV and JSON contents with wall-clock columns and fields (``*_seconds``) dropped."""
    out = {}
    for name, data in files.items():
        if name.endswith(".csv"):
            frame = pd.read_csv(pd.io.common.BytesIO(data))
            out[name] = frame.drop(columns=[c for c in frame.columns if c.endswith("_seconds")]).to_csv(
                index=False
            )
        elif name.endswith(".json") and name != "model.json":
            data = json.loads(data)
            out[name] = json.dumps(
                {k: v for k, v in data.items() if not k.endswith("_seconds")}, sort_keys=True
            )
        else:
            out[name] = data
    return out


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sweep") / "tiny"
    run_sweep(tiny_config(), out, n_jobs=2, progress=False)
    return out


@pytest.mark.slow
def test_sweep_writes_every_run_and_file(finished):
    config = tiny_config()
    planned = plan(config)
    assert len(planned) == (2 + 1 + 1) * 2
    results = pd.read_csv(finished / "results.csv")
    assert list(results["run_id"]) == [r.run_id for r in planned]
    assert set(results["variant"]) == {"split_threshold=0.5", "split_threshold=2", "default"}
    for r in planned:
        run_dir = finished / "runs" / r.run_id
        for name in ("config.json", "progress.csv", "eval.csv", "summary.json"):
            assert (run_dir / name).is_file(), (r.run_id, name)
    assert (finished / "runs" / planned[0].run_id / "tree.txt").is_file()
    for name in ("labels.csv", "profiles.csv", "segment_map.png", "segment_profiles.png"):
        assert (finished / "segments" / name).is_file()
    assert yaml.safe_load((finished / "sweep.yaml").read_text())["name"] == "tiny"
    assert not list((finished / "runs").glob("*.partial"))


@pytest.mark.slow
def test_report_and_plots_from_a_real_sweep(finished, tmp_path):
    from experiments.cli import main

    assert main(["report", str(finished), "--out", str(tmp_path / "report.html")]) == 0
    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 4
    assert main(["plot", str(finished), "--out", str(tmp_path / "curves.png")]) == 0
    assert (tmp_path / "curves.png").stat().st_size > 10_000


@pytest.mark.slow
def test_same_config_same_files(finished, tmp_path):
    again = tmp_path / "again"
    run_sweep(tiny_config(), again, n_jobs=1, progress=False)
    for r in plan(tiny_config()):
        a, b = run_files(finished / "runs" / r.run_id), run_files(again / "runs" / r.run_id)
        assert without_timing(a) == without_timing(b), r.run_id


@pytest.mark.slow
def test_a_folder_with_another_sweep_is_refused(finished):
    with pytest.raises(FileExistsError, match="holds a different sweep"):
        run_sweep(tiny_config(timesteps=500), finished, n_jobs=1, progress=False)


@pytest.mark.slow
def test_resuming_a_finished_sweep_runs_nothing(finished):
    before = {p: p.stat().st_mtime_ns for p in (finished / "runs").rglob("*") if p.is_file()}
    run_sweep(tiny_config(), finished, n_jobs=1, progress=False)
    after = {p: p.stat().st_mtime_ns for p in (finished / "runs").rglob("*") if p.is_file()}
    assert before == after


@pytest.mark.slow
def test_killed_sweep_resumes_and_keeps_finished_runs(tmp_path):
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump({**TINY, "timesteps": 1500, "seeds": 3}))
    out = tmp_path / "sweep"
    command = [
        sys.executable,
        "-m",
        "experiments.cli.sweep",
        str(config_path),
        "--out",
        str(out),
        "--n-jobs",
        "1",
        "--no-progress",
    ]
    process = subprocess.Popen(
        command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.time() + 240
    try:
        while time.time() < deadline:
            done = list((out / "runs").glob("*/summary.json")) if (out / "runs").exists() else []
            if len(done) >= 2:
                break
            assert process.poll() is None, process.stderr.read().decode()
            time.sleep(0.2)
        else:
            pytest.fail("the sweep did not finish two runs in time")
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    finished_before = {p.parent.name: run_files(p.parent) for p in (out / "runs").glob("*/summary.json")}
    planned = plan(ExperimentConfig.from_yaml(config_path))
    assert 2 <= len(finished_before) < len(planned)
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    for run_id, files in finished_before.items():
        assert run_files(out / "runs" / run_id) == files, run_id
    assert sorted(p.name for p in (out / "runs").iterdir()) == sorted(r.run_id for r in planned)
    assert len(pd.read_csv(out / "results.csv")) == len(planned)


@pytest.mark.slow
def test_ray_backend_runs_a_tiny_sweep_on_a_local_instance(tmp_path):
    pytest.importorskip("ray")
    config = tiny_config(agents={"cqi": {}, "random": {}}, seeds=1)
    results = run_sweep(config, tmp_path / "ray", backend="ray", address="local", n_jobs=2, progress=False)
    assert sorted(results["agent"]) == ["cqi", "random"]
    run_sweep(config, tmp_path / "joblib", n_jobs=1, progress=False)
    for r in plan(config):
        a = run_files(tmp_path / "ray" / "runs" / r.run_id)
        b = run_files(tmp_path / "joblib" / "runs" / r.run_id)
        assert without_timing(a) == without_timing(b)


def test_sweep_command_errors_are_one_line(tmp_path, capsys):
    from experiments.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("timesteps: 10\nseeds: 1\nagents: {alphago: {}}\n")
    assert main(["sweep", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "agents.alphago: unknown agent" in err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "precious.txt").write_text("keep")
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(TINY))
    assert main(["sweep", str(good), "--out", str(tmp_path / "full")]) == 2
    assert "is not empty and holds no sweep" in capsys.readouterr().err
    assert (tmp_path / "full" / "precious.txt").read_text() == "keep"
