"""``influmatch log``: log the matches a policy makes in the simulator, with exact propensities.

Writes the log file (``--out``, ``.csv`` or ``.parquet``; the format of :mod:`experiments.ope.logs`) and
its metadata ``<name>.json`` beside it; an existing log is replaced only with ``--overwrite`` (both files
renamed into place once complete). The policy is a run folder or an agent name, made stochastic by
:class:`experiments.ope.policies.StochasticPolicy`; the campaigns and action draws follow ``--seed``
(:func:`experiments.ope.generation.generate_logs`).
"""

from __future__ import annotations

import argparse

from experiments.cli import run_module
from experiments.files import check_output, output_path, positive_int, seed_argument, staged_files
from experiments.ope.generation import generate_logs
from experiments.ope.logs import check_suffix, metadata_path, parquet_engine, write_logs
from experiments.ope.policies import build_policy, make_env, policy_source
from experiments.options import add_env_argument, epsilon_argument, parse_env_options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", required=True, help="run folder of a trained agent, or an agent name")
    parser.add_argument(
        "--epsilon",
        type=epsilon_argument,
        required=True,
        metavar="E|own",
        help="epsilon-greedy around the policy's greedy action with this epsilon, "
        "or 'own': the agent's own action distribution (random, ppo, a2c, maskable_ppo, logistic_bandit)",
    )
    parser.add_argument("--campaigns", type=positive_int, required=True, help="campaigns to log")
    parser.add_argument(
        "--seed", type=seed_argument, default=0, help="seed of the campaigns and action draws"
    )
    parser.add_argument(
        "--out", type=output_path, required=True, help="log file to write (.csv or .parquet; new or empty)"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an earlier log (and its .json) at --out"
    )
    add_env_argument(
        parser, "environment options overriding the run folder's, e.g. n_segments=4 (repeatable)"
    )


def run(args: argparse.Namespace) -> int:
    check_suffix(args.out)
    if args.out.suffix.lower() == ".parquet":
        parquet_engine(args.out, "writing")
    meta_out = metadata_path(args.out)
    for path in (args.out, meta_out):
        check_output(path, args.overwrite, folder=False)
    source = policy_source(args.policy)
    env_options = {**source.env_options, **parse_env_options(args.env)}
    env = make_env(env_options)
    policy = build_policy(source, env, args.epsilon, seed=args.seed)
    frame, metadata = generate_logs(env, policy, args.campaigns, args.seed)
    metadata["env"] = env_options
    metadata["policy"] = {
        "spec": source.spec,
        "agent": source.name,
        "run_dir": None if source.run_dir is None else str(source.run_dir),
        "epsilon": "own" if args.epsilon is None else args.epsilon,
        "description": policy.describe(),
    }
    with staged_files([args.out, meta_out], args.overwrite) as tmp:
        written = write_logs(frame, tmp / args.out.name, metadata)
        if metadata_path(written).name != meta_out.name:  # pragma: no cover - one naming rule
            raise RuntimeError("the log's metadata file is not where metadata_path says")
    print(
        f"Logged {metadata['n_decisions']:,} decisions of {args.campaigns:,} campaigns by {policy.describe()}: "
        f"mean return {metadata['mean_return']:.3f} thousand USD per campaign. "
        f"Wrote {args.out} and {metadata_path(args.out).name}"
    )
    return 0


if __name__ == "__main__":
    run_module("log")
