"""``influmatch segment`` (experiments/cli/segment.py) and the segment figures (experiments/reporting/figures.py).

These test the experiments layer and belong in tests/experiments; they stay here until its owner moves them.
"""

import json

import numpy as np
import pandas as pd
import pytest

from experiments.cli import main
from experiments.reporting.figures import plot_segment_map, plot_segment_profiles

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
OUTPUTS = ("labels.csv", "profiles.csv", "segment_map.png", "segment_profiles.png", "config.json")


def test_segment_writes_labels_profiles_and_figures_reproducibly(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["segment", "--n", "1500", "--k", "5", "--seed", "3", "--out", str(a)]) == 0
    assert main(["segment", "--n", "1500", "--k", "5", "--seed", "3", "--out", str(b)]) == 0
    printed = capsys.readouterr().out
    assert "5 segments of 1,500 influencers" in printed and "engagements/$" in printed
    for name in OUTPUTS:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    for name in ("segment_map.png", "segment_profiles.png"):
        assert (a / name).read_bytes().startswith(PNG_MAGIC)

    labels = pd.read_csv(a / "labels.csv")
    assert list(labels.columns) == ["influencer_id", "segment", "pc1", "pc2"]
    assert len(labels) == 1500 and labels["influencer_id"].is_unique
    profiles = pd.read_csv(a / "profiles.csv")
    assert list(profiles["segment"]) == [0, 1, 2, 3, 4]
    assert profiles["size"].sum() == 1500
    assert profiles["name"].is_unique
    np.testing.assert_array_equal(np.bincount(labels["segment"]), profiles["size"])
    for name in profiles["name"]:
        assert name in printed
    config = json.loads((a / "config.json").read_text())
    assert config["n_segments"] == 5 and config["seed"] == 3

    # A different seed gives a different pool.
    assert main(["segment", "--n", "1500", "--k", "5", "--seed", "4", "--out", str(tmp_path / "c")]) == 0
    assert (tmp_path / "c" / "labels.csv").read_bytes() != (a / "labels.csv").read_bytes()


def test_figures_are_redrawn_from_the_csv_files(tmp_path):
    out = tmp_path / "run"
    assert main(["segment", "--n", "800", "--k", "4", "--out", str(out)]) == 0
    redrawn_map = plot_segment_map(out / "labels.csv", out / "profiles.csv", tmp_path / "map.png")
    redrawn_profiles = plot_segment_profiles(out / "profiles.csv", tmp_path / "profiles.png")
    assert redrawn_map.read_bytes() == (out / "segment_map.png").read_bytes()
    assert redrawn_profiles.read_bytes() == (out / "segment_profiles.png").read_bytes()
    # A map of a large file draws a sample.
    small = plot_segment_map(out / "labels.csv", out / "profiles.csv", tmp_path / "few.png", max_points=100)
    assert small.read_bytes().startswith(PNG_MAGIC)
    with pytest.raises(FileNotFoundError, match="nothing.csv"):
        plot_segment_profiles(tmp_path / "nothing.csv", tmp_path / "x.png")
    (tmp_path / "broken.csv").write_text("segment,name\n0,a\n")
    with pytest.raises(ValueError, match="missing column 'share'"):
        plot_segment_profiles(tmp_path / "broken.csv", tmp_path / "x.png")


def test_segment_auto_and_a_user_pool(tmp_path, small_pool, capsys):
    path = tmp_path / "mine.csv"
    required = ["influencer_id", "platform", "followers", "engagement_rate", "primary_category", "price"]
    small_pool.to_frame()[required].to_csv(path, index=False)
    assert main(["segment", "--pool", str(path), "--k", "auto", "--out", str(tmp_path / "o")]) == 0
    printed = capsys.readouterr().out
    assert "chosen by silhouette" in printed and "your pool" in printed
    config = json.loads((tmp_path / "o" / "config.json").read_text())
    assert 4 <= config["n_segments"] <= 12
    assert sorted(int(k) for k in config["silhouette_scores"]) == list(range(4, 13))
    labels = pd.read_csv(tmp_path / "o" / "labels.csv")
    assert list(labels["influencer_id"]) == list(small_pool.influencer_id)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--k", "1"], "expected a whole number >= 2 or 'auto'"),
        (["--k", "lots"], "expected a whole number >= 2 or 'auto'"),
        (["--n", "30", "--k", "40"], "--k 40 exceeds the number of influencers (30)"),
        (["--pool", "missing.csv"], "missing.csv"),
    ],
)
def test_user_errors_give_one_line_and_exit_2(tmp_path, capsys, argv, message):
    try:
        code = main(["segment", *argv, "--out", str(tmp_path / "o")])
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
