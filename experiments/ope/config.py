"""Options of the off-policy estimators and their models (:class:`OPEConfig`)."""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["DEFAULT_CONFIG", "SCOPES", "OPEConfig"]

#: The scopes of an estimate: each decision as a contextual bandit, and whole campaigns.
SCOPES = ("per_decision", "per_campaign")


@dataclasses.dataclass(frozen=True)
class OPEConfig:
    """Options of the estimators (validated on construction; an error names the field).

    Parameters
    ----------
    clip : float or None
        Cap on every importance weight (see the module docstring); None: no clipping.
    n_folds : int
        Cross-fitting folds of the reward model and of fitted-Q evaluation (campaigns are split).
    n_bootstrap : int
        Bootstrap resamples of campaigns.
    confidence : float
        Level of the percentile intervals, in (0, 1).
    random_state : int
        Seeds the folds, the regressors and the bootstrap.
    max_iter : int
        Boosting iterations of every ``HistGradientBoostingRegressor``.
    n_threads : int
        OpenMP threads of the regressors.
    n_jobs : int
        Processes: with 2 or more, fitted-Q evaluation runs in a second process while this one fits the
        market and simulates (the same numbers; on two cores about 20 s less of a minute at 3,000
        campaigns); 1 keeps to one core.
    fitted_q : bool
        Also run fitted-Q evaluation (one-hot and with action features: ``DM``, ``DR``, ``DM-AF`` and
        ``DR-AF`` per campaign; about 15 s on 3,000 campaigns). Off, those rows are left out.
    model_based : bool
        Also fit the market to the logs and estimate per campaign in it (``MB``, ``MB-DR``; needs the
        logs' outcome columns and the influencers they name).
    n_draws : int
        Parameter draws of the fitted market (:meth:`envs.fit.MarketFit.draw_calibrations`): one
        simulated market each.
    n_simulations : int
        Paths simulated in all by the model-based estimate in the point market (at least one per logged
        campaign; allocated by a pilot path, see :mod:`experiments.ope.paths`).
    n_subset : int
        Logged campaigns simulated again under every parameter draw (those with the largest pilot
        values), for the parameter uncertainty.
    n_check_simulations : int
        Simulated replays of the logged offers in the fit's predictive checks.
    max_flagged_share : float
        The fit passes its predictive checks when at most this share of them flag (logged outside the
        model's 95 % interval); see the recommendation rule in :mod:`experiments.ope.pipeline`.
    min_ess_share : float
        Per-campaign importance weights count as usable when their effective sample is at least this
        share of the campaigns (then model-based DR is recommended over the model-based estimate).
    engagement_clusters : str
        How the market fit's engagement block weighs the offers of one influencer
        (:func:`envs.fit.fit_market`): ``"independent"`` (the default) or ``"exchangeable"`` (a GEE).
    fit_slopes : bool
        The market fit also estimates the brand-fit slopes of engagement and conversions
        (:func:`envs.fit.fit_market`); off by default, when they are held at their defaults.
    """

    clip: float | None = None
    n_folds: int = 2
    n_bootstrap: int = 1000
    confidence: float = 0.95
    random_state: int = 0
    max_iter: int = 100
    n_threads: int = 1
    n_jobs: int = 2
    fitted_q: bool = True
    model_based: bool = True
    n_draws: int = 8
    n_simulations: int = 6000
    n_subset: int = 200
    n_check_simulations: int = 40
    max_flagged_share: float = 0.1
    min_ess_share: float = 0.1
    engagement_clusters: str = "independent"
    fit_slopes: bool = False

    def __post_init__(self) -> None:
        if self.clip is not None and (
            isinstance(self.clip, bool) or not isinstance(self.clip, (int, float)) or not self.clip > 0
        ):
            raise ValueError(f"clip: expected a number > 0 or None, got {self.clip!r}")
        for name in ("fitted_q", "model_based", "fit_slopes"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}: expected true or false, got {getattr(self, name)!r}")
        for name in ("max_flagged_share", "min_ess_share"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ValueError(f"{name}: expected a share in [0, 1], got {value!r}")
        for name, minimum in (("n_folds", 2), ("n_bootstrap", 1), ("max_iter", 1), ("n_threads", 1), ("n_jobs", 1),
                              ("n_draws", 2), ("n_simulations", 2), ("n_subset", 2),
                              ("n_check_simulations", 2)):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
                raise ValueError(f"{name}: expected a whole number >= {minimum}, got {value!r}")
        if isinstance(self.random_state, bool) or not isinstance(self.random_state, (int, np.integer)) or self.random_state < 0:  # fmt: skip
            raise ValueError(f"random_state: expected a whole number >= 0, got {self.random_state!r}")
        from envs.fit.likelihoods import ENGAGEMENT_CLUSTERS

        if self.engagement_clusters not in ENGAGEMENT_CLUSTERS:
            raise ValueError(
                f"engagement_clusters: expected one of {', '.join(ENGAGEMENT_CLUSTERS)}, "
                f"got {self.engagement_clusters!r}"
            )
        if not isinstance(self.confidence, (int, float)) or not 0 < self.confidence < 1:
            raise ValueError(f"confidence: expected a number in (0, 1), got {self.confidence!r}")

    def streams(self) -> tuple[np.random.Generator, np.random.Generator, int]:
        """(fold generator, bootstrap generator, regressor seed) spawned from ``random_state``."""
        folds, boot, models = np.random.SeedSequence(self.random_state).spawn(3)
        return (
            np.random.default_rng(folds),
            np.random.default_rng(boot),
            int(models.generate_state(1, dtype=np.uint32)[0]),
        )

    def model_streams(self) -> tuple[np.random.Generator, np.random.Generator]:
        """(fit and checks generator, simulation generator) of the model-based estimate, spawned from
        ``random_state`` apart from :meth:`streams` (so adding it changes no other estimate)."""
        fit, simulate = np.random.SeedSequence([self.random_state, 15]).spawn(2)
        return np.random.default_rng(fit), np.random.default_rng(simulate)


#: The default options (a frozen instance, shared as the default argument of the estimators).
DEFAULT_CONFIG = OPEConfig()
