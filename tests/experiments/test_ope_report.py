"""The report's logs-based comparison of candidates (experiments.reporting.ope_section): the page of a
folder of influmatch ope outputs, the section in a sweep's report, and what the intervals support."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from experiments.reporting import ope_section, report
from tests.experiments.helpers import fabricate_sweep


def _ope_output(folder, name, estimate, low, high, truth=None, logs="logs.csv"):
    """A minimal influmatch ope output: estimates.csv (the recommended per-campaign row, the logged
    row) and summary.json."""
    folder.mkdir(parents=True)
    rows = [
        {"scope": "per_campaign", "group_by": "all", "group": "all", "estimator": "MB", "estimate": estimate,
         "low": low, "high": high, "std_error": (high - low) / 3.92, "ess": float("nan"), "recommended": True},
        {"scope": "per_campaign", "group_by": "all", "group": "all", "estimator": "DR", "estimate": 0.0,
         "low": -1.0, "high": 1.0, "std_error": 0.5, "ess": 1.0, "recommended": False},
        {"scope": "per_campaign", "group_by": "all", "group": "all", "estimator": "logged", "estimate": 4.9,
         "low": 3.8, "high": 6.1, "std_error": 0.6, "ess": float("nan"), "recommended": False},
    ]  # fmt: skip
    table = pd.DataFrame(rows)
    if truth is not None:
        table["truth"] = [truth, truth, float("nan")]
        table["covered"] = [low <= truth <= high, False, float("nan")]
    table.to_csv(folder / "estimates.csv", index=False)
    summary = {"logs": logs, "target_policy": name, "n_campaigns": 3000, "logging_policy": "random"}
    (folder / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return folder


def test_a_folder_of_ope_outputs_gives_the_comparison_page(tmp_path):
    root = tmp_path / "candidates"
    _ope_output(root / "a", "best_fit, greedy", 8.0, 7.0, 9.0, truth=8.3)
    _ope_output(root / "b", "cheapest_per_follower, greedy", 3.0, 2.5, 3.5, truth=2.9)
    _ope_output(root / "c", "best_value_per_dollar, greedy", 7.5, 6.0, 9.0, truth=7.0)
    page = report.write_report(root).read_text(encoding="utf-8")
    assert '<table class="ope-candidates">' in page
    # best first, each with its interval and the truth of simulated logs
    assert page.index("best_fit, greedy") < page.index("best_value_per_dollar, greedy")
    assert "[7.00, 9.00]" in page and "8.30 (in the interval)" in page
    assert "random (the logs, for reference)" in page
    # a over b is supported; a over c is not (the intervals of the difference)
    assert "<b>best_fit, greedy</b> over cheapest_per_follower, greedy: 5.00" in page
    assert "cannot tell it apart from best_value_per_dollar, greedy" in page
    pairs = ope_section.supported_pairs(ope_section.candidates(ope_section.find_ope_results(root))[0])
    supported = {(p.higher, p.lower): p.supported for p in pairs.itertuples()}
    assert supported[("best_fit, greedy", "cheapest_per_follower, greedy")]
    assert not supported[("best_fit, greedy", "best_value_per_dollar, greedy")]
    assert all(pairs["truth_agrees"])


def test_one_ope_output_and_different_logs(tmp_path):
    one = _ope_output(tmp_path / "one", "best_fit, greedy", 8.0, 7.0, 9.0)
    page = report.build_report(one)
    assert "best_fit, greedy" in page and "truth" not in page.split("ope-candidates")[1].split("</table>")[0]
    root = tmp_path / "mixed"
    _ope_output(root / "a", "A", 8.0, 7.0, 9.0, logs="first.csv")
    _ope_output(root / "b", "B", 3.0, 2.5, 3.5, logs="second.csv")
    page = report.build_report(root)
    assert "judged from different logs" in page and "ope-pairs" not in page


@pytest.mark.slow
def test_a_sweep_with_ope_outputs_gets_the_section(tmp_path):
    sweep = fabricate_sweep(tmp_path / "sweep")
    before = report.build_report(sweep)
    assert "Judged from your logs" not in before
    _ope_output(sweep / "ope" / "a", "best_fit, greedy", 8.0, 7.0, 9.0)
    _ope_output(sweep / "ope" / "b", "cheapest_per_follower, greedy", 3.0, 2.5, 3.5)
    page = report.build_report(sweep)
    assert "Judged from your logs" in page and '<table class="ope-candidates">' in page


def test_a_broken_ope_output_is_one_clear_error(tmp_path):
    bad = _ope_output(tmp_path / "bad", "A", 8.0, 7.0, 9.0)
    pd.DataFrame({"scope": ["per_campaign"], "estimator": ["MB"]}).to_csv(bad / "estimates.csv", index=False)
    with pytest.raises(
        ValueError, match=r"estimates.csv: not an influmatch ope estimates table \(no column 'estimate'\)"
    ):
        report.build_report(bad)
    (bad / "summary.json").write_text("{", encoding="utf-8")
    _ope_output(tmp_path / "good", "A", 8.0, 7.0, 9.0)
    (tmp_path / "good" / "summary.json").write_text("[1]", encoding="utf-8")
    with pytest.raises(ValueError, match="summary.json: not an influmatch ope summary"):
        report.build_report(tmp_path / "good")


@pytest.mark.slow
def test_the_comparison_page_fits_the_window_in_a_browser(tmp_path):
    """The page of three candidates in a headless browser at 800 px: nothing scrolls sideways and the
    console has no errors (the probe of test_report_browser)."""
    import re
    import subprocess

    from tests.experiments.test_report_browser import PROBE, _browser

    browser = _browser()
    if browser is None:
        pytest.skip("no headless browser (make install-dev installs Debian's chromium)")
    root = tmp_path / "candidates"
    _ope_output(root / "a", "best_fit, greedy", 8.0, 7.0, 9.0, truth=8.3)
    _ope_output(
        root / "b", "a rather long candidate name, epsilon-greedy with epsilon 0.3", 3.0, 2.5, 3.5, truth=2.9
    )
    page = report.write_report(root).read_text(encoding="utf-8")
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("<head>", "<head>\n" + PROBE, 1), encoding="utf-8")
    result = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}", "--window-size=800,900", "--virtual-time-budget=10000",
         "--dump-dom", probed.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    match = re.search(r'<pre id="probe-result">(.*?)</pre>', result.stdout, re.S)
    assert match, f"the page did not finish loading: {result.stderr[-2000:]}"
    measured = json.loads(match[1].replace("&quot;", '"').replace("&amp;", "&"))
    assert measured["errors"] == [] and measured["wide"] == [], measured
    assert measured["scrollWidth"] <= measured["clientWidth"], measured
