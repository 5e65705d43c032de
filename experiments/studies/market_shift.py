"""Continual updating when the market shifts: a CQI that keeps learning against a frozen copy.

``python -m experiments.studies.market_shift --out runs/market_shift [--seeds 5] [--pre-steps 50000]
[--post-steps 50000] [--eval-every 10000] [--campaigns 50]``

Per seed (``experiments.market.seed_ints``: the market, the agent and the evaluation campaigns):

1. CQI (the ``"lcb"`` split rule with :data:`CQI_SETTINGS`: sample-mean steps and gamma 0, the
   settings ``trees_benchmark`` had before it added ``optimism``, see :class:`agents.CQI`) learns on ``InfluencerMatching-v1`` for
   ``--pre-steps`` environment steps (one step = one campaign week; the campaigns it saw are counted).
2. The market shifts (:func:`shifted_calibration`): engagement falls to the 2025-26 vintage
   (``engagement_vintage="2025"``: Instagram about 1 % at 10k followers instead of about 2.6 %) and every
   list price rises by 20 % (``price_at_10k`` x 1.2). Same market seed, so the same draws of the
   population under the new calibration; the observation and action spaces are unchanged.
3. The agent is saved as JSON and loaded twice on the shifted market: the *learning* copy continues
   (``learn(post_steps, reset_num_timesteps=False)``, what ``influmatch train --resume`` does: its
   exploration schedule restarts over the new budget, the tree and every leaf's statistics are kept);
   the *frozen* copy is the same tree and never learns.
4. Both are evaluated greedily on the same fixed campaigns of each market; the normalised score uses
   that market's own references (0 = random policy, 1 = myopic oracle on the same campaigns), so a
   market where every policy earns less is not counted against the policy. The frozen copy is
   deterministic on fixed campaigns, so it is evaluated once after the shift and that score holds at
   every later step.

Writes ``curves.csv`` (one row per seed, arm, market and evaluation: ``timesteps`` counted from the
start, ``campaigns`` trained on, ``normalized_score``, ``mean_return`` in thousands of USD per campaign,
``n_leaves``), ``summary.csv`` (per arm and timestep, IQM over seeds with a 95 % bootstrap interval, as
:func:`experiments.stats.learning_curves`), ``claim.csv`` (per seed: the pre-shift score on the old
market, the frozen and the learning copies' final scores on the new one) and the figure
``market_shift.png`` (redrawn from the CSVs by :func:`plot_market_shift`).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from experiments.studies import add_overwrite, refuse_existing

logger = logging.getLogger(__name__)

#: What changes at the shift: the engagement vintage and a factor on every list price.
SHIFT_VINTAGE = "2025"
SHIFT_PRICE_FACTOR = 1.2
#: How close (normalised score) to its pre-shift score the learning copy must come to have "regained" it.
REGAINED_TOLERANCE = 0.05
ARMS = ("learning", "frozen")
#: CQI's hyperparameters here: those ``experiments/configs/trees_benchmark.yaml`` had when the study's
#: figures (``docs/market_shift/``) were measured, before ``optimism`` and ``split_values`` were added.
CQI_SETTINGS: dict[str, Any] = {
    "split_threshold": 1.0,
    "gamma": 0.0,
    "learning_rate": 0.002,
    "step_size": "sample_mean",
}


@dataclasses.dataclass(frozen=True)
class ShiftStudy:
    """The budgets of the study; validated on construction (errors name the field)."""

    seeds: int = 5
    pre_steps: int = 50_000
    post_steps: int = 50_000
    eval_every: int = 10_000
    campaigns: int = 50
    n_influencers: int = 10_000

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{field.name}: expected a whole number >= 1, got {value!r}")


def shifted_calibration(base: Any) -> Any:
    """``base`` (a :class:`~envs.calibration.Calibration`) after the shift: the 2025 engagement vintage
    and list prices x :data:`SHIFT_PRICE_FACTOR`."""
    prices = tuple(SHIFT_PRICE_FACTOR * float(p) for p in base.price_at_10k)
    return base.replace(engagement_vintage=SHIFT_VINTAGE, price_at_10k=prices)


def _evaluating_callback(every: int, campaigns: list[int], record: Callable[[Any], None]) -> Any:
    """An SB3 callback that counts finished campaigns in ``campaigns[0]`` and calls ``record(agent)``
    whenever the step count is a multiple of ``every``."""
    from stable_baselines3.common.callbacks import BaseCallback

    class Evaluating(BaseCallback):
        def _on_step(self) -> bool:
            campaigns[0] += int(np.sum(self.locals["dones"]))
            if self.model.num_timesteps % every == 0:
                record(self.model)
            return True

    return Evaluating()


def run_seed(seed: int, study: ShiftStudy) -> list[dict[str, Any]]:
    """The evaluations of one seed: rows of ``curves.csv`` (see the module docstring)."""
    import gymnasium as gym

    import envs
    from agents import CQI
    from envs.calibration import Calibration
    from experiments.evaluation import Evaluator
    from experiments.market import seed_ints

    seeds = seed_ints(seed)
    options: dict[str, Any] = {"n_influencers": study.n_influencers, "market_seed": seeds["market_seed"]}
    before = gym.make(envs.ENV_ID, **options)
    after = gym.make(envs.ENV_ID, **options, calibration=shifted_calibration(Calibration()).to_dict())
    evaluators = {
        market: Evaluator(env, seeds["eval_seed"], study.campaigns, planner=False)
        for market, env in (("before", before), ("after", after))
    }
    rows: list[dict[str, Any]] = []
    campaigns = [0]  # finished training campaigns, both phases

    def record(agent: Any, arm: str, market: str) -> None:
        result = evaluators[market].evaluate(agent)
        rows.append({"seed": seed, "arm": arm, "market": market, "timesteps": int(agent.num_timesteps),
                     "campaigns": campaigns[0], "normalized_score": result.normalized_score,
                     "mean_return": result.mean_return, "n_leaves": int(agent.n_leaves)})  # fmt: skip

    def learn(agent: Any, steps: int, arm: str, market: str, *, resume: bool) -> None:
        callback = _evaluating_callback(study.eval_every, campaigns, lambda a: record(a, arm, market))
        agent.learn(steps, callback=callback, reset_num_timesteps=not resume)
        if agent.num_timesteps % study.eval_every:
            record(agent, arm, market)

    agent = CQI(before, seed=seeds["agent_seed"], **CQI_SETTINGS)
    record(agent, "learning", "before")
    learn(agent, study.pre_steps, "learning", "before", resume=False)
    with tempfile.TemporaryDirectory(prefix="influmatch-shift-") as tmp:
        path = Path(tmp) / "model.json"
        agent.save(path)
        learning, frozen = CQI.load(path, env=after), CQI.load(path, env=after)
    record(frozen, "frozen", "after")
    frozen_row = rows[-1]
    record(learning, "learning", "after")
    learn(learning, study.post_steps, "learning", "after", resume=True)
    shift = frozen_row["timesteps"]
    for row in [
        r for r in rows if r["arm"] == "learning" and r["market"] == "after" and r["timesteps"] > shift
    ]:
        rows.append({**frozen_row, "timesteps": row["timesteps"], "campaigns": row["campaigns"]})
    before.close()
    after.close()
    return rows


def summarize(curves: pd.DataFrame) -> pd.DataFrame:
    """IQM over seeds with a 95 % percentile bootstrap interval per (arm, market, timesteps), by
    :func:`experiments.stats.final_scores` (its seeded bootstrap) at every evaluation step."""
    from experiments.stats import CURVE_RESAMPLES, final_scores

    pieces = []
    for steps, group in curves.groupby("timesteps", sort=True):
        runs = group.assign(agent=group["arm"], variant=group["market"])
        final = final_scores(runs, n_resamples=CURVE_RESAMPLES)
        campaigns = group.groupby(["arm", "market"])["campaigns"].mean()
        keys = list(zip(final["agent"], final["variant"], strict=True))
        piece = final[["agent", "variant", "n_runs", "iqm", "ci_low", "ci_high", "n_leaves"]].rename(
            columns={"agent": "arm", "variant": "market", "n_runs": "n_seeds"}
        )
        pieces.append(piece.assign(timesteps=steps, campaigns=[campaigns[key] for key in keys]))
    return pd.concat(pieces, ignore_index=True).sort_values(["arm", "market", "timesteps"], ignore_index=True)


def claim_table(curves: pd.DataFrame) -> pd.DataFrame:
    """Per seed: ``pre_shift`` (last score on the old market), ``frozen`` and ``learning`` (final scores on
    the new market), ``learning_late`` (the learning copy's mean over the second half of its post-shift
    evaluations: one CQI evaluation swings by tenths from one to the next), and ``regained`` /
    ``frozen_regained`` (final score >= pre_shift - :data:`REGAINED_TOLERANCE`)."""
    rows = []
    for seed, group in curves.groupby("seed", sort=True):
        assert isinstance(seed, (int, np.integer))
        before = group[group["market"] == "before"].sort_values("timesteps")
        after = group[group["market"] == "after"].sort_values("timesteps")
        pre = float(before["normalized_score"].iloc[-1])
        frozen = float(after[after["arm"] == "frozen"]["normalized_score"].iloc[-1])
        scores = after[after["arm"] == "learning"]["normalized_score"].to_numpy(dtype=float)
        learning = float(scores[-1])
        rows.append({"seed": seed, "pre_shift": pre, "frozen": frozen, "learning": learning,
                     "learning_late": float(scores[len(scores) // 2 :].mean()),
                     "learning_minus_frozen": learning - frozen,
                     "regained": learning >= pre - REGAINED_TOLERANCE,
                     "frozen_regained": frozen >= pre - REGAINED_TOLERANCE})  # fmt: skip
    return pd.DataFrame(rows)


def plot_market_shift(summary_csv: Path, out_png: Path) -> Path:
    """The learning curves before and after the shift, both arms, IQM over seeds with 95 % bands."""
    from experiments.reporting.figures import _NORMALISED_AXIS, plt, save_figure

    summary = pd.read_csv(summary_csv)
    fig, ax = plt.subplots(figsize=(9.0, 5.2), layout="constrained")
    styles = {("learning", "before"): ("#1f77b4", "-", "CQI before the shift (old market)"),
              ("learning", "after"): ("#1f77b4", "--", "CQI that keeps learning (new market)"),
              ("frozen", "after"): ("#d62728", ":", "frozen copy, same tree (new market)")}  # fmt: skip
    for (arm, market), (colour, style, label) in styles.items():
        part = summary[(summary["arm"] == arm) & (summary["market"] == market)].sort_values("timesteps")
        if part.empty:
            continue
        ax.plot(
            part["timesteps"],
            part["iqm"],
            color=colour,
            linestyle=style,
            marker="o",
            markersize=3,
            label=label,
        )
        ax.fill_between(
            part["timesteps"], part["ci_low"], part["ci_high"], color=colour, alpha=0.15, linewidth=0
        )
    shift = summary[summary["market"] == "after"]["timesteps"].min()
    ax.axvline(shift, color="0.3", linewidth=1.0)
    ax.text(
        shift, 0.02, " market shift", color="0.3", fontsize=9, va="bottom", transform=ax.get_xaxis_transform()
    )
    n_seeds = int(summary["n_seeds"].max())
    ax.set_xlabel("environment steps (one step = one campaign week)")
    ax.set_ylabel(_NORMALISED_AXIS + "\non each market's own references")
    ax.set_title(
        f"Market shift (engagement to the {SHIFT_VINTAGE} vintage, list prices x{SHIFT_PRICE_FACTOR:g}): "
        f"IQM over {n_seeds} seeds, 95 % intervals",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return save_figure(fig, out_png)


def run(out: Path, study: ShiftStudy) -> pd.DataFrame:
    """Run every seed, write the CSVs and the figure into ``out``; returns :func:`claim_table`."""
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for seed in range(study.seeds):
        rows += run_seed(seed, study)
        logger.info("seed %d done", seed)
        curves = pd.DataFrame(rows)
        curves.to_csv(out / "curves.csv", index=False, float_format="%.6g")  # after every seed
    summary = summarize(curves)
    summary.to_csv(out / "summary.csv", index=False, float_format="%.6g")
    claim = claim_table(curves)
    claim.to_csv(out / "claim.csv", index=False, float_format="%.6g")
    plot_market_shift(out / "summary.csv", out / "market_shift.png")
    return claim


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/market_shift"))
    defaults = ShiftStudy()
    for field in dataclasses.fields(ShiftStudy):
        flag = "--" + field.name.replace("_", "-")
        parser.add_argument(flag, type=int, default=getattr(defaults, field.name))
    add_overwrite(parser)
    args = parser.parse_args()
    refuse_existing(parser, args.out, ["curves.csv", "summary.csv", "claim.csv"], args.overwrite)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    study = ShiftStudy(**{f.name: getattr(args, f.name) for f in dataclasses.fields(ShiftStudy)})
    claim = run(args.out, study)
    print(claim.to_string(index=False))
    print(f"regained (within {REGAINED_TOLERANCE}): learning {int(claim['regained'].sum())}/{len(claim)}, "
          f"frozen {int(claim['frozen_regained'].sum())}/{len(claim)}")  # fmt: skip


if __name__ == "__main__":
    main()
