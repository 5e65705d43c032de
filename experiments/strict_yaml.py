"""Reading YAML that a user wrote: PyYAML's safe loader, stricter.

* A key given twice in one mapping is refused (PyYAML keeps the last one silently), naming both lines.
  Keys merged in with ``<<: *anchor`` may still be overridden, as YAML intends.
* Aliases may not expand a document beyond :data:`MAX_NODES` nodes (a few lines of nested aliases,
  the "billion laughs", would otherwise expand to billions of values when a config is copied).
* A file over :data:`MAX_BYTES` is refused before it is parsed, and a byte that is not UTF-8 is named
  by line and column.

Every error is a :class:`YAMLInputError` (a ``ValueError``) whose message starts with the source.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

from experiments.files import read_text, shorten

__all__ = ["MAX_BYTES", "MAX_NODES", "YAMLInputError", "load_yaml", "read_yaml"]

#: Largest YAML file read (configs and calibration overrides are a few kilobytes).
MAX_BYTES = 1_000_000
#: Most nodes a document may hold once its aliases are expanded.
MAX_NODES = 100_000

_MERGE_TAG = "tag:yaml.org,2002:merge"


class YAMLInputError(ValueError):
    """A YAML text that is not valid, or that is refused; the message names the source."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (explicit ones; merged keys may be overridden)."""

    source = "YAML"

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: SafeLoader reports it
                    continue
                if first is not None:
                    raise YAMLInputError(
                        f"{self.source}: line {line}: key '{shorten(key)}' appears twice in one mapping "
                        f"(first at line {first}); give each key once"
                    )
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _expanded_size(node: Node, memo: dict[int, int], limit: int) -> int:
    """Number of nodes of ``node`` with every alias expanded (memoised on shared nodes, capped)."""
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = limit + 1  # a node reached again while it is being counted: a recursive alias
    total = 1
    if isinstance(node, SequenceNode):
        for child in node.value:
            total += _expanded_size(child, memo, limit)
            if total > limit:
                break
    elif isinstance(node, MappingNode):
        for key_node, value_node in node.value:
            total += _expanded_size(key_node, memo, limit) + _expanded_size(value_node, memo, limit)
            if total > limit:
                break
    memo[key] = min(total, limit + 1)
    return memo[key]


def load_yaml(text: str, source: str = "YAML") -> Any:
    """Parse one YAML document strictly (see the module docstring); errors name ``source``."""
    loader = _StrictLoader(text)
    loader.source = source
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}, MAX_NODES) > MAX_NODES:
            raise YAMLInputError(
                f"{source}: its aliases expand to more than {MAX_NODES:,} values; refused "
                "(write the values out, or use fewer nested aliases)"
            )
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise YAMLInputError(f"{source}: not valid YAML{where} ({problem})") from None
    except RecursionError:
        raise YAMLInputError(f"{source}: nested too deeply to read") from None
    finally:
        loader.dispose()


def read_yaml(path: str | Path) -> Any:
    """:func:`load_yaml` of a file (a regular UTF-8 file of at most :data:`MAX_BYTES`)."""
    return load_yaml(read_text(Path(path), MAX_BYTES), source=str(path))
