"""``influmatch ope``: estimate a policy's value from logged matches (off-policy evaluation).

Runs :func:`experiments.ope.pipeline.evaluate_logs` (estimators in :mod:`experiments.ope.estimators`),
writes ``estimates.csv``, ``breakdown.csv`` (by brand, goal, segment), ``estimates.png`` and
``summary.json`` into ``--out``, and prints the overall estimates.
"""

from __future__ import annotations

import argparse
import math

import pandas as pd

from envs.fit.likelihoods import ENGAGEMENT_CLUSTERS
from experiments.cli import run_module
from experiments.files import check_output, input_file, output_path, positive_int, seed_argument
from experiments.ope.config import OPEConfig
from experiments.ope.pipeline import evaluate_logs, write_results
from experiments.options import add_env_argument, epsilon_argument, parse_env_options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--logs", type=input_file, required=True, help="logged decisions (.csv or .parquet)")
    parser.add_argument(
        "--policy",
        required=True,
        help="target policy: run folder of a trained agent, an agent name (the heuristics included), or "
        "your own rule as module:function (observations, action masks -> action probabilities)",
    )
    parser.add_argument(
        "--allow-different-market",
        action="store_true",
        help="evaluate a policy trained in another market than the logs' (refused by default)",
    )
    parser.add_argument(
        "--epsilon",
        type=epsilon_argument,
        default=0.0,
        metavar="E|own",
        help="the target acts epsilon-greedy around its greedy action (default 0: greedy), "
        "or 'own': the agent's own action distribution",
    )
    parser.add_argument("--out", type=output_path, required=True, help="output folder (new or empty)")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier output in --out")
    parser.add_argument(
        "--truth", action="store_true", help="also compute the true value in the simulator (simulated logs)"
    )
    parser.add_argument(
        "--truth-paths",
        type=_truth_paths,
        default=4,
        metavar="N",
        help="simulated paths per logged campaign on average of the per-campaign truth (default 4; "
        "1: the logged reset seed's path only)",
    )
    parser.add_argument("--clip", type=float, default=None, help="cap on importance weights (default: none)")
    parser.add_argument("--folds", type=int, default=2, help="cross-fitting folds (default 2)")
    parser.add_argument(
        "--bootstrap", type=positive_int, default=1000, help="bootstrap resamples (default 1000)"
    )
    parser.add_argument("--confidence", type=float, default=0.95, help="interval level (default 0.95)")
    parser.add_argument(
        "--seed", type=seed_argument, default=0, help="seed of folds, models, bootstrap, truth"
    )
    parser.add_argument(
        "--n-jobs",
        type=positive_int,
        default=2,
        help="processes: with 2, fitted-Q runs beside the model-based simulation (same numbers; default 2)",
    )
    parser.add_argument(
        "--engagement-clusters",
        choices=ENGAGEMENT_CLUSTERS,
        default="independent",
        help="how the market fit's engagement block weighs one influencer's offers (as influmatch fit)",
    )
    parser.add_argument(
        "--fit-slopes",
        action="store_true",
        help="the market fit also estimates the brand-fit slopes of engagement and conversions (as influmatch fit)",
    )
    add_env_argument(
        parser,
        "environment options, overriding those of the logs' metadata (or, without one, of the run folder)",
    )


def _truth_paths(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError(f"expected a number from 1 to 64, got {text!r}")
    return value


def run(args: argparse.Namespace) -> int:
    config = OPEConfig(
        clip=args.clip,
        n_folds=args.folds,
        n_bootstrap=args.bootstrap,
        confidence=args.confidence,
        random_state=args.seed,
        engagement_clusters=args.engagement_clusters,
        fit_slopes=args.fit_slopes,
        n_jobs=args.n_jobs,
    )
    overrides = parse_env_options(args.env)
    check_output(args.out, args.overwrite, folder=True)
    result = evaluate_logs(
        args.logs, args.policy, args.epsilon, config, env_overrides=overrides, truth=args.truth,
        allow_different_market=args.allow_different_market, truth_paths=args.truth_paths,
    )  # fmt: skip
    out = write_results(result, args.out, overwrite=args.overwrite)
    data, overall, summary = result.data, result.overall, result.summary
    print(
        f"Off-policy estimates of {summary['target_policy']} from {data.n_decisions:,} decisions of "
        f"{data.n_campaigns:,} campaigns ({args.logs}), {config.confidence:.0%} bootstrap intervals over "
        "campaigns, thousands of USD:"
    )
    print(format_table(overall))
    for note in degenerate_weight_notes(overall):
        print(note)
    for scope, choice in summary.get("recommended", {}).items():
        print(f"Recommended {scope.replace('_', ' ')}: {choice['estimator']} ({choice['why']}).")
    took = summary["seconds"].get("market_fit", 0.0) + summary["seconds"]["estimation"]
    print(f"\nEstimated in {took:.1f} s. Wrote {out}/estimates.csv, breakdown.csv (by brand, goal, segment), "
          "estimates.png, summary.json")  # fmt: skip
    return 0


def degenerate_weight_notes(table: pd.DataFrame) -> list[str]:
    """A warning per scope whose importance weights have an effective sample below 1 % of the data
    (and below 10): the importance-sampling estimates of that scope are then unreliable."""
    notes = []
    for scope, unit, size in (
        ("per_decision", "decisions", "n_decisions"),
        ("per_campaign", "campaigns", "n_campaigns"),
    ):
        row = table[(table["scope"] == scope) & (table["estimator"] == "IPS")]
        if row.empty:
            continue
        ess, n = float(row["ess"].iloc[0]), int(row[size].iloc[0])
        if ess < max(10.0, 0.01 * n):
            notes.append(
                f"Note: {scope.replace('_', '-')} importance weights are degenerate (effective sample {ess:.2g} of "
                f"{n:,} {unit}): IPS and SNIPS {scope.replace('_', ' ')} are unreliable and DR leans on its model."
            )
    return notes


def format_table(table: pd.DataFrame) -> str:
    """The overall estimates as aligned text columns."""
    has_truth = "truth" in table.columns
    header = ["scope", "estimator", "estimate", "interval", "ess"]
    if "recommended" in table.columns:
        header.append("recommended")
    if has_truth:
        header += ["truth", "error", "rel. error", "covered"]
    lines: list[list[str]] = []
    for record in table.to_dict("records"):
        row = {str(key): value for key, value in record.items()}
        ess = float(row["ess"])
        cells = [
            str(row["scope"]).replace("_", " "),
            str(row["estimator"]),
            f"{row['estimate']:.4g}",
            f"[{row['low']:.4g}, {row['high']:.4g}]",
            "" if math.isnan(ess) else (f"{ess:,.0f}" if ess >= 10 else f"{ess:.2g}"),
        ]
        if "recommended" in row:
            cells.append("*" if bool(row["recommended"]) else "")
        if has_truth:
            if math.isnan(float(row["truth"])):
                cells += ["", "", "", ""]
            else:
                cells += [
                    f"{row['truth']:.4g}",
                    f"{row['error']:+.3g}",
                    f"{row['relative_error']:+.1%}",
                    "yes" if row["covered"] else "no",
                ]
        lines.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in lines)) for i, h in enumerate(header)]
    text = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    text.append("  ".join("-" * w for w in widths))
    text += ["  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip() for cells in lines]
    return "\n".join(text)


if __name__ == "__main__":
    run_module("ope")
