"""Nothing a user types loses or corrupts earlier results, and hostile input gets one line and exit 2.

Every command that writes refuses an existing non-empty output (naming it) unless ``--overwrite``,
then replaces it in one rename; bad values are refused before anything is written; every error is one
line on stderr that names the file, row, field or option, with no traceback.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pandas as pd
import pytest

from experiments.cli import main
from experiments.files import remove_stale
from tests.experiments.helpers import fabricate_sweep

SMALL_ENV = ["--env", "n_influencers=400", "n_segments=2", "campaign_weeks=4"]


def _snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> bytes), hidden ones included."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _one_line_error(capsys, code: int, *needles: str) -> str:
    captured = capsys.readouterr()
    assert code == 2, captured
    err = captured.err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory) -> Path:
    return fabricate_sweep(tmp_path_factory.mktemp("sweep") / "sweep")


def _existing_outputs(tmp: Path, sweep: Path) -> list[tuple[list[str], Path]]:
    """(argv, the output it names) for every command that writes."""
    logs = tmp / "logs.csv"
    logs.write_text("campaign_id,step\n")
    return [
        (["market", "--n", "300", "--out", str(tmp / "d")], tmp / "d"),
        (["segment", "--n", "300", "--k", "2", "--out", str(tmp / "d")], tmp / "d"),
        (["train", "--agent", "random", "--timesteps", "5", "--out", str(tmp / "d"), *SMALL_ENV], tmp / "d"),
        (["log", "--policy", "random", "--epsilon", "own", "--campaigns", "1", "--out", str(logs)], logs),
        (["ope", "--logs", str(logs), "--policy", "random", "--out", str(tmp / "d")], tmp / "d"),
        (["report", str(sweep), "--out", str(tmp / "r.html")], tmp / "r.html"),
        (["plot", str(sweep), "--out", str(tmp / "f.png")], tmp / "f.png"),
        (["bench", "--quick", "--only", "outcome_sampling", "--out", str(tmp / "b.json")], tmp / "b.json"),
        (["sweep", "demo", "--out", str(tmp / "d")], tmp / "d"),
        (["demo", "--out", str(tmp / "d")], tmp / "d"),
    ]


@pytest.mark.parametrize("index", range(10))
def test_every_command_refuses_an_existing_output(tmp_path, sweep_dir, capsys, index):
    argv, output = _existing_outputs(tmp_path, sweep_dir)[index]
    if output.suffix:
        if output.name != "logs.csv":
            output.write_bytes(b"earlier result\n")
    else:
        output.mkdir()
        (output / "config.json").write_text('{"earlier": "result"}\n')
    before = _snapshot(tmp_path)
    code = main(argv)
    _one_line_error(capsys, code, str(output), "--overwrite")
    assert _snapshot(tmp_path) == before  # earlier files byte-identical, nothing added


@pytest.mark.parametrize(
    "argv",
    [
        ["market", "--out", ""],
        ["segment", "--out", " "],
        ["train", "--agent", "random", "--timesteps", "5", "--out", ""],
        ["log", "--policy", "random", "--epsilon", "own", "--campaigns", "1", "--out", ""],
        ["plot", "x", "--out", ""],
        ["report", "x", "--out", ""],
        ["bench", "--out", ""],
        ["sweep", "demo", "--out", ""],
    ],
)
def test_an_empty_out_is_refused(tmp_path, capsys, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    _one_line_error(capsys, main(argv), "--out", "expected a path, got an empty string")
    assert list(tmp_path.iterdir()) == []


def test_market_into_a_run_folder_keeps_its_config(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--agent", "random", "--timesteps", "5", "--out", str(run), *SMALL_ENV]) == 0
    before = _snapshot(run)
    for argv in (["market", "--n", "300"], ["segment", "--n", "300", "--k", "2"]):
        _one_line_error(capsys, main([*argv, "--out", str(run)]), "the folder is not empty")
    assert _snapshot(run) == before
    assert main(["evaluate", str(run), "--episodes", "2"]) == 0


def test_overwrite_replaces_in_one_rename_and_cleans_what_a_killed_run_left(tmp_path, capsys):
    out = tmp_path / "m"
    assert main(["market", "--n", "300", "--seed", "1", "--out", str(out)]) == 0
    seed1 = (out / "pool.csv").read_bytes()
    (out / "stray.txt").write_text("from before\n")
    leftover = tmp_path / ".m.999999999.abc.partial"  # a dead process's temporary folder
    leftover.mkdir()
    assert main(["market", "--n", "300", "--seed", "2", "--out", str(out), "--overwrite"]) == 0
    assert (out / "pool.csv").read_bytes() != seed1 and not (out / "stray.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no temporary folder left
    assert oct(out.stat().st_mode & 0o777) == oct(0o777 & ~_umask())  # created with the umask


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_remove_stale_keeps_what_a_live_process_writes(tmp_path):
    live = tmp_path / f".x.{os.getpid()}.abc.partial"
    dead = tmp_path / ".x.999999999.abc.tmp"
    live.mkdir()
    dead.write_text("")
    assert remove_stale(tmp_path, "x") == [dead]
    assert live.exists() and not dead.exists()


def test_a_bad_log_keeps_the_earlier_log(tmp_path, capsys):
    out = tmp_path / "logs.csv"
    argv = [
        "log",
        "--policy",
        "random",
        "--epsilon",
        "own",
        "--campaigns",
        "2",
        "--out",
        str(out),
        *SMALL_ENV,
    ]
    assert main(argv) == 0
    before = _snapshot(tmp_path)
    _one_line_error(capsys, main([*argv, "--overwrite", "--env", "n_segments=0"]), "n_segments")
    assert _snapshot(tmp_path) == before


# ------------------------------------------------------------------------------------ YAML configs
CONFIG = (
    "timesteps: 100\nseeds: 1\neval: {every: 50, episodes: 2}\n"
    "env: {n_influencers: 400, n_segments: 2, campaign_weeks: 4}\n"
)


@pytest.mark.parametrize(
    "text, needles",
    [
        (CONFIG + "agents:\n  random: {}\n  random: {}\n", ["line 7", "'random' appears twice", "line 6"]),
        (
            CONFIG + "timesteps: 200\nagents: {random: {}}\n",
            ["line 5", "'timesteps' appears twice", "first at line 1"],
        ),
        (
            CONFIG + "agents:\n  ppo: {hyperparameters: {batch_size: 1}}\n",
            ["agents.ppo", "batch_size", ">= 2"],
        ),
        (
            CONFIG + "agents:\n  ppo: {hyperparameters: {learning_rate: fast}}\n",
            ["agents.ppo", "learning_rate", "'fast'"],
        ),
        (CONFIG.replace("n_segments: 2", "n_segments: 0") + "agents: {random: {}}\n", ["env:", "n_segments"]),
        (CONFIG + "agents: {random: {\n", ["not valid YAML"]),
    ],
)
def test_sweep_config_errors_are_named_before_anything_is_written(tmp_path, capsys, text, needles):
    config = tmp_path / "my.yaml"
    config.write_text(text)
    out = tmp_path / "sweep"
    _one_line_error(
        capsys, main(["sweep", str(config), "--out", str(out), "--no-progress"]), str(config), *needles
    )
    assert not out.exists()  # no sweep.yaml: the corrected config is not refused as "a different sweep"


def test_an_alias_bomb_is_refused_quickly(tmp_path, capsys):
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    config = tmp_path / "bomb.yaml"
    config.write_text(CONFIG + "agents: {random: {}}\n" + "\n".join(lines) + "\n")
    start = time.perf_counter()
    code = main(["sweep", str(config), "--out", str(tmp_path / "s")])
    assert time.perf_counter() - start < 10
    _one_line_error(capsys, code, str(config), "aliases expand to more than")


def test_a_config_name_means_the_shipped_config_before_a_local_folder(tmp_path, monkeypatch):
    from experiments.config import CONFIG_DIR, resolve_config

    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").mkdir()  # what `influmatch demo --out demo` leaves in the current folder
    assert resolve_config("demo") == CONFIG_DIR / "demo.yaml"
    (tmp_path / "mine.yaml").write_text(CONFIG)
    assert resolve_config("mine.yaml") == Path("mine.yaml")
    with pytest.raises(ValueError, match="demo: is a folder"):
        resolve_config("./demo")  # a path is a path


# ------------------------------------------------------------------------------ one-line errors
TRAIN = ["train", "--agent", "ppo", "--timesteps", "10", *SMALL_ENV]


@pytest.mark.parametrize(
    "extra, needles",
    [
        (["--hp", "batch_size=1"], ["batch_size", ">= 2, got 1"]),
        (["--hp", "learning_rate=fast"], ["learning_rate", "'fast'"]),
        (["--hp", "gamma=.nan"], ["--hp gamma", "expected a finite number"]),
        (["--hp", "n_steps=0"], ["n_steps", ">= 1"]),
        (["--hp", "net_arch=big"], ["net_arch"]),
        (["--hp", "clip_range=wide"], ["clip_range"]),
        (["--seed", "-1"], ["--seed", "expected a whole number >= 0, got '-1'"]),
        (["--hp", "gamma=" + "a" * 1_000_000], ["gamma", "…"]),
        (["--hp", "x" * 1_000_000 + "=1"], ["unknown hyperparameter", "more characters"]),
    ],
)
def test_bad_training_values_are_one_line_naming_the_field(tmp_path, capsys, extra, needles):
    out = tmp_path / "run"
    err = _one_line_error(capsys, main([*TRAIN, "--out", str(out), *extra]), *needles)
    assert len(err) < 1000
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == []


@pytest.mark.parametrize("command", ["market", "segment", "log", "ope"])
def test_a_negative_seed_says_seed(tmp_path, capsys, command):
    logs = tmp_path / "l.csv"
    logs.write_text("x\n")
    argv = {
        "market": ["market", "--out", str(tmp_path / "o")],
        "segment": ["segment", "--out", str(tmp_path / "o")],
        "log": [
            "log",
            "--policy",
            "random",
            "--epsilon",
            "own",
            "--campaigns",
            "1",
            "--out",
            str(tmp_path / "o.csv"),
        ],
        "ope": ["ope", "--logs", str(logs), "--policy", "random", "--out", str(tmp_path / "o")],
    }[command]
    _one_line_error(capsys, main([*argv, "--seed", "-1"]), "--seed", "expected a whole number >= 0")


def test_a_pool_too_big_for_memory_is_refused_before_allocating(tmp_path, capsys):
    start = time.perf_counter()
    code = main(["market", "--n", "1000000000000", "--out", str(tmp_path / "o")])
    assert time.perf_counter() - start < 5
    _one_line_error(capsys, code, "--n 1,000,000,000,000", "GB", "enough for about")


@pytest.mark.parametrize("kind", ["folder", "fifo", "device"])
@pytest.mark.parametrize("option", ["--pool", "--calibration"])
def test_a_file_argument_that_is_not_a_file_says_what_it_is(tmp_path, capsys, kind, option):
    if kind == "folder":
        path, what = tmp_path / "dir.csv", "is a folder"
        path.mkdir()
    elif kind == "fifo":
        path, what = tmp_path / "pipe.csv", "is a named pipe (FIFO)"
        os.mkfifo(path)
    else:
        path, what = Path("/dev/zero"), "is a device"
    code = main(["market", option, str(path), "--out", str(tmp_path / "o")])
    _one_line_error(capsys, code, option, str(path), what)


def test_a_sweep_config_that_is_a_folder_or_device_says_so(tmp_path, capsys):
    (tmp_path / "cfg.yaml").mkdir()
    _one_line_error(
        capsys, main(["sweep", str(tmp_path / "cfg.yaml"), "--out", str(tmp_path / "s")]), "is a folder"
    )
    _one_line_error(capsys, main(["sweep", "/dev/zero", "--out", str(tmp_path / "s")]), "is a device")


def test_a_latin1_calibration_file_is_named_by_line(tmp_path, capsys):
    path = tmp_path / "cal.yaml"
    path.write_bytes("conversion_rate: 0.003\n# café\n".encode("latin-1"))
    code = main(["market", "--calibration", str(path), "--out", str(tmp_path / "o")])
    _one_line_error(capsys, code, f"{path}: line 2, column 6: byte 0xe9 is not UTF-8")


def test_duplicate_calibration_keys_are_refused(tmp_path, capsys):
    path = tmp_path / "cal.yaml"
    path.write_text("conversion_rate: 0.003\nconversion_rate: 0.3\n")
    code = main(["market", "--calibration", str(path), "--out", str(tmp_path / "o")])
    _one_line_error(capsys, code, str(path), "line 2", "'conversion_rate' appears twice")


# ------------------------------------------------------------------------------------ logs and OPE
@pytest.fixture(scope="module")
def small_logs(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("logs") / "logs.csv"
    argv = ["log", "--policy", "random", "--epsilon", "own", "--campaigns", "6", "--out", str(out)]
    assert main([*argv, *SMALL_ENV]) == 0
    return out


def test_a_huge_reward_is_refused_naming_the_row(tmp_path, capsys, small_logs):
    logs = tmp_path / "logs.csv"
    frame = pd.read_csv(small_logs)
    frame.loc[3, "reward"] = 1e308
    frame.to_csv(logs, index=False)
    (tmp_path / "logs.json").write_bytes(small_logs.with_suffix(".json").read_bytes())
    code = main(
        ["ope", "--logs", str(logs), "--policy", "random", "--out", str(tmp_path / "o"), "--bootstrap", "20"]
    )
    _one_line_error(capsys, code, str(logs), "row 3", "'reward'", "1e+308")
    assert not (tmp_path / "o").exists()


def test_a_latin1_byte_in_logs_is_named_by_line(tmp_path, capsys, small_logs):
    logs = tmp_path / "logs.csv"
    data = small_logs.read_bytes().splitlines(keepends=True)
    data[2] = data[2].replace(b",", b",\xe9", 1)
    logs.write_bytes(b"".join(data))
    code = main(["ope", "--logs", str(logs), "--policy", "random", "--out", str(tmp_path / "o")])
    _one_line_error(capsys, code, f"{logs}: line 3, column", "byte 0xe9 is not UTF-8")


def test_summary_json_of_a_sweep_config_holds_no_nan(tmp_path):
    from experiments.options import parse_assignments

    with pytest.raises(ValueError, match=r"--hp gamma: expected a finite number, got \.nan"):
        parse_assignments(["gamma=.nan"], "--hp")
    with pytest.raises(ValueError, match=r"--env offer_levels: expected a finite number"):
        parse_assignments(["offer_levels=[1.0, .inf]"], "--env")
    assert json.dumps(parse_assignments(["gamma=0.9"], "--hp")) == '{"gamma": 0.9}'
