"""The market-shift study (experiments/studies/market_shift.py): the shift, both arms, the tables."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from envs.calibration import Calibration
from experiments.studies import market_shift
from tests.experiments.test_plots import png_size


def test_the_shift_changes_the_engagement_vintage_and_raises_every_list_price_by_a_fifth():
    base = Calibration()
    shifted = market_shift.shifted_calibration(base)
    assert shifted.engagement_vintage == "2025" and base.engagement_vintage == "2019"
    assert shifted.price_at_10k == pytest.approx(tuple(1.2 * p for p in base.price_at_10k))
    changed = {f.name for f in dataclasses.fields(base) if getattr(base, f.name) != getattr(shifted, f.name)}
    assert changed == {"engagement_vintage", "price_at_10k"}


def test_budgets_are_validated_by_name():
    with pytest.raises(ValueError, match="post_steps"):
        market_shift.ShiftStudy(post_steps=0)


@pytest.fixture(scope="module")
def one_seed():
    study = market_shift.ShiftStudy(seeds=1, pre_steps=1000, post_steps=1000, eval_every=500, campaigns=5,
                                    n_influencers=2000)  # fmt: skip
    return pd.DataFrame(market_shift.run_seed(0, study))


def test_both_copies_start_from_the_same_tree_and_only_the_learning_one_keeps_counting(one_seed):
    after = one_seed[one_seed["market"] == "after"]
    at_shift = after[after["timesteps"] == 1000].set_index("arm")
    assert at_shift.loc["learning", "normalized_score"] == at_shift.loc["frozen", "normalized_score"]
    assert at_shift.loc["learning", "n_leaves"] == at_shift.loc["frozen", "n_leaves"]
    learning = after[after["arm"] == "learning"]
    assert list(learning["timesteps"]) == [1000, 1500, 2000]  # resumed: steps continue from the shift
    assert list(one_seed[one_seed["market"] == "before"]["timesteps"]) == [0, 500, 1000]
    frozen = after[after["arm"] == "frozen"]
    assert list(frozen["timesteps"]) == [1000, 1500, 2000] and frozen["normalized_score"].nunique() == 1
    assert (learning["campaigns"].diff().dropna() > 0).all()


def synthetic_curves() -> pd.DataFrame:
    rows = []
    for seed, (pre, frozen, learning) in enumerate([(0.7, 0.3, 0.72), (0.6, 0.2, 0.5), (0.8, 0.4, 0.79)]):
        rows += [
            {"seed": seed, "arm": "learning", "market": "before", "timesteps": 0, "normalized_score": 0.0},
            {"seed": seed, "arm": "learning", "market": "before", "timesteps": 10, "normalized_score": pre},
            {"seed": seed, "arm": "frozen", "market": "after", "timesteps": 10, "normalized_score": frozen},
            {"seed": seed, "arm": "learning", "market": "after", "timesteps": 10, "normalized_score": frozen},
            {"seed": seed, "arm": "frozen", "market": "after", "timesteps": 20, "normalized_score": frozen},
            {
                "seed": seed,
                "arm": "learning",
                "market": "after",
                "timesteps": 20,
                "normalized_score": learning,
            },
        ]
    return pd.DataFrame(rows).assign(campaigns=1, mean_return=0.0, n_leaves=3)


def test_the_claim_table_compares_each_seed_with_its_own_pre_shift_score():
    claim = market_shift.claim_table(synthetic_curves())
    assert list(claim["pre_shift"]) == [0.7, 0.6, 0.8]
    assert list(claim["regained"]) == [True, False, True]  # 0.5 < 0.6 - 0.05
    assert not claim["frozen_regained"].any()
    assert claim["learning_late"].tolist() == pytest.approx([0.72, 0.5, 0.79])  # second half: the last point
    assert claim["learning_minus_frozen"].tolist() == pytest.approx([0.42, 0.3, 0.39])


def test_the_summary_gives_an_iqm_with_an_interval_per_arm_market_and_step_and_the_figure_draws(tmp_path):
    summary = market_shift.summarize(synthetic_curves())
    assert len(summary) == 6 and (summary["n_seeds"] == 3).all()
    row = summary[
        (summary["arm"] == "learning") & (summary["market"] == "after") & (summary["timesteps"] == 20)
    ]
    assert row["iqm"].iloc[0] == pytest.approx((0.72 + 0.5 + 0.79) / 3)
    assert (summary["ci_low"] <= summary["iqm"] + 1e-12).all() and (
        summary["iqm"] <= summary["ci_high"] + 1e-12
    ).all()
    summary.to_csv(tmp_path / "summary.csv", index=False)
    width, _ = png_size(market_shift.plot_market_shift(tmp_path / "summary.csv", tmp_path / "shift.png"))
    assert width >= 800
