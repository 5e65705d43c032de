"""``influmatch evaluate RUN_DIR...``: re-evaluate saved models and compare them in one table.

Each run folder's model is evaluated again on the fixed evaluation campaigns of its own config (the same
market and campaigns as during its run; ``--episodes`` changes how many, the first ones staying the
same). Runs sharing a config share the evaluation environment and the reference returns.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from experiments.cli import run_module
from experiments.files import positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run_dirs", nargs="+", type=Path, metavar="RUN_DIR", help="run folders (influmatch train)"
    )
    parser.add_argument(
        "--episodes", type=positive_int, help="evaluation campaigns (default: each run's own eval_episodes)"
    )


def evaluate_runs(run_dirs: list[Path], episodes: int | None = None) -> list[dict]:
    """One row per run folder: agent, seed, timesteps, and the fresh evaluation."""
    from agents.registry import load_agent
    from experiments.evaluation import Evaluator
    from experiments.runner import load_run, make_env

    runs = [(Path(d), load_run(d)) for d in run_dirs]  # every folder is checked before any work
    envs: dict[str, object] = {}
    evaluators: dict[tuple, Evaluator] = {}
    rows = []
    for run_dir, info in runs:
        spec, config = info["spec"], info["config"]
        env_key = json.dumps(config["env_options"], sort_keys=True)
        if env_key not in envs:
            envs[env_key] = make_env(spec)
        n_episodes = episodes or spec.eval_episodes
        key = (env_key, config["seeds"]["eval_seed"], n_episodes)
        if key not in evaluators:
            evaluators[key] = Evaluator(envs[env_key], config["seeds"]["eval_seed"], n_episodes)
        agent = load_agent(spec.agent, run_dir / config["model_file"])
        result = evaluators[key].evaluate(agent)
        rows.append(
            {
                "run": str(run_dir),
                "agent": spec.agent,
                "seed": spec.seed,
                "timesteps": info["summary"].get("timesteps", spec.timesteps),
                **result.to_dict(include_returns=False),
            }
        )
    return rows


def format_table(rows: list[dict]) -> str:
    """The rows as an aligned text table."""
    header = ("run", "agent", "seed", "timesteps", "mean return (k$) ± s.e.", "normalised score", "episodes")
    cells = [
        (
            r["run"],
            r["agent"],
            str(r["seed"]),
            f"{r['timesteps']:,}",
            f"{r['mean_return']:.2f} ± {r['std_error']:.2f}",
            f"{r['normalized_score']:.3f}",
            str(r["eval_episodes"]),
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    rows = evaluate_runs(args.run_dirs, args.episodes)
    print(format_table(rows))
    print("\nNormalised score: 0 = random policy, 1 = myopic oracle (reads hidden truth), same campaigns.")
    return 0


if __name__ == "__main__":
    run_module("evaluate")
