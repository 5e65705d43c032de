"""The size-return frontier (experiments/reporting/frontier.py) on synthetic sweep results."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from experiments import stats
from experiments.reporting import frontier
from tests.experiments.test_plots import png_size

#: (agent, variant) -> per-seed (normalised score, leaves); maskable_ppo is the best neural policy.
RUNS = {
    ("ppo", "default"): [(0.70, None), (0.74, None), (0.78, None)],
    ("maskable_ppo", "default"): [(0.80, None), (0.82, None), (0.84, None)],
    ("cqi", "split_rule=lcb,split_threshold=1"): [(0.60, 9), (0.66, 11), (0.72, 13)],
    ("cqi", "split_rule=paper,split_threshold=1"): [(0.78, 40), (0.80, 44), (0.82, 48)],
    ("distilled_tree", "max_leaves=8"): [(0.70, 8), (0.72, 8), (0.74, 8)],
    ("distilled_tree", "max_leaves=16"): [(0.77, 16), (0.79, 15), (0.81, 16)],
    ("distilled_tree", "max_leaves=32"): [(0.82, 30), (0.84, 32), (0.86, 31)],
    ("random", "default"): [(0.0, None)] * 3,
}


def synthetic_sweep(root, runs=RUNS):
    """A sweep folder holding only results.csv (no run files): what the frontier reads."""
    rows = [
        {"run_id": f"{agent}__{variant}__seed{seed}", "agent": agent, "variant": variant, "seed": seed,
         "normalized_score": score, "n_leaves": leaves if leaves is not None else np.nan}
        for (agent, variant), per_seed in runs.items()
        for seed, (score, leaves) in enumerate(per_seed)
    ]  # fmt: skip
    root.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(root / stats.RESULTS_FILE, index=False)
    return root


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    sweep = synthetic_sweep(tmp_path_factory.mktemp("frontier") / "sweep")
    return sweep, stats.summarize_sweep(sweep)


def test_the_table_holds_every_tree_method_smallest_first_with_its_range_of_leaves(tables):
    _, t = tables
    table = frontier.frontier_table(t["final"], t["runs"])
    assert set(table["agent"]) == {"cqi", "distilled_tree"}
    assert len(table) == 5
    assert list(table["n_leaves"]) == sorted(table["n_leaves"])
    row = table[table["variant"] == "max_leaves=16"].iloc[0]
    assert (row["leaves_min"], row["leaves_max"]) == (15, 16)
    assert row["n_leaves"] == pytest.approx(47 / 3)
    assert (table["ci_low"] <= table["iqm"]).all() and (table["iqm"] <= table["ci_high"]).all()


def test_the_smallest_tree_within_the_margin_of_the_best_neural_policy_is_named(tables):
    _, t = tables
    finding = frontier.smallest_tree_within(t["final"])
    assert finding.neural["agent"] == "maskable_ppo" and finding.neural["iqm"] == pytest.approx(0.82)
    # 0.79 >= 0.82 - 0.05 with 15.7 leaves beats cqi paper (44 leaves) and the 32-leaf tree.
    assert finding.tree["label"] == "distilled_tree (max_leaves=16)"
    sentence = finding.sentence()
    assert "distilled_tree (max_leaves=16)" in sentence and "15.7 leaves" in sentence
    assert "maskable_ppo (IQM 0.82" in sentence and "95 % interval" in sentence


def test_a_tighter_margin_picks_a_bigger_tree_and_none_when_no_tree_is_close(tables):
    _, t = tables
    assert (
        frontier.smallest_tree_within(t["final"], margin=0.01).tree["variant"]
        == "max_leaves=32"  # 0.84 >= 0.81; cqi paper (0.80) is not
    )
    weak = t["final"][~t["final"]["variant"].isin(["max_leaves=32", "split_rule=paper,split_threshold=1"])]
    finding = frontier.smallest_tree_within(weak, margin=0.0)
    assert finding.tree is None
    assert finding.sentence().startswith("No tree policy in this sweep is within 0 normalised score")


def test_without_a_neural_policy_the_finding_says_so(tables):
    _, t = tables
    finding = frontier.smallest_tree_within(t["final"][~t["final"]["agent"].isin(frontier.NEURAL_AGENTS)])
    assert finding.neural is None and finding.tree is None
    assert "No neural policy" in finding.sentence()
    with pytest.raises(ValueError, match="margin"):
        frontier.smallest_tree_within(t["final"], margin=-0.1)


def test_the_figure_is_drawn_from_the_saved_statistics(tables, tmp_path):
    sweep, _ = tables
    out = frontier.plot_frontier(
        sweep / stats.FINAL_FILE, tmp_path / "frontier.png", runs_csv=sweep / stats.RUNS_FILE
    )
    width, height = png_size(out)
    assert width >= 800 and height >= 400


def test_a_sweep_without_trees_has_no_frontier_to_draw(tmp_path):
    sweep = synthetic_sweep(tmp_path / "sweep", {k: v for k, v in RUNS.items() if k[0] in ("ppo", "random")})
    stats.summarize_sweep(sweep)
    with pytest.raises(ValueError, match="no tree policies"):
        frontier.plot_frontier(sweep / stats.FINAL_FILE, tmp_path / "f.png")


def test_the_plot_command_draws_the_frontier_and_names_the_smallest_tree(tables, tmp_path, capsys):
    from experiments.cli import main

    sweep, _ = tables
    out = tmp_path / "frontier.png"
    assert main(["plot", str(sweep), "--kind", "frontier", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "is distilled_tree (max_leaves=16)" in printed and f"Wrote {out}" in printed
    assert png_size(out)[0] >= 800


def test_seconds_to_score_reads_the_first_evaluation_at_the_target_and_the_training_clock_there(tmp_path):
    rows = []
    for seed, scores in enumerate([(0.1, 0.5, 0.7, 0.65), (0.0, 0.2, 0.3, 0.4)]):
        folder = tmp_path / f"run{seed}"
        folder.mkdir()
        pd.DataFrame({"timesteps": [0, 100, 200, 300], "normalized_score": scores}).to_csv(
            folder / "eval.csv"
        )
        pd.DataFrame({"timesteps": [150, 210, 300], "train_seconds": [1.5, 2.1, 3.0]}).to_csv(
            folder / "progress.csv"
        )
        rows.append({"agent": "cqi", "variant": "default", "seed": seed, "run_dir": str(folder)})
    table = frontier.seconds_to_score(pd.DataFrame(rows), target=0.6)
    assert table["timesteps"].iloc[0] == 200 and table["train_seconds"].iloc[0] == 2.1
    assert np.isnan(table["timesteps"].iloc[1]) and np.isnan(table["train_seconds"].iloc[1])
