"""Same seed, same model.zip: SB3Agent.save writes fixed zip timestamps and no wall-clock values or
object addresses in SB3's ``data`` member."""

from __future__ import annotations

import json
import re
import zipfile

from agents.sb3 import SB3Agent
from experiments.cli import main

ENV = ["--env", "n_influencers=400", "n_segments=2", "campaign_weeks=4"]
HP = ["--hp", "n_steps=64", "batch_size=32", "n_epochs=2"]


def test_two_ppo_runs_with_one_seed_give_identical_model_files(tmp_path):
    for name in ("a", "b"):
        argv = ["train", "--agent", "ppo", "--timesteps", "300", "--seed", "3", "--out", str(tmp_path / name)]
        assert main([*argv, "--eval-episodes", "2", *ENV, *HP]) == 0
    first, second = (tmp_path / "a" / "model.zip").read_bytes(), (tmp_path / "b" / "model.zip").read_bytes()
    assert first == second
    with zipfile.ZipFile(tmp_path / "a" / "model.zip") as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        data = json.loads(archive.read("data"))
    assert data["start_time"] == 0 and not re.search(r" at 0x[0-9a-fA-F]{2,}", json.dumps(data))
    agent = SB3Agent.load(tmp_path / "a" / "model.zip")  # still loads and predicts
    assert agent.num_timesteps >= 300
