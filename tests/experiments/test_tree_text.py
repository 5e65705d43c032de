"""tree.txt says "if not (goal is engagement):" for a 0/1 feature, and the report still reads it."""

from __future__ import annotations

from envs.observation import observation_specs
from experiments.reporting.rules import tree_rules
from experiments.reporting.trees import parse_tree_text, plain_tree_text

RAW = """if goal is engagement < 0.1:
    if share of budget left < 0.42:
        → seg 1 · nano · tiktok · 1×  (Q=1.5)
    else:
        → wait  (Q=0.1)
else:
    if seg 0 affordable < 0.5:
        → wait  (Q=0.2)
    else:
        → seg 0 · micro · instagram · 0.8×  (Q=2)"""


def test_binary_tests_read_in_words_and_parse_to_the_same_tree():
    specs = observation_specs(2, 26)
    plain = plain_tree_text(RAW, specs)
    assert "if not (goal is engagement):" in plain and "if not (seg 0 affordable):" in plain
    assert "if share of budget left < 0.42:" in plain  # a share keeps its threshold
    raw_nodes, plain_nodes = parse_tree_text(RAW, specs=specs), parse_tree_text(plain, specs=specs)
    assert [(n.feature, n.left, n.right, n.action) for n in raw_nodes] == [
        (n.feature, n.left, n.right, n.action) for n in plain_nodes
    ]
    texts = [r.text() for r in tree_rules(plain_nodes)]
    assert texts == [r.text() for r in tree_rules(raw_nodes)]
    assert any("goal is not engagement" in t for t in texts)
