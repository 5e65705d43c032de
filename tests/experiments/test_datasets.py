"""influmatch log --format minari: the logged campaigns as a Minari dataset that reads back as logged."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from experiments.cli import main
from tests.experiments.helpers import ENV_ARGS, ENV_OPTIONS

minari = pytest.importorskip("minari")
pytest.importorskip("h5py")

LOG = ["log", "--policy", "oracle", "--epsilon", "0.3", "--campaigns", "6", *ENV_ARGS]
DATASET = "influmatch/oracle-eps-v0"


def log(*args: str) -> int:
    return main([*LOG, *args])


def episodes(root, dataset_id=DATASET):
    dataset = minari.MinariDataset(root / dataset_id / "data")
    return dataset, list(dataset.iterate_episodes())


def contents(root, dataset_id=DATASET) -> list[dict]:
    _, eps = episodes(root, dataset_id)
    return [
        {"id": e.id, "obs": e.observations, "act": e.actions, "rew": e.rewards, "term": e.terminations,
         "trunc": e.truncations, **{f"info_{k}": v for k, v in e.infos.items()}}
        for e in eps
    ]  # fmt: skip


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """The same campaigns logged as CSV (twice: default and --format csv) and as a Minari dataset."""
    root = tmp_path_factory.mktemp("datasets")
    assert log("--out", str(root / "logs.csv")) == 0
    assert log("--out", str(root / "same.csv"), "--format", "csv") == 0
    assert log("--out", str(root / "minari"), "--format", "minari", "--dataset-id", DATASET) == 0
    return root


@pytest.mark.slow
def test_episodes_read_back_as_logged(logged, monkeypatch):
    frame = pd.read_csv(logged / "logs.csv")
    meta = json.loads((logged / "logs.json").read_text())
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(logged / "minari"))
    dataset = minari.load_dataset(DATASET)  # the ecosystem's way in
    assert dataset.total_episodes == 6 and dataset.total_steps == len(frame)
    masks = [c for c in frame.columns if c.startswith("mask_")]
    for episode in dataset.iterate_episodes():
        rows = frame[frame["campaign_id"] == episode.id].sort_values("step")
        T = len(rows)
        assert episode.observations.shape == (T + 1, len(meta["feature_names"]))
        np.testing.assert_array_equal(episode.observations[:-1], rows[meta["feature_names"]].to_numpy())
        np.testing.assert_array_equal(episode.actions, rows["action"].to_numpy())
        np.testing.assert_array_equal(episode.rewards, rows["reward"].to_numpy())
        np.testing.assert_array_equal(episode.infos["propensity"][:-1], rows["propensity"].to_numpy())
        assert np.isnan(episode.infos["propensity"][-1])
        np.testing.assert_array_equal(episode.infos["action_mask"][:-1], rows[masks].to_numpy())
        ended = episode.terminations | episode.truncations
        assert ended[-1] and not ended[:-1].any()  # the campaign ends where its log ends
        assert dataset.observation_space.contains(episode.observations[-1])
    metadata = dataset.storage.metadata
    assert json.loads(metadata["influmatch_logs"])["campaign_seeds"] == meta["campaign_seeds"]
    env = dataset.recover_environment()  # the logs' market, from the stored spec
    assert len(env.unwrapped.pool.influencer_id) == ENV_OPTIONS["n_influencers"]
    first = next(dataset.iterate_episodes())
    obs, _ = env.reset(seed=meta["campaign_seeds"][0])
    np.testing.assert_array_equal(obs, first.observations[0])


@pytest.mark.slow
def test_csv_format_unchanged_and_same_seed_same_dataset(logged):
    assert (logged / "logs.csv").read_bytes() == (logged / "same.csv").read_bytes()
    assert log("--out", str(logged / "again"), "--format", "minari", "--dataset-id", DATASET) == 0
    for a, b in zip(contents(logged / "minari"), contents(logged / "again"), strict=True):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    data = f"{DATASET}/data/main_data.hdf5"
    assert (logged / "minari" / data).read_bytes() == (logged / "again" / data).read_bytes()


@pytest.mark.slow
def test_existing_dataset_is_kept_unless_overwrite(logged, capsys):
    data = logged / "minari" / DATASET / "data" / "main_data.hdf5"
    before = data.read_bytes()
    args = ["--out", str(logged / "minari"), "--format", "minari", "--dataset-id", DATASET, "--seed", "1"]
    assert log(*args) == 2
    err = capsys.readouterr().err.strip()
    assert "exists" in err and "--overwrite" in err and len(err.splitlines()) == 1
    assert data.read_bytes() == before
    assert log(*args, "--overwrite") == 0
    assert data.read_bytes() != before
    assert [p.name for p in (logged / "minari" / "influmatch").iterdir() if p.name.startswith(".")] == []
    # a second dataset beside the first, in the same root
    assert log("--out", str(logged / "minari"), "--format", "minari", "--dataset-id", "other-v1") == 0
    assert {d for d in minari_ids(logged / "minari")} == {DATASET, "other-v1"}


def minari_ids(root) -> set[str]:
    import os

    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        return set(minari.list_local_datasets())
    finally:
        if old is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


@pytest.mark.parametrize(
    ("out", "args", "expected"),
    [
        ("out", ["--format", "minari", "--dataset-id", "no version"], "--dataset-id 'no version': expected"),
        ("file", ["--format", "minari"], "a file of that name exists"),
        ("file/datasets", ["--format", "minari"], "file is a file; a Minari dataset needs a folder"),
        ("out.csv", ["--format", "minari"], "--format minari writes a folder"),
        ("out.csv", ["--dataset-id", "x-v0"], "--dataset-id: only with --format minari"),
        ("out.csv", ["--format", "parquet"], "--format parquet writes a .parquet file"),
    ],
)
def test_bad_input_is_one_line(tmp_path, capsys, out, args, expected):
    (tmp_path / "file").write_text("x")
    assert log("--out", str(tmp_path / out), *args) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_a_replay_that_differs_from_the_logs_is_refused():
    from envs.matching_env import InfluencerMatchingEnv
    from experiments.datasets import minari_episodes
    from experiments.ope.generation import generate_logs
    from experiments.ope.logs import LoggedData
    from experiments.ope.policies import StochasticPolicy
    from tests.experiments.helpers import GreedyOnValue

    env = InfluencerMatchingEnv(**ENV_OPTIONS)
    policy = StochasticPolicy(GreedyOnValue(env), 0.5, wait_action=env.wait_action)
    frame, meta = generate_logs(env, policy, 2, seed=3)
    data = LoggedData.from_frame(frame, meta["feature_names"], meta["action_names"])
    replayed = minari_episodes(env, data, meta["campaign_seeds"])
    assert [len(e.rewards) for e in replayed] == list(np.bincount(data.campaign))
    with pytest.raises(
        ValueError, match="campaign 0, step 0: the replay's observation is not the logged one"
    ):
        minari_episodes(env, data, [s + 1 for s in meta["campaign_seeds"]])
