"""The runner and the train/evaluate commands: every file of a run folder, byte-identical reruns (timing
aside), atomic folders, validated specs, and one-line errors with exit code 2."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pandas as pd
import pytest

from experiments import runner
from experiments.cli import main
from experiments.runner import RunSpec, load_run, run

SMALL = {"n_influencers": 2_000, "n_segments": 4}
PPO_QUICK = {"n_steps": 128, "batch_size": 32, "n_epochs": 2}


def spec(agent: str = "cqi", **changes) -> RunSpec:
    fields = {
        "agent": agent,
        "seed": 3,
        "timesteps": 600,
        "env": SMALL,
        "eval_every": 250,
        "eval_episodes": 8,
    }
    return RunSpec(**{**fields, **changes})


def without_seconds(path):
    """A run file's content with every wall-clock (``*_seconds``) column or field dropped."""
    if path.suffix == ".csv":
        frame = pd.read_csv(path)
        return frame.drop(columns=[c for c in frame.columns if c.endswith("_seconds")]).to_csv(index=False)
    if path.suffix == ".json" and path.name != "model.json":
        return {k: v for k, v in json.loads(path.read_text()).items() if not k.endswith("_seconds")}
    return path.read_bytes()


@pytest.fixture(scope="module")
def cqi_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cqi")
    return [run(spec("cqi"), root / name) for name in ("a", "b")], root


def test_a_run_folder_holds_every_file(cqi_runs):
    (summary, _), root = cqi_runs
    folder = root / "a"
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json", "eval.csv", "model.json", "progress.csv", "summary.json", "tree.txt",
    ]  # fmt: skip
    assert summary == json.loads((folder / "summary.json").read_text())
    for key in ("agent", "seed", "timesteps", "mean_return", "normalized_score", "std_error", "train_seconds",
                "n_leaves", "depth", "eval_returns", "random_return", "oracle_return"):  # fmt: skip
        assert key in summary, key
    assert summary["agent"] == "cqi" and summary["seed"] == 3 and summary["timesteps"] == 600
    assert len(summary["eval_returns"]) == 8
    evals = pd.read_csv(folder / "eval.csv")
    assert evals["timesteps"].tolist() == [0, 250, 500, 600]
    assert list(evals.columns) == [
        "timesteps",
        "mean_return",
        "std_return",
        "std_error",
        "normalized_score",
        "eval_seconds",
    ]
    assert evals["normalized_score"].iloc[-1] == pytest.approx(summary["normalized_score"])
    progress = pd.read_csv(folder / "progress.csv")
    assert list(progress.columns) == [
        "timesteps",
        "episodes",
        "mean_return",
        "n_leaves",
        "depth",
        "train_seconds",
    ]
    assert progress["timesteps"].iloc[-1] == 600 and progress["episodes"].is_monotonic_increasing
    assert progress["n_leaves"].iloc[-1] == summary["n_leaves"]
    tree = (folder / "tree.txt").read_text()
    assert "→" in tree and tree.count("→") == summary["n_leaves"]
    config = json.loads((folder / "config.json").read_text())
    assert config["spec"] == spec("cqi").to_dict()
    assert set(config["seeds"]) == {"market_seed", "reset_seed", "agent_seed", "eval_seed"}
    assert config["env_options"]["market_seed"] == config["seeds"]["market_seed"]
    assert "calibration" in config and config["versions"]["numpy"]


def test_same_seed_gives_identical_files_timing_aside(cqi_runs):
    _, root = cqi_runs
    names = sorted(p.name for p in (root / "a").iterdir())
    for name in names:
        assert without_seconds(root / "a" / name) == without_seconds(root / "b" / name), name
    assert (root / "a" / "config.json").read_bytes() == (root / "b" / "config.json").read_bytes()
    assert (root / "a" / "model.json").read_bytes() == (root / "b" / "model.json").read_bytes()


@pytest.mark.slow
def test_sb3_runs_are_reproducible_and_take_exactly_the_budget(tmp_path):
    a = run(spec("ppo", timesteps=300, hyperparameters=PPO_QUICK, eval_every=150), tmp_path / "a")
    b = run(spec("ppo", timesteps=300, hyperparameters=PPO_QUICK, eval_every=150), tmp_path / "b")
    assert a["timesteps"] == 300 and (tmp_path / "a" / "model.zip").is_file()
    for name in ("config.json", "summary.json", "eval.csv", "progress.csv"):
        assert without_seconds(tmp_path / "a" / name) == without_seconds(tmp_path / "b" / name), name
    assert pd.read_csv(tmp_path / "a" / "eval.csv")["timesteps"].tolist() == [0, 150, 300]
    assert b["normalized_score"] == a["normalized_score"]


def test_a_run_without_the_planner_reference(tmp_path, monkeypatch):
    """``planner=False``: no planning at all, the score against it NaN, every other figure as with it."""
    with_planner = run(spec("best_fit", timesteps=100, eval_every=100), tmp_path / "with")
    assert math.isfinite(with_planner["score_vs_planner"])

    class NoPlanning:
        def __init__(self, *args, **kwargs):
            raise AssertionError("planned")

    monkeypatch.setattr("experiments.evaluation.PlanningOracle", NoPlanning)
    without = run(spec("best_fit", timesteps=100, eval_every=100, planner=False), tmp_path / "without")
    assert math.isnan(without["score_vs_planner"])
    assert without["normalized_score"] == with_planner["normalized_score"]
    assert json.loads((tmp_path / "without" / "config.json").read_text())["spec"]["planner"] is False


def test_fixed_policies_are_evaluated_once_and_reference_policies_score_0_and_1(tmp_path):
    oracle = run(spec("oracle", timesteps=200, eval_every=100), tmp_path / "oracle")
    random = run(spec("random", timesteps=200, eval_every=100), tmp_path / "random")
    assert (oracle["normalized_score"], random["normalized_score"]) == (1.0, 0.0)
    evals = pd.read_csv(tmp_path / "random" / "eval.csv")
    assert evals["timesteps"].tolist() == [0, 100, 200] and evals["normalized_score"].eq(0.0).all()
    assert json.loads((tmp_path / "random" / "model.json").read_text())["class"] == "RandomPolicy"


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_a_failed_or_interrupted_run_leaves_no_folder(tmp_path, monkeypatch, error):
    calls = []
    original = runner.Evaluator.evaluate

    def failing(self, agent, deterministic=True):
        calls.append(1)
        if len(calls) == 2:
            raise error
        return original(self, agent, deterministic)

    monkeypatch.setattr(runner.Evaluator, "evaluate", failing)
    with pytest.raises(type(error)):
        run(spec("logistic_bandit"), tmp_path / "run")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_finished_run_is_not_overwritten_unless_asked(tmp_path):
    first = run(spec("best_fit", timesteps=50), tmp_path / "run")
    with pytest.raises(FileExistsError, match="holds a finished run; pass --overwrite"):
        run(spec("best_fit", timesteps=50), tmp_path / "run")
    second = run(spec("biggest_reach", timesteps=50), tmp_path / "run", overwrite=True)
    assert (first["agent"], second["agent"]) == ("best_fit", "biggest_reach")
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["agent"] == "biggest_reach"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="the folder is not empty; pass --overwrite"):
        run(spec("best_fit", timesteps=50), tmp_path / "other")
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"
    run(spec("best_fit", timesteps=50), tmp_path / "other", overwrite=True)  # replaced, as asked
    assert not (tmp_path / "other" / "notes.txt").exists()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"agent": "sac"}, "agent: unknown agent 'sac'"),
        ({"seed": -1}, "seed: expected a whole number >= 0"),
        ({"timesteps": 0}, "timesteps: expected a whole number >= 1"),
        ({"timesteps": 10.5}, "timesteps: expected a whole number >= 1"),
        ({"eval_every": 0}, "eval_every: expected a whole number >= 1 or None"),
        ({"eval_episodes": True}, "eval_episodes: expected a whole number >= 1"),
        ({"env": {"n_segment": 4}}, "env: unknown environment option 'n_segment'"),
        ({"env": {"pool": object()}}, "env: expected JSON values"),
        (
            {"hyperparameters": {"gama": 0.9}},
            "hyperparameters: unknown hyperparameter 'gama' for agent 'cqi'",
        ),
        ({"hyperparameters": []}, "hyperparameters: expected a mapping"),
        ({"planner": 1}, "planner: expected true or false, got 1"),
    ],
)
def test_run_spec_errors_name_the_field(changes, message):
    with pytest.raises(ValueError, match=message.replace("(", "\\(")):
        spec(**changes)


def test_run_spec_round_trips_through_a_dict():
    s = spec("segment_2", hyperparameters={}, eval_every=None)
    assert RunSpec.from_dict(s.to_dict()) == s and s.evaluation_interval == 60
    assert "planner" not in s.to_dict()  # a default run's config.json is as it was
    off = spec("segment_2", hyperparameters={}, planner=False)
    assert off.to_dict()["planner"] is False and RunSpec.from_dict(off.to_dict()) == off
    with pytest.raises(ValueError, match="unknown run spec field 'colour'"):
        RunSpec.from_dict({**s.to_dict(), "colour": 1})


# ------------------------------------------------------------------------------------------ CLI
@pytest.mark.slow
def test_train_and_evaluate_commands_end_to_end(tmp_path, capsys):
    env = ["--env", "n_influencers=2000", "--env", "n_segments=4"]
    common = ["--timesteps", "300", "--seed", "1", "--eval-episodes", "6", *env]
    assert (
        main(
            [
                "train",
                "--agent",
                "cqi",
                "--out",
                str(tmp_path / "cqi"),
                "--hp",
                "split_threshold=0.3",
                *common,
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "Normalised score" in out and "CQI tree:" in out and "tree.txt" in out
    assert "Against the planning oracle" in out
    assert (
        main(["train", "--agent", "best_fit", "--out", str(tmp_path / "fast"), "--no-planner", *common]) == 0
    )
    assert "planning oracle" not in capsys.readouterr().out
    assert load_run(tmp_path / "fast")["spec"].planner is False
    assert main(["train", "--agent", "ppo", "--out", str(tmp_path / "ppo"), "--hp", "n_steps=64",
                 "--hp", "learning_rate=1e-3", "--hp", "net_arch=[16, 16]", *common]) == 0  # fmt: skip
    config = load_run(tmp_path / "ppo")["config"]
    assert config["spec"]["hyperparameters"] == {"n_steps": 64, "learning_rate": 0.001, "net_arch": [16, 16]}
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "cqi"), str(tmp_path / "ppo")]) == 0
    table = capsys.readouterr().out
    for name in ("cqi", "ppo"):
        saved = json.loads((tmp_path / name / "summary.json").read_text())
        assert f"{saved['normalized_score']:.3f}" in table  # same campaigns, same score as in the run
    assert main(["evaluate", str(tmp_path / "cqi"), "--episodes", "3"]) == 0
    assert " 3\n" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--agent", "sac", "--timesteps", "10", "--out", "{tmp}/x"], "unknown agent 'sac'"),
        (["train", "--agent", "cqi", "--timesteps", "10", "--out", "{tmp}/x", "--hp", "gama=1"], "'gama'"),
        (
            ["train", "--agent", "ppo", "--timesteps", "10", "--out", "{tmp}/x", "--env", "n_segments"],
            "KEY=VALUE",
        ),
        (
            ["train", "--agent", "ppo", "--timesteps", "10", "--out", "{tmp}/x", "--env", "n_segments=[4"],
            "YAML",
        ),
        (["train", "--agent", "ppo", "--timesteps", "0", "--out", "{tmp}/x"], "--timesteps"),
        (["evaluate", "{tmp}"], "not a run folder"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, message, tmp_path):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    result = subprocess.run([sys.executable, "-m", "experiments.cli", *argv], capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert message in result.stderr
    assert not (tmp_path / "x").exists()
