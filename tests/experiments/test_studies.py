"""The study scripts (experiments/studies) never replace an earlier run's results without --overwrite."""

from __future__ import annotations

import importlib
import sys

import pytest

STUDIES = {
    "best_time": "best_time.csv",
    "timing_value": "summary.csv",
    "distill_timing": "capture.csv",
    "market_shift": "claim.csv",
}


@pytest.mark.parametrize(("name", "written"), list(STUDIES.items()))
def test_a_study_refuses_to_replace_an_earlier_runs_results(name, written, tmp_path, monkeypatch, capsys):
    (tmp_path / written).write_text("an earlier run\n")
    study = importlib.import_module(f"experiments.studies.{name}")
    monkeypatch.setattr(sys, "argv", [name, "--out", str(tmp_path)])
    with pytest.raises(SystemExit) as stop:
        study.main()
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"{tmp_path / written}: the file exists; pass --overwrite to replace it" in err
    assert (tmp_path / written).read_text() == "an earlier run\n"  # untouched
    monkeypatch.setattr(sys, "argv", [name, "--out", str(tmp_path / written)])
    with pytest.raises(SystemExit):
        study.main()
    assert "a file of that name exists; expected a folder" in capsys.readouterr().err
