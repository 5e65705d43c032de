"""``influmatch train``: train one agent and write one run folder (see :mod:`experiments.runner`).

``--env KEY=VALUE`` sets an environment option and ``--hp KEY=VALUE`` an agent hyperparameter; values
are read as YAML scalars or lists (:func:`experiments.options.parse_assignments`: (``64``, ``0.3``, ``3e-4``, ``true``, ``[64, 64]``, ``null``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from experiments.cli import run_module
from experiments.files import positive_int
from experiments.options import parse_assignments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--agent", required=True, help="agent name (cqi, ppo, maskable_ppo, random, segment_3, ...)"
    )
    parser.add_argument("--timesteps", type=positive_int, required=True, help="environment steps of training")
    parser.add_argument("--seed", type=int, default=0, help="the run's seed (default 0)")
    parser.add_argument("--out", type=Path, required=True, help="run folder to write")
    parser.add_argument(
        "--env",
        action="append",
        metavar="KEY=VALUE",
        help="environment option, e.g. n_segments=6 (repeatable)",
    )
    parser.add_argument(
        "--hp",
        action="append",
        metavar="KEY=VALUE",
        help="agent hyperparameter, e.g. gamma=0.95 (repeatable)",
    )
    parser.add_argument(
        "--eval-every", type=positive_int, help="steps between evaluations (default: a tenth of --timesteps)"
    )
    parser.add_argument(
        "--eval-episodes", type=positive_int, default=100, help="evaluation campaigns (default 100)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace a finished run in --out")
    parser.add_argument("--progress", action="store_true", help="show a progress bar")


def format_summary(summary: dict, out: Path) -> str:
    """A few lines: the score, the return, the tree size for CQI, and where the files are."""
    lines = [
        f"Trained {summary['agent']} (seed {summary['seed']}) for {summary['timesteps']:,} steps "
        f"in {summary['train_seconds']:.1f} s.",
        f"Normalised score {summary['normalized_score']:.3f} (0 = random, 1 = myopic oracle); mean return "
        f"{summary['mean_return']:.2f} ± {summary['std_error']:.2f} thousand USD per campaign "
        f"(± s.e., {summary['eval_episodes']} evaluation campaigns).",
    ]
    if "n_leaves" in summary:
        lines.append(f"CQI tree: {summary['n_leaves']} leaves, depth {summary['depth']} (rules in tree.txt).")
    files = sorted(p.name for p in out.iterdir() if p.is_file())
    lines.append(f"Wrote {out}/: {', '.join(files)}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from experiments.runner import RunSpec
    from experiments.runner import run as run_spec

    spec = RunSpec(
        agent=args.agent,
        seed=args.seed,
        timesteps=args.timesteps,
        env=parse_assignments(args.env, "--env"),
        hyperparameters=parse_assignments(args.hp, "--hp"),
        eval_every=args.eval_every,
        eval_episodes=args.eval_episodes,
    )
    summary = run_spec(spec, args.out, progress_bar=args.progress, overwrite=args.overwrite)
    print(format_summary(summary, args.out))
    return 0


if __name__ == "__main__":
    run_module("train")
