"""What a newcomer trips on: one seed one market everywhere, a user's pool not extended silently,
consistent options, --version, quiet pipes, defaults in --help, honest pool checks, bench exit codes,
figure formats and readable learning curves."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import matplotlib.axes
import matplotlib.colors
import numpy as np
import pandas as pd
import pytest

from experiments.cli import build_parser, main
from tests.experiments.helpers import fabricate_sweep

SMALL = ["n_influencers=400", "n_segments=2", "campaign_weeks=4"]
POOL_COLUMNS = ["influencer_id", "platform", "followers", "engagement_rate", "primary_category", "price"]


@pytest.fixture()
def user_pool(tmp_path, small_pool) -> Path:
    path = tmp_path / "mine.csv"
    small_pool.to_frame()[POOL_COLUMNS].to_csv(path, index=False)
    return path


def test_segment_and_train_name_the_same_segments_for_one_seed(tmp_path):
    from experiments.runner import RunSpec, make_env

    out = tmp_path / "seg"
    assert main(["segment", "--n", "400", "--k", "2", "--seed", "5", "--out", str(out)]) == 0
    env = make_env(RunSpec("random", seed=5, env={"n_influencers": 400, "n_segments": 2})).unwrapped
    labels = pd.read_csv(out / "labels.csv")["segment"].to_numpy()
    np.testing.assert_array_equal(labels, env.segmenter.labels_)
    assert list(pd.read_csv(out / "profiles.csv")["name"]) == list(env.segment_names)
    config = json.loads((out / "config.json").read_text())
    from experiments.runner import run_seeds

    assert config["market_seed"] == run_seeds(RunSpec("random", seed=5))["market_seed"]


def test_market_and_segment_of_one_seed_share_the_pool(tmp_path):
    assert main(["market", "--n", "400", "--seed", "3", "--out", str(tmp_path / "m")]) == 0
    assert main(["segment", "--n", "400", "--k", "2", "--seed", "3", "--out", str(tmp_path / "s")]) == 0
    pool = pd.read_csv(tmp_path / "m" / "pool.csv")
    labels = pd.read_csv(tmp_path / "s" / "labels.csv")
    assert list(pool["influencer_id"]) == list(labels["influencer_id"])


def test_train_takes_a_pool_and_says_when_newcomers_join_it(tmp_path, capsys, user_pool):
    argv = [
        "train",
        "--agent",
        "random",
        "--timesteps",
        "5",
        "--eval-episodes",
        "2",
        "--pool",
        str(user_pool),
    ]
    env = ["--env", "n_segments=2", "--env", "campaign_weeks=4"]  # --env repeated
    assert main([*argv, "--out", str(tmp_path / "a"), *env]) == 0
    captured = capsys.readouterr()
    assert "joined by generated newcomers" in captured.err and "--no-newcomers" in captured.err
    options = json.loads((tmp_path / "a" / "config.json").read_text())["env_options"]
    assert options["pool"] == str(user_pool) and options.get("churn_rate", 0.002) > 0

    assert (
        main(
            [
                *argv,
                "--no-newcomers",
                "--out",
                str(tmp_path / "b"),
                "--env",
                "n_segments=2",
                "campaign_weeks=4",
            ]
        )
        == 0
    )
    assert "newcomers" not in capsys.readouterr().err
    options = json.loads((tmp_path / "b" / "config.json").read_text())["env_options"]
    assert options["churn_rate"] == 0.0


@pytest.mark.parametrize("command", ["train", "sweep", "demo"])
def test_progress_is_the_same_option_everywhere(command):
    base = {
        "train": ["--agent", "cqi", "--timesteps", "5", "--out", "x"],
        "sweep": ["demo", "--out", "x"],
        "demo": [],
    }
    for flag, expected in (("--progress", True), ("--no-progress", False)):
        args = build_parser(command).parse_args([command, *base[command], flag])
        assert args.progress is expected


@pytest.mark.parametrize("command", ["train", "log", "ope"])
def test_env_takes_several_values_and_repeats_everywhere(command):
    base = {
        "train": ["--agent", "cqi", "--timesteps", "5", "--out", "x"],
        "log": ["--policy", "random", "--epsilon", "own", "--campaigns", "1", "--out", "x.csv"],
        "ope": ["--logs", __file__, "--policy", "random", "--out", "x"],
    }[command]
    args = build_parser(command).parse_args([command, *base, "--env", "a=1", "b=2", "--env", "c=3"])
    assert args.env == ["a=1", "b=2", "c=3"]


def test_version_and_defaults_in_help(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("influmatch ")
    assert main(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "evaluation campaigns (default 100" in text and "the run's seed (default: 0)" in text
    assert main(["market", "--help"]) == 0
    assert "(default: 100000)" in " ".join(capsys.readouterr().out.split())


@pytest.mark.slow
def test_a_closed_pipe_ends_quietly(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "experiments.cli.market", "--n", "300", "--out", str(tmp_path / "m")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    process.stdout.close()  # as `| head` does once it has its lines
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert b"Broken pipe" not in err and b"Traceback" not in err and b"Exception ignored" not in err


def test_market_on_a_user_pool_checks_what_it_can_and_says_what_it_cannot(tmp_path, capsys, user_pool):
    cal = tmp_path / "cal.yaml"
    cal.write_text('engagement_vintage: "2025"\n')
    assert (
        main(["market", "--pool", str(user_pool), "--calibration", str(cal), "--out", str(tmp_path / "o")])
        == 0
    )
    out = capsys.readouterr().out
    assert "not checked" in out and "describes the whole population" in out
    assert "engagement_vintage is 2025" in out
    table = pd.read_csv(tmp_path / "o" / "calibration.csv")
    er = table[table["target"].str.contains("2019 vintage")].iloc[0]
    assert pd.isna(er["inside"]) and er["simulated"] == "not checked"  # not a NO
    assert "(2 not checked" in out


def test_ray_missing_fails_before_the_sweep_folder_exists(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    code = main(["sweep", "demo", "--out", str(tmp_path / "s"), "--backend", "ray"])
    assert code == 2 and "Ray is not installed" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    return fabricate_sweep(tmp_path_factory.mktemp("newcomer") / "sweep")


@pytest.mark.parametrize("suffix, magic", [(".pdf", b"%PDF"), (".svg", b"<?xml"), (".png", b"\x89PNG")])
def test_plot_writes_the_format_of_the_suffix(tmp_path, sweep, suffix, magic):
    out = tmp_path / f"curves{suffix}"
    assert main(["plot", str(sweep), "--out", str(out)]) == 0
    first = out.read_bytes()
    assert first.startswith(magic)
    assert main(["plot", str(sweep), "--out", str(out), "--overwrite"]) == 0
    assert out.read_bytes() == first  # no dates, no random ids


def test_learning_curves_have_one_band_per_agent_and_distinct_variant_colours(tmp_path, sweep, monkeypatch):
    from experiments import stats
    from experiments.reporting.figures import method_styles, plot_learning_curves

    bands: list = []
    original = matplotlib.axes.Axes.fill_between

    def counting(self, *args, **kwargs):
        bands.append(kwargs.get("color"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "fill_between", counting)
    stats.summarize_sweep(sweep)
    plot_learning_curves(sweep / stats.CURVES_FILE, tmp_path / "c.png")
    agents = pd.read_csv(sweep / stats.CURVES_FILE)["agent"].nunique()
    assert len(bands) == agents  # five methods, four agents: one band each
    styles = method_styles([("cqi", f"split_threshold={t}") for t in (0.3, 1, 3)])
    colours = [np.asarray(matplotlib.colors.to_rgb(s["color"])) for s in styles.values()]
    gaps = [np.abs(a - b).max() for i, a in enumerate(colours) for b in colours[i + 1 :]]
    assert min(gaps) > 0.15


def test_train_says_one_leaf():
    from experiments.cli.train import format_summary

    summary = {"agent": "cqi", "seed": 0, "timesteps": 5, "train_seconds": 0.1, "normalized_score": 0.0,
               "mean_return": 0.0, "std_error": 0.0, "eval_episodes": 2, "n_leaves": 1, "depth": 0}  # fmt: skip
    text = format_summary(summary, Path(__file__).parent)
    assert "CQI tree: 1 leaf, depth 0" in text
    text = format_summary(
        {**summary, "agent": "distilled_tree", "n_leaves": 16, "depth": 5}, Path(__file__).parent
    )
    assert "Tree: 16 leaves, depth 5" in text


def test_bench_prints_as_it_goes_and_exits_1_when_a_goal_is_missed(tmp_path, capsys, monkeypatch):
    from experiments.bench import benchmarks

    def fake(passed):
        return lambda quick: {"name": "fake", "value": 1.0, "unit": "x", "reference": "r", "reference_value": 1.0,
                              "ratio": 0.5, "goal": 1.0 if not passed else 0.1, "passed": passed}  # fmt: skip

    monkeypatch.setitem(benchmarks.BENCHMARKS, "outcome_sampling", fake(False))
    monkeypatch.setitem(benchmarks.BENCHMARKS, "env_steps", fake(True))
    out = tmp_path / "b.json"
    code = main(["bench", "--only", "outcome_sampling", "env_steps", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and "[1/2] outcome_sampling: ratio 0.50, goal 1.00 (MISSED" in err
    assert "1 of 2 goals missed: fake" in err and out.is_file()
    assert main(["bench", "--only", "env_steps", "--out", str(tmp_path / "c.json")]) == 0


def test_numba_compile_time_is_counted_apart_from_training(tmp_path, capsys):
    import numba

    from experiments.compile_clock import CompileClock as _CompileClock

    with _CompileClock() as clock:
        numba.njit(lambda x: x * 2 + 1)(3)  # a new function: compiled here, never cached
    assert clock.total > 0.01
    argv = [
        "train",
        "--agent",
        "random",
        "--timesteps",
        "5",
        "--eval-episodes",
        "2",
        "--out",
        str(tmp_path / "r"),
    ]
    assert main([*argv, "--env", *SMALL]) == 0
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["compile_seconds"] >= 0 and summary["train_seconds"] >= 0


@pytest.mark.slow
def test_docs_reruns_the_demo_and_writes_its_numbers_into_the_readme(tmp_path, capsys):
    config = tmp_path / "tiny.yaml"
    config.write_text(
        "name: tiny\ntimesteps: 50\nseeds: 2\neval: {every: 25, episodes: 2}\n"
        "env: {n_influencers: 400, n_segments: 2, campaign_weeks: 4}\n"
        "agents: {best_fit: {}, random: {}, oracle: {}}\n"
    )
    readme = tmp_path / "README.md"
    readme.write_text("# x\nbefore\n<!-- docs:demo -->\nold numbers\n<!-- /docs:demo -->\nafter\n")
    argv = ["docs", "--config", str(config), "--readme", str(readme), "--figures", str(tmp_path / "docs")]
    assert main([*argv, "--n-jobs", "1", "--no-progress"]) == 0
    text = readme.read_text()
    assert "old numbers" not in text and text.startswith("# x\nbefore\n") and text.endswith("after\n")
    assert (
        "$ influmatch demo     # 6 runs" in text and "oracle" in text and "Mean training time per run" in text
    )
    for name in ("demo_final_scores.png", "demo_learning_curves.png"):
        assert (tmp_path / "docs" / name).read_bytes().startswith(b"\x89PNG")
    readme.write_text("no markers\n")
    assert (
        main(argv) == 2 and "no <!-- docs:demo --> ... <!-- /docs:demo --> markers" in capsys.readouterr().err
    )


def test_docs_keeps_readme_edits_made_while_the_demo_runs(tmp_path, monkeypatch):
    from experiments.cli import docs

    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- docs:demo -->\nold numbers\n<!-- /docs:demo -->\nafter\n")

    def demo_that_takes_a_while(config, folder, args):
        # Someone edits the README while the demo runs (it takes minutes).
        readme.write_text(readme.read_text().replace("after\n", "after, edited meanwhile\n"))
        return "new numbers"

    monkeypatch.setattr(docs, "_run_demo", demo_that_takes_a_while)
    config = tmp_path / "tiny.yaml"
    config.write_text("name: tiny\ntimesteps: 50\nseeds: 1\nagents: {random: {}}\n")
    argv = ["docs", "--config", str(config), "--readme", str(readme), "--figures", str(tmp_path / "d")]
    assert main(argv) == 0
    text = readme.read_text()
    assert "new numbers" in text and "old numbers" not in text and "after, edited meanwhile" in text
