"""``influmatch report`` (experiments/reporting/report.py): one self-contained HTML page per sweep."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from experiments import stats
from experiments.cli import main
from experiments.reporting import report
from tests.experiments.helpers import BEST_DEPLOYABLE, fabricate_sweep

FIGURE = "data:image/png;base64,"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    return fabricate_sweep(tmp_path_factory.mktemp("report") / "sweep")


def _text(page: str) -> str:
    """The visible words of a page, without tags and embedded images."""
    page = re.sub(r"data:image/png;base64,[^\"]+", "", page)
    page = re.sub(r"</?(span|strong|code)[^>]*>", "", page)  # inline tags
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))


def test_report_has_every_section_and_embeds_its_figures(sweep, capsys):
    assert main(["report", str(sweep)]) == 0
    out = sweep / "report.html"
    assert f"Wrote {out}" in capsys.readouterr().out
    page = out.read_text(encoding="utf-8")
    for heading in report.SECTIONS:
        assert f"<h2>{heading}</h2>" in page, heading
    # curves, final scores, the tree, the trade-off, the segment map and the segment profiles
    assert page.count(FIGURE) == 7  # ... and the size-return frontier (CQI against PPO)
    assert "The smallest tree within" in _text(page) or "No tree policy in this sweep is within" in _text(
        page
    )
    assert "<link" not in page and "<script" not in page and "http" not in page.split("</style>")[0]
    for name in (stats.FINAL_FILE, stats.PAIRS_FILE, stats.CURVES_FILE, stats.RUNS_FILE):
        assert (sweep / name).is_file()

    words = _text(page)
    assert f"Ship {BEST_DEPLOYABLE}." in words
    assert "The runner-up is ppo" in words and "beats a run of ppo with probability 100 %" in words
    assert "Which match policy should we ship?" in words
    # The comparison table lists every method once, and the CQI rules speak plain language.
    for label in ("oracle — reference, reads hidden truth", "random — reference", "cqi (split_threshold=3)"):
        assert words.count(label) == 1, label
    assert "If the brand does not sell beauty and " in words
    assert "→ offer 1× list price to the best available micro · instagram · beauty influencer" in words
    assert "Kim et al." in words and "hidden truth" in words


def test_the_oracle_is_never_recommended(sweep):
    final = stats.final_scores(stats.read_sweep_runs(sweep), n_resamples=200)
    assert final.sort_values("iqm").iloc[-1]["agent"] == "oracle"  # the best score overall ...
    rec = report.recommend(final, stats.improvement_pairs(stats.read_sweep_runs(sweep), n_resamples=200))
    assert rec.best["label"] == BEST_DEPLOYABLE  # ... is not the recommendation
    assert rec.runner_up["agent"] == "ppo" and rec.probability == pytest.approx(1.0)
    only_oracle = final[final["agent"] == "oracle"]
    assert (
        report.recommend(
            only_oracle, pd.DataFrame(columns=stats.improvement_pairs(final.iloc[:0]).columns)
        ).best
        is None
    )
    page = (
        (sweep / "report.html").read_text()
        if (sweep / "report.html").exists()
        else report.build_report(sweep)
    )
    assert "Ship oracle" not in _text(page)


@pytest.mark.slow
def test_report_is_byte_identical_across_runs(sweep, tmp_path):
    a, b = tmp_path / "a.html", tmp_path / "b.html"
    assert main(["report", str(sweep), "--out", str(a)]) == 0
    assert main(["report", str(sweep), "--out", str(b)]) == 0
    assert a.read_bytes() == b.read_bytes()
    assert len(a.read_bytes()) > 50_000


def test_a_sweep_without_cqi_or_segments_says_what_is_missing(tmp_path):
    sweep = fabricate_sweep(tmp_path / "plain", with_cqi=False, with_segments=False)
    out = report.write_report(sweep)
    assert out == sweep / "report.html"
    page = out.read_text(encoding="utf-8")
    for heading in report.SECTIONS:
        assert f"<h2>{heading}</h2>" in page, heading
    words = _text(page)
    assert "This sweep has no CQI runs, so there is no tree policy to show." in words
    assert "No segment profiles" in words
    assert "Ship ppo." in words and "No other deployable policy was run" in words
    assert "runner-up is random" not in words  # random is the zero of the scale, never a rival
    assert page.count(FIGURE) == 2  # curves and final scores


def test_a_single_seed_is_reported_without_an_interval(tmp_path):
    sweep = fabricate_sweep(tmp_path / "one", with_segments=False)
    results = pd.read_csv(sweep / "results.csv")
    results[results["seed"] == 0].to_csv(sweep / "results.csv", index=False)
    words = _text(report.build_report(sweep))
    assert "(one run: no interval)" in words and "single run" in words


def test_when_a_black_box_wins_the_tree_policy_is_still_compared(tmp_path):
    sweep = fabricate_sweep(tmp_path / "ppo_wins", with_segments=False)
    results = pd.read_csv(sweep / "results.csv")
    results.loc[results["agent"] == "ppo", "normalized_score"] = [0.90, 0.93, 0.91]
    results.to_csv(sweep / "results.csv", index=False)
    words = _text(report.build_report(sweep))
    assert "Ship ppo." in words and f"The runner-up is {BEST_DEPLOYABLE}" in words
    assert f"The interpretable tree policy, {BEST_DEPLOYABLE}, scores 0.72" in words
    assert "ppo beats it with probability 100" in words


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["{tmp}/nowhere"], "nowhere: no such folder"),
        (["{tmp}"], "results.csv: no such file (not a sweep folder)"),
        (["{tmp}", "--out", "{tmp}/report.pdf"], "expected a file name ending in .html"),
    ],
)
def test_bad_input_gives_one_line_and_exit_2(tmp_path, capsys, argv, message):
    code = main(["report", *(a.format(tmp=tmp_path) for a in argv)])
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
