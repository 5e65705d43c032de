"""Maximum-likelihood estimates of the outcome parameters from logged offers (statsmodels GLMs).

:func:`fit_market` fits six blocks of the outcome model of :mod:`envs.outcomes`, each a GLM whose known
factors enter as offsets, so a block estimates only what the logs identify:

* ``acceptance`` (every offer, Binomial/logit): accepted ~ 1 + ln(offer ratio) + (category share - pivot)
  + load + month dummies; the month with most offers is the reference (its shift held at the default),
  months with fewer than ``min_obs`` offers enter the offset at their default shift;
* ``reach`` (accepted offers, Poisson quasi-likelihood, standard errors clustered by influencer):
  reach ~ platform + platform x ln(F/10k) + price residual, offset ln(1 - fake share) + ln F
  + ln overlap + reach_post_sd^2/2. The hidden response quality q (log-sd s, correlation r with the price
  noise) is partly priced: E[q | price residual z] = exp(s r z - (s r)^2 / 2), so the price residual's
  coefficient is s x r and corrects the selection on price a value-per-dollar logger makes;
* ``engagement`` (accepted, negative-binomial quasi-likelihood, clustered): engagements ~ 1 + load,
  offset ln E[true ER | observed] + ln audience + ln month multiplier + ln(0.7 + 0.6 fit)
  + engagement_post_sd^2/2 + (reach's price-residual coefficient) x price residual. The same hidden
  quality multiplies reach and engagements, so the price residual's coefficient is the reach block's,
  not estimated again: a value-per-dollar logger hires far below the average price residual, and a
  second, free coefficient there would put the multiplier (the engagement at residual 0) where no
  offer informs it. The audience of per-view platforms uses the fitted reach rate. Both are two-step;
  the loading's variance enters the engagement coefficients' covariance through their sensitivity to it;
* ``clicks`` (accepted with reach > 0, Poisson): clicks ~ 1 + E[ln(ER / typical) | observed], offset
  ln reach + ln(click_fit_base + fit); conditioning on the realised reach removes q;
* ``conversions`` (accepted with reach > 0, Poisson): conversions ~ 1 + ln(F/10k) + E[ln(ER/typical)],
  offset ln reach + ln(0.2 + 1.6 fit) + ln month multiplier;
* ``price`` (accepted, least squares): ln(cost / (offer ratio x list price)) ~ 1 + [Nov or Dec].

A term is estimated only when at least ``min_obs`` rows inform it, its column varies, and it is not
collinear with the terms before it; otherwise it stays at its default inside the offset and every
parameter that depends on it is reported ``identified=False`` (never guessed). Parameters the logs cannot
identify at all are listed with the reason in :data:`NOT_ESTIMATED`.

With ``fit_slopes=True`` the brand-fit slopes of the engagement and conversion blocks
(``engagement_fit_slope``, ``conversion_fit_slope``) are estimated too. Each enters its block's mean as
``exp(const) x (base + slope x fit)``: with the base held at its default and the constant free, the slope
is the shape of the fit effect, identified by how the outcome grows with the fit. It is found by
Gauss-Newton steps on the GLM (:func:`_fit_with_slope`: the derivative ``fit / (base + slope x fit)`` a
regressor of the block, the offset moved by its coefficient until that is zero), so at the maximum the
block's covariance, clustered as the rest of the block, holds the slope with the other coefficients.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import statsmodels.api as sm
from statsmodels.tools.sm_exceptions import PerfectSeparationWarning

from envs.calibration import MONTHS, PLATFORMS, Calibration
from envs.fit.offers import (
    CalendarTerms,
    OfferObservables,
    calendar_terms,
    offer_observables,
    validate_offers,
)
from envs.outcomes import reach_rate

if TYPE_CHECKING:
    from envs.fit.result import MarketFit

logger = logging.getLogger(__name__)

#: Columns of :attr:`MarketFit.parameters`, in order.
PARAMETER_COLUMNS: tuple[str, ...] = (
    "parameter", "estimate", "std_error", "ci_low", "ci_high", "default", "n_obs", "identified",
)  # fmt: skip

#: Outcome parameters listed but not estimated, with the reason (kept at their defaults; the two fit
#: slopes are estimated when :func:`fit_market` is given ``fit_slopes=True``).
NOT_ESTIMATED: dict[str, str] = {
    "reach_post_sd": (
        "confounded with the unpriced part of the hidden quality (both are log-normal noise on reach); "
        "held at its default, and response_quality_sd is fitted given it"
    ),
    "engagement_post_sd": "not separable from the unpriced hidden quality (Poisson quasi-likelihood)",
    "engagement_fit_slope": "enters as (base + slope x fit) with the sponsored multiplier; held at default",
    "conversion_fit_slope": "enters as (base + slope x fit), scale confounded with conversion_rate; held",
}

#: The brand-fit slopes ``fit_slopes=True`` estimates: parameter -> calibration field of its base (the
#: block is the parameter's in :data:`_TERM_OF`).
FIT_SLOPES: dict[str, str] = {
    "engagement_fit_slope": "engagement_fit_base",
    "conversion_fit_slope": "conversion_fit_base",
}

Z95 = 1.959963984540054

#: Working correlations of the engagement block's offers of one influencer (see :func:`fit_market`).
ENGAGEMENT_CLUSTERS: tuple[str, ...] = ("independent", "exchangeable")


class MarketFitError(ValueError):
    """The fit failed (a likelihood that does not converge); the message names the block and parameter."""


# ------------------------------------------------------------------------------ parameter specs
@dataclasses.dataclass(frozen=True)
class _Parameter:
    """One reported parameter: where it goes in the calibration and how it follows from coefficients."""

    name: str
    field: str
    slots: tuple[int, ...] | None  # indices of a tuple field, None for a scalar field
    value: Callable[[Mapping[str, float]], float]  # from the block's coefficients (link scale)
    needs: tuple[str, ...]  # coefficients that must be identified
    positive: bool = False  # interval on the log scale
    note: str = ""  # said of the parameter when fitted (an assumption it rests on)


def parameter_field(name: str) -> tuple[str, tuple[int, ...] | None]:
    """Calibration field and tuple slots of a parameter name such as ``reach_rate_at_10k[tiktok]``,
    ``acceptance_month_shift[Nov]`` or ``holiday_price_premium`` (Nov and Dec of ``price_month_premium``)."""
    if name == "holiday_price_premium":
        return "price_month_premium", (10, 11)
    if "[" not in name:
        return name, None
    field, label = name[:-1].split("[")
    labels = MONTHS if field == "acceptance_month_shift" else PLATFORMS
    return field, (labels.index(label),)


def _get(cal: Calibration, name: str) -> float:
    field, slots = parameter_field(name)
    value = getattr(cal, field)
    return float(value if slots is None else value[slots[0]])


def _with_values(cal: Calibration, values: Mapping[str, float]) -> Calibration:
    """``cal`` with parameters set (built with :meth:`Calibration.replace`, so validated)."""
    changes: dict[str, Any] = {}
    for name, value in values.items():
        field, slots = parameter_field(name)
        if slots is None:
            changes[field] = float(value)
            continue
        current = list(changes.get(field, getattr(cal, field)))
        for slot in slots:
            current[slot] = float(value)
        changes[field] = tuple(current)
    return cal.replace(**changes) if changes else cal


# --------------------------------------------------------------------------------------- blocks
@dataclasses.dataclass(frozen=True)
class _Term:
    name: str
    column: np.ndarray
    default: float  # coefficient on the link scale, used in the offset when not estimated
    dummy: bool = False


@dataclasses.dataclass
class BlockFit:
    """One GLM's result: coefficients on the link scale (estimated or held) and the covariance of the
    estimated ones.

    Attributes
    ----------
    name : str
        Block name (``"acceptance"``, ``"reach"``, ...).
    coef : dict[str, float]
        Every term's coefficient (estimates where identified, defaults elsewhere).
    estimated : list[str]
        Names of the estimated terms, in the order of ``cov``.
    cov : numpy.ndarray
        Covariance of the estimated terms.
    n_obs : dict[str, int]
        Rows informing each term.
    parameters : list[_Parameter]
        The reported parameters computed from this block.
    """

    name: str
    coef: dict[str, float]
    estimated: list[str]
    cov: np.ndarray
    n_obs: dict[str, int]
    parameters: list[_Parameter]


def _identifiable(
    terms: Sequence[_Term],
    rows: int,
    min_obs: int,
    held: set[str],
    groups: np.ndarray | None,
    min_groups: int,
) -> tuple[list[int], dict]:
    """Indices of the terms that can be estimated, and the rows informing each term. With ``groups``
    (influencers), a term also needs ``min_groups`` distinct influencers among the rows informing it:
    an influencer's hidden quality is shared by all its offers, so only many influencers average it out."""
    n_obs = {t.name: int(np.count_nonzero(t.column)) if t.dummy else rows for t in terms}
    keep: list[int] = []
    columns: list[np.ndarray] = []
    for k, t in enumerate(terms):
        if t.name in held or n_obs[t.name] < min_obs or rows < min_obs:
            continue
        if groups is not None and len(np.unique(groups[np.asarray(t.column) != 0])) < min_groups:
            continue
        col = np.asarray(t.column, dtype=float)
        if (
            not t.dummy
            and t.name != "const"
            and float(np.std(col)) < 1e-6 * max(1.0, float(np.abs(col).max()))
        ):
            continue
        trial = np.column_stack([*columns, col])
        gram = trial.T @ trial
        scale = np.sqrt(np.diag(gram))
        if (
            np.any(scale == 0)
            or np.linalg.matrix_rank(gram / np.outer(scale, scale), tol=1e-8) < len(columns) + 1
        ):
            continue
        keep.append(k)
        columns.append(col)
    return keep, n_obs


def _parameter_of(term: str, parameters: Sequence[_Parameter]) -> str:
    """The reported parameter that coefficient ``term`` is (the term's own name if none)."""
    return next((p.name for p in parameters if p.needs and p.needs[0] == term), term)


def _fit_block(
    name: str,
    family: Any,
    y: np.ndarray,
    terms: Sequence[_Term],
    offset: np.ndarray,
    min_obs: int,
    held: set[str],
    parameters: list[_Parameter],
    groups: np.ndarray | None = None,
    residual_variance: float | None = None,
    min_groups: int = 0,
    clusters: str = "independent",
) -> BlockFit:
    """Fit one GLM (``family`` None: least squares) with the identifiable terms; the others enter the offset
    at their defaults. With ``residual_variance`` (least squares only) the residual variance is reported
    as coefficient ``resid_var`` (default ``residual_variance``), its variance clustered by ``groups``.
    With ``clusters="exchangeable"`` (a GLM with ``groups``) the estimating equations are those of a GEE
    whose offers of one group share a working correlation (estimated), with the robust covariance: the
    same mean model, weighted for offers that share a group's hidden effect."""
    rows = len(y)
    keep, n_obs = _identifiable(terms, rows, min_obs, held, groups, min_groups)
    if family is not None and rows and float(np.sum(y)) < 1:
        keep = []
    coef = {t.name: t.default for t in terms}
    if residual_variance is not None:
        coef["resid_var"] = residual_variance
        n_obs["resid_var"] = rows
    fixed = [t for k, t in enumerate(terms) if k not in keep]
    full_offset = offset + sum((t.default * t.column for t in fixed), np.zeros(rows))
    if not keep:
        return BlockFit(name, coef, [], np.zeros((0, 0)), n_obs, parameters)
    design = np.column_stack([terms[k].column for k in keep]).astype(float)
    estimated = [terms[k].name for k in keep]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if family is None:
            kw: dict[str, Any] = (
                {} if groups is None else {"cov_type": "cluster", "cov_kwds": {"groups": groups}}
            )
            result = sm.OLS(y - full_offset, design).fit(**kw)
        else:
            start = np.array([terms[k].default for k in keep])
            if clusters == "exchangeable" and groups is not None:
                from statsmodels.tools.sm_exceptions import ConvergenceWarning

                gee = sm.GEE(y, design, groups=pd.factorize(groups)[0], family=family, offset=full_offset,
                             cov_struct=sm.cov_struct.Exchangeable())  # fmt: skip
                result = gee.fit(start_params=start, maxiter=100)
                stalled = any(issubclass(w.category, ConvergenceWarning) for w in caught)
                converged = bool(getattr(result, "converged", True)) and not stalled
            else:
                model = sm.GLM(y, design, family=family, offset=full_offset)
                kwargs: dict[str, Any] = {"cov_type": "nonrobust"}
                if groups is not None:
                    kwargs = {"cov_type": "cluster", "cov_kwds": {"groups": groups}}
                result = model.fit(start_params=start, maxiter=100, **kwargs)
                converged = bool(result.converged)
            separated = any(issubclass(w.category, PerfectSeparationWarning) for w in caught)
            if not converged or separated:
                k = int(np.argmax(np.abs(np.asarray(result.params) - start)))
                worst = _parameter_of(estimated[k], parameters)
                why = (
                    "the outcomes are perfectly predicted (separation), so its estimate runs off to "
                    f"{float(np.asarray(result.params)[k]):.3g}"
                    if separated
                    else "no convergence in 100 iterations (too little variation in the logs)"
                )
                raise MarketFitError(f"{name} likelihood did not converge: parameter '{worst}': {why}")
    params = np.asarray(result.params, dtype=float)
    cov = np.asarray(result.cov_params(), dtype=float).reshape(len(keep), len(keep))
    bad = ~np.isfinite(np.diag(cov)) | ~np.isfinite(params)
    if bad.any():
        raise MarketFitError(
            f"{name} likelihood: parameter '{_parameter_of(estimated[int(np.flatnonzero(bad)[0])], parameters)}' "
            "has no finite "
            "estimate or standard error (the logs do not separate it from the others)"
        )
    coef.update(zip(estimated, params.tolist(), strict=True))
    if residual_variance is not None and family is None:
        resid = np.asarray(result.resid, dtype=float)
        v = float(np.sum(resid**2) / max(rows - len(keep), 1))
        per_group = (
            np.bincount(pd.factorize(groups)[0], weights=resid**2 - v) if groups is not None else resid**2 - v
        )
        cov = np.block(
            [
                [cov, np.zeros((len(keep), 1))],
                [np.zeros((1, len(keep))), np.array([[np.sum(per_group**2) / rows**2]])],
            ]
        )
        coef["resid_var"] = v
        estimated = [*estimated, "resid_var"]
    return BlockFit(name, coef, estimated, cov, n_obs, parameters)


# ----------------------------------------------------------------------------------- the fit
@dataclasses.dataclass(frozen=True)
class FitInputs:
    """What every block reads: validated offers, the pool's observables per offer and the calibration whose
    values serve as defaults (``base`` with the caller's ``fixed`` values)."""

    offers: pd.DataFrame
    obs: OfferObservables
    cal: Calibration
    min_obs: int
    held: frozenset[str]
    min_influencers: int
    calendar: CalendarTerms
    engagement_clusters: str = "independent"
    fit_slopes: bool = False

    def estimates_slope(self, name: str) -> bool:
        """Whether fit slope ``name`` (of :data:`FIT_SLOPES`) is estimated: asked for, not held."""
        return self.fit_slopes and name not in self.held

    def held_terms(self, block: str) -> list[str]:
        """Terms of ``block`` whose parameter the caller fixed."""
        return [term for name, (b, term) in _TERM_OF.items() if b == block and name in self.held]


def _acceptance_block(d: FitInputs) -> BlockFit:
    cal, off = d.cal, d.offers
    month = off["month"].to_numpy()
    counts = np.bincount(month, minlength=12)
    # Reference: the month with most offers among those whose default shift is 0 (a normal month).
    normal = np.asarray(cal.acceptance_month_shift) == 0
    ref = int(np.argmax(np.where(normal, counts, -1))) if normal.any() else int(np.argmax(counts))
    terms = [
        _Term("const", np.ones(len(off)), cal.acceptance_intercept),
        _Term("log_offer_ratio", np.log(off["offer_ratio"].to_numpy()), cal.acceptance_offer_slope),
        _Term(
            "category",
            off["category_share"].to_numpy() - cal.acceptance_category_pivot,
            cal.acceptance_category_slope,
        ),
        _Term("load", off["sponsored_load"].to_numpy(dtype=float), cal.acceptance_load_slope),
    ]
    shifts = cal.acceptance_month_shift
    month_terms = [_Term(f"month_{m}", (month == m).astype(float), shifts[m], dummy=True) for m in range(12)]
    held = set(d.held_terms("acceptance")) | {f"month_{ref}"}
    params = [
        _Parameter("acceptance_intercept", "acceptance_intercept", None, lambda c: c["const"], ("const",)),
        _Parameter(
            "acceptance_offer_slope",
            "acceptance_offer_slope",
            None,
            lambda c: c["log_offer_ratio"],
            ("log_offer_ratio",),
        ),  # fmt: skip
        _Parameter(
            "acceptance_category_slope",
            "acceptance_category_slope",
            None,
            lambda c: c["category"],
            ("category",),
        ),  # fmt: skip
        _Parameter("acceptance_load_slope", "acceptance_load_slope", None, lambda c: c["load"], ("load",)),
    ]
    for m in range(12):
        key = f"month_{m}"
        params.append(
            _Parameter(
                f"acceptance_month_shift[{MONTHS[m]}]",
                "acceptance_month_shift",
                (m,),
                _coefficient(key),
                (key,),
            )  # fmt: skip
        )
    y = off["accepted"].to_numpy(dtype=float)
    return _fit_block(
        "acceptance", sm.families.Binomial(), y, terms + month_terms, d.calendar.acceptance_shift, d.min_obs, held,
        params,
    )  # fmt: skip


def _price_loading_default(cal: Calibration) -> float:
    return cal.response_quality_sd * cal.price_quality_correlation


def _coefficient(name: str) -> Callable[[Mapping[str, float]], float]:
    """The parameter equal to coefficient ``name``."""

    def value(c: Mapping[str, float]) -> float:
        return c[name]

    return value


def _reach_rate(name: str, reach_post_sd: float) -> Callable[[Mapping[str, float]], float]:
    """Reach rate at 10k from its log-scale coefficient ``name``: exp(coefficient + sd^2 / 2), undoing the
    mean of the hidden log quality."""

    def value(c: Mapping[str, float]) -> float:
        return math.exp(c[name] + _quality_variance(c, reach_post_sd) / 2)

    return value


def _quality_variance(c: Mapping[str, float], reach_post_sd: float) -> float:
    """sd^2 of the hidden log quality: its priced part (price loading^2) plus the residual variance of
    ln reach beyond the post noise (held at ``reach_post_sd``)."""
    return max(c["resid_var"] - reach_post_sd**2, 0.0) + c["price_z"] ** 2


def _reach_block(d: FitInputs) -> tuple[BlockFit, np.ndarray]:
    """The reach block (least squares on ln reach, the Gaussian likelihood of the log-normal reach), and
    the rows it used: accepted offers with an uncensored price and a reach of at least 5 (rounding)."""
    cal, off, obs = d.cal, d.offers, d.obs
    reach = off["reach"].to_numpy(dtype=float)
    accepted = (off["accepted"].to_numpy() == 1) & (reach >= 5)
    rows = accepted & np.isfinite(obs.price_z)
    use_z = rows.sum() >= d.min_obs
    if not use_z:
        rows = accepted
    z = np.where(np.isfinite(obs.price_z), obs.price_z, 0.0)[rows]
    b0 = _price_loading_default(cal)
    sd0, post = cal.response_quality_sd, cal.reach_post_sd
    platform, lf = obs.platform[rows], obs.log_followers[rows]
    terms: list[_Term] = []
    for p, name in enumerate(PLATFORMS):
        is_p = (platform == p).astype(float)
        terms.append(_Term(f"rate_{name}", is_p, math.log(cal.reach_rate_at_10k[p]) - sd0**2 / 2, dummy=True))
    for p, name in enumerate(PLATFORMS):
        is_p = (platform == p).astype(float)
        terms.append(_Term(f"slope_{name}", is_p * lf, cal.reach_rate_slope[p], dummy=True))
    terms.append(_Term("price_z", z, b0))
    held = set(d.held_terms("reach")) | (set() if use_z else {"price_z"})
    offset = (
        np.log(np.clip(1.0 - obs.fake_share[rows], 1e-6, None))
        + np.log(obs.followers[rows])
        + np.log(off["overlap_factor"].to_numpy()[rows])
    )
    params = []
    for name in PLATFORMS:
        r, s = f"rate_{name}", f"slope_{name}"
        params.append(
            _Parameter(
                f"reach_rate_at_10k[{name}]",
                "reach_rate_at_10k",
                (PLATFORMS.index(name),),
                _reach_rate(r, post),
                (r, "resid_var"),
                positive=True,
            )  # fmt: skip
        )
        params.append(
            _Parameter(
                f"reach_rate_slope[{name}]",
                "reach_rate_slope",
                (PLATFORMS.index(name),),
                _coefficient(s),
                (s,),
            )  # fmt: skip
        )
    params += [
        _Parameter("response_quality_sd", "response_quality_sd", None,
                   lambda c: math.sqrt(_quality_variance(c, post)), ("resid_var",), positive=True,
                   note=f"fitted given reach_post_sd held at {post:g}"),
        _Parameter("price_quality_correlation", "price_quality_correlation", None,
                   lambda c: c["price_z"] / max(math.sqrt(_quality_variance(c, post)), 1e-12),
                   ("price_z", "resid_var"), note=f"fitted given reach_post_sd held at {post:g}"),
    ]  # fmt: skip
    y = np.log(reach[rows])
    resid_default = sd0**2 * (1 - cal.price_quality_correlation**2) + post**2
    block = _fit_block("reach", None, y, terms, offset, d.min_obs, held, params,
                       groups=obs.index[rows], residual_variance=resid_default, min_groups=d.min_influencers)  # fmt: skip
    return block, rows


def _engagement_block(d: FitInputs, reach: BlockFit, rows: np.ndarray) -> BlockFit:
    cal, off, obs = d.cal, d.offers, d.obs
    fitted = _with_values(cal, _parameter_values(reach, only_identified=True))
    platform, followers = obs.platform[rows], obs.followers[rows]
    per_view = np.asarray(cal.engagement_per_view, dtype=bool)[platform]
    audience = followers * np.where(per_view, reach_rate(followers, platform, fitted), 1.0)
    month = off["month"].to_numpy()[rows]
    fit = off["fit"].to_numpy()[rows]
    b0 = reach.coef["price_z"]
    offset = (
        np.log(obs.true_engagement[rows])
        + np.log(audience)
        + np.log(cal.array("month_engagement")[month])
        + cal.engagement_post_sd**2 / 2
    )
    z = np.where(np.isfinite(obs.price_z), obs.price_z, 0.0)[rows]
    terms = [
        _Term("const", np.ones(int(rows.sum())), math.log(cal.sponsored_engagement_multiplier) - b0**2 / 2),
        _Term("load", off["sponsored_load"].to_numpy(dtype=float)[rows], -cal.engagement_fatigue),
        _Term("price_z", z, b0),
    ]
    params = [
        _Parameter("sponsored_engagement_multiplier", "sponsored_engagement_multiplier", None,
                   lambda c: math.exp(c["const"] + c["price_z"] ** 2 / 2), ("const",), positive=True),
        _Parameter("engagement_fatigue", "engagement_fatigue", None, lambda c: -c["load"], ("load",)),
    ]  # fmt: skip
    held = set(d.held_terms("engagement")) | {"price_z"}
    y = off["engagements"].to_numpy(dtype=float)[rows]
    # Negative-binomial weights for the log-normal heterogeneity (unpriced quality and post noise): a
    # quasi-likelihood, consistent for the mean whatever alpha, efficient near the right one.
    unpriced = max(reach.coef["resid_var"] - cal.reach_post_sd**2, 0.0)
    alpha = math.expm1(unpriced + cal.engagement_post_sd**2)

    def at_loading(b: float) -> BlockFit:
        loaded = [dataclasses.replace(t, default=b) if t.name == "price_z" else t for t in terms]

        def fit_once(
            fit_offset: np.ndarray, extra: Sequence[_Term], reported: Sequence[_Parameter]
        ) -> BlockFit:
            return _fit_block("engagement", sm.families.NegativeBinomial(alpha=alpha), y, [*loaded, *extra],
                              offset + fit_offset, d.min_obs, held, [*params, *reported], groups=obs.index[rows],
                              min_groups=d.min_influencers, clusters=d.engagement_clusters)  # fmt: skip

        return _with_fit_slope(d, "engagement_fit_slope", fit, fit_once)

    block = at_loading(b0)
    if "price_z" not in reach.estimated or not block.estimated:
        return block
    # The engagement coefficients were fitted given the reach block's loading: their covariance gains
    # the loading's variance through their sensitivity to it (a two-step estimator, delta method).
    var_b = float(reach.cov[reach.estimated.index("price_z"), reach.estimated.index("price_z")])
    h = max(math.sqrt(max(var_b, 0.0)), 1e-3)
    moved = at_loading(b0 + h)
    if moved.estimated != block.estimated:
        return block
    g = np.array([moved.coef[k] - block.coef[k] for k in block.estimated]) / h
    # The multiplier is exp(const + loading^2 / 2), and its draws keep the loading at b0: the constant
    # carries the loading's whole effect on it.
    if "const" in block.estimated:
        g[block.estimated.index("const")] += ((b0 + h) ** 2 - b0**2) / (2 * h)
    if "fit_slope" in block.estimated:  # the Gauss-Newton step is relative to the slope it started from
        g[block.estimated.index("fit_slope")] = (
            _parameter_values(moved, only_identified=True)["engagement_fit_slope"]
            - _parameter_values(block, only_identified=True)["engagement_fit_slope"]
        ) / h
    return dataclasses.replace(block, cov=block.cov + var_b * np.outer(g, g))


#: Gauss-Newton steps of a fit slope before :func:`_fit_with_slope` gives up.
_SLOPE_STEPS = 30


def _with_fit_slope(
    d: FitInputs,
    parameter: str,
    fit: np.ndarray,
    fit_once: Callable[[np.ndarray, Sequence[_Term], Sequence[_Parameter]], BlockFit],
) -> BlockFit:
    """The block of fit slope ``parameter`` fitted by ``fit_once(fit_offset, extra_terms, extra_parameters)``, its brand-fit factor
    ``ln(base + slope x fit)`` in the offset: at the calibration's slope, or with the slope estimated when
    ``d`` asks for it (:func:`_fit_with_slope`)."""
    base = float(getattr(d.cal, FIT_SLOPES[parameter]))
    slope = float(getattr(d.cal, parameter))
    if not d.estimates_slope(parameter):
        return fit_once(np.log(base + slope * fit), (), ())
    return _fit_with_slope(_TERM_OF[parameter][0], parameter, base, slope, fit, fit_once)


def _fit_with_slope(
    block: str,
    parameter: str,
    base: float,
    start: float,
    fit: np.ndarray,
    fit_once: Callable[[np.ndarray, Sequence[_Term], Sequence[_Parameter]], BlockFit],
) -> BlockFit:
    """The block with its fit slope estimated by Gauss-Newton steps from ``start`` (see the module
    docstring): at slope ``b`` the block is fitted with ``ln(base + b fit)`` in its offset and the
    derivative ``fit / (base + b fit)`` as term ``fit_slope`` (coefficient: the step); the slope moves by
    the step until the step is nil, and the block of that last fit is returned, its covariance holding the
    slope (the parameter is ``b + coef["fit_slope"]``)."""
    slope = start
    for _ in range(_SLOPE_STEPS):
        level = base + slope * fit
        term = _Term("fit_slope", fit / level, 0.0)
        reported = _Parameter(
            parameter, parameter, None, _plus_coefficient(slope, "fit_slope"), ("fit_slope",)
        )
        fitted = fit_once(np.log(level), (term,), (reported,))
        if "fit_slope" not in fitted.estimated:  # not identified: reported at the calibration's value
            return fitted
        step = fitted.coef["fit_slope"]
        if abs(step) <= 1e-7 * max(1.0, abs(slope)):
            return fitted
        # base + slope x fit must stay positive on fit in [0, 1]
        slope = max(slope + step, -base * (1.0 - 1e-6))
    raise MarketFitError(
        f"{block} likelihood did not converge: parameter '{parameter}': the slope still moved after "
        f"{_SLOPE_STEPS} Gauss-Newton steps (last {slope:.4g})"
    )


def _plus_coefficient(value: float, name: str) -> Callable[[Mapping[str, float]], float]:
    """The parameter equal to ``value`` plus coefficient ``name`` (a Gauss-Newton step)."""

    def plus(c: Mapping[str, float]) -> float:
        return value + c[name]

    return plus


def _per_reach_blocks(d: FitInputs) -> tuple[BlockFit, BlockFit]:
    """Clicks and conversions given the realised reach (which carries the hidden quality)."""
    cal, off, obs = d.cal, d.offers, d.obs
    rows = (off["accepted"].to_numpy() == 1) & (off["reach"].to_numpy() > 0)
    log_reach = np.log(np.maximum(off["reach"].to_numpy(dtype=float)[rows], 1.0))
    fit = off["fit"].to_numpy()[rows]
    quality = obs.quality_mean[rows]
    v = obs.quality_var
    ones = np.ones(int(rows.sum()))
    e1 = cal.click_engagement_exponent
    clicks = _fit_block(
        "clicks", sm.families.Poisson(), off["clicks"].to_numpy(dtype=float)[rows],
        [_Term("const", ones, math.log(cal.click_rate) + e1**2 * v / 2),
         _Term("quality", quality, e1)],
        log_reach + np.log(cal.click_fit_base + fit), d.min_obs, set(d.held_terms("clicks")),
        [_Parameter("click_rate", "click_rate", None,
                    lambda c: math.exp(c["const"] - c["quality"] ** 2 * v / 2), ("const",), positive=True),
         _Parameter("click_engagement_exponent", "click_engagement_exponent", None, lambda c: c["quality"],
                    ("quality",))],
        groups=obs.index[rows],
    )  # fmt: skip
    e2 = cal.conversion_engagement_exponent
    month = off["month"].to_numpy()[rows]
    conversion_terms = [
        _Term("const", ones, math.log(cal.conversion_rate) + e2**2 * v / 2),
        _Term("log_followers", obs.log_followers[rows], cal.conversion_follower_exponent),
        _Term("quality", quality, e2),
    ]
    conversion_params = [
        _Parameter("conversion_rate", "conversion_rate", None,
                   lambda c: math.exp(c["const"] - c["quality"] ** 2 * v / 2), ("const",), positive=True),
        _Parameter("conversion_follower_exponent", "conversion_follower_exponent", None,
                   lambda c: c["log_followers"], ("log_followers",)),
        _Parameter("conversion_engagement_exponent", "conversion_engagement_exponent", None,
                   lambda c: c["quality"], ("quality",)),
    ]  # fmt: skip
    offset = (
        log_reach + np.log(cal.array("month_conversion")[month]) + np.log(d.calendar.conversion_factor[rows])
    )

    def fit_once(fit_offset: np.ndarray, extra: Sequence[_Term], reported: Sequence[_Parameter]) -> BlockFit:
        return _fit_block("conversions", sm.families.Poisson(), off["conversions"].to_numpy(dtype=float)[rows],
                          [*conversion_terms, *extra], offset + fit_offset, d.min_obs,
                          set(d.held_terms("conversions")), [*conversion_params, *reported],
                          groups=obs.index[rows])  # fmt: skip

    return clicks, _with_fit_slope(d, "conversion_fit_slope", fit, fit_once)


def _price_block(d: FitInputs) -> BlockFit:
    cal, off, obs = d.cal, d.offers, d.obs
    cost = off["cost"].to_numpy(dtype=float)
    rows = (off["accepted"].to_numpy() == 1) & (cost > 0)
    paid = cost[rows] / (
        off["offer_ratio"].to_numpy()[rows] * obs.price[rows] * d.calendar.price_factor[rows]
    )
    holiday = np.isin(off["month"].to_numpy()[rows], (10, 11)).astype(float)
    n_other = int(rows.sum() - holiday.sum())
    terms = [
        _Term("const", np.ones(int(rows.sum())), 0.0),
        _Term("holiday", holiday, math.log(cal.price_month_premium[10]), dummy=True),
    ]
    held = set(d.held_terms("price")) | ({"holiday"} if n_other < d.min_obs else set())
    params = [
        _Parameter("holiday_price_premium", "price_month_premium", (10, 11),
                   lambda c: math.exp(c["holiday"]), ("holiday",), positive=True),
    ]  # fmt: skip
    return _fit_block("price", None, np.log(paid), terms, np.zeros(int(rows.sum())), d.min_obs, held, params)


#: Which block and term each fixable parameter is estimated through.
_TERM_OF: dict[str, tuple[str, str]] = {
    "acceptance_intercept": ("acceptance", "const"),
    "acceptance_offer_slope": ("acceptance", "log_offer_ratio"),
    "acceptance_category_slope": ("acceptance", "category"),
    "acceptance_load_slope": ("acceptance", "load"),
    **{f"acceptance_month_shift[{MONTHS[m]}]": ("acceptance", f"month_{m}") for m in range(12)},
    **{f"reach_rate_at_10k[{p}]": ("reach", f"rate_{p}") for p in PLATFORMS},
    **{f"reach_rate_slope[{p}]": ("reach", f"slope_{p}") for p in PLATFORMS},
    "price_quality_correlation": ("reach", "price_z"),
    "sponsored_engagement_multiplier": ("engagement", "const"),
    "engagement_fatigue": ("engagement", "load"),
    "click_rate": ("clicks", "const"),
    "click_engagement_exponent": ("clicks", "quality"),
    "conversion_rate": ("conversions", "const"),
    "conversion_follower_exponent": ("conversions", "log_followers"),
    "conversion_engagement_exponent": ("conversions", "quality"),
    "holiday_price_premium": ("price", "holiday"),
    "engagement_fit_slope": ("engagement", "fit_slope"),
    "conversion_fit_slope": ("conversions", "fit_slope"),
}
#: Every parameter :func:`fit_market` can estimate (and hold at a value).
ESTIMABLE: tuple[str, ...] = tuple(_TERM_OF)
#: Parameters estimated as functions of other terms (reported, never held at a value).
DERIVED: tuple[str, ...] = ("response_quality_sd",)


def _parameter_values(block: BlockFit, *, only_identified: bool) -> dict[str, float]:
    out = {}
    for p in block.parameters:
        if only_identified and not all(n in block.estimated for n in p.needs):
            continue
        out[p.name] = p.value(block.coef)
    return out


def fit_market(
    offers: pd.DataFrame,
    pool: Any,
    base: Calibration | None = None,
    *,
    min_obs: int = 50,
    min_influencers: int = 150,
    fixed: Mapping[str, float] | None = None,
    unfittable: Mapping[str, str] | None = None,
    dynamics: str = "v0",
    engagement_clusters: str = "independent",
    fit_slopes: bool = False,
) -> MarketFit:
    """Maximum-likelihood estimates of the outcome parameters from logged offers.

    Parameters
    ----------
    offers : pandas.DataFrame
        The offers table (see :data:`envs.fit.offers.OFFER_COLUMNS`); validated here.
    pool : InfluencerPool
        The influencers the offers name (observable features: platform, followers, observed engagement
        rate, list price, fake share).
    base : Calibration
        Defaults for everything not estimated (the published defaults if None).
    min_obs : int
        Fewest rows (offers, or accepted offers for outcome parameters; offers in the month for a month
        shift) for a parameter to be estimated; below it the parameter is reported unidentified.
    min_influencers : int
        Fewest distinct influencers among the accepted offers informing a reach or engagement parameter
        (their hidden quality is shared by all of an influencer's offers: a logger that keeps hiring the
        same few influencers identifies these parameters only with that quality, not apart from it).
    fixed : mapping of parameter name to value, optional
        Parameters held at a value instead of estimated (names as in :data:`ESTIMABLE`).
    unfittable : mapping of parameter name to reason, optional
        Parameters the logs cannot inform (for example because they lack a column the parameter needs):
        held at their value in ``base`` like ``fixed`` ones (a parameter of :data:`DERIVED` is only
        reported so), and reported unidentified with the reason.
    engagement_clusters : {"independent", "exchangeable"}
        How the engagement block weighs the offers of one influencer, which share its hidden quality
        and engagement rate. ``"independent"`` (the default): the quasi-likelihood of independent offers
        with standard errors clustered by influencer, so an influencer hired often weighs in proportion
        to its offers. ``"exchangeable"``: a GEE with an exchangeable working correlation within each
        influencer (the same mean model, robust covariance): each influencer weighs about equally once
        its offers are many, and the fatigue is learnt from how one influencer's engagements move with
        its load rather than from differences between influencers.
    fit_slopes : bool
        Also estimate the brand-fit slopes of engagement and conversions (:data:`FIT_SLOPES`, with their
        bases held; see the module docstring). Off by default: they are then held at their values in
        ``base`` and listed in :data:`NOT_ESTIMATED`.

    Returns
    -------
    MarketFit
        Estimates, covariance and the fitted calibration.

    Raises
    ------
    OffersValidationError
        Bad offers (one line naming column, row and value).
    MarketFitError
        A likelihood that does not converge (names the block and the parameter).
    """
    from envs.fit.result import MarketFit

    base = base or Calibration()
    reasons = dict(unfittable or {})
    fixed = {**{name: _get(base, name) for name in reasons if name in ESTIMABLE}, **dict(fixed or {})}
    unknown = sorted(set(fixed) - set(ESTIMABLE)) or sorted(set(reasons) - set(ESTIMABLE) - set(DERIVED))
    if unknown:
        raise ValueError(
            f"{'fixed' if unknown[0] in fixed and unknown[0] not in reasons else 'unfittable'}: unknown "
            f"parameter '{unknown[0]}' (expected one of {', '.join(ESTIMABLE)})"
        )
    if isinstance(min_obs, bool) or not isinstance(min_obs, int) or min_obs < 1:
        raise ValueError(f"min_obs: expected a whole number >= 1, got {min_obs!r}")
    if engagement_clusters not in ENGAGEMENT_CLUSTERS:
        raise ValueError(
            f"engagement_clusters: expected one of {', '.join(ENGAGEMENT_CLUSTERS)}, got {engagement_clusters!r}"
        )
    if not isinstance(fit_slopes, bool):
        raise ValueError(f"fit_slopes: expected true or false, got {fit_slopes!r}")
    clean = validate_offers(offers, pool)
    cal = _with_values(base, fixed)
    d = FitInputs(clean, offer_observables(clean, pool, cal), cal, min_obs, frozenset(fixed), min_influencers,
                  calendar_terms(clean, cal, dynamics), engagement_clusters, fit_slopes)  # fmt: skip
    acceptance = _acceptance_block(d)
    reach, reach_rows = _reach_block(d)
    engagement = _engagement_block(d, reach, reach_rows)
    bounded: dict[str, float] = {}
    if "load" in engagement.estimated and -engagement.coef["load"] < 0:
        # A fatigue cannot be negative (engagement declines with the sponsored load): the constrained
        # maximum is on the bound, so the block is refitted there and its multiplier estimated with it
        # (clipping the fatigue alone left the multiplier that went with the negative value).
        bounded = {"engagement_fatigue": 0.0}
        reasons["engagement_fatigue"] = (
            f"held at its bound 0: the unconstrained estimate {-engagement.coef['load']:.3g} is negative "
            "and a fatigue cannot be; the engagement block was refitted with it at 0"
        )
        at_bound = dataclasses.replace(d, cal=_with_values(d.cal, bounded), held=d.held | set(bounded))
        engagement = _engagement_block(at_bound, reach, reach_rows)
    clicks, conversions = _per_reach_blocks(d)
    price = _price_block(d)
    blocks = (acceptance, reach, engagement, clicks, conversions, price)
    fit = MarketFit.from_blocks(
        blocks, base=base, fixed={**fixed, **bounded}, n_offers=len(clean), min_obs=min_obs, reasons=reasons
    )
    return dataclasses.replace(fit, dynamics=dynamics)
