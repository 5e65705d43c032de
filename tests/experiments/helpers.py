"""Builders shared by the experiment tests: small environments and policies for logs, and synthetic
run and sweep folders (as experiments.runner and experiments.sweep write them) for stats, plots and the
report."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
from gymnasium import spaces

from agents.cqi import CQI
from envs.observation import find
from matching.features import CATEGORIES, PLATFORMS
from matching.profiles import segment_profiles

# ------------------------------------------------------------------------------------------- logs
ENV_OPTIONS = {"n_influencers": 2000, "n_segments": 4, "campaign_weeks": 6}
ENV_ARGS = ["--env", "n_influencers=2000", "n_segments=4", "campaign_weeks=6"]


class GreedyOnValue:
    """Offers list price to the segment whose best candidate has the highest estimated value per dollar
    (read from the observation only), or waits when nothing is affordable."""

    def __init__(self, env):
        env = env.unwrapped
        self.n_segments, self.n_levels = env.n_segments, len(env.offer_levels)
        self.value_columns = [
            find(env.feature_specs, "value_per_dollar", s)[0] for s in range(self.n_segments)
        ]
        self.wait = env.wait_action

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        obs = np.asarray(observation, dtype=np.float64)
        single = obs.ndim == 1
        obs = np.atleast_2d(obs)
        values = obs[:, self.value_columns]
        actions = values.argmax(axis=1) * self.n_levels + 1
        actions = np.where(values.max(axis=1) > 0, actions, self.wait)
        return (actions[0] if single else actions), None


# ------------------------------------------------------------------------------------ synthetic sweeps

FEATURES = [
    "brand is beauty",
    "goal is conversion",
    "log10 budget",
    "share of budget left",
    "month",
    "seg 0 value per $",
    "seg 0 hires",
    "seg 1 affordable",
]
ACTIONS = ["seg 0 · micro · instagram · beauty · 1×", "seg 1 · nano · tiktok · fashion · 0.8×", "wait"]

#: Final normalised scores of the synthetic sweep's runs, per (agent, variant), one per seed 0, 1, 2.
SCORES = {
    ("cqi", "split_threshold=0.3"): (0.72, 0.75, 0.70),
    ("cqi", "split_threshold=3"): (0.55, 0.60, 0.50),
    ("ppo", "default"): (0.60, 0.66, 0.58),
    ("random", "default"): (0.01, -0.02, 0.0),
    ("oracle", "default"): (1.0, 0.98, 1.02),
}
BEST_DEPLOYABLE = "cqi (split_threshold=0.3)"
EVAL_STEPS = (0, 1000, 2000, 3000)


class TinyMarket(gym.Env):
    """A stand-in for InfluencerMatchingEnv with a few of its feature and action names."""

    def __init__(self) -> None:
        low = np.array([0, 0, 3, 0, 0, 0, 0, 0], np.float32)
        high = np.array([1, 1, 8, 1, 11, 10, 26, 1], np.float32)
        self.observation_space = spaces.Box(low, high, dtype=np.float32)
        self.action_space = spaces.Discrete(len(ACTIONS))
        self.feature_names, self.action_names = FEATURES, ACTIONS

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, True, False, {}


@functools.cache
def cqi_tree(max_leaves: int, updates: int = 4000) -> tuple[str, str]:
    """(model.json text, tree.txt text) of a small CQI tree learned from a synthetic payoff."""
    env = TinyMarket()
    agent = CQI(
        env,
        learning_rate=0.1,
        split_threshold=0.01,
        split_threshold_decay=0.99,
        visit_decay=0.99,
        max_leaves=max_leaves,
        split_rule="paper",  # the synthetic trees the report tests read were grown by the paper's rule
        seed=0,
    )
    rng = np.random.default_rng(0)
    low, high = env.observation_space.low, env.observation_space.high
    for _ in range(updates):
        x = rng.uniform(low, high)
        x[[0, 1, 7]] = rng.random(3) < 0.5
        x[6] = rng.integers(0, 4)
        payoff = [1.0, 0.2, 0.0] if x[3] < 0.4 else [0.2, 1.0, 0.0] if x[0] > 0.5 else [0.0, 0.3, 0.5]
        a = int(rng.integers(3))
        agent.update(x, a, payoff[a] + 0.1 * rng.standard_normal(), x, True)
    return json.dumps(agent.to_dict(include_candidates=False)), agent.export_text() + "\n"


def _write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def fabricate_run(folder: Path, agent: str, variant: str, seed: int, score: float, env=None) -> dict:
    """A run folder as experiments.runner writes it; returns its results.csv row."""
    folder.mkdir(parents=True)
    learns = agent not in ("random", "oracle")
    hyper = {}
    if agent == "cqi":
        hyper["split_threshold"] = float(variant.split("=")[1])
    env = {"n_influencers": 500, "n_segments": 2} if env is None else env
    _write_json(
        folder / "config.json",
        {
            "format": "influmatch.run",
            "spec": {"agent": agent, "seed": seed, "timesteps": 3000, "env": env, "hyperparameters": hyper},
            "env_options": env,
        },
    )
    steps = np.asarray(EVAL_STEPS, dtype=float)
    ramp = np.minimum(1.0, steps / steps[-1] + 0.1 * seed) if learns else np.ones_like(steps)
    curve = score * ramp
    pd.DataFrame(
        {
            "timesteps": steps.astype(int),
            "mean_return": 2.0 * curve,
            "std_return": 1.0,
            "std_error": 0.1,
            "normalized_score": curve,
            "eval_seconds": 0.5,
        }
    ).to_csv(folder / "eval.csv", index=False)
    progress = pd.DataFrame(
        {
            "timesteps": steps.astype(int),
            "episodes": steps // 26,
            "mean_return": 1.5 * curve,
            "train_seconds": steps / 100,
        }
    )
    summary = {
        "agent": agent,
        "seed": seed,
        "timesteps": 3000,
        "mean_return": 2.0 * score,
        "std_return": 1.0,
        "std_error": 0.1,
        "normalized_score": score,
        "train_seconds": 30.0 if learns else 0.1,
    }
    if agent == "cqi":
        model, text = cqi_tree(4 if "0.3" in variant else 3)
        (folder / "model.json").write_text(model)
        (folder / "tree.txt").write_text(text)
        tree = json.loads(model)
        n_leaves = sum("q" in n for n in tree["nodes"])
        summary.update(n_leaves=n_leaves + seed, depth=max(n["depth"] for n in tree["nodes"]))
        progress["n_leaves"] = n_leaves
    progress.to_csv(folder / "progress.csv", index=False)
    _write_json(folder / "summary.json", summary)
    return {"run_id": folder.name, "variant": variant, **summary}


def fabricate_segments(folder: Path, n_segments: int = 3, n: int = 300) -> None:
    """``labels.csv`` (with pc1, pc2) and ``profiles.csv`` as the segment command writes them."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, n_segments, size=n)
    frame = pd.DataFrame(
        {
            "influencer_id": [f"i{j:04d}" for j in range(n)],
            "platform": np.asarray(PLATFORMS, dtype=object)[labels % len(PLATFORMS)],
            "followers": np.round(10 ** (3 + labels + rng.random(n))).astype(int),
            "engagement_rate": 0.01 + 0.02 * rng.random(n),
            "primary_category": np.asarray(CATEGORIES, dtype=object)[labels],
            "price": 10 ** (1 + labels + rng.random(n)),
        }
    )
    folder.mkdir(parents=True)
    segment_profiles(frame, labels).to_csv(folder / "profiles.csv", index=False)
    pd.DataFrame(
        {
            "influencer_id": frame["influencer_id"],
            "segment": labels,
            "pc1": labels + rng.normal(0, 0.3, n),
            "pc2": rng.normal(0, 1, n),
        }
    ).to_csv(folder / "labels.csv", index=False, float_format="%.6g")


def fabricate_sweep(root: Path, *, with_cqi: bool = True, with_segments: bool = True) -> Path:
    """A finished sweep folder: sweep.yaml, runs/<run_id>/ (5 methods x 3 seeds), results.csv, segments/."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "sweep.yaml").write_text(
        "name: synthetic\nquestion: Which match policy should we ship?\ntimesteps: 3000\nseeds: 3\n"
        "eval: {every: 1000, episodes: 20}\nagents:\n  cqi: {grid: {split_threshold: [0.3, 3]}}\n"
        "  ppo: {}\n  random: {}\n  oracle: {}\n"
    )
    rows = []
    for (agent, variant), scores in SCORES.items():
        if agent == "cqi" and not with_cqi:
            continue
        for seed, score in enumerate(scores):
            run_id = f"{agent}__{variant}__seed{seed}"
            rows.append(fabricate_run(root / "runs" / run_id, agent, variant, seed, score))
    pd.DataFrame(rows).to_csv(root / "results.csv", index=False)
    if with_segments:
        fabricate_segments(root / "segments")
    return root
