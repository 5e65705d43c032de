"""``influmatch train --resume`` (experiments.runner.resume): a saved model continues in a new run folder."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from experiments.cli import main
from experiments.runner import load_run
from tests.experiments.helpers import ENV_ARGS

COMMON = [*ENV_ARGS, "--eval-episodes", "4"]


@pytest.fixture(scope="module")
def parents(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    runs = {
        "cqi": ["--agent", "cqi"],
        "ppo": ["--agent", "ppo", "--hp", "n_steps=64", "--hp", "net_arch=[8]"],
        "random": ["--agent", "random"],
    }
    for name, agent in runs.items():
        assert (
            main(["train", *agent, "--timesteps", "256", "--seed", "1", "--out", str(root / name), *COMMON])
            == 0
        )
    (root / "shift.yaml").write_text('engagement_vintage: "2025"\nprice_at_10k: [120.0, 72.0, 300.0]\n')
    return root


@pytest.mark.parametrize("agent", ["cqi", "ppo"])
def test_a_resumed_run_continues_the_step_count_on_the_changed_market_and_records_its_parent(
    parents, tmp_path, capsys, agent
):
    out = tmp_path / "more"
    argv = ["train", "--resume", str(parents / agent), "--timesteps", "128", "--out", str(out),
            "--calibration", str(parents / "shift.yaml"), "--eval-every", "64"]  # fmt: skip
    assert main(argv) == 0
    assert "Continued" in capsys.readouterr().out
    parent, child = load_run(parents / agent), load_run(out)
    assert child["config"]["parent"] == {"run_dir": str((parents / agent).resolve()), "timesteps": 256}
    assert (
        child["summary"]["parent"] == str((parents / agent).resolve())
        and child["summary"]["timesteps"] == 384
    )
    assert child["spec"].agent == agent and child["spec"].seed == 1 and child["spec"].eval_episodes == 4
    # The same market seed and options, with the new calibration on top.
    options = child["config"]["env_options"]
    assert options["market_seed"] == parent["config"]["env_options"]["market_seed"]
    assert {k: v for k, v in options.items() if k != "calibration"} == parent["config"]["env_options"]
    assert child["config"]["calibration"]["engagement_vintage"] == "2025"
    assert list(pd.read_csv(out / "eval.csv")["timesteps"]) == [256, 320, 384]


def test_a_fixed_policy_or_a_second_agent_is_refused_with_one_line(parents, tmp_path, capsys):
    assert (
        main(
            ["train", "--resume", str(parents / "random"), "--timesteps", "10", "--out", str(tmp_path / "r")]
        )
        == 2
    )
    assert "random run cannot continue learning" in capsys.readouterr().err
    assert main(["train", "--resume", str(parents / "cqi"), "--agent", "cqi", "--timesteps", "10",
                 "--out", str(tmp_path / "x")]) == 2  # fmt: skip
    assert "not allowed with argument" in capsys.readouterr().err
    assert main(["train", "--resume", str(parents / "cqi"), "--hp", "gamma=0.9", "--timesteps", "10",
                 "--out", str(tmp_path / "y")]) == 2  # fmt: skip
    assert "parent's hyperparameters" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path), "--timesteps", "10", "--out", str(tmp_path / "z")]) == 2
    assert "not a run folder" in capsys.readouterr().err
    assert not any((tmp_path / name).exists() for name in "rxyz")
    assert json.loads((parents / "cqi" / "summary.json").read_text())["timesteps"] == 256  # parent untouched


def test_a_trained_run_folder_teaches_a_distilled_tree(parents, tmp_path):
    out = tmp_path / "tree"
    argv = ["train", "--agent", "distilled_tree", "--hp", f"teacher={parents / 'ppo'}", "--hp", "max_leaves=4",
            "--hp", "n_iterations=2", "--timesteps", "128", "--seed", "1", "--out", str(out), *COMMON]  # fmt: skip
    assert main(argv) == 0
    summary = load_run(out)["summary"]
    assert 1 <= summary["n_leaves"] <= 4 and (out / "tree.txt").is_file()
