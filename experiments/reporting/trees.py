"""CQI trees of run folders: reading them (from ``model.json`` and ``tree.txt``) and drawing them.

A CQI run writes ``model.json`` (``CQI.to_dict``: nodes by id; an internal node tests
``x[feature] < threshold``, true going left; a leaf holds one Q-value per action) and ``tree.txt``
(``CQI.export_text``, the same tree in pre-order with feature and action names). The names come from
``tree.txt`` (or from ``config.json``'s ``feature_names`` / ``action_names``), the structure and the
numbers from ``model.json``, and each tested feature's :class:`~envs.observation.FeatureSpec` from the
run's environment options, so the tree reads in plain words (:mod:`experiments.reporting.rules`).
"""

from __future__ import annotations

import json
import math
import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from envs.observation import FeatureSpec, observation_specs  # noqa: E402
from experiments.reporting import figures  # noqa: E402
from experiments.reporting.rules import (  # noqa: E402
    action_segment,
    describe_condition,
    is_binary,
    segment_names_from,
    short_action,
    tree_rules,
)

__all__ = ["TreeNode", "parse_tree_text", "plot_cqi_tree", "read_cqi_tree", "run_feature_specs"]

# CQI writes "if F < t:" and "→ A  (Q=q)"; a distilled tree "if F <= t:" (CART's test) and "→ A  (share=s)",
# the share of the teacher's weighted choices its leaf's action got.
_LEAF_LINE = re.compile(r"^→ (.*)  \((?:Q|share)=(.*)\)$")
_TEST_LINE = re.compile(r"^if (.*) <=? ([^ ]+):$")
# A test on a 0/1 feature (a one-hot or a flag) as tree.txt writes it: "if not (goal is engagement):".
_NOT_LINE = re.compile(r"^if not \((.*)\):$")


def plain_tree_text(text: str, specs: Sequence[FeatureSpec]) -> str:
    """``export_text`` output with every test on a 0/1 feature (one-hot or flag, threshold in (0, 1])
    written as ``if not (NAME):`` instead of ``if NAME < 0.1:``; :func:`parse_tree_text` reads both."""
    binary = {spec.name for spec in specs if spec.kind in ("one_hot", "flag")}
    lines = []
    for line in text.splitlines():
        indent = line[: len(line) - len(line.lstrip())]
        test = _TEST_LINE.match(line.strip())
        if test and test.group(1) in binary:
            try:
                threshold = float(test.group(2))
            except ValueError:
                threshold = float("nan")
            if 0 < threshold <= 1:
                line = f"{indent}if not ({test.group(1)}):"
        lines.append(line)
    return "\n".join(lines)


@dataclass(frozen=True)
class TreeNode:
    """One node of a CQI tree: a test ``feature < threshold`` (yes: ``left``) or a leaf ``action``."""

    id: int
    depth: int
    feature: str | None = None
    threshold: float = math.nan
    left: int = -1
    right: int = -1
    action: str | None = None
    q: float = math.nan
    #: The typed spec of the tested feature, when the environment's specs name it.
    spec: FeatureSpec | None = None

    @property
    def is_leaf(self) -> bool:
        return self.action is not None

    @property
    def test_feature(self) -> FeatureSpec | str:
        """What the node tests: its feature's spec, or its name when it has none."""
        if self.spec is not None:
            return self.spec
        if self.feature is None:
            raise ValueError(f"node {self.id} is a leaf; it tests nothing")
        return self.feature


def parse_tree_text(
    text: str, source: str = "tree.txt", specs: Sequence[FeatureSpec] | None = None
) -> list[TreeNode]:
    """The nodes of a tree written by ``CQI.export_text`` (ids in pre-order, root 0); a tested feature
    gets the spec of ``specs`` of that name (the environment's ``feature_specs``), if any."""
    by_name = {spec.name: spec for spec in specs or ()}
    lines = [line for line in text.splitlines() if line.strip()]
    nodes: dict[int, TreeNode] = {}
    position = 0

    def parse(indent: int, depth: int) -> int:
        nonlocal position
        if position >= len(lines):
            raise ValueError(f"{source}: the tree ends early")
        line = lines[position]
        body = line[indent:]
        if line[:indent].strip() or body.startswith(" "):
            raise ValueError(f"{source}: line {position + 1}: unexpected indentation")
        node = len(nodes)
        position += 1
        leaf = _LEAF_LINE.match(body)
        if leaf:
            nodes[node] = TreeNode(node, depth, action=leaf.group(1), q=float(leaf.group(2)))
            return node
        negated = _NOT_LINE.match(body)
        test = _TEST_LINE.match(body)
        if negated:
            feature, threshold = negated.group(1), 0.5
        elif test:
            feature, threshold = test.group(1), float(test.group(2))
        else:
            raise ValueError(
                f"{source}: line {position}: expected 'if FEATURE < VALUE:' or '→ ACTION  (Q=...)'"
            )
        nodes[node] = TreeNode(node, depth)  # placeholder, keeps pre-order ids
        left = parse(indent + 4, depth + 1)
        if position >= len(lines) or lines[position] != " " * indent + "else:":
            raise ValueError(f"{source}: line {position + 1}: expected 'else:'")
        position += 1
        right = parse(indent + 4, depth + 1)
        nodes[node] = TreeNode(node, depth, feature=feature, threshold=threshold, left=left,
                               right=right, spec=by_name.get(feature))  # fmt: skip
        return node

    parse(0, 0)
    if position != len(lines):
        raise ValueError(f"{source}: line {position + 1}: text after the end of the tree")
    return [nodes[i] for i in range(len(nodes))]


def _preorder(nodes: dict[int, dict], root: int = 0) -> list[int]:
    order, stack = [], [root]
    while stack:
        node = stack.pop()
        order.append(node)
        if "left" in nodes[node]:
            stack += [nodes[node]["right"], nodes[node]["left"]]
    return order


def run_feature_specs(config: Mapping[str, Any]) -> tuple[FeatureSpec, ...]:
    """The observation specs of a run's environment, from its ``config.json`` (``env_options``, or the
    spec's ``env``; the environment's defaults where absent)."""
    from envs.matching_env import env_option_defaults

    options = config.get("env_options")
    if not isinstance(options, dict):
        spec = config.get("spec")
        options = spec.get("env") if isinstance(spec, dict) else None
    merged = {**env_option_defaults(), **(options if isinstance(options, dict) else {})}
    return observation_specs(int(merged["n_segments"]), int(merged["campaign_weeks"]))


def read_cqi_tree(run_dir: Path) -> list[TreeNode]:
    """The named tree of a CQI run folder, from ``model.json`` and ``tree.txt`` (either alone suffices).

    With ``model.json``, thresholds and Q-values are exact and the greedy action of a leaf is the argmax
    of its Q-values; names come from ``config.json`` (``feature_names``, ``action_names``) or from
    ``tree.txt`` matched node by node, else ``x[i]`` / ``action i``. Every tested feature gets its spec
    from the run's environment (:func:`run_feature_specs`). Nodes are returned by id.
    """
    run_dir = Path(run_dir)
    model_path, text_path = run_dir / "model.json", run_dir / "tree.txt"
    config_path = run_dir / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    specs = run_feature_specs(config if isinstance(config, dict) else {})
    if not model_path.is_file():
        if not text_path.is_file():
            raise FileNotFoundError(f"{run_dir}: no model.json or tree.txt (not a CQI run folder)")
        return parse_tree_text(text_path.read_text(encoding="utf-8"), str(text_path), specs)
    try:
        model = json.loads(model_path.read_text(encoding="utf-8"))
        raw = {int(n["id"]): n for n in model["nodes"]}
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{model_path}: not a CQI model file ({type(err).__name__}: {err})") from None
    if 0 not in raw:
        raise ValueError(f"{model_path}: the tree has no root node 0")
    feature_names: dict[int, str] = {}
    action_names: dict[int, str] = {}
    if isinstance(config.get("feature_names"), list):
        feature_names = dict(enumerate(map(str, config["feature_names"])))
    if isinstance(config.get("action_names"), list):
        action_names = dict(enumerate(map(str, config["action_names"])))
    greedy = {i: int(np.argmax([float(v) for v in n["q"]])) for i, n in raw.items() if "q" in n}
    if text_path.is_file() and not (feature_names and action_names):
        named = parse_tree_text(text_path.read_text(encoding="utf-8"), str(text_path))
        order = _preorder(raw)
        if len(named) != len(order) or any(
            t.is_leaf != ("q" in raw[i]) for t, i in zip(named, order, strict=True)
        ):
            raise ValueError(f"{text_path}: does not describe the tree of {model_path.name}")
        for text_node, i in zip(named, order, strict=True):
            if text_node.action is not None:
                action_names.setdefault(greedy[i], text_node.action)
            elif text_node.feature is not None:
                feature_names.setdefault(int(raw[i]["feature"]), text_node.feature)
    by_name = {spec.name: spec for spec in specs}
    nodes = []
    for i in sorted(raw):
        n = raw[i]
        depth = int(n.get("depth", 0))
        if "q" in n:
            q = [float(v) for v in n["q"]]
            a = greedy[i]
            nodes.append(TreeNode(i, depth, action=action_names.get(a, f"action {a}"), q=q[a]))
        else:
            f = int(n["feature"])
            name = feature_names.get(f, f"x[{f}]")
            nodes.append(
                TreeNode(
                    i,
                    depth,
                    feature=name,
                    threshold=float(n["threshold"]),
                    left=int(n["left"]),
                    right=int(n["right"]),
                    spec=by_name.get(name),
                )
            )
    return nodes


def _tree_layout(by_id: dict[int, TreeNode]) -> tuple[dict[int, tuple[float, float]], int, int]:
    """(x = depth, y = minus the row) of every node: leaves on rows top to bottom, parents centred."""
    position: dict[int, tuple[float, float]] = {}
    rows = 0

    def place(node_id: int, depth: int) -> float:
        nonlocal rows
        node = by_id[node_id]
        if node.is_leaf:
            y = -float(rows)
            rows += 1
        else:
            y = 0.5 * (place(node.left, depth + 1) + place(node.right, depth + 1))
        position[node_id] = (float(depth), y)
        return y

    place(0, 0)
    depth = int(max(x for x, _ in position.values()))
    return position, rows, depth


def plot_cqi_tree(
    run_dir: Path, out_png: Path, *, profiles_csv: Path | None = None, title: str | None = None
) -> Path:
    """The CQI tree of a run folder as a figure: questions in boxes, yes/no branches, leaves with actions.

    Drawn left to right (the root on the left, one row per leaf), which stays readable for trees of
    up to about 30 leaves. An internal node shows its test in plain words ("less than 42 % of the budget
    is left?"); a leaf shows the greedy action and its Q-value (thousands of USD); leaves no campaign can
    reach are greyed.

    Parameters
    ----------
    run_dir : path
        A CQI run folder with ``model.json`` and/or ``tree.txt`` (see :func:`read_cqi_tree`).
    out_png : path
        Figure to write.
    profiles_csv : path, optional
        Segment profiles of the *same market* as the run, for the names of segments that appear in tests
        but in no leaf's action (by default those come from the action names only).
    title : str, optional
        Title; default names the run folder.

    Returns
    -------
    Path of the figure.
    """
    nodes = read_cqi_tree(run_dir)
    by_id = {n.id: n for n in nodes}
    names = segment_names_from((n.action for n in nodes if n.action is not None), profiles_csv)
    reachable = {rule.leaf: rule.reachable for rule in tree_rules(nodes, names)}
    position, n_leaves, depth = _tree_layout(by_id)
    column, row, header = 2.9, 0.62, 1.0
    fig_width = max(8.0, column * (depth + 1) + 0.4)
    fig_height = max(3.0, row * n_leaves + header)
    fig, ax = plt.subplots(figsize=(fig_width, fig_height))
    fig.subplots_adjust(left=0.005, right=0.995, bottom=0.2 / fig_height, top=1 - header / fig_height)
    segment_colours = figures.segment_colours(max([*names, 0]) + 1)
    for node in nodes:
        x, y = position[node.id]
        if node.action is None:
            # A yes/no feature asks "does the brand sell beauty?" (yes: the right child, value 1);
            # any other asks about the left child ("less than 42 % of the budget is left?").
            feature = node.test_feature
            binary = is_binary(feature)
            question = (
                describe_condition(feature, node.threshold, None, names)
                if binary
                else describe_condition(feature, None, node.threshold, names)
            )
            words = ("no", "yes") if binary else ("yes", "no")
            for child, word in zip((node.left, node.right), words, strict=True):
                cx, cy = position[child]
                ax.plot([x, x + 0.5, x + 0.5, cx], [y, y, cy, cy], color="0.55", linewidth=0.9, zorder=1)
                ax.annotate(
                    word,
                    (x + 0.5, cy),
                    xytext=(3, 1.5),
                    textcoords="offset points",
                    fontsize=7,
                    color="0.25",
                    va="bottom",
                    zorder=2,
                )
            box = {
                "boxstyle": "round,pad=0.35",
                "facecolor": "#f2f2f2",
                "edgecolor": "0.45",
                "linewidth": 0.8,
            }
            text = textwrap.fill(question[0].upper() + question[1:] + "?", 32)
            ax.text(x, y, text, ha="center", va="center", fontsize=7.5, bbox=box, zorder=3)
            continue
        parsed = action_segment(node.action)
        colour = segment_colours[parsed[0] % len(segment_colours)] if parsed else (0.6, 0.6, 0.6)
        face: Any = 0.75 + 0.25 * np.asarray(matplotlib.colors.to_rgb(colour))  # opaque: lines stay behind
        text = f"{short_action(node.action)}\nQ = {node.q:.3g} $k"
        ink = "black"
        if not reachable.get(node.id, True):
            face, ink, text = (0.96, 0.96, 0.96, 1.0), "0.5", text + " · never reached"
        box = {"boxstyle": "round,pad=0.35", "facecolor": face, "edgecolor": colour, "linewidth": 1.1}
        ax.text(x, y, text, ha="center", va="center", fontsize=7.5, bbox=box, zorder=3, color=ink)
    ax.set_xlim(-0.55, depth + 0.6)
    ax.set_ylim(-(n_leaves - 1) - 0.55, 0.55)
    ax.axis("off")
    if title is None:
        title = f"CQI policy tree of run {Path(run_dir).resolve().name}"
    explanation = (
        "Start at the left. Each grey box asks about the current campaign week; follow 'yes' or 'no' to the "
        "action on the right. Q: the tree's estimate of the rest of the campaign's net value (thousands of USD)."
    )
    fig.suptitle(
        f"{title}: {n_leaves} leaves, depth {depth}\n" + textwrap.fill(explanation, int(fig_width * 15)),
        fontsize=9,
        y=1 - 0.1 / fig_height,
        va="top",
    )
    return figures.save_figure(fig, out_png)
