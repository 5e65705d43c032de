"""Parameter recovery of the market fit: logs simulated from a known market, fitted, compared with the truth.

The README's recovery table is this module's output; rerun it with::

    python -m experiments.bench.recovery --out docs/market_fit_recovery.md

:func:`recovery_tables` simulates offers (:func:`envs.fit.simulate_offers`, the real environment) from
:data:`TRUTH`, a market whose acceptance intercept and offer slope, click rate and conversion rate are
moved by 25 % or more from the defaults, with a uniform and an epsilon-greedy logger, fits each
(:func:`envs.fit.fit_market`) and tabulates every parameter: estimate, standard error, 95 % interval,
truth, default, whether the interval covers the truth and whether the estimate is within 3 standard
errors of it.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from envs.calibration import Calibration
from envs.fit import fit_market, simulate_offers
from envs.fit.likelihoods import parameter_field

__all__ = ["TRUTH", "markdown", "recovery_tables"]

#: The market the logs are simulated from (defaults: -0.9, 2.0, 0.02, 0.002).
TRUTH = Calibration().replace(
    acceptance_intercept=-0.4, acceptance_offer_slope=1.0, click_rate=0.03, conversion_rate=0.003
)


def _truth(name: str) -> float:
    field, slots = parameter_field(name)
    value = getattr(TRUTH, field)
    return float(value if slots is None else value[slots[0]])


def recovery_tables(
    n_campaigns: int = 3_000, n_influencers: int = 10_000, seed: int = 21, epsilon: float = 0.3
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Fit logs of both loggers and compare with :data:`TRUTH`.

    Returns
    -------
    (pandas.DataFrame, dict)
        One row per logger and parameter (``logger, parameter, identified, estimate, std_error, ci_low,
        ci_high, truth, default, covered, within_3se, n_offers, seconds``), and the reason each
        unidentified parameter of the first logger's fit is unidentified.
    """
    rows: list[pd.DataFrame] = []
    notes: dict[str, str] = {}
    for logger in ("uniform", "epsilon_greedy"):
        offers, pool = simulate_offers(TRUTH, n_influencers, n_campaigns, logger_policy=logger,
                                       epsilon=epsilon, seed=seed)  # fmt: skip
        start = time.perf_counter()
        fit = fit_market(offers, pool)
        seconds = time.perf_counter() - start
        table = fit.parameters.copy()
        table.insert(0, "logger", logger if logger == "uniform" else f"epsilon-greedy ({epsilon:g})")
        table["truth"] = [_truth(n) for n in table["parameter"]]
        slack = 1e-9 * np.maximum(table["truth"].abs(), 1.0)
        table["covered"] = (table["ci_low"] - slack <= table["truth"]) & (
            table["truth"] <= table["ci_high"] + slack
        )
        table["within_3se"] = (table["estimate"] - table["truth"]).abs() <= 3 * table["std_error"] + slack
        table["n_offers"], table["seconds"] = len(offers), seconds
        rows.append(table)
        if not notes:
            notes = {n: fit.notes[n] for n in table.loc[~table["identified"], "parameter"]}
    return pd.concat(rows, ignore_index=True), notes


def markdown(table: pd.DataFrame, notes: dict[str, str], n_campaigns: int, n_influencers: int) -> str:
    """The tables as markdown (identified parameters per logger, then the unidentified ones and why)."""
    lines = [
        f"Logs of {n_campaigns:,} campaigns on {n_influencers:,} influencers, simulated from a market with "
        "acceptance intercept -0.4, offer slope 1.0, click rate 0.03 and conversion rate 0.003 (defaults "
        "-0.9, 2.0, 0.02, 0.002); written by `python -m experiments.bench.recovery`.",
        "",
    ]
    for logger, part in table.groupby("logger", sort=False):
        fitted = part[part["identified"]]
        lines += [
            f"**{logger} logger** ({int(part['n_offers'].iloc[0]):,} offers, fitted in "
            f"{part['seconds'].iloc[0]:.1f} s): {int(fitted['covered'].sum())} of {len(fitted)} intervals "
            f"cover the truth, {int(fitted['within_3se'].sum())} estimates within 3 s.e.",
            "",
            "| parameter | estimate | s.e. | 95 % interval | truth | default | covered |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in fitted.itertuples(index=False):
            lines.append(
                f"| `{r.parameter}` | {r.estimate:.4g} | {r.std_error:.2g} | [{r.ci_low:.4g}, {r.ci_high:.4g}] "
                f"| {r.truth:.4g} | {r.default:.4g} | {'yes' if r.covered else '**no**'} |"
            )
        lines.append("")
    lines += ["**Not identified** (kept at their defaults; the first logger's reasons):", ""]
    lines += [f"- `{name}`: {reason}" for name, reason in notes.items()]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Write the recovery tables as markdown to ``--out`` and print them."""
    parser = argparse.ArgumentParser(prog="python -m experiments.bench.recovery", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs/market_fit_recovery.md"))
    parser.add_argument("--campaigns", type=int, default=3_000)
    parser.add_argument("--influencers", type=int, default=10_000)
    args = parser.parse_args(argv)
    table, notes = recovery_tables(args.campaigns, args.influencers)
    text = markdown(table, notes, args.campaigns, args.influencers)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    table.to_csv(args.out.with_suffix(".csv"), index=False)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
