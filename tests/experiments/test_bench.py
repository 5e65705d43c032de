"""``influmatch bench``: records, the JSON file, and errors (quick sizes: a smoke test, not the goals)."""

import json

import numpy as np
import pytest

from experiments.bench import benchmarks as bench
from experiments.cli import main

KEYS = {"name", "value", "unit", "reference", "reference_value", "ratio", "goal", "passed"}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["outcome_sampling", "env_steps", "cop_kmeans"])
def test_quick_benchmarks_give_consistent_records(name):
    results = bench.run_benchmarks([name], quick=True)
    (rec,) = results["benchmarks"]
    assert KEYS <= set(rec) and rec["name"] == name
    assert rec["value"] > 0 and rec["reference_value"] > 0 and rec["ratio"] > 0
    assert rec["passed"] == (rec["ratio"] >= rec["goal"])
    assert results["machine"]["cores"] >= 1 and results["quick"] is True
    assert {"cpu", "simd"} <= set(results["machine"])
    load = results["machine"]["load_average"]
    assert load["start"] is None or (len(load["start"]) == len(load["end"]) == 3 and min(load["end"]) >= 0)


@pytest.mark.slow
def test_env_scaling_reports_reset_and_step_times_per_pool_size():
    (rec,) = bench.run_benchmarks(["env_scaling"], quick=True)["benchmarks"]
    sizes = [row["n_influencers"] for row in rec["table"]]
    assert sizes == [10_000, 100_000]
    for row in rec["table"]:
        assert row["reset_ms"] > 0 and 0 < row["step_us_median"] <= row["step_us_p99"]
    assert rec["ratio"] == pytest.approx(rec["reference_value"] / rec["value"])


@pytest.mark.slow
def test_market_fit_row_times_the_fit_against_reading_the_same_logs():
    (rec,) = bench.run_benchmarks(["market_fit"], quick=True)["benchmarks"]
    assert KEYS <= set(rec) and rec["n_decisions"] == 20_000
    assert rec["value"] == rec["fit_seconds"] > 0 and rec["reference_value"] > 0
    assert rec["ratio"] == pytest.approx(rec["reference_value"] / rec["value"])
    assert rec["goal"] == 0.2 and rec["budget_seconds"] == 10.0
    assert rec["within_budget"] == (rec["fit_seconds"] <= 10.0) and rec["passed"] == (rec["ratio"] >= 0.2)


@pytest.mark.slow
def test_vector_threads_row_compares_two_threads_with_one():
    import numba

    if numba.config.NUMBA_NUM_THREADS < 2:  # one core here (taskset): the row is skipped, tested below
        pytest.skip("numba has one thread here")
    (rec,) = bench.run_benchmarks(["vector_threads"], quick=True)["benchmarks"]
    assert KEYS <= set(rec) and rec["goal"] == 0.6 and rec["num_envs"] == 256
    assert rec["value"] == pytest.approx(rec["env_steps_2_threads"] / rec["env_steps_1_thread"])
    assert rec["ratio"] == pytest.approx(rec["value"] / rec["reference_value"])
    assert rec["threading_layer"] in {"tbb", "omp", "workqueue"}


def test_a_benchmark_the_machine_cannot_run_is_skipped_not_missed(tmp_path, capsys, monkeypatch):
    import numba

    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", 1)
    out = tmp_path / "bench.json"
    assert main(["bench", "--only", "outcome_sampling", "vector_threads", "--out", str(out), "--quick"]) == 0
    rec = json.loads(out.read_text())["benchmarks"][1]
    assert rec["skipped"] is True and rec["passed"] is None and rec["ratio"] is None
    captured = capsys.readouterr()
    assert "vector_threads: skipped (numba has 1 thread here" in captured.err
    (row,) = [line for line in captured.out.splitlines() if line.startswith("vector_threads")]
    assert "skipped" in row and "NUMBA_NUM_THREADS" in row


@pytest.mark.slow
def test_parallel_capacity_is_a_speed_up_of_two_processes():
    # A speed-up of two processes over one (the machine's speed swings, so only its sanity is checked:
    # the goal itself is judged by influmatch bench, never by a timed test).
    capacity = bench.parallel_capacity(500_000)
    assert np.isfinite(capacity) and 0.2 < capacity < 10


def test_cli_writes_the_json_and_names_bad_input(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--only", "outcome_sampling", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert [r["name"] for r in data["benchmarks"]] == ["outcome_sampling"] and "machine" in data
    assert "outcome_sampling" in capsys.readouterr().out
    assert main(["bench", "--only", "warp_drive", "--out", str(tmp_path / "x" / "b.json")]) == 2
    err = capsys.readouterr().err
    assert "unknown benchmark 'warp_drive'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()  # nothing created for a refused command
    assert main(["bench", "--quick", "--out", str(tmp_path / "b.txt")]) == 2


def test_synthetic_fit_data_follows_the_calibrated_shares():
    """The retrieval benchmark's influencers take their primary category with the calibration's shares
    (one home for them), and the embeddings are a category mix plus square-rooted audience shares."""
    from envs.calibration import Calibration
    from experiments.bench.matching import synthetic_fit_data

    cal = Calibration()
    X, queries = synthetic_fit_data(20_000, 50, np.random.default_rng(0))
    assert X.shape == (20_000, 24) and queries.shape[0] == 50
    np.testing.assert_allclose(X[:, :12].sum(axis=1), 1.0)
    np.testing.assert_allclose((X[:, 12:] ** 2).sum(axis=1), 1.0)
    primary_share = np.bincount(X[:, :12].argmax(axis=1), minlength=12) / len(X)
    np.testing.assert_allclose(primary_share, cal.probabilities("influencer_category_mix"), atol=0.03)
