"""A small decision tree distilled from a stronger teacher (VIPER).

:class:`DistilledTree` follows Bastani, Pu and Solar-Lezama, "Verifiable Reinforcement Learning via
Policy Extraction" (NeurIPS 2018): DAgger-style data aggregation into a CART tree, each state weighted by
how much the teacher's choice matters there.

1. Iteration 0 plays the teacher; iteration ``i >= 1`` plays the tree fitted after iteration ``i - 1``.
   Every visited state is labelled with the teacher's action (``teacher.predict(obs,
   deterministic=True)``), so the data cover the states the *student* reaches, not only the teacher's
   (the DAgger step that keeps a student's errors from compounding).
2. Each state's weight is the teacher's Q-value gap there, ``max_a Q(s, a) - min_a Q(s, a)`` over the
   valid actions, when the teacher has Q-values (an SB3 DQN, a CQI tree, or the myopic oracle, whose
   Q-values are the hidden expected rewards); 1 otherwise. A state where every action is worth the
   same teaches nothing; one where a wrong action costs a lot dominates.
3. A CART tree (:class:`sklearn.tree.DecisionTreeClassifier`, best-first growth to at most
   ``max_leaves`` leaves) is fitted to everything gathered so far, with those weights. Each leaf acts
   on its teacher votes, or with ``leaf_values="q"`` on the teacher's mean Q-value per action over the
   leaf's states (the action worth most where one action must serve the whole leaf).
4. The tree kept is the one whose own rollouts (the next round's data) earned the highest mean
   episode return, as VIPER selects its policy (the last tree when no round finished an episode).

``learn(total_timesteps)`` counts every environment step: ``total_timesteps`` is split evenly over the
``n_iterations`` data-collection rounds (the loop, callbacks and logger are :class:`~agents.base.BaseAgent`'s;
an episode may run across a round's end, its later steps then played by the new tree). The tree acts on the observation only, so it is deployable even
when its teacher (the oracle) reads hidden truth; with ``features="season"`` it also reads three
features derived from the observation and the market's published calendar (:func:`season_features`). It respects ``action_masks``: when the leaf's choice is
not valid it takes the valid action the leaf's teacher votes favour most. Saved as JSON (no pickle).
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from agents._checks import check_int
from agents.base import BaseAgent

__all__ = ["DistilledTree", "SEASON_FEATURES", "season_features", "teacher_q_values"]

logger = logging.getLogger(__name__)

_SAVE_FORMAT = "influmatch.agents.distilled_tree"
_SAVE_VERSION = 1
_LEAF_VALUES = ("votes", "q")
_FEATURES = ("observation", "season")
#: Names of the features ``features="season"`` appends to the observation (:func:`season_features`).
SEASON_FEATURES = ("season demand now", "season best ahead / now", "months to season best")
_DAYS_PER_MONTH = 365.25 / 12


def season_spec(env: Any) -> dict[str, Any]:
    """What :func:`season_features` needs from an influmatch env: the calendar of demand by brand
    category and month (``calibration.category_month_demand``, the same table for every campaign of
    the market: a published assumption, not a campaign's hidden state), the observation indices of
    the category one-hot, the month and the share of weeks left, and the campaign length."""
    from envs.observation import find

    unwrapped = env.unwrapped
    specs = unwrapped.feature_specs
    return {
        "demand": [list(map(float, row)) for row in unwrapped.calibration.category_month_demand],
        "category": find(specs, "brand_category"),
        "month": find(specs, "month")[0],
        "weeks_left": find(specs, "weeks_left")[0],
        "campaign_weeks": int(unwrapped.campaign_weeks),
    }


def season_features(X: np.ndarray, spec: dict[str, Any]) -> np.ndarray:
    """``X`` (observations, one a row) with :data:`SEASON_FEATURES` appended, from the brand category
    one-hot, the month and the weeks left that the observation carries and the calendar ``spec``
    (:func:`season_spec`):

    * the demand for the brand's category this month (1 = the year's average);
    * the best demand of the calendar months still to come in the campaign (those that start before
      its last week) over this month's (0 when no month is left);
    * how many months ahead that best month is (0 when none is left).

    One split on the second ("wait when a month ahead is worth 20 % more") stands for many splits on
    category and month, which a tree of a few dozen leaves cannot afford."""
    X = np.asarray(X, dtype=np.float64)
    demand = np.asarray(spec["demand"], dtype=np.float64)
    one_hot = X[:, spec["category"]]
    category = one_hot.argmax(axis=1)
    month = np.clip(np.rint(X[:, spec["month"]]).astype(np.int64), 0, 11)
    weeks_left = np.rint(X[:, spec["weeks_left"]] * spec["campaign_weeks"])
    months_ahead = np.floor((weeks_left - 1) * 7 / _DAYS_PER_MONTH).astype(np.int64).clip(0, 11)
    rows = np.where(one_hot.max(axis=1) > 0, category, -1)
    table = np.where(rows[:, None] >= 0, demand[np.maximum(rows, 0)], 1.0)  # no category: flat
    now = table[np.arange(len(X)), month]
    ahead = table[np.arange(len(X))[:, None], (month[:, None] + np.arange(1, 12)) % 12]  # months 1..11 on
    ahead = np.where(np.arange(1, 12) <= months_ahead[:, None], ahead, -np.inf)
    best = ahead.max(axis=1)
    ratio = np.where(np.isfinite(best), best / now, 0.0)
    when = np.where(np.isfinite(best), ahead.argmax(axis=1) + 1, 0)
    return np.column_stack([X, now, ratio, when.astype(np.float64)])


def teacher_q_values(teacher: Any, observation: np.ndarray, env: Any) -> np.ndarray | None:
    """The teacher's Q-value of every action in the current state, or None when it has none.

    Looks, in order, for a ``q_values(observation)`` method (CQI), an SB3 ``q_net`` (DQN), and a
    teacher that reads the environment's hidden expected rewards (the myopic oracle: its Q-values are
    ``env.unwrapped.expected_rewards()``)."""
    if hasattr(teacher, "q_values"):
        return np.asarray(teacher.q_values(observation), dtype=float).reshape(-1)
    policy = getattr(teacher, "policy", None)
    q_net = getattr(policy, "q_net", None)
    if policy is not None and q_net is not None:
        import torch

        with torch.no_grad():
            obs, _ = policy.obs_to_tensor(observation)
            return q_net(obs).cpu().numpy().reshape(-1).astype(float)
    if getattr(teacher, "uses_expected_rewards", False):
        return np.asarray(env.unwrapped.expected_rewards(), dtype=float)
    return None


def _teacher_action(teacher: Any, observation: np.ndarray, mask: np.ndarray) -> int:
    """The teacher's greedy action; the valid actions are passed as ``action_masks`` when its ``predict``
    takes them (MaskablePPO, CQI, the project's policies), so a masked teacher labels valid actions."""
    try:
        parameters = inspect.signature(teacher.predict).parameters
    except (TypeError, ValueError):
        parameters = {}  # type: ignore[assignment]
    takes_masks = "action_masks" in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )
    extra = {"action_masks": mask} if takes_masks else {}
    return int(np.asarray(teacher.predict(observation, deterministic=True, **extra)[0]).reshape(-1)[0])


class DistilledTree(BaseAgent):
    """A CART tree of at most ``max_leaves`` leaves that imitates ``teacher`` (VIPER; module docstring).

    Parameters
    ----------
    env : gymnasium.Env
        The environment to collect states on (discrete actions, a flat Box observation).
    teacher : object with ``predict(observation, deterministic=True)``, a run folder or a policy name
        An SB3 model, a loaded run's agent (or its run folder), or in simulation the myopic oracle
        (``"oracle"``, the default) or the planning oracle. Teachers that read the environment's state
        (the oracles, the heuristics) are asked about the state being played.
    max_leaves : int, default 16
        Largest number of leaves (rules) of the tree.
    n_iterations : int, default 5
        Data-collection rounds (the first plays the teacher, the others the current tree).
    q_weighting : bool, default True
        Weight states by the teacher's Q-value gap where it has Q-values (VIPER); False gives plain
        DAgger with uniform weights.
    min_samples_leaf : int, default 5
        Fewest states a leaf may hold (keeps a leaf from fitting one odd state).
    leaf_values : {"votes", "q"}, default "votes"
        What a leaf acts on. ``"votes"``: the share of the (weighted) teacher choices per action, the
        leaf taking the most-voted valid action (CART's own rule). ``"q"``: the teacher's mean Q-value
        per action over the leaf's states, the leaf taking the valid action with the highest (the
        action that would have earned most, by the teacher's values, had the leaf been forced to
        one action there); it falls back to ``"votes"`` for a teacher without Q-values.
    features : {"observation", "season"}, default "observation"
        What the tree splits on: the observation, or the observation with :data:`SEASON_FEATURES`
        appended (:func:`season_features`; needs an influmatch env).
    seed : int or None
        Seed of CART's tie-breaking and of the first environment reset.

    Teachers' Q-values may hold ``-inf`` (the planning oracle's invalid actions): a state's weight is
    the gap between its finite valid values, and a leaf's ``"q"`` value of an action the mean over the
    states where that action's value is finite (``-inf`` where it never is).

    Why ``leaf_values="q"`` exists, measured (myopic-oracle teacher, 16 leaves, 100k steps, sweep
    seeds 10-12, which the benchmark does not use, 100 campaigns; load average 6-11): normalised
    scores 1.45, 0.76, 0.61 (mean 0.94) with votes and 1.80, 0.63, 0.89 (mean 1.10) with ``"q"``.
    A small tree's leaf holds states whose best actions differ; the most common best action can be
    worth less there than an action that is never the best but is good everywhere (the test
    ``test_q_leaf_values_take_the_action_worth_most_where_votes_take_the_most_common``). At the
    benchmark protocol (``trees_benchmark.yaml``: 5 seeds, 200k steps, 200 campaigns; load average
    5-9) the 16-leaf tree scored IQM 0.86 (95 % interval 0.82-0.90) with ``"q"``, higher on every
    seed than the 0.76 (0.71-0.77) it scored with votes in the previous sweep of the same protocol
    (0.86, 0.81, 0.91, 0.87, 0.85 against 0.76, 0.77, 0.76, 0.69, 0.77), and PPO's 0.81.
    """

    def __init__(
        self,
        env: gym.Env | None,
        teacher: Any = "oracle",
        *,
        max_leaves: int = 16,
        n_iterations: int = 5,
        q_weighting: bool = True,
        min_samples_leaf: int = 5,
        leaf_values: str = "votes",
        features: str = "observation",
        seed: int | None = None,
    ) -> None:
        self.env = env
        self.teacher = teacher
        self.max_leaves = check_int("max_leaves", max_leaves, 2)
        self.n_iterations = check_int("n_iterations", n_iterations, 1)
        self.q_weighting = bool(q_weighting)
        self.min_samples_leaf = check_int("min_samples_leaf", min_samples_leaf, 1)
        if leaf_values not in _LEAF_VALUES:
            raise ValueError(f"leaf_values: expected one of {_LEAF_VALUES}, got {leaf_values!r}")
        self.leaf_values = leaf_values
        if features not in _FEATURES:
            raise ValueError(f"features: expected one of {_FEATURES}, got {features!r}")
        self.features = features
        self.season_: dict[str, Any] | None = (
            season_spec(env) if features == "season" and env is not None else None
        )
        self.seed = None if seed is None else check_int("seed", seed, 0)
        self.num_timesteps = 0
        self.n_actions = int(env.action_space.n) if env is not None else 0  # type: ignore[attr-defined]
        self.n_features = int(np.prod(env.observation_space.shape)) if env is not None else 0  # type: ignore[arg-type]
        # The fitted tree, as flat arrays (sklearn's layout): -1 children mark a leaf.
        self.left_ = np.array([-1])
        self.right_ = np.array([-1])
        self.feature_ = np.array([-2])
        self.threshold_ = np.array([0.0])
        self.votes_ = np.full((1, max(self.n_actions, 1)), 1.0 / max(self.n_actions, 1))
        self.history_: list[dict[str, float]] = []
        self._init_loop(env_seed=self.seed)

    # ------------------------------------------------------------------------------- learning
    # The loop is BaseAgent's; a round ends every ``_round_steps`` steps, when the tree is refitted.
    def _on_learn_start(self) -> None:
        if self.teacher is None:
            raise ValueError("DistilledTree.learn: needs a teacher")
        if not hasattr(self.teacher, "predict"):
            from agents.registry import resolve_teacher

            assert self.env is not None
            self.teacher = resolve_teacher(self.teacher, self.env, seed=self.seed)
        steps = self._total_timesteps - self._num_timesteps_at_start
        if steps < self.n_iterations:
            raise ValueError(
                f"total_timesteps: expected at least n_iterations={self.n_iterations}, got {steps}"
            )
        self._round_steps = -(-steps // self.n_iterations)
        self._round = 0
        self._round_returns: list[float] = []
        self._running_return = 0.0
        self._best: tuple[float, dict[str, np.ndarray]] | None = None
        self._candidate: dict[str, np.ndarray] | None = None
        # One state's observation, teacher action, weight and (leaf_values="q") teacher Q-values.
        self._pending: tuple[np.ndarray, int, float, np.ndarray | None] | None = None
        self._data: tuple[list[Any], ...] = ([], [], [], [])
        self.history_ = []

    def _select_action(self, observation: np.ndarray, info: dict[str, Any]) -> int:
        assert self.env is not None
        mask = (
            np.asarray(info["action_mask"], dtype=bool)
            if "action_mask" in info
            else _mask_of(self.env, self.n_actions)
        )
        teacher_action = _teacher_action(self.teacher, observation, mask)
        weight = 1.0
        q = None
        if self.q_weighting or self.leaf_values == "q":
            q = teacher_q_values(self.teacher, observation, self.env)
        if self.q_weighting and q is not None:
            valid = q[mask] if mask.any() else q
            valid = valid[np.isfinite(valid)]
            weight = float(valid.max() - valid.min()) if valid.size else 0.0
        self._pending = (np.asarray(observation, dtype=np.float64).reshape(-1), teacher_action, weight,
                         q if self.leaf_values == "q" else None)  # fmt: skip
        if self._round == 0:
            return teacher_action
        return int(self.predict(observation, action_masks=mask)[0])

    def _process_transition(
        self,
        observation: np.ndarray,
        action: int,
        reward: float,
        next_observation: np.ndarray,
        terminated: bool,
        truncated: bool,
        info: dict[str, Any],
    ) -> None:
        assert self._pending is not None
        for column, value in zip(self._data, self._pending, strict=True):
            column.append(value)
        self._running_return += reward
        if terminated or truncated:
            self._round_returns.append(self._running_return)
            self._running_return = 0.0
        if (self.num_timesteps - self._num_timesteps_at_start) % self._round_steps == 0:
            self._end_round()

    def _end_round(self) -> None:
        """Score the tree this round played, then refit on everything gathered so far."""
        if self._candidate is not None and self._round_returns:
            score = float(np.mean(self._round_returns))
            self.history_.append(
                {"round": self._round, "mean_return": score, "n_leaves": _leaves(self._candidate)}
            )
            if self._best is None or score > self._best[0]:
                self._best = (score, self._candidate)
        self._round_returns = []
        self._candidate = self._fit()
        self._set_arrays(self._candidate)  # the next round plays this tree
        self._round += 1

    def _fit(self) -> dict[str, np.ndarray]:
        from sklearn.tree import DecisionTreeClassifier

        X, y, w = (np.asarray(column) for column in self._data[:3])
        X = self._transform(X)
        tree = DecisionTreeClassifier(
            max_leaf_nodes=self.max_leaves, min_samples_leaf=self.min_samples_leaf, random_state=self.seed
        )
        tree.fit(X, y, sample_weight=w if w.sum() > 0 else None)
        arrays = self._arrays_from(tree)
        q_rows = self._data[3]
        if self.leaf_values == "q" and q_rows and all(q is not None for q in q_rows):
            # Each leaf's mean teacher Q-value per action over the states it holds (internal nodes
            # keep their votes: only leaves act).
            # -inf (an invalid action, for the planner) counts as no value: each action's mean is
            # over the states where it has one.
            leaf = tree.apply(X)
            q_all = np.asarray(q_rows, dtype=np.float64)
            finite = np.isfinite(q_all)
            sums, counts = np.zeros_like(arrays["votes"]), np.zeros_like(arrays["votes"])
            np.add.at(sums, leaf, np.where(finite, q_all, 0.0))
            np.add.at(counts, leaf, finite.astype(np.float64))
            is_leaf = np.bincount(leaf, minlength=len(sums)) > 0
            means = np.divide(sums, counts, out=np.full_like(sums, -np.inf), where=counts > 0)
            arrays["votes"][is_leaf] = means[is_leaf]
        return arrays

    def _transform(self, X: np.ndarray) -> np.ndarray:
        """The features the tree splits on, one row per observation (``features``)."""
        if self.features == "season":
            if self.season_ is None:
                raise ValueError("DistilledTree(features='season') needs an influmatch env")
            return season_features(X, self.season_)
        return X

    def _on_learn_end(self) -> None:
        if self._candidate is None and self._data[0]:  # stopped by a callback before a round ended
            self._candidate = self._fit()
        # The best-scoring tree; with a single round (or no finished episode), the last one fitted.
        chosen = self._best[1] if self._best is not None else self._candidate
        if chosen is not None:
            self._set_arrays(chosen)

    def _arrays_from(self, tree: Any) -> dict[str, np.ndarray]:
        t = tree.tree_
        votes = np.zeros((t.node_count, self.n_actions))
        # sklearn's value holds each node's class weights (fractions in recent versions): spread them on
        # the action axis by the classes the tree saw.
        votes[:, tree.classes_.astype(int)] = t.value[:, 0, :]
        sums = votes.sum(axis=1, keepdims=True)
        votes = np.divide(votes, sums, out=np.zeros_like(votes), where=sums > 0)
        return {
            "left": t.children_left.astype(np.int64),
            "right": t.children_right.astype(np.int64),
            "feature": t.feature.astype(np.int64),
            "threshold": t.threshold.astype(np.float64),
            "votes": votes,
        }

    def _set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.left_, self.right_ = arrays["left"], arrays["right"]
        self.feature_, self.threshold_, self.votes_ = arrays["feature"], arrays["threshold"], arrays["votes"]

    # ------------------------------------------------------------------------------- acting
    def _leaf_of(self, X: np.ndarray) -> np.ndarray:
        node = np.zeros(len(X), dtype=np.int64)
        active = self.left_[node] >= 0
        while active.any():
            rows = np.flatnonzero(active)
            here = node[rows]
            # sklearn's rule: go left when x[feature] <= threshold.
            go_left = X[rows, self.feature_[here]] <= self.threshold_[here]
            node[rows] = np.where(go_left, self.left_[here], self.right_[here])
            active = self.left_[node] >= 0
        return node

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, None]:
        """The tree's action for one observation (a 0-d array) or a batch (shape ``(n,)``).

        With ``action_masks`` the leaf's best *valid* action (most votes, or with ``leaf_values="q"``
        the highest mean Q-value; ties to the lowest index)."""
        obs = np.asarray(observation, dtype=np.float64)
        single = obs.ndim == 1
        X = obs.reshape(1, -1) if single else obs.reshape(len(obs), -1)
        votes = self.action_scores(X)
        if action_masks is not None:
            mask = np.asarray(action_masks, dtype=bool).reshape(len(X), -1)
            votes = np.where(mask, votes, -np.inf)
            # A leaf with no value for any valid action (leaf_values="q"): its first valid action.
            none = ~np.isfinite(votes).any(axis=1)
            votes[none] = np.where(mask[none], 0.0, -np.inf)
        actions = votes.argmax(axis=1).astype(np.int64)
        return (actions[0] if single else actions), None

    def action_scores(self, observation: np.ndarray) -> np.ndarray:
        """What :meth:`predict` ranks the actions by at ``observation`` (its leaf's vote shares, or with
        ``leaf_values="q"`` the teacher's mean Q-values): shape ``(n_actions,)`` (``(n, n_actions)`` for
        a batch). The best valid hire by these is the tree's hire when it may not wait
        (:func:`experiments.timing.best_hire`)."""
        obs = np.asarray(observation, dtype=np.float64)
        X = obs.reshape(1, -1) if obs.ndim == 1 else obs.reshape(len(obs), -1)
        scores = self.votes_[self._leaf_of(self._transform(X))].copy()
        return scores[0] if obs.ndim == 1 else scores

    # ------------------------------------------------------------------------------- introspection
    @property
    def n_leaves(self) -> int:
        """Number of leaves (rules)."""
        return int(np.count_nonzero(self.left_ < 0))

    @property
    def depth(self) -> int:
        """Depth of the tree (0 for a single leaf)."""
        depth = np.zeros(len(self.left_), dtype=np.int64)
        for node in range(len(self.left_)):  # sklearn numbers a child after its parent
            for child in (self.left_[node], self.right_[node]):
                if child >= 0:
                    depth[child] = depth[node] + 1
        return int(depth.max())

    def export_text(
        self,
        feature_names: Sequence[str] | None = None,
        action_names: Sequence[str] | None = None,
        precision: int = 4,
    ) -> str:
        """The tree as indented if/else rules, one ``→ action  (share=...)`` line per leaf: the share of
        the (weighted) teacher choices in that leaf that the rule's action got (with
        ``leaf_values="q"``, ``(q=...)``: the teacher's mean Q-value of that action there)."""
        env = self.env.unwrapped if self.env is not None else None
        features = list(feature_names or getattr(env, "feature_names", None) or
                        [f"x[{i}]" for i in range(self.n_features)])  # fmt: skip
        if self.features == "season" and len(features) == self.n_features:
            features += list(SEASON_FEATURES)
        actions = list(action_names or getattr(env, "action_names", None) or
                       [f"action {a}" for a in range(self.n_actions)])  # fmt: skip
        lines: list[str] = []

        def walk(node: int, indent: str) -> None:
            if self.left_[node] < 0:
                a = int(self.votes_[node].argmax())
                label = "q" if self.leaf_values == "q" else "share"
                lines.append(f"{indent}→ {actions[a]}  ({label}={self.votes_[node, a]:.3g})")
                return
            # sklearn's test is x <= t; for float32 observations x < nextafter(t) reads the same, and
            # the rules say "<" like CQI's.
            lines.append(
                f"{indent}if {features[self.feature_[node]]} <= {self.threshold_[node]:.{precision}g}:"
            )
            walk(int(self.left_[node]), indent + "    ")
            lines.append(f"{indent}else:")
            walk(int(self.right_[node]), indent + "    ")

        walk(0, "")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The tree as JSON-ready builtins, nodes by id (root 0) in CQI's node layout: an internal node
        has ``feature``, ``threshold`` (go left when ``x[feature] <= threshold``), ``left`` and ``right``;
        a leaf ``q``, what ``predict`` acts on per action: the share of the teacher's weighted choices,
        or with ``leaf_values="q"`` the teacher's mean Q-value (null: none, ``-inf``)."""
        nodes = []
        for node in range(len(self.left_)):
            entry: dict[str, Any] = {"id": node}
            if self.left_[node] < 0:
                # -inf (leaf_values="q": no state of the leaf gave the action a value) as null
                entry["q"] = [float(v) if np.isfinite(v) else None for v in self.votes_[node]]
            else:
                entry.update(
                    feature=int(self.feature_[node]),
                    threshold=float(self.threshold_[node]),
                    left=int(self.left_[node]),
                    right=int(self.right_[node]),
                )
            nodes.append(entry)
        return {
            "format": _SAVE_FORMAT,
            "version": _SAVE_VERSION,
            "test": "x <= threshold",
            "params": {
                "max_leaves": self.max_leaves,
                "n_iterations": self.n_iterations,
                "q_weighting": self.q_weighting,
                "min_samples_leaf": self.min_samples_leaf,
                "leaf_values": self.leaf_values,
                **({"features": self.features} if self.features != "observation" else {}),
                "seed": self.seed,
            },
            **({"season": self.season_} if self.season_ is not None else {}),
            "teacher": self.teacher if isinstance(self.teacher, str) else type(self.teacher).__name__,
            "n_actions": self.n_actions,
            "n_features": self.n_features,
            "num_timesteps": self.num_timesteps,
            "history": self.history_,
            "nodes": nodes,
        }

    def save(self, path: str | Path) -> None:
        """Write the tree to ``path`` as JSON (no pickle)."""
        Path(path).write_text(json.dumps(self.to_dict(), allow_nan=False, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path, env: gym.Env | None = None) -> DistilledTree:
        """Read a tree written by :meth:`save` (``env`` optional; its spaces must match)."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{path}: not a distilled-tree JSON file ({err})") from err
        if not isinstance(data, dict) or data.get("format") != _SAVE_FORMAT:
            raise ValueError(f"{path}: not a saved DistilledTree (expected format {_SAVE_FORMAT!r})")
        if data.get("version") != _SAVE_VERSION:
            raise ValueError(f"{path}: unsupported DistilledTree file version {data.get('version')!r}")
        agent = cls(None, None, **data["params"])
        agent.env = env
        if agent.features == "season":
            if not isinstance(data.get("season"), dict):
                raise ValueError(f"{path}: a features='season' tree without its calendar ('season')")
            agent.season_ = data["season"]
        agent.n_actions, agent.n_features = int(data["n_actions"]), int(data["n_features"])
        if env is not None and (
            int(env.action_space.n) != agent.n_actions  # type: ignore[attr-defined]
            or int(np.prod(env.observation_space.shape)) != agent.n_features  # type: ignore[arg-type]
        ):
            raise ValueError(f"{path}: the tree's spaces do not match the env's")
        nodes = sorted(data["nodes"], key=lambda n: int(n["id"]))
        n = len(nodes)
        left, right = np.full(n, -1, np.int64), np.full(n, -1, np.int64)
        feature, threshold = np.full(n, -2, np.int64), np.zeros(n)
        votes = np.zeros((n, agent.n_actions))
        for node in nodes:
            i = int(node["id"])
            if "q" in node:
                votes[i] = [-np.inf if v is None else v for v in node["q"]]
            else:
                left[i], right[i] = int(node["left"]), int(node["right"])
                feature[i], threshold[i] = int(node["feature"]), float(node["threshold"])
        agent._set_arrays({"left": left, "right": right, "feature": feature, "threshold": threshold,
                           "votes": votes})  # fmt: skip
        agent.num_timesteps = int(data.get("num_timesteps", 0))
        agent.history_ = list(data.get("history", []))
        return agent


def _leaves(arrays: dict[str, np.ndarray]) -> float:
    return float(np.count_nonzero(arrays["left"] < 0))


def _mask_of(env: gym.Env, n_actions: int) -> np.ndarray:
    """The env's valid actions now (all of them when it has no ``action_masks``)."""
    masks = getattr(env.unwrapped, "action_masks", None)
    return np.asarray(masks(), dtype=bool) if masks is not None else np.ones(n_actions, dtype=bool)
