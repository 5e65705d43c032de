"""The logged-data format, its validation, policies with exact propensities, and ``influmatch log``."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents import BestValuePerDollarPolicy, MyopicOracle, RandomPolicy
from experiments.cli import main
from experiments.ope.generation import generate_logs
from experiments.ope.logs import LogFormatError, LoggedData, metadata_path, read_logs, write_logs
from experiments.ope.policies import PolicyError, StochasticPolicy, policy_source
from experiments.options import parse_env_options
from tests.experiments.helpers import ENV_ARGS, ENV_OPTIONS, GreedyOnValue


@pytest.fixture(scope="module")
def logged(env):
    """Logs of 40 campaigns by epsilon-greedy (0.3) GreedyOnValue, as frame and metadata."""
    policy = StochasticPolicy(GreedyOnValue(env), 0.3, wait_action=env.wait_action, label="greedy")
    frame, meta = generate_logs(env, policy, 40, seed=3)
    meta["env"] = ENV_OPTIONS
    return frame, meta, policy


def _write(tmp_path, frame, meta, name="logs.csv"):
    path = tmp_path / name
    write_logs(frame, path, meta)
    return path


# ------------------------------------------------------------------------------------ generation
def test_generated_logs_have_exact_propensities_and_round_trip(env, logged, tmp_path):
    frame, meta, policy = logged
    data = read_logs(_write(tmp_path, frame, meta))
    assert data.n_campaigns == 40 and data.n_decisions == len(frame)
    assert (data.step < 6).all() and data.horizon <= 6
    probs = policy.probabilities(data.context, data.action_mask)
    np.testing.assert_allclose(data.propensity, probs[np.arange(data.n_decisions), data.action], rtol=1e-12)
    assert data.action_mask[np.arange(data.n_decisions), data.action].all()
    # epsilon-greedy: the greedy action has 0.7 + 0.3/|valid|, any other valid one 0.3/|valid|
    valid = data.action_mask.sum(axis=1)
    scaled = data.propensity * valid
    assert (np.isclose(scaled, 0.3) | np.isclose(scaled, 0.7 * valid + 0.3)).all()
    # the rewards are what the outcomes say: (value - cost) / 1000 for an accepted offer
    np.testing.assert_allclose(
        data.reward,
        (data.outcomes["value"] - data.outcomes["cost"]) / 1000 * data.outcomes["accepted"],
        atol=1e-9,
    )
    assert meta["campaign_ids"] == list(range(40)) and len(meta["campaign_seeds"]) == 40
    assert json.loads(metadata_path(tmp_path / "logs.csv").read_text())["env"] == ENV_OPTIONS


def test_same_seed_same_logs_whatever_the_lockstep(env, logged):
    frame, _, policy = logged
    again, _ = generate_logs(env, policy, 40, seed=3)
    pd.testing.assert_frame_equal(frame, again)
    narrow, _ = generate_logs(env, policy, 40, seed=3, lockstep=7)
    pd.testing.assert_frame_equal(frame, narrow)
    other, _ = generate_logs(env, policy, 40, seed=4)
    assert not frame["reward"].equals(other["reward"])


# ------------------------------------------------------------------------------------ validation
def _bad(frame, change):
    frame = frame.copy()
    change(frame)
    return frame


def _set(column, row, value):
    def change(frame):
        frame[column] = frame[column].astype(object)
        frame.loc[row, column] = value

    return change


def _invalid_logged_action(frame):
    row = 2
    frame.loc[row, f"mask_{frame.loc[row, 'action']}"] = 0


BAD_FRAMES = {
    "missing propensity": (
        lambda f: f.pop("propensity"),
        "missing column 'propensity'",
    ),
    "propensity zero": (
        _set("propensity", 5, 0.0),
        "row 5 (line 7), column 'propensity': expected a value in (0, 1], got '0.0'",
    ),
    "propensity above one": (_set("propensity", 6, 1.5), "row 6 (line 8), column 'propensity'"),
    "action outside": (
        _set("action", 3, 13),
        "row 3 (line 5), column 'action': expected a value in [0, 12], got '13'",
    ),
    "action fraction": (_set("action", 3, 1.5), "row 3 (line 5), column 'action': expected a whole number"),
    "action invalid by its mask": (_invalid_logged_action, "row 2 (line 4), column 'mask_"),
    "unknown column": (lambda f: f.insert(3, "shoe size", 42), "unknown column 'shoe size'"),
    "extra mask": (
        lambda f: f.insert(3, "mask_13", 1),
        "unknown column 'mask_13': the environment has 13 actions",
    ),
    "missing feature": (
        lambda f: f.pop("seg 3 hires"),
        "missing feature column 'seg 3 hires'",
    ),
    "nan reward": (_set("reward", 4, np.nan), "row 4 (line 6), column 'reward': missing value"),
    "text reward": (
        _set("reward", 4, "lots"),
        "row 4 (line 6), column 'reward': expected a number, got 'lots'",
    ),
    "mask not 0/1": (_set("mask_0", 1, 2), "row 1 (line 3), column 'mask_0': expected 0 or 1"),
    "repeated step": (_set("step", 1, 0), "column 'step': campaign 0 has step 0 twice"),
    "step gap": (_set("step", 1, 4), "column 'step': campaign 0 jumps to step"),
    "action name": (_set("action_name", 0, "hire everyone"), "row 0 (line 2), column 'action_name'"),
    "negative reach": (_set("reach", 0, -1), "row 0 (line 2), column 'reach': expected a value >= 0"),
}


@pytest.mark.parametrize("case", sorted(BAD_FRAMES))
def test_bad_logs_are_refused_with_row_and_column(case, logged, tmp_path):
    frame, meta, _ = logged
    change, message = BAD_FRAMES[case]
    path = _write(tmp_path, _bad(frame, change), meta)
    with pytest.raises(LogFormatError) as err:
        read_logs(path)
    assert message in str(err.value)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_empty_and_header_only_files_are_refused(logged, tmp_path):
    frame, meta, _ = logged
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    metadata_path(empty).write_text(json.dumps(meta))
    with pytest.raises(LogFormatError, match="empty file"):
        read_logs(empty)
    header = _write(tmp_path, frame.iloc[:0], meta, "header.csv")
    with pytest.raises(LogFormatError, match="no rows"):
        read_logs(header)


def test_other_files_are_refused(logged, tmp_path):
    frame, meta, _ = logged
    with pytest.raises(LogFormatError, match="expected a .csv or .parquet file"):
        read_logs(tmp_path / "logs.xlsx")
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_logs(tmp_path / "nothing.csv")
    frame.to_csv(tmp_path / "bare.csv", index=False)  # no metadata and no environment given
    with pytest.raises(LogFormatError, match="cannot tell the environment's features"):
        read_logs(tmp_path / "bare.csv")


def test_logs_without_metadata_read_with_the_environment(env, logged, tmp_path):
    frame, _, _ = logged
    shuffled = frame.sample(frac=1.0, random_state=0)  # any row order
    shuffled.drop(columns=["action_name", "clicks", "influencer_id"]).to_csv(
        tmp_path / "own.csv", index=False
    )
    data = read_logs(tmp_path / "own.csv", env.feature_names, env.action_names)
    reference = LoggedData.from_frame(frame, env.feature_names, env.action_names)
    np.testing.assert_array_equal(data.reward, reference.reward)
    np.testing.assert_array_equal(data.context, reference.context)
    assert data.metadata is None and "clicks" not in data.outcomes


def test_parquet_round_trip_or_clear_message(logged, tmp_path):
    frame, meta, _ = logged
    available = importlib.util.find_spec("pyarrow") or importlib.util.find_spec("fastparquet")
    if available:
        data = read_logs(_write(tmp_path, frame, meta, "logs.parquet"))
        assert data.n_decisions == len(frame)
    else:
        with pytest.raises(LogFormatError, match="Parquet needs pyarrow, which is not installed"):
            write_logs(frame, tmp_path / "logs.parquet", meta)


# -------------------------------------------------------------------------------------- policies
@settings(max_examples=60, deadline=None)
@given(
    epsilon=st.floats(0, 1),
    masks=st.lists(st.lists(st.booleans(), min_size=13, max_size=13), min_size=1, max_size=8),
    values=st.lists(st.floats(0, 10), min_size=4, max_size=4),
)
def test_epsilon_greedy_probabilities_are_exact(env, epsilon, masks, values):
    masks = np.array(masks)
    masks[:, -1] = True  # waiting is always valid
    obs = np.zeros((len(masks), len(env.feature_names)))
    for s, v in enumerate(values):
        obs[:, env.feature_names.index(f"seg {s} value per $")] = v
    agent = GreedyOnValue(env)
    probs = StochasticPolicy(agent, epsilon, wait_action=env.wait_action).probabilities(obs, masks)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert (probs[~masks] == 0).all()
    greedy = agent.predict(obs, deterministic=True)[0]
    greedy = np.where(masks[np.arange(len(masks)), greedy], greedy, env.wait_action)  # invalid -> waiting
    expected = epsilon * masks / masks.sum(axis=1, keepdims=True)
    expected[np.arange(len(masks)), greedy] += 1 - epsilon
    np.testing.assert_allclose(probs, expected, atol=1e-12)


def test_policies_without_a_distribution_or_reading_the_env(env):
    with pytest.raises(PolicyError, match="no stochastic policy of its own"):
        StochasticPolicy(GreedyOnValue(env), None, wait_action=env.wait_action, label="greedy")
    uniform = StochasticPolicy(RandomPolicy(env), 0.2, wait_action=env.wait_action)  # random is uniform
    mask = np.array([[True] * 3 + [False] * 9 + [True]])
    np.testing.assert_allclose(uniform.probabilities(np.zeros((1, 35)), mask)[0], mask[0] / 4)
    oracle = StochasticPolicy(MyopicOracle(env), 0.1, wait_action=env.wait_action, label="oracle")
    with pytest.raises(PolicyError, match="reads the simulator's state .* cannot be evaluated from logged"):
        oracle.probabilities(np.zeros((1, 35)), mask)
    # ... but it can log: bound to each environment it acts on
    heuristic = StochasticPolicy(BestValuePerDollarPolicy(env), 0.5, wait_action=env.wait_action)
    frame, _ = generate_logs(env, heuristic, 3, seed=0)
    assert len(frame) > 0 and frame["propensity"].between(0, 1, inclusive="right").all()


def test_policy_sources_and_env_options(tmp_path):
    with pytest.raises(
        ValueError, match="'nobody' is neither a run folder, an agent name .* nor module:function"
    ):
        policy_source("nobody")
    with pytest.raises(ValueError, match="ppo learns; give the run folder"):
        policy_source("ppo")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        policy_source(str(tmp_path))
    assert policy_source("random").run_dir is None
    assert parse_env_options(["n_segments=4", "offer_levels=[0.8, 1.0]"]) == {
        "n_segments": 4,
        "offer_levels": [0.8, 1.0],
    }
    with pytest.raises(ValueError, match="unknown environment option 'n_brands'"):
        parse_env_options(["n_brands=3"])


# --------------------------------------------------------------------------------------- command
def test_log_command_writes_logs_and_metadata(tmp_path, capsys):
    out = tmp_path / "logs.csv"
    argv = [
        "log",
        "--policy",
        "random",
        "--epsilon",
        "own",
        "--campaigns",
        "5",
        "--seed",
        "2",
        "--out",
        str(out),
    ]
    assert main(argv + ENV_ARGS) == 0
    assert "Logged" in capsys.readouterr().out
    meta = json.loads(metadata_path(out).read_text())
    # A named policy logs in the default market: v1, as every command.
    assert meta["env"] == {"dynamics": "v1", **ENV_OPTIONS} and meta["policy"]["agent"] == "random"
    data = read_logs(out)
    np.testing.assert_allclose(data.propensity, 1 / data.action_mask.sum(axis=1))
    first, first_meta = out.read_bytes(), metadata_path(out).read_bytes()
    capsys.readouterr()
    assert main(argv + ENV_ARGS) == 2  # an earlier log is not replaced unasked
    err = capsys.readouterr().err
    assert "logs.csv: the file exists; pass --overwrite" in err and len(err.strip().splitlines()) == 1
    assert main([*argv, "--overwrite", *ENV_ARGS]) == 0
    assert out.read_bytes() == first and metadata_path(out).read_bytes() == first_meta
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.slow
@pytest.mark.parametrize(
    "extra, message",
    [
        (["--epsilon", "2"], "expected a number in [0, 1] or 'own'"),
        (["--epsilon", "own", "--env", "n_brands=3"], "unknown environment option 'n_brands'"),
        (["--epsilon", "0.1", "--out", "x.txt"], "expected a .csv or .parquet file"),
        (["--epsilon", "own", "--policy", "oracle", *ENV_ARGS], "oracle has no stochastic policy of its own"),
    ],
)
def test_log_command_bad_input_is_one_line_and_exit_2(tmp_path, extra, message):
    argv = ["--policy", "random", "--campaigns", "2", "--out", str(tmp_path / "l.csv")]
    result = subprocess.run(
        [sys.executable, "-m", "experiments.cli.log", *argv, *extra], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert message in result.stderr
