"""The environment's observation, described feature by feature.

:func:`observation_specs` is the one place the observation's layout is written down: the env builds
its ``feature_names`` and ``observation_space`` bounds from it, and everything downstream (the report's
plain-language rules, the plots, the OPE breakdowns) finds a feature by its :class:`FeatureSpec`
(``kind``, ``segment``, ``field``) instead of parsing its name, so renaming a feature breaks nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from envs.calibration import CATEGORIES, GOALS

#: The kinds of feature. ``one_hot``: 1 for the member of a group that applies (``group`` names the
#: group, ``value`` the member); ``share``: a fraction in [0, 1]; ``count``: a whole number;
#: ``money``: an amount (``unit`` says which); ``flag``: 0 or 1; ``month``: 0 = January .. 11.
KINDS: tuple[str, ...] = ("one_hot", "share", "count", "money", "flag", "month", "load")


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """One observation feature.

    Attributes
    ----------
    name : str
        Readable name, as in ``env.unwrapped.feature_names`` ("seg 3 value per $").
    kind : str
        One of :data:`KINDS`.
    field : str
        What it measures, stable across renames: ``brand_category``, ``goal``, ``log10_budget``,
        ``budget_left``, ``weeks_left``, ``month``, ``value_per_dollar``, ``hires``, ``mean_load``,
        ``affordable``.
    unit : str
        Unit of the value ("" for one-hots and flags, "share", "log10 USD", "per USD", "posts", ...).
    segment : int | None
        The segment a per-segment feature describes, else None.
    value : str | None
        For a one-hot: the member it stands for (``"beauty"``, ``"conversion"``), else None.
    low, high : float
        Bounds of the value in the observation space.
    """

    name: str
    kind: str
    field: str
    unit: str = ""
    segment: int | None = None
    value: str | None = None
    low: float = 0.0
    high: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"FeatureSpec.kind: expected one of {list(KINDS)}, got {self.kind!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def observation_specs(n_segments: int, campaign_weeks: int) -> tuple[FeatureSpec, ...]:
    """The observation of an env with ``n_segments`` segments and ``campaign_weeks`` weeks, in order."""
    specs: list[FeatureSpec] = [
        FeatureSpec(f"brand is {c}", "one_hot", "brand_category", value=c) for c in CATEGORIES
    ]
    specs += [FeatureSpec(f"goal is {g}", "one_hot", "goal", value=g) for g in GOALS]
    specs += [
        FeatureSpec("log10 budget", "money", "log10_budget", "log10 USD", high=8.0),
        FeatureSpec("share of budget left", "share", "budget_left", "share"),
        FeatureSpec("share of weeks left", "share", "weeks_left", "share"),
        FeatureSpec("month", "month", "month", "month (0 = January)", high=11.0),
    ]
    for s in range(n_segments):
        specs += [
            FeatureSpec(f"seg {s} value per $", "money", "value_per_dollar", "USD per USD", s, high=np.inf),
            FeatureSpec(f"seg {s} hires", "count", "hires", "hires", s, high=float(campaign_weeks)),
            FeatureSpec(f"seg {s} mean load", "load", "mean_load", "sponsored posts", s, high=np.inf),
            FeatureSpec(f"seg {s} affordable", "flag", "affordable", "", s),
        ]
    return tuple(specs)


def find(specs: Sequence[FeatureSpec], field: str, segment: int | None = None) -> list[int]:
    """Indices of the features measuring ``field`` (of ``segment`` when given), in observation order."""
    return [i for i, f in enumerate(specs) if f.field == field and (segment is None or f.segment == segment)]
