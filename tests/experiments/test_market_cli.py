import subprocess
import sys

import pandas as pd
import pytest

from experiments.cli import main


def test_market_writes_pool_and_table_and_is_reproducible(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["market", "--n", "3000", "--seed", "4", "--out", str(a)]) == 0
    assert main(["market", "--n", "3000", "--seed", "4", "--out", str(b)]) == 0
    out = capsys.readouterr().out
    assert "published targets inside tolerance" in out and "marketplace mode: median followers" in out
    for name in ("pool.csv", "calibration.csv", "config.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    table = pd.read_csv(a / "calibration.csv")
    assert list(table.columns[:4]) == ["target", "published", "tolerance", "simulated"]
    assert len(table) == 7
    assert len(pd.read_csv(a / "pool.csv")) == 3000


def test_market_reads_a_user_pool(tmp_path, small_pool, capsys):
    path = tmp_path / "mine.csv"
    small_pool.to_frame()[
        ["influencer_id", "platform", "followers", "engagement_rate", "primary_category", "price"]
    ].to_csv(path, index=False)
    assert main(["market", "--pool", str(path), "--out", str(tmp_path / "o")]) == 0
    assert "your pool" in capsys.readouterr().out
    written = pd.read_csv(tmp_path / "o" / "pool.csv")
    assert len(written) == len(small_pool) and "category_beauty" in written.columns


@pytest.mark.slow
def test_bad_pool_gives_one_line_and_exit_2(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(
        "influencer_id,platform,followers,engagement_rate,primary_category,price\na,instagram,-4,0.1,beauty,10\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "experiments.cli.market", "--pool", str(path), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "row 0 (line 2), column 'followers'" in result.stderr
    assert not (tmp_path / "o" / "pool.csv").exists()


def test_bad_arguments_give_one_line(tmp_path, capsys):
    for argv in (["market", "--n", "-3", "--out", "x"], ["market", "--mode", "moon", "--out", "x"], ["nope"]):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
        assert code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err


def test_out_path_that_is_a_file_is_refused(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("keep me")
    assert main(["market", "--n", "10", "--out", str(target)]) == 2
    assert "expected a folder" in capsys.readouterr().err
    assert target.read_text() == "keep me"


def test_bad_calibration_file_is_named(tmp_path, capsys):
    cal = tmp_path / "cal.yaml"
    cal.write_text("conversion_rate: -0.5\n")
    assert main(["market", "--n", "10", "--out", str(tmp_path / "o"), "--calibration", str(cal)]) == 2
    assert "conversion_rate" in capsys.readouterr().err
