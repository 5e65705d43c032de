"""``influmatch evaluate RUN_DIR...``: re-evaluate saved models and compare them in one table.

Each run folder's model is evaluated again on the fixed evaluation campaigns of its own config (the same
market and campaigns as during its run; ``--episodes`` changes how many, the first ones staying the
same). Runs sharing a config share the evaluation environment and the reference returns.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from experiments.cli import run_module
from experiments.files import positive_int
from experiments.runner import evaluate_runs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run_dirs", nargs="+", type=Path, metavar="RUN_DIR", help="run folders (influmatch train)"
    )
    parser.add_argument(
        "--episodes", type=positive_int, help="evaluation campaigns (default: each run's own eval_episodes)"
    )


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
