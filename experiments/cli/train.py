"""``influmatch train``: train one agent and write one run folder (see :mod:`experiments.runner`).

``--env KEY=VALUE`` sets an environment option and ``--hp KEY=VALUE`` an agent hyperparameter; values
are read as YAML scalars or lists (:func:`experiments.options.parse_assignments`: (``64``, ``0.3``, ``3e-4``, ``true``, ``[64, 64]``, ``null``).

``--resume RUN_DIR --timesteps N --out NEW_DIR`` (instead of ``--agent``) continues a saved CQI, bandit
or SB3 model for N more steps on the parent's market, changed by ``--env`` and ``--calibration FILE``
(:func:`experiments.runner.resume`); the new folder records its parent.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from experiments.cli import run_module
from experiments.files import input_file, output_path, positive_int, seed_argument
from experiments.options import (
    add_assignment_argument,
    add_env_argument,
    add_progress_argument,
    parse_assignments,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--agent", help="agent name (cqi, ppo, maskable_ppo, random, segment_3, ...)")
    which.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_DIR",
        help="continue the saved model of a CQI, bandit or SB3 run folder (its agent, seed and market, "
        "changed by --env / --calibration) for --timesteps more steps",
    )
    parser.add_argument("--timesteps", type=positive_int, required=True, help="environment steps of training")
    parser.add_argument("--seed", type=seed_argument, default=0, help="the run's seed")
    parser.add_argument("--out", type=output_path, required=True, help="run folder to write")
    parser.add_argument(
        "--pool",
        type=input_file,
        help="your influencer CSV instead of a generated pool (the env option pool=FILE.csv)",
    )
    parser.add_argument(
        "--no-newcomers",
        action="store_true",
        help="no weekly churn: the pool stays as it is (churn_rate=0); with --pool the generated "
        "newcomers would otherwise join your influencers",
    )
    add_env_argument(parser, "environment options, e.g. n_segments=6 (repeatable)")
    parser.add_argument(
        "--calibration", type=input_file, help="calibration YAML (the env option calibration=FILE.yaml)"
    )
    add_assignment_argument(parser, "--hp", "agent hyperparameters, e.g. gamma=0.95 (repeatable)")
    parser.add_argument(
        "--eval-every", type=positive_int, help="steps between evaluations (default: a tenth of --timesteps)"
    )
    parser.add_argument(
        "--eval-episodes",
        type=positive_int,
        help="evaluation campaigns (default 100; with --resume, the parent's)",
    )
    parser.add_argument(
        "--no-planner",
        dest="planner",
        action="store_false",
        help="skip the score against the planning oracle (the costliest part of the final evaluation)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace a finished run in --out")
    parser.add_argument(
        "--tensorboard",
        type=Path,
        default=None,
        metavar="DIR",
        help="also log training scalars to TensorBoard in DIR/<agent>_seed<seed> (needs tensorboard)",
    )
    add_progress_argument(parser, default=False)


def format_summary(summary: dict, out: Path) -> str:
    """A few lines: the score, the return, the tree size for CQI, and where the files are."""
    lines = [
        f"Trained {summary['agent']} (seed {summary['seed']}) for {summary['timesteps']:,} steps "
        f"in {summary['train_seconds']:.1f} s"
        + (
            f" (plus {summary['compile_seconds']:.1f} s compiling numba kernels, once per install)."
            if summary.get("compile_seconds", 0) >= 0.05
            else "."
        ),
        f"Normalised score {summary['normalized_score']:.3f} (0 = random, 1 = myopic oracle); mean return "
        f"{summary['mean_return']:.2f} ± {summary['std_error']:.2f} thousand USD per campaign "
        f"(± s.e., {summary['eval_episodes']} evaluation campaigns).",
    ]
    vs_planner = summary.get("score_vs_planner")
    if isinstance(vs_planner, float) and vs_planner == vs_planner:  # not NaN
        lines.append(
            f"Against the planning oracle (the best policy found, hidden truth): {vs_planner:.3f} ± "
            f"{summary['score_vs_planner_se']:.3f} (0 = random, 1 = planner; optimality gap "
            f"{1 - vs_planner:.0%} of the random-to-planner span)."
        )
    if "n_leaves" in summary:
        leaves = int(summary["n_leaves"])
        lines.append(
            f"{'CQI tree' if summary['agent'] == 'cqi' else 'Tree'}: {leaves} "
            + ("leaf" if leaves == 1 else "leaves")
            + f", depth {summary['depth']} (rules in tree.txt)."
        )
    files = sorted(p.name for p in out.iterdir() if p.is_file())
    lines.append(f"Wrote {out}/: {', '.join(files)}")
    return "\n".join(lines)


def train_env_options(args: argparse.Namespace) -> dict:
    """``--env`` with ``--pool`` and ``--no-newcomers`` folded in (each may be given one way only); says
    so when a user's pool will be joined by generated newcomers."""
    from envs.matching_env import env_option_defaults

    env = parse_assignments(args.env, "--env")
    if args.pool is not None:
        if "pool" in env:
            raise ValueError("--pool: also given as --env pool=...; give it once")
        env["pool"] = str(args.pool)
    if args.no_newcomers:
        if "churn_rate" in env:
            raise ValueError("--no-newcomers: also given as --env churn_rate=...; give one")
        env["churn_rate"] = 0.0
    if args.calibration is not None:
        if "calibration" in env:
            raise ValueError("--calibration: also given as --env calibration=...; give it once")
        env["calibration"] = str(args.calibration)
    churn = env.get("churn_rate", env_option_defaults()["churn_rate"])
    if env.get("pool") is not None and churn:
        print(
            f"Note: your pool will be joined by generated newcomers as influencers churn "
            f"(churn_rate={churn:g} a week); pass --no-newcomers to keep it as it is.",
            file=sys.stderr,
        )
    return env


def run(args: argparse.Namespace) -> int:
    from experiments.runner import RunSpec
    from experiments.runner import run as run_spec

    if args.resume is not None:
        return _resume(args)
    spec = RunSpec(
        agent=args.agent,
        seed=args.seed,
        timesteps=args.timesteps,
        env=train_env_options(args),
        hyperparameters=parse_assignments(args.hp, "--hp"),
        eval_every=args.eval_every,
        eval_episodes=args.eval_episodes or 100,
        planner=args.planner,
    )
    summary = run_spec(
        spec, args.out, progress_bar=args.progress, overwrite=args.overwrite, tensorboard=args.tensorboard
    )
    print(format_summary(summary, args.out))
    return 0


def _resume(args: argparse.Namespace) -> int:
    from experiments.runner import resume

    if args.hp:
        raise ValueError("--hp: a resumed run keeps its parent's hyperparameters")
    summary = resume(args.resume, args.timesteps, args.out, env=train_env_options(args),
                     eval_every=args.eval_every, eval_episodes=args.eval_episodes,
                     progress_bar=args.progress, overwrite=args.overwrite)  # fmt: skip
    print(f"Continued {args.resume} (parent, {summary['timesteps'] - args.timesteps:,} steps).")
    print(format_summary(summary, args.out))
    return 0


if __name__ == "__main__":
    run_module("train")
