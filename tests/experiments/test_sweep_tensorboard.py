"""influmatch sweep --tensorboard DIR: every run that trains logs its scalars under DIR/<run id>, once."""

from __future__ import annotations

import logging
import shutil

import pytest

from experiments.cli import main
from experiments.config import ExperimentConfig
from experiments.sweep import plan, run_sweep

pytest.importorskip("tensorboard")

TINY = {
    "name": "tiny-tensorboard",
    "timesteps": 300,
    "seeds": 1,
    "eval": {"every": 150, "episodes": 2},
    "env": {"n_influencers": 1200, "n_segments": 3, "campaign_weeks": 6},
    "agents": {
        "cqi": {},
        "logistic_bandit": {},
        "ppo": {"hyperparameters": {"n_steps": 64, "batch_size": 32}},
    },
}


def tiny_config() -> ExperimentConfig:
    return ExperimentConfig.from_dict(TINY, source="tiny.yaml")


def scalars(folder) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def event_files(board) -> dict[str, bytes]:
    return {str(p.relative_to(board)): p.read_bytes() for p in sorted(board.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep-tb")
    run_sweep(tiny_config(), root / "sweep", n_jobs=2, progress=False, tensorboard=root / "tb")
    return root


@pytest.mark.slow
def test_each_run_logs_episode_returns_and_tree_size(logged):
    board = logged / "tb"
    ids = [r.run_id for r in plan(tiny_config())]
    assert sorted(p.name for p in board.iterdir()) == sorted(ids)
    for run_id in ids:
        assert len(list((board / run_id).glob("events.out.tfevents.*"))) == 1
        tags = scalars(board / run_id)
        returns = tags["rollout/ep_rew_mean"]
        assert returns and returns[-1][0] <= TINY["timesteps"]
        assert [s for s, _ in returns] == sorted(s for s, _ in returns)
    cqi = scalars(board / "cqi__default__seed0")
    assert cqi["cqi/n_leaves"][-1][1] >= 1  # the tree's size, as train --tensorboard logs it
    assert "bandit/fitted_actions" in scalars(board / "logistic_bandit__default__seed0")
    assert "train/value_loss" in scalars(board / "ppo__default__seed0")  # SB3's own logger
    assert not list(board.glob(".*"))  # no temporary folder left behind


@pytest.mark.slow
def test_resume_logs_only_the_runs_it_trains(logged, caplog):
    board, sweep = logged / "tb", logged / "sweep"
    before = event_files(board)
    run_sweep(tiny_config(), sweep, progress=False, tensorboard=board)  # all finished: nothing trains
    assert event_files(board) == before

    # a run killed after its events were moved into place but before its folder was
    shutil.rmtree(sweep / "runs" / "cqi__default__seed0")
    run_sweep(tiny_config(), sweep, n_jobs=1, progress=False, tensorboard=board)
    after = event_files(board)
    assert len(list((board / "cqi__default__seed0").iterdir())) == 1  # replaced, not a second curve
    assert {k: v for k, v in after.items() if k.startswith("logistic")} == {
        k: v for k, v in before.items() if k.startswith("logistic")
    }
    assert scalars(board / "cqi__default__seed0")["rollout/ep_rew_mean"]

    with caplog.at_level(logging.WARNING, logger="experiments.sweep"):
        run_sweep(tiny_config(), sweep, progress=False, tensorboard=logged / "new-tb")
    assert "3 finished runs are skipped and get no TensorBoard events" in caplog.text
    assert not (logged / "new-tb").exists()


@pytest.mark.slow
def test_another_sweeps_events_are_refused(logged, capsys):
    config = logged / "tiny.yaml"
    import yaml

    config.write_text(yaml.safe_dump(TINY))
    args = ["sweep", str(config), "--out", str(logged / "other"), "--tensorboard", str(logged / "tb")]
    assert main([*args, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "already holds another sweep's events" in err and "--overwrite" in err
    assert len(err.splitlines()) == 1
    assert not (logged / "other").exists()


@pytest.mark.parametrize(
    ("board", "expected"),
    [
        ("file.txt/tb", "file.txt is a file; TensorBoard needs a folder"),
        ("file.txt", "file.txt is a file; TensorBoard needs a folder"),
        ("sweep", "is the sweep's own folder"),
        ("sweep/runs/tb", "is the sweep's own folder"),
    ],
)
def test_bad_tensorboard_folders_are_refused_in_one_line(tmp_path, capsys, board, expected):
    import yaml

    (tmp_path / "file.txt").write_text("x")
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    args = ["sweep", str(config), "--out", str(tmp_path / "sweep"), "--tensorboard", str(tmp_path / board)]
    assert main([*args, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "sweep").exists()


def test_missing_tensorboard_package_is_refused_before_anything_runs(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name == "tensorboard":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    with pytest.raises(ValueError, match="pip install tensorboard"):
        run_sweep(tiny_config(), tmp_path / "sweep", progress=False, tensorboard=tmp_path / "tb")
    assert not (tmp_path / "sweep").exists()
