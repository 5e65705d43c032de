"""experiments.strict_yaml: duplicate keys and alias bombs refused, merges and plain YAML kept."""

from __future__ import annotations

import time

import pytest
import yaml

from experiments.strict_yaml import MAX_BYTES, YAMLInputError, load_yaml, read_yaml


def test_plain_yaml_and_merge_overrides_read_as_pyyaml_reads_them():
    text = "base: &b {x: 1, y: 2}\nrun:\n  <<: *b\n  x: 3\nlist: [1, 2.5, null, true]\n"
    assert (
        load_yaml(text)
        == yaml.safe_load(text)
        == {
            "base": {"x": 1, "y": 2},
            "run": {"x": 3, "y": 2},
            "list": [1, 2.5, None, True],
        }
    )
    assert load_yaml("") is None


@pytest.mark.parametrize(
    "text, message",
    [
        ("a: 1\nb: 2\na: 3\n", r"cfg: line 3: key 'a' appears twice in one mapping \(first at line 1\)"),
        ("agents:\n  ppo: {}\n  ppo: {}\n", r"line 3: key 'ppo' appears twice"),
        ("x: {k: 1, k: 2}\n", r"line 1: key 'k' appears twice"),
    ],
)
def test_duplicate_keys_are_refused_naming_both_lines(text, message):
    assert isinstance(yaml.safe_load(text), dict)  # PyYAML keeps the last one silently
    with pytest.raises(YAMLInputError, match=message):
        load_yaml(text, "cfg")


def test_alias_bombs_are_refused_quickly():
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    start = time.perf_counter()
    with pytest.raises(YAMLInputError, match="bomb: its aliases expand to more than"):
        load_yaml("\n".join(lines), "bomb")
    assert time.perf_counter() - start < 1.0


def test_files_too_big_or_not_utf8_are_named(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (MAX_BYTES + 1))
    with pytest.raises(ValueError, match=r"big.yaml: 1,000,001 bytes"):
        read_yaml(big)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("a: 1\nb: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin.yaml: line 2, column 7: byte 0xe9 is not UTF-8"):
        read_yaml(latin)
