"""A decision tree in plain language: its tests and actions as a marketer would say them.

Features are read through their typed :class:`~envs.observation.FeatureSpec` (``kind``, ``field``,
``segment``, ``value``), never by parsing their names, so a renamed feature still reads the same:
``brand is beauty < 0.5`` reads "the brand does not sell beauty", ``seg 3 hires < 0.5`` reads "no
influencer of segment 3 (micro · instagram · beauty) has been hired yet". A feature without a spec
reads as ``name < value``. Actions are read from the environment's action names
(``seg 3 · NAME · 1×`` or ``wait``).

:func:`tree_rules` turns every leaf of a tree (:class:`~experiments.reporting.trees.TreeNode` list) into
a :class:`Rule`; the HTML report lists them and the tree figure asks its questions with
:func:`describe_condition`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from envs.observation import FeatureSpec

if TYPE_CHECKING:  # the tree's nodes; trees.py draws with this module, so no import at run time
    from experiments.reporting.trees import TreeNode

__all__ = [
    "MONTHS",
    "Rule",
    "action_segment",
    "describe_action",
    "describe_condition",
    "feasible",
    "is_binary",
    "segment_names_from",
    "short_action",
    "tree_rules",
]

MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
#: An offer action's name, as ``InfluencerMatchingEnv.action_names`` writes it: segment, name, ratio.
_ACTION = re.compile(r"^seg (\d+) · (.+) · ([0-9.]+)×$")
#: The largest count a hires test is read against.
_MAX_COUNT = 10**6

Feature = FeatureSpec | str


def action_segment(action: str) -> tuple[int, str, str] | None:
    """(segment, segment name, offer ratio) of an offer action's name; None for waiting or another name."""
    match = _ACTION.match(action)
    return None if match is None else (int(match.group(1)), match.group(2), match.group(3))


def segment_names_from(actions: Iterable[str], profiles_csv: Path | None = None) -> dict[int, str]:
    """Segment index -> name, from ``profiles.csv`` and the action names (``seg 3 · NAME · 1×``)."""
    names: dict[int, str] = {}
    if profiles_csv is not None and Path(profiles_csv).is_file():
        profiles = pd.read_csv(profiles_csv)
        if {"segment", "name"} <= set(profiles.columns):
            names.update({int(s): str(n) for s, n in zip(profiles["segment"], profiles["name"], strict=True)})
    for action in actions:
        parsed = action_segment(action)
        if parsed is not None:
            names[parsed[0]] = parsed[1]
    return names


def _percent(value: float) -> str:
    return f"{100 * value:.0f} %"


def _money(dollars: float) -> str:
    if dollars >= 1e6:
        return f"${dollars / 1e6:.3g}M"
    if dollars >= 1e3:
        return f"${dollars / 1e3:.3g}k"
    return f"${dollars:.3g}"


def _segment(index: int, names: Mapping[int, str]) -> str:
    return f"segment {index} ({names[index]})" if index in names else f"segment {index}"


def _integers(low: float | None, high: float | None, smallest: int, largest: int) -> tuple[int, int]:
    """The whole numbers n in [smallest, largest] with low <= n < high: (first, last), empty if first > last."""
    first = smallest if low is None else max(smallest, math.ceil(low))
    last = largest if high is None else min(largest, math.ceil(high) - 1)
    return first, last


def is_binary(feature: Feature) -> bool:
    """Whether the feature is 0 or 1 (a one-hot member or a flag)."""
    return isinstance(feature, FeatureSpec) and feature.kind in ("one_hot", "flag")


def feasible(feature: Feature, low: float | None, high: float | None) -> bool:
    """Whether some observation has ``low <= feature < high`` (binary and whole-number features)."""
    if low is not None and high is not None and low >= high:
        return False
    if not isinstance(feature, FeatureSpec):
        return True
    if is_binary(feature):
        first, last = _integers(low, high, 0, 1)
    elif feature.kind == "month":
        first, last = _integers(low, high, 0, 11)
    elif feature.kind == "count":
        first, last = _integers(low, high, 0, _MAX_COUNT)
    else:
        return True
    return first <= last


class _Span:
    """A test ``low <= x < high`` (either bound None) worded by which bounds it has."""

    def __init__(self, low: float | None, high: float | None) -> None:
        self.low, self.high = low, high

    def words(self, fmt: Callable[[float], str], below: str, above: str, between: str) -> str:
        if self.low is None:
            assert self.high is not None
            return below.format(fmt(self.high))
        if self.high is None:
            return above.format(fmt(self.low))
        return between.format(fmt(self.low), fmt(self.high))


def _brand(spec: FeatureSpec, span: _Span, who: str) -> str:
    if span.low is not None:
        return f"the brand sells {spec.value}"
    return f"the brand does not sell {spec.value}"


def _goal(spec: FeatureSpec, span: _Span, who: str) -> str:
    if span.low is not None:
        return f"the campaign goal is {spec.value}"
    return f"the campaign goal is not {spec.value}"


def _budget_left(spec: FeatureSpec, span: _Span, who: str) -> str:
    return span.words(
        _percent,
        "less than {} of the budget is left",
        "at least {} of the budget is left",
        "between {} and {} of the budget is left",
    )


def _weeks_left(spec: FeatureSpec, span: _Span, who: str) -> str:
    return span.words(
        _percent,
        "less than {} of the campaign's weeks are left",
        "at least {} of the campaign's weeks are left",
        "between {} and {} of the campaign's weeks are left",
    )


def _budget(spec: FeatureSpec, span: _Span, who: str) -> str:
    return span.words(
        lambda v: _money(10.0**v),
        "the campaign budget is under {}",
        "the campaign budget is {} or more",
        "the campaign budget is between {} and {}",
    )


def _month(spec: FeatureSpec, span: _Span, who: str) -> str:
    first, last = _integers(span.low, span.high, 0, 11)
    if span.low is None:
        return f"it is before {MONTHS[last + 1]}" if last < 11 else "it is any month"
    if span.high is None:
        return f"it is {MONTHS[first]} or later in the year"
    return f"it is {MONTHS[first]} to {MONTHS[last]}" if first != last else f"it is {MONTHS[first]}"


def _affordable(spec: FeatureSpec, span: _Span, who: str) -> str:
    if span.low is not None:
        return f"some influencer of {who} is affordable"
    return f"no influencer of {who} is affordable"


def _hires(spec: FeatureSpec, span: _Span, who: str) -> str:
    first, last = _integers(span.low, span.high, 0, _MAX_COUNT)
    if span.high is not None and last == 0:
        return f"no influencer of {who} has been hired yet"
    if span.low is None:
        return f"at most {last} influencers of {who} have been hired"
    if span.high is None:
        return f"at least {first} influencer{'s' if first != 1 else ''} of {who} have been hired"
    return f"{first} to {last} influencers of {who} have been hired"


def _mean_load(spec: FeatureSpec, span: _Span, who: str) -> str:
    return span.words(
        lambda v: f"{v:.2g}",
        f"{who}'s mean sponsored load is below {{}} recent posts",
        f"{who}'s mean sponsored load is {{}} recent posts or more",
        f"{who}'s mean sponsored load is between {{}} and {{}} recent posts",
    )


def _value_per_dollar(spec: FeatureSpec, span: _Span, who: str) -> str:
    return span.words(
        lambda v: f"{v:.3g}",
        f"the best available influencer of {who} offers an estimated value per $ below {{}}",
        f"the best available influencer of {who} offers an estimated value per $ of {{}} or more",
        f"the best available influencer of {who} offers an estimated value per $ between {{}} and {{}}",
    )


#: How each field of the observation (:func:`envs.observation.observation_specs`) reads.
_DESCRIBE: dict[str, Callable[[FeatureSpec, _Span, str], str]] = {
    "brand_category": _brand,
    "goal": _goal,
    "budget_left": _budget_left,
    "weeks_left": _weeks_left,
    "log10_budget": _budget,
    "month": _month,
    "affordable": _affordable,
    "hires": _hires,
    "mean_load": _mean_load,
    "value_per_dollar": _value_per_dollar,
}


def describe_condition(
    feature: Feature, low: float | None, high: float | None, segment_names: Mapping[int, str] | None = None
) -> str:
    """``low <= feature < high`` (either bound may be None) in plain words, for a marketer.

    ``feature`` is a :class:`~envs.observation.FeatureSpec` of ``InfluencerMatchingEnv``'s observation
    (the brand's category, the share of budget left, a segment's hires, ...); a feature name without a
    spec (or a field this module does not know) reads as ``name < value``.
    """
    span = _Span(low, high)
    describe = _DESCRIBE.get(feature.field) if isinstance(feature, FeatureSpec) else None
    if isinstance(feature, FeatureSpec) and describe is not None:
        who = "" if feature.segment is None else _segment(feature.segment, segment_names or {})
        return describe(feature, span, who)
    name = feature.name if isinstance(feature, FeatureSpec) else feature
    return span.words(lambda v: f"{v:.4g}", f"{name} < {{}}", f"{name} ≥ {{}}", f"{{}} ≤ {name} < {{}}")


def describe_action(action: str, segment_names: Mapping[int, str] | None = None) -> str:
    """An action name (``seg 3 · micro · instagram · beauty · 1×`` or ``wait``) as an instruction."""
    if action == "wait":
        return "wait a week (make no offer)"
    parsed = action_segment(action)
    if parsed is None:
        return f"take action '{action}'"
    segment, name, ratio = parsed
    name = (segment_names or {}).get(segment, name)
    return f"offer {ratio}× list price to the best available {name} influencer (segment {segment})"


def short_action(action: str) -> str:
    """An action on two short lines, for a leaf of the tree figure."""
    if action == "wait":
        return "wait a week"
    parsed = action_segment(action)
    if parsed is None:
        return action
    return f"offer {parsed[2]}× list price to\n{parsed[1]} (seg {parsed[0]})"


@dataclass(frozen=True)
class Rule:
    """One leaf of a tree as a rule: the conditions on its path, what it does, and its Q-value."""

    leaf: int
    conditions: tuple[str, ...]
    action: str
    q: float
    reachable: bool

    def text(self) -> str:
        """``If A and B → do X``."""
        if not self.conditions:
            return f"Always → {self.action}"
        return "If " + " and ".join(self.conditions) + f" → {self.action}"


def _conditions(bounds: Mapping[Feature, list], names: Mapping[int, str]) -> tuple[str, ...]:
    """The merged tests of a leaf's path in words; when the brand's category (or the goal) is known,
    the negative tests on the other categories (goals) are dropped."""
    one_hots = {f: f.field for f in bounds if isinstance(f, FeatureSpec) and f.kind == "one_hot"}
    known = {field for f, field in one_hots.items() if bounds[f][0] is not None}
    return tuple(
        describe_condition(f, lo, hi, names)
        for f, (lo, hi) in bounds.items()
        if not (f in one_hots and lo is None and one_hots[f] in known)
    )


def tree_rules(nodes: list[TreeNode], segment_names: dict[int, str] | None = None) -> list[Rule]:
    """Every leaf of the tree as a plain-language rule, in the tree's top-to-bottom order.

    The tests on a leaf's path are merged per feature into one interval. A rule whose interval contains no
    possible value of a whole-number feature (``brand is beauty`` between 0.01 and 0.1) is marked
    ``reachable=False``. When the brand's category (or the goal) is known, the negative tests on the other
    categories (goals) are dropped.
    """
    by_id = {n.id: n for n in nodes}
    names = (
        segment_names
        if segment_names is not None
        else segment_names_from(n.action for n in nodes if n.action is not None)
    )
    rules: list[Rule] = []

    def walk(node_id: int, bounds: dict[Feature, list]) -> None:
        node = by_id[node_id]
        if node.action is not None:
            reachable = all(feasible(f, lo, hi) for f, (lo, hi) in bounds.items())
            conditions = _conditions(bounds, names)
            rules.append(Rule(node.id, conditions, describe_action(node.action, names), node.q, reachable))
            return
        feature = node.test_feature
        for child, side in ((node.left, "high"), (node.right, "low")):
            lo, hi = bounds.get(feature, [None, None])
            if side == "high":
                hi = node.threshold if hi is None else min(hi, node.threshold)
            else:
                lo = node.threshold if lo is None else max(lo, node.threshold)
            walk(child, {**bounds, feature: [lo, hi]})

    walk(0, {})
    return rules
