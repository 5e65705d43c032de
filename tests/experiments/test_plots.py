"""Experiment figures, CQI trees and their rules (experiments/reporting/) and the ``influmatch plot``
command (experiments/cli/plot.py)."""

from __future__ import annotations

import dataclasses
import json
import shutil
import struct

import pytest

from envs.observation import observation_specs
from experiments.cli import main
from experiments.reporting import figures, rules, trees
from tests.experiments.helpers import ACTIONS, FEATURES, cqi_tree, fabricate_run, fabricate_sweep

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(path) -> tuple[int, int]:
    """(width, height) in pixels of a PNG file; fails unless it is one."""
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and data[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    return fabricate_sweep(tmp_path_factory.mktemp("plots") / "sweep")


@pytest.mark.parametrize("kind", ["curves", "final", "tree", "tradeoff", "segments"])
def test_every_kind_of_figure_is_drawn_from_a_sweep(sweep, tmp_path, capsys, kind):
    out = tmp_path / f"{kind}.png"
    assert main(["plot", str(sweep), "--out", str(out), "--kind", kind]) == 0
    width, height = png_size(out)
    assert 800 <= width <= 8000 and 400 <= height <= 6000, (width, height)
    assert f"Wrote {out}" in capsys.readouterr().out
    if kind == "segments":  # the segment figures' reproducibility is tested in tests/matching
        assert png_size(tmp_path / "segments_profiles.png")[0] > 800
        return
    # Drawing again gives the same bytes, and nothing was written into the sweep.
    again = tmp_path / f"again_{kind}.png"
    assert main(["plot", str(sweep), "--out", str(again), "--kind", kind]) == 0
    assert again.read_bytes() == out.read_bytes()
    assert not list(sweep.glob("stats_*.csv"))


def test_curves_are_the_default_and_runs_of_several_folders_are_combined(sweep, tmp_path):
    runs = sorted((sweep / "runs").glob("ppo__*")) + sorted((sweep / "runs").glob("random__*"))
    out = tmp_path / "out" / "curves.png"  # the parent folder is created
    assert main(["plot", *map(str, runs), "--out", str(out)]) == 0
    assert png_size(out)[0] > 800
    assert main(["plot", *map(str, runs), "--out", str(tmp_path / "final.png"), "--kind", "final"]) == 0
    returns = tmp_path / "returns.png"
    assert main(["plot", str(sweep), str(runs[0]), "--out", str(returns), "--metric", "mean_return"]) == 0
    assert returns.read_bytes() != out.read_bytes()


def test_a_policy_evaluated_once_is_a_flat_line(tmp_path):
    curves = tmp_path / "curves.csv"
    curves.write_text(
        "agent,variant,metric,timesteps,n_runs,iqm,ci_low,ci_high\n"
        "oracle,default,normalized_score,0,2,1.0,0.99,1.01\n"
        "ppo,default,normalized_score,0,1,0.1,,\n"
        "ppo,default,normalized_score,500,1,0.4,,\n"
    )
    assert png_size(figures.plot_learning_curves(curves, tmp_path / "c.png"))[0] > 800
    with pytest.raises(ValueError, match="no rows of metric 'mean_return'"):
        figures.plot_learning_curves(curves, tmp_path / "r.png", metric="mean_return")


def test_a_cqi_run_folder_draws_its_tree(sweep, tmp_path):
    run = next((sweep / "runs").glob("cqi__*seed0"))
    out = tmp_path / "tree.png"
    assert main(["plot", str(run), "--out", str(out), "--kind", "tree"]) == 0
    assert png_size(out)[1] > 400
    # tree.txt alone is enough.
    only_text = tmp_path / "text_only"
    only_text.mkdir()
    shutil.copy(run / "tree.txt", only_text / "tree.txt")
    assert main(["plot", str(only_text), "--out", str(tmp_path / "t.png"), "--kind", "tree"]) == 0


def test_a_tree_of_thirty_leaves_stays_readable(tmp_path):
    model, text = cqi_tree(30, updates=20_000)
    run = tmp_path / "big"
    run.mkdir()
    (run / "model.json").write_text(model)
    (run / "tree.txt").write_text(text)
    n_leaves = sum("q" in node for node in json.loads(model)["nodes"])
    out = trees.plot_cqi_tree(run, tmp_path / "big.png")
    width, height = png_size(out)
    # One row of about 0.6 inch per leaf at 150 dpi: text keeps its size instead of shrinking.
    assert height >= 0.55 * figures.FIGURE_DPI * n_leaves
    assert width <= 16_000 and height <= 16_000


def test_model_json_and_tree_txt_give_the_same_named_tree(sweep):
    run = next((sweep / "runs").glob("cqi__*seed0"))
    from_model = trees.read_cqi_tree(run)
    from_text = trees.parse_tree_text((run / "tree.txt").read_text())
    assert len(from_model) == len(from_text)
    model_leaves = sorted((n.action, round(n.q, 2)) for n in from_model if n.is_leaf)
    text_leaves = sorted((n.action, round(n.q, 2)) for n in from_text if n.is_leaf)
    assert model_leaves == text_leaves
    assert {n.feature for n in from_model if not n.is_leaf} <= set(FEATURES)
    assert {n.action for n in from_model if n.is_leaf} <= set(ACTIONS)


SPECS = {spec.name: spec for spec in observation_specs(8, 26)}


def test_tests_and_actions_read_as_plain_language():
    names = {3: "micro · instagram · beauty"}

    def say(feature, low, high, segment_names=None):
        return rules.describe_condition(SPECS.get(feature, feature), low, high, segment_names)

    assert say("share of budget left", None, 0.4213, names) == "less than 42 % of the budget is left"
    assert say("share of budget left", 0.2, 0.4213, names) == "between 20 % and 42 % of the budget is left"
    assert say("brand is beauty", 0.5, None) == "the brand sells beauty"
    assert say("brand is beauty", None, 0.5) == "the brand does not sell beauty"
    assert say("goal is conversion", 0.5, None) == "the campaign goal is conversion"
    assert say("log10 budget", None, 4.0) == "the campaign budget is under $10k"
    assert say("month", None, 10.5) == "it is before December"
    assert say("month", 2.5, 9.5) == "it is April to October"  # months 3..9, January is 0
    assert (
        say("seg 3 hires", None, 0.5, names)
        == "no influencer of segment 3 (micro · instagram · beauty) has been hired yet"
    )
    assert say("seg 3 affordable", 0.5, None, names).startswith("some influencer of segment 3")
    assert say("x[4]", 1.5, None) == "x[4] ≥ 1.5"
    assert (
        rules.describe_action("seg 3 · micro · instagram · beauty · 1×")
        == "offer 1× list price to the best available micro · instagram · beauty influencer (segment 3)"
    )
    assert rules.describe_action("wait") == "wait a week (make no offer)"


def test_rules_merge_the_tests_on_a_path_and_mark_unreachable_leaves():
    text = (
        "if share of budget left < 0.42:\n"
        "    if share of budget left < 0.2:\n"
        "        → wait  (Q=0.1)\n"
        "    else:\n"
        "        if brand is beauty < 0.5:\n"
        "            → seg 3 · micro · instagram · beauty · 1×  (Q=1.5)\n"
        "        else:\n"
        "            if brand is beauty < 0.3:\n"
        "                → wait  (Q=0)\n"
        "            else:\n"
        "                → seg 1 · nano · tiktok · fashion · 0.8×  (Q=2)\n"
        "else:\n"
        "    → wait  (Q=0.3)\n"
    )
    found = rules.tree_rules(trees.parse_tree_text(text, specs=SPECS.values()))
    assert [r.reachable for r in found] == [True, True, False, True, True]
    assert found[1].text() == (
        "If between 20 % and 42 % of the budget is left and the brand does not sell beauty → offer 1× list price "
        "to the best available micro · instagram · beauty influencer (segment 3)"
    )
    assert found[4].text() == "If at least 42 % of the budget is left → wait a week (make no offer)"
    assert rules.tree_rules(trees.parse_tree_text("→ wait  (Q=0.5)\n"))[0].text().startswith("Always → wait")
    with pytest.raises(ValueError, match="tree.txt: line 2"):
        trees.parse_tree_text("if a < 1:\n→ wait  (Q=1)\n")
    # Without specs a test reads as it is written.
    plain = rules.tree_rules(trees.parse_tree_text(text))
    assert plain[4].text() == "If share of budget left ≥ 0.42 → wait a week (make no offer)"


def test_rules_find_features_by_their_spec_not_their_name():
    """Renaming every feature (as a new version of the env might) changes nothing in the rules: they
    are read through the features' kind, field and segment."""
    renamed = {
        name: dataclasses.replace(spec, name=f"feature {i}") for i, (name, spec) in enumerate(SPECS.items())
    }
    text = (
        "if share of budget left < 0.42:\n"
        "    if brand is beauty < 0.5:\n"
        "        → wait  (Q=0.1)\n"
        "    else:\n"
        "        if seg 3 hires < 0.5:\n"
        "            → seg 3 · micro · instagram · beauty · 1×  (Q=1.5)\n"
        "        else:\n"
        "            → wait  (Q=0)\n"
        "else:\n"
        "    → wait  (Q=0.3)\n"
    )
    original = [r.text() for r in rules.tree_rules(trees.parse_tree_text(text, specs=SPECS.values()))]
    for old, spec in renamed.items():
        text = text.replace(f"if {old} <", f"if {spec.name} <")
    assert "share of budget left" not in text
    again = [r.text() for r in rules.tree_rules(trees.parse_tree_text(text, specs=renamed.values()))]
    assert again == original
    assert "the brand sells beauty" in again[1] and "no influencer of segment 3" in again[1]


@pytest.mark.parametrize(
    ("make", "argv", "message"),
    [
        (None, ["{tmp}/nowhere", "--out", "{tmp}/x.png"], "nowhere: no such folder"),
        ("file", ["{tmp}/file.txt", "--out", "{tmp}/x.png"], "got a file"),
        ("empty", ["{tmp}/empty", "--out", "{tmp}/x.png"], "not a run folder (summary.json), a sweep folder"),
        ("sweep", ["{tmp}/sweep", "--out", "{tmp}/x.gif"], "expected a file name ending in .png, .pdf, .svg"),
        ("sweep", ["{tmp}/sweep", "{tmp}/sweep", "--out", "{tmp}/x.png", "--kind", "tree"], "draws one run"),
        ("nocqi", ["{tmp}/sweep", "--out", "{tmp}/x.png", "--kind", "tree"], "no CQI runs"),
        ("nocqi", ["{tmp}/sweep", "--out", "{tmp}/x.png", "--kind", "tradeoff"], "no CQI runs"),
        ("ppo", ["{tmp}/ppo", "--out", "{tmp}/x.png", "--kind", "tree"], "no model.json or tree.txt"),
        ("sweep", ["{tmp}/sweep", "--out", "{tmp}/x.png", "--kind", "pie"], "invalid choice: 'pie'"),
    ],
)
def test_bad_input_gives_one_line_and_exit_2(tmp_path, capsys, make, argv, message):
    if make == "file":
        (tmp_path / "file.txt").write_text("hello")
    elif make == "empty":
        (tmp_path / "empty").mkdir()
    elif make in ("sweep", "nocqi"):
        fabricate_sweep(tmp_path / "sweep", with_cqi=make == "sweep", with_segments=False)
    elif make == "ppo":
        fabricate_run(tmp_path / "ppo", "ppo", "default", 0, 0.5)
    try:
        code = main(["plot", *(a.format(tmp=tmp_path) for a in argv)])
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
