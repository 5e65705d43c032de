"""influmatch train --tensorboard DIR logs the training scalars as TensorBoard events."""

from __future__ import annotations

import pytest

from experiments.cli import main
from tests.experiments.helpers import ENV_ARGS


def test_train_writes_tensorboard_events(tmp_path):
    pytest.importorskip("tensorboard")
    out, board = tmp_path / "run", tmp_path / "tb"
    args = ["train", "--agent", "logistic_bandit", "--timesteps", "300", "--seed", "0", "--out", str(out)]
    assert main([*args, "--eval-episodes", "2", *ENV_ARGS, "--tensorboard", str(board)]) == 0
    events = list((board / "logistic_bandit_seed0").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
