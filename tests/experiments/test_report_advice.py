"""The report recommends only what the intervals support (synthetic sweeps with known scores): a clear
winner, everything tied, a winner over some rivals only, nothing above random, a below-random tree
policy, random never a runner-up, and the config's own question answered."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pandas as pd
import pytest

from experiments import stats
from experiments.reporting import report
from tests.experiments.helpers import fabricate_run


def _sweep(root: Path, scores: dict[tuple[str, str], tuple[float, ...]], question: str) -> Path:
    root.mkdir(parents=True)
    (root / "sweep.yaml").write_text(f"name: synthetic\nquestion: {question}\ntimesteps: 3000\nseeds: 3\n")
    rows = []
    for (agent, variant), values in scores.items():
        for seed, score in enumerate(values):
            rows.append(
                fabricate_run(root / "runs" / f"{agent}__{variant}__seed{seed}", agent, variant, seed, score)
            )
    pd.DataFrame(rows).to_csv(root / "results.csv", index=False)
    return root


def _answer(root: Path) -> str:
    tables = stats.summarize_sweep(root, write=False)
    rec = report.recommend(tables["final"], tables["pairs"])
    question = re.search(r"question: (.*)", (root / "sweep.yaml").read_text())[1]
    text = report._answer(rec, tables["final"], tables["pairs"], question)
    text = re.sub(r"<[^>]+>", " ", re.sub(r"</?(span|strong)[^>]*>", "", text))
    return re.sub(r"\s+", " ", html.unescape(text))


REFS = {("random", "default"): (0.01, -0.02, 0.0), ("oracle", "default"): (1.0, 0.98, 1.02)}
Q = "Which match policy should we ship?"


def test_a_clear_winner_is_recommended(tmp_path):
    scores = {("ppo", "default"): (0.72, 0.75, 0.70), ("best_fit", "default"): (0.40, 0.45, 0.42), **REFS}
    words = _answer(_sweep(tmp_path / "s", scores, Q))
    assert "Ship ppo." in words and "The advantage is clear at 95 % confidence" in words
    assert "The runner-up is best_fit" in words


def test_when_everything_is_tied_it_says_nothing_is_distinguishable(tmp_path):
    scores = {
        ("ppo", "default"): (0.30, 0.60, 0.45),
        ("logistic_bandit", "default"): (0.35, 0.55, 0.50),
        ("best_fit", "default"): (0.40, 0.50, 0.32),
        **REFS,
    }
    words = _answer(_sweep(tmp_path / "s", scores, Q))
    assert "No policy is distinguishable from the others yet" in words
    assert "Ship" not in words.split("The runner-up")[0]
    assert "The advantage is not clear at 95 % confidence" in words
    assert "credible" not in words


def test_a_winner_over_some_rivals_only_names_the_ones_it_cannot_beat(tmp_path):
    scores = {
        ("ppo", "default"): (0.70, 0.74, 0.72),
        ("logistic_bandit", "default"): (0.69, 0.75, 0.71),
        ("best_fit", "default"): (0.10, 0.12, 0.11),
        **REFS,
    }
    words = _answer(_sweep(tmp_path / "s", scores, Q))
    assert "Ship ppo or logistic_bandit: the data cannot tell them apart" in words
    assert "It beats best_fit at 95 % confidence" in words


def test_nothing_above_random_is_said_plainly(tmp_path):
    scores = {("ppo", "default"): (-0.10, 0.25, 0.05), ("best_fit", "default"): (-0.3, -0.1, 0.02), **REFS}
    words = _answer(_sweep(tmp_path / "s", scores, Q))
    assert "Nothing here is distinguishable from random offers yet" in words and "Ship" not in words


def test_random_is_never_a_runner_up_and_a_below_random_tree_is_never_tied(tmp_path):
    scores = {
        ("ppo", "default"): (0.30, 0.35, 0.32),
        ("cqi", "split_threshold=0.3"): (-0.30, -0.20, -0.25),
        **REFS,
    }
    words = _answer(_sweep(tmp_path / "s", scores, Q))
    assert "runner-up is random" not in words
    assert "below random offers" in words and "tied" not in words


@pytest.mark.parametrize(
    "scores, expected",
    [
        ({("ppo", "default"): (0.7, 0.72, 0.74), ("cqi", "split_threshold=0.3"): (0.3, 0.32, 0.31)},
         "ppo is better than cqi (split_threshold=0.3)"),
        ({("ppo", "default"): (0.3, 0.6, 0.45), ("cqi", "split_threshold=0.3"): (0.35, 0.55, 0.5)},
         "cannot be told apart"),
    ],
)  # fmt: skip
def test_the_configs_own_question_is_answered(tmp_path, scores, expected):
    words = _answer(_sweep(tmp_path / "s", {**scores, **REFS}, "Is CQI as good as PPO on our market?"))
    assert "On the policies the question names:" in words and expected in words
