"""Sweep statistics (experiments/stats.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rliable import metrics

from experiments import stats
from tests.experiments.helpers import BEST_DEPLOYABLE, EVAL_STEPS, SCORES, fabricate_sweep


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """A synthetic sweep with CQI and segments; do not modify (copy it first)."""
    return fabricate_sweep(tmp_path_factory.mktemp("sweep") / "sweep")


def _runs(scores: dict[str, list[float]]) -> pd.DataFrame:
    rows = [
        {"agent": agent, "variant": "default", "normalized_score": s, "run_id": f"{agent}{i}", "seed": i}
        for agent, values in scores.items()
        for i, s in enumerate(values)
    ]
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------ estimates


def test_iqm_of_known_arrays_equals_the_hand_computation():
    # 8 scores: the lowest 2 and highest 2 are cut, the middle 4 are averaged.
    assert stats.iqm(np.arange(8.0)) == pytest.approx((2 + 3 + 4 + 5) / 4)
    # 5 scores: int(0.25 * 5) = 1 cut each side, so the outlier 100 does not count.
    assert stats.iqm([1.0, 2.0, 3.0, 4.0, 100.0]) == pytest.approx(3.0)
    # Fewer than 4 scores: nothing is cut.
    assert stats.iqm([0.1, 0.2, 0.9]) == pytest.approx(0.4)
    final = stats.final_scores(_runs({"a": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]}))
    assert final.loc[0, "iqm"] == pytest.approx(3.5) and final.loc[0, "mean"] == pytest.approx(3.5)


def test_intervals_contain_the_estimate_and_shrink_with_more_seeds():
    rng = np.random.default_rng(1)
    widths = []
    for n in (4, 16, 64):
        final = stats.final_scores(_runs({"a": list(rng.normal(0.6, 0.15, n))}), n_resamples=4000)
        row = final.iloc[0]
        assert row["ci_low"] <= row["iqm"] <= row["ci_high"]
        widths.append(row["ci_high"] - row["ci_low"])
    assert widths[0] > widths[1] > widths[2] > 0


def test_probability_of_improvement_of_separated_agents_is_one():
    runs = _runs(
        {"good": [0.9, 0.95, 0.85, 0.92], "bad": [0.1, 0.2, 0.15, 0.05], "twin": [0.1, 0.2, 0.15, 0.05]}
    )
    pairs = stats.improvement_pairs(runs).set_index(["agent_x", "agent_y"])
    good_bad = pairs.loc[("good", "bad")]
    assert good_bad["probability_of_improvement"] == pytest.approx(1.0)
    assert good_bad["ci_low"] == pytest.approx(1.0) and good_bad["ci_high"] == pytest.approx(1.0)
    assert pairs.loc[("good", "twin"), "probability_of_improvement"] == pytest.approx(1.0)
    tie = pairs.loc[("bad", "twin")]
    assert tie["probability_of_improvement"] == pytest.approx(0.5)
    assert tie["ci_low"] < 0.5 < tie["ci_high"]


def test_vectorised_statistics_equal_rliable():
    rng = np.random.default_rng(2)
    for n_x, n_y in ((3, 5), (7, 7), (10, 2)):
        x, y = np.round(rng.random(n_x), 1), np.round(rng.random(n_y), 1)  # rounding makes ties
        expected = metrics.probability_of_improvement(x[:, None], y[:, None])
        assert stats._improvement_along(x, y) == pytest.approx(expected)
        assert stats.probability_of_improvement(x, y) == pytest.approx(expected)
        assert stats._iqm_along(x) == pytest.approx(metrics.aggregate_iqm(x[:, None]))


def test_a_single_seed_gets_its_score_and_a_note_instead_of_an_interval():
    runs = _runs({"lonely": [0.4], "many": [0.5, 0.6, 0.7]})
    final = stats.final_scores(runs).set_index("agent")
    assert final.loc["lonely", "iqm"] == pytest.approx(0.4)
    assert np.isnan(final.loc["lonely", "ci_low"]) and np.isnan(final.loc["lonely", "ci_high"])
    assert "1 run" in final.loc["lonely", "note"] and final.loc["many", "note"] == ""
    pair = stats.improvement_pairs(runs).iloc[0]
    assert pair["agent_x"] == "many" and pair["probability_of_improvement"] == pytest.approx(1.0)
    assert np.isnan(pair["ci_low"]) and "1 run" in pair["note"]


def test_only_methods_facing_the_same_market_are_paired():
    methods = [("cqi", "churn=0,split=1"), ("cqi", "churn=1,split=1"), ("ppo", "churn=0"), ("ppo", "churn=1")]
    pairs = stats._comparable(methods, {})
    assert pairs == [
        (("cqi", "churn=0,split=1"), ("ppo", "churn=0")),
        (("cqi", "churn=1,split=1"), ("ppo", "churn=1")),
    ]
    # Known env options decide, whatever the labels say.
    envs = {m: '{"n": 1}' for m in methods}
    assert len(stats._comparable(methods, envs)) == 4


# ------------------------------------------------------------------------------------------ sweep files


def test_summarize_sweep_writes_four_tables_and_is_deterministic(sweep, tmp_path):
    tables = stats.summarize_sweep(sweep, write=False)
    final = tables["final"].set_index("label")
    assert sorted(final.index) == sorted(stats.method_label(*m) for m in SCORES)
    for (agent, variant), scores in SCORES.items():
        row = final.loc[stats.method_label(agent, variant)]
        assert row["n_runs"] == 3 and row["iqm"] == pytest.approx(np.mean(scores))  # 3 runs: IQM = mean
        assert row["ci_low"] <= row["iqm"] <= row["ci_high"]
        assert row["mean_return"] == pytest.approx(2 * np.mean(scores))
    assert final.loc[BEST_DEPLOYABLE, "n_leaves"] == pytest.approx(5.0)  # 4 leaves + seed 0, 1, 2

    pairs = tables["pairs"]
    assert not (pairs["agent_x"] == pairs["agent_y"]).any()  # the two CQI settings are not paired
    assert len(pairs) == 2 * 3 + 3  # each CQI setting with 3 other agents, and those 3 among themselves
    oracle_random = pairs[(pairs["agent_x"] == "oracle") & (pairs["agent_y"] == "random")].iloc[0]
    assert oracle_random["probability_of_improvement"] == pytest.approx(1.0)

    curves = tables["curves"]
    ppo = curves[(curves["agent"] == "ppo") & (curves["metric"] == "normalized_score")]
    assert list(ppo["timesteps"]) == list(EVAL_STEPS) and (ppo["n_runs"] == 3).all()
    assert ppo["iqm"].iloc[-1] == pytest.approx(np.mean(SCORES[("ppo", "default")]))
    assert (ppo["ci_low"] <= ppo["iqm"] + 1e-12).all() and (ppo["iqm"] <= ppo["ci_high"] + 1e-12).all()
    assert set(curves["metric"]) == {"normalized_score", "mean_return"}

    copy_a, copy_b = tmp_path / "a", tmp_path / "b"
    for copy in (copy_a, copy_b):
        copy.mkdir()
        (copy / "results.csv").write_bytes((sweep / "results.csv").read_bytes())
        (copy / "runs").symlink_to(sweep / "runs")
        stats.summarize_sweep(copy)
    for name in (stats.FINAL_FILE, stats.PAIRS_FILE, stats.CURVES_FILE, stats.RUNS_FILE):
        assert (copy_a / name).read_bytes() == (copy_b / name).read_bytes(), name
    runs = pd.read_csv(copy_a / stats.RUNS_FILE)
    assert list(runs.columns) == list(stats.RUN_COLUMNS)
    cqi = runs[runs["agent"] == "cqi"]
    assert (
        sorted(cqi["split_threshold"].unique()) == [0.3, 3.0]
        and runs.loc[runs["agent"] != "cqi", "split_threshold"].isna().all()
    )
    # The bootstrap seed matters (with 3 runs the 95 % interval is just min..max, so use 10).
    ten = _runs({"a": list(np.random.default_rng(3).normal(0.5, 0.1, 10))})
    same = [stats.final_scores(ten, seed=0)["ci_low"].iloc[0] for _ in range(2)]
    assert same[0] == same[1] != stats.final_scores(ten, seed=1)["ci_low"].iloc[0]


def test_curves_of_runs_evaluated_at_different_steps_are_aligned(tmp_path):
    folders = []
    for i, steps in enumerate(((0, 100, 200), (0, 150, 300))):
        folder = tmp_path / f"run{i}"
        folder.mkdir()
        pd.DataFrame({"timesteps": steps, "normalized_score": np.asarray(steps) / 300.0}).to_csv(
            folder / "eval.csv", index=False
        )
        folders.append(str(folder))
    runs = pd.DataFrame({"agent": "a", "variant": "default", "run_dir": folders})
    curves = stats.learning_curves(runs, metric_names=("normalized_score",))
    # Only step 0 is common, so both curves are interpolated on 0, 100, 150, 200 (inside both ranges).
    assert list(curves["timesteps"]) == [0, 100, 150, 200] and set(curves["aligned"]) == {"interpolated"}
    np.testing.assert_allclose(curves["mean"], np.array([0, 100, 150, 200]) / 300.0)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("run_id,agent,seed\nr,ppo,0\n", "missing column 'normalized_score'"),
        ("run_id,agent,seed,normalized_score\n", "no finished runs yet"),
        (
            "run_id,agent,seed,normalized_score\nr,ppo,0,0.5\ns,ppo,1,high\n",
            "row 2, column 'normalized_score'",
        ),
        ("run_id,agent,seed,normalized_score\nr,ppo,0,0.5\nr,ppo,1,0.6\n", "run_id 'r' appears twice"),
    ],
)
def test_bad_results_files_are_refused_naming_the_file(tmp_path, content, message):
    (tmp_path / "results.csv").write_text(content)
    with pytest.raises(ValueError, match="results.csv") as err:
        stats.read_sweep_runs(tmp_path)
    assert message in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        stats.summarize_sweep(tmp_path / "nowhere")
