"""``influmatch log``: log the matches a policy makes in the simulator, with exact propensities.

Writes the log file (``--out``, ``.csv`` or ``.parquet``; the format of :mod:`experiments.ope.logs`) and
its metadata ``<name>.json`` beside it; an existing log is replaced only with ``--overwrite`` (both files
renamed into place once complete). The policy is a run folder or an agent name, made stochastic by
:class:`experiments.ope.policies.StochasticPolicy`; the campaigns and action draws follow ``--seed``
(:func:`experiments.ope.generation.generate_logs`).

``--format minari`` writes the same campaigns as a Minari dataset instead (:mod:`experiments.datasets`):
``--out`` is then the Minari datasets root (what ``MINARI_DATASETS_PATH`` names) and the dataset is
``--out/<--dataset-id>``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

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
        "--out",
        type=output_path,
        required=True,
        help="log file to write (.csv or .parquet; new or empty); with --format minari, the Minari "
        "datasets root folder",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="csv or parquet (default: from --out's suffix), or minari: a Minari dataset (observations, "
        "actions, rewards, terminations, truncations; masks and propensities in infos)",
    )
    parser.add_argument(
        "--dataset-id",
        default=None,
        help="with --format minari: the dataset's id, [namespace/]name-v<version> "
        "(default influmatch/<agent>-seed<seed>-v0)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an earlier log (and its .json) or dataset at --out"
    )
    add_env_argument(
        parser, "environment options overriding the run folder's, e.g. n_segments=4 (repeatable)"
    )


FORMATS = ("csv", "parquet", "minari")


def run(args: argparse.Namespace) -> int:
    if args.format == "minari":
        return _run_minari(args)
    if args.dataset_id is not None:
        raise ValueError("--dataset-id: only with --format minari")
    check_suffix(args.out)
    if args.format is not None and args.out.suffix.lower() != f".{args.format}":
        raise ValueError(f"--out {args.out}: --format {args.format} writes a .{args.format} file")
    if args.out.suffix.lower() == ".parquet":
        parquet_engine(args.out, "writing")
    meta_out = metadata_path(args.out)
    for path in (args.out, meta_out):
        check_output(path, args.overwrite, folder=False)
    frame, metadata, policy, _ = _generate(args)
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


def _generate(args: argparse.Namespace) -> tuple:
    """The logs (frame, metadata with env and policy), the policy and the environment they came from."""
    from experiments.runner import DEFAULT_DYNAMICS

    source = policy_source(args.policy)
    base = dict(source.env_options)
    if "dynamics" not in base:
        # A policy named on the command line acts in the default market (v1, as every command); a run
        # folder that records no dynamics was written before v1 and played on v0 (as runner.load_run).
        base["dynamics"] = "v0" if source.run_dir is not None else DEFAULT_DYNAMICS
    env_options = {**base, **parse_env_options(args.env)}
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
    return frame, metadata, policy, env


def _run_minari(args: argparse.Namespace) -> int:
    from experiments.datasets import check_dataset_id, check_root, minari_episodes, write_minari_dataset
    from experiments.ope.logs import LoggedData

    root: Path = args.out
    if root.suffix.lower() in (".csv", ".parquet"):
        raise ValueError(
            f"--out {root}: --format minari writes a folder (the Minari datasets root), not a file"
        )
    check_output(root, overwrite=True, folder=True)  # a root may hold other datasets: only the kind
    check_root(root)
    if args.dataset_id is None:
        name = "".join(ch if ch.isalnum() or ch in "_-" else "-" for ch in Path(str(args.policy)).name)
        args.dataset_id = f"influmatch/{name}-seed{args.seed}-v0"
    dataset_id = check_dataset_id(args.dataset_id)
    if (root / dataset_id).exists() and not args.overwrite:
        raise FileExistsError(
            f"--out {root}: the Minari dataset {dataset_id} exists; choose another --dataset-id or pass --overwrite"
        )
    frame, metadata, policy, env = _generate(args)
    data = LoggedData.from_frame(frame, metadata["feature_names"], metadata["action_names"], metadata)
    episodes = minari_episodes(env, data, metadata["campaign_seeds"])
    folder = write_minari_dataset(
        root,
        dataset_id,
        episodes,
        env,
        env_options=metadata["env"],
        algorithm_name=policy.describe(),
        log_metadata=metadata,
        overwrite=args.overwrite,
    )
    print(
        f"Logged {metadata['n_decisions']:,} decisions of {args.campaigns:,} campaigns by {policy.describe()}: "
        f"mean return {metadata['mean_return']:.3f} thousand USD per campaign. "
        f"Wrote the Minari dataset {dataset_id} to {folder}; read it with MINARI_DATASETS_PATH={root} "
        f"and minari.load_dataset({dataset_id!r})."
    )
    return 0


if __name__ == "__main__":
    run_module("log")
