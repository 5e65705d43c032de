"""Fitting the simulated market to a team's own influencers and logged offers (issue 14).

* :mod:`envs.fit.offers`: the offers table (:data:`OFFER_COLUMNS`) and its validation;
* :mod:`envs.fit.likelihoods`: :func:`fit_market`, maximum-likelihood estimates with standard errors
  (statsmodels GLMs), giving a :class:`MarketFit` with a fitted :class:`~envs.calibration.Calibration`;
* :mod:`envs.fit.checks`: :func:`predictive_checks`, the logged offers simulated again under the fit;
* :mod:`envs.fit.simulate`: :func:`simulate_offers`, offers logged from the real environment.
"""

from envs.fit.checks import CHECK_COLUMNS, STATISTICS, predictive_checks
from envs.fit.likelihoods import (
    DERIVED,
    ESTIMABLE,
    NOT_ESTIMATED,
    PARAMETER_COLUMNS,
    MarketFitError,
    fit_market,
)
from envs.fit.offers import (
    OFFER_COLUMN_NAMES,
    OFFER_COLUMNS,
    OUTCOME_COLUMNS,
    OfferColumn,
    OffersValidationError,
    read_offers_csv,
    validate_offers,
)
from envs.fit.result import MarketFit
from envs.fit.simulate import LOGGERS, simulate_offers

__all__ = [
    "CHECK_COLUMNS",
    "DERIVED",
    "ESTIMABLE",
    "LOGGERS",
    "NOT_ESTIMATED",
    "PARAMETER_COLUMNS",
    "STATISTICS",
    "MarketFit",
    "MarketFitError",
    "fit_market",
    "predictive_checks",
    "simulate_offers",
    "OFFER_COLUMNS",
    "OFFER_COLUMN_NAMES",
    "OUTCOME_COLUMNS",
    "OfferColumn",
    "OffersValidationError",
    "read_offers_csv",
    "validate_offers",
]
