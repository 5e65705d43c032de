"""The offers table: one row per offer a brand made (refused offers included), and its validation.

:data:`OFFER_COLUMNS` is the one home of the table's columns (name, kind, unit, meaning); the log format
and the CLI import it. The influencer's observable features (platform, followers, observed engagement
rate, list price, fake share) are not repeated in the table: they come from the
:class:`~envs.population.InfluencerPool` the offers refer to, joined on ``influencer_id``.

:func:`validate_offers` checks a table against the spec and returns a clean copy; every defect raises
:class:`OffersValidationError` with one line naming the column, the row and the value.
:func:`offer_observables` joins the pool and derives what the likelihoods need from observables only.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd

from envs.calibration import CATEGORIES, GOALS, Calibration
from envs.population import InfluencerPool, typical_engagement


class OffersValidationError(ValueError):
    """An offers table breaks the spec of :data:`OFFER_COLUMNS`; the message names column, row and value."""


@dataclasses.dataclass(frozen=True)
class OfferColumn:
    """One column of the offers table.

    Attributes
    ----------
    name : str
        Column name.
    kind : str
        ``"id"`` (text), ``"int"``, ``"float"``, ``"flag"`` (0/1) or ``"choice"`` (one of ``choices``).
    unit : str
        Unit of the value ("USD", "posts", "share", "month (0 = January)", "" for ids and counts).
    group : str
        ``"decision"`` (known when the offer is made, needed for every row) or ``"outcome"`` (what the
        accepted offer produced; 0 for refused offers).
    description : str
        What the column means.
    lower : float | None
        Smallest allowed value (inclusive), if any.
    upper : float | None
        Largest allowed value (inclusive), if any.
    choices : tuple[str, ...]
        Allowed values of a ``"choice"`` column.
    """

    name: str
    kind: str
    unit: str
    group: str
    description: str
    lower: float | None = None
    upper: float | None = None
    choices: tuple[str, ...] = ()


#: The columns of the offers table, in order.
OFFER_COLUMNS: tuple[OfferColumn, ...] = (
    OfferColumn("influencer_id", "id", "", "decision", "id of the influencer offered the deal (in the pool)"),
    OfferColumn("campaign_id", "id", "", "decision", "id of the brand campaign that made the offer"),
    OfferColumn("month", "int", "month (0 = January)", "decision", "calendar month of the offer", 0, 11),
    OfferColumn("offer_ratio", "float", "share of list price", "decision", "offer / list price", 1e-6),
    OfferColumn(
        "sponsored_load", "float", "posts", "decision", "the influencer's sponsored load when offered", 0
    ),
    OfferColumn("brand_category", "choice", "", "decision", "the brand's category", choices=CATEGORIES),
    OfferColumn("goal", "choice", "", "decision", "the campaign's goal", choices=GOALS),
    OfferColumn("order_value", "float", "USD", "decision", "average order value (revenue per conversion)", 0),
    OfferColumn(
        "category_share",
        "float",
        "share",
        "decision",
        "influencer's category mix at the brand's category",
        0,
        1,
    ),  # fmt: skip
    OfferColumn(
        "fit", "float", "share", "decision", "brand fit from observables (0.6 category + 0.4 audience)", 0, 1
    ),
    OfferColumn(
        "overlap_factor",
        "float",
        "share",
        "decision",
        "share of the reach new given earlier hires of the campaign in the segment (1 when none)",
        1e-9,
        1,
    ),  # fmt: skip
    OfferColumn("segment", "int", "", "decision", "segment of the influencer (as the logger saw it)", 0),
    OfferColumn("accepted", "flag", "", "decision", "1 if the influencer accepted, else 0", 0, 1),
    OfferColumn("reach", "int", "people", "outcome", "unique reach of the post", 0),
    OfferColumn("engagements", "int", "engagements", "outcome", "likes, comments, shares", 0),
    OfferColumn("clicks", "int", "clicks", "outcome", "clicks on the brand's link", 0),
    OfferColumn("conversions", "int", "orders", "outcome", "orders attributed to the post", 0),
    OfferColumn("cost", "float", "USD", "outcome", "what the brand paid (0 when refused)", 0),
    OfferColumn("revenue", "float", "USD", "outcome", "conversions x order value", 0),
)
#: Column names, in order.
OFFER_COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in OFFER_COLUMNS)
#: Names of the outcome columns.
OUTCOME_COLUMNS: tuple[str, ...] = tuple(c.name for c in OFFER_COLUMNS if c.group == "outcome")

#: A table with fewer rows than this is refused (no parameter could be estimated from it).
MIN_OFFERS = 10


def validate_offers(
    offers: pd.DataFrame, pool: InfluencerPool, *, source: str = "offers", min_rows: int = MIN_OFFERS
) -> pd.DataFrame:
    """Check an offers table against :data:`OFFER_COLUMNS` and the pool; return a clean copy.

    Parameters
    ----------
    offers : pandas.DataFrame
        One row per offer (see :data:`OFFER_COLUMNS`); extra columns are kept and ignored.
    pool : InfluencerPool
        The influencers the offers refer to; every ``influencer_id`` must be in it.
    source : str
        Name used in error messages (a file path, "logs").
    min_rows : int
        Fewest offers accepted.

    Returns
    -------
    pandas.DataFrame
        The offers with typed columns (ints, floats, 0/1 ``accepted``, category and goal names) and a
        fresh 0-based index.

    Raises
    ------
    OffersValidationError
        One line naming the column, the 0-based row and the offending value.
    """
    if not isinstance(offers, pd.DataFrame):
        raise OffersValidationError(f"{source}: expected a pandas DataFrame, got {type(offers).__name__}")
    frame = offers.rename(columns=lambda c: str(c).strip()).reset_index(drop=True)
    missing = [c.name for c in OFFER_COLUMNS if c.name not in frame.columns]
    missing_outcomes = [m for m in missing if m in OUTCOME_COLUMNS]
    if missing_outcomes:
        raise OffersValidationError(
            f"{source}: missing outcome columns {', '.join(missing_outcomes)} (the fit needs every outcome "
            f"of the accepted offers: {', '.join(OUTCOME_COLUMNS)})"
        )
    if missing:
        raise OffersValidationError(f"{source}: missing columns {', '.join(missing)}")
    if len(frame) < min_rows:
        raise OffersValidationError(f"{source}: {len(frame)} offers, expected at least {min_rows}")
    out = frame.copy()
    for column in OFFER_COLUMNS:
        out[column.name] = _check_column(frame[column.name], column, source)
    index = pd.Index(pool.influencer_id).get_indexer(out["influencer_id"])
    unknown = np.flatnonzero(index < 0)
    if len(unknown):
        row = int(unknown[0])
        raise OffersValidationError(
            f"{source}: row {row}, column 'influencer_id': '{out['influencer_id'].iloc[row]}' is not in the "
            f"pool ({len(unknown)} offers name influencers outside the pool)"
        )
    refused_with_outcome = (out["accepted"].to_numpy() == 0) & (
        out[list(OUTCOME_COLUMNS)].to_numpy() != 0
    ).any(axis=1)
    if refused_with_outcome.any():
        row = int(np.flatnonzero(refused_with_outcome)[0])
        raise OffersValidationError(
            f"{source}: row {row}: a refused offer (accepted = 0) with non-zero outcomes"
        )
    return out


def _check_column(values: pd.Series, column: OfferColumn, source: str) -> pd.Series:
    """The column converted to its kind; raises naming the first bad row."""
    name = column.name

    def fail(row: int, what: str) -> None:
        raise OffersValidationError(f"{source}: row {row}, column '{name}': {what}, got {values.iloc[row]!r}")

    if column.kind in ("id", "choice"):
        text = values.astype(str).str.strip()
        empty = values.isna().to_numpy() | (text == "").to_numpy()
        if empty.any():
            fail(int(np.flatnonzero(empty)[0]), "missing value")
        if column.kind == "choice":
            text = text.str.lower()
            bad = ~text.isin(column.choices).to_numpy()
            if bad.any():
                fail(int(np.flatnonzero(bad)[0]), f"expected one of {', '.join(column.choices)}")
        return text
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(numbers)
    if bad.any():
        fail(int(np.flatnonzero(bad)[0]), "expected a number")
    if column.kind in ("int", "flag"):
        bad = numbers != np.round(numbers)
        if bad.any():
            fail(int(np.flatnonzero(bad)[0]), "expected a whole number")
    if column.lower is not None and (numbers < column.lower).any():
        fail(int(np.flatnonzero(numbers < column.lower)[0]), f"expected a value >= {column.lower:g}")
    if column.upper is not None and (numbers > column.upper).any():
        fail(int(np.flatnonzero(numbers > column.upper)[0]), f"expected a value <= {column.upper:g}")
    return pd.Series(
        numbers.astype(np.int64) if column.kind in ("int", "flag") else numbers, index=values.index
    )


def read_offers_csv(path: str | Path, pool: InfluencerPool) -> pd.DataFrame:
    """Read an offers CSV (columns of :data:`OFFER_COLUMNS`) and validate it against ``pool``.

    Raises
    ------
    OffersValidationError
        When the file cannot be read or breaks the spec (one line naming file, column and row).
    """
    path = Path(path)
    if not path.is_file():
        raise OffersValidationError(f"{path}: no such file")
    try:
        frame = pd.read_csv(path, dtype={"influencer_id": str, "campaign_id": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OffersValidationError(f"{path}: not a readable CSV ({first})") from None
    return validate_offers(frame, pool, source=str(path))


# ------------------------------------------------------------------------------ observables
@dataclasses.dataclass(frozen=True)
class OfferObservables:
    """What the likelihoods use about each offer's influencer, from observables only (arrays per offer).

    Attributes
    ----------
    index : (n,) int
        Row of the influencer in the pool.
    platform : (n,) int
        Index into :data:`~envs.calibration.PLATFORMS`.
    followers : (n,) float
        Followers (people).
    log_followers : (n,) float
        ln(followers / 10k).
    fake_share : (n,) float
        Fake-follower share from the pool (given by the team, or sampled when the pool read it).
    price : (n,) float
        List price per post, USD.
    quality_mean : (n,) float
        E[ln(true ER / typical ER) | observed ER]: the observed rate corrected for the fraud inflation
        and shrunk for its measurement noise (regression calibration, see :func:`offer_observables`).
    quality_var : float
        Var[ln(true ER / typical ER) | observed ER] (the same for every influencer).
    true_engagement : (n,) float
        E[true ER | observed ER], the rate used in the expected engagements.
    price_z : (n,) float
        Standardised residual of ln(list price) given platform, size and observed ER across the pool
        (NaN where the price sits at the calibrated floor, which censors it).
    """

    index: np.ndarray
    platform: np.ndarray
    followers: np.ndarray
    log_followers: np.ndarray
    fake_share: np.ndarray
    price: np.ndarray
    quality_mean: np.ndarray
    quality_var: float
    true_engagement: np.ndarray
    price_z: np.ndarray


def offer_observables(offers: pd.DataFrame, pool: InfluencerPool, base: Calibration) -> OfferObservables:
    """Join the pool's observable features onto validated offers.

    The observed engagement rate is the mean of ``observed_posts`` posts, inflated for accounts with
    fakes (``fraud_engagement_inflation``); the outcomes follow the true rate. With the inflation undone
    from the pool's fake share, W = ln(observed / typical) = X + e with e ~ N(0, post_sd^2 / posts), so
    E[X | W] = mean(W) + lambda (W - mean(W)) and Var[X | W] = lambda post_sd^2 / posts, where
    lambda = 1 - (post_sd^2 / posts) / Var(W) over the pool (regression calibration of a known
    measurement error; X is normal in the generator).

    The price residual ``price_z`` comes from a least-squares fit over the pool of ln(price) on the
    platform, the platform's ln(followers / 10k) and the observed ln(ER / typical ER), so it does not
    assume the calibrated price level.
    """
    index = pd.Index(pool.influencer_id).get_indexer(offers["influencer_id"])
    followers = pool.followers.astype(float)
    typical = typical_engagement(followers, pool.platform, base)
    inflation = 1.0 + base.fraud_engagement_inflation * np.clip(
        pool.fake_share - base.fake_share_fraud_range[0], 0.0, None
    )
    w = np.log(pool.engagement_rate / inflation / typical)
    noise_var = base.engagement_post_sd**2 / base.observed_posts
    var_w = float(np.var(w)) if len(w) > 1 else noise_var
    shrink = max(var_w - noise_var, 0.0) / var_w if var_w > 0 else 0.0
    quality_mean = w.mean() + shrink * (w - w.mean())
    quality_var = shrink * noise_var
    log_f = np.log(followers / 1e4)
    # The market prices the observed rate as it is seen (inflation included).
    price_z = _price_residual(pool, log_f, np.log(pool.engagement_rate / typical), base)
    return OfferObservables(
        index=index,
        platform=pool.platform[index].astype(np.int64),
        followers=followers[index],
        log_followers=log_f[index],
        fake_share=pool.fake_share[index],
        price=pool.price[index],
        quality_mean=quality_mean[index],
        quality_var=float(quality_var),
        true_engagement=(typical * np.exp(quality_mean + quality_var / 2))[index],
        price_z=price_z[index],
    )


def _price_residual(pool: InfluencerPool, log_f: np.ndarray, w: np.ndarray, base: Calibration) -> np.ndarray:
    """Standardised residual of ln(list price) on platform dummies, platform x ln(F/10k) and ``w``, the
    observed ln(ER / typical ER) (NaN at the price floor, and everywhere when the pool is too small)."""
    n_platforms = int(pool.platform.max()) + 1
    dummies = np.eye(n_platforms)[pool.platform]
    design = np.column_stack([dummies, dummies * log_f[:, None], w])
    free = pool.price > base.min_price * (1 + 1e-9)
    z = np.full(len(pool), np.nan)
    if free.sum() <= design.shape[1] + 2:
        return z
    log_price = np.log(pool.price)
    # Pass 1 on every unfloored price; pass 2 only where the floor almost never binds (predicted price
    # 2.5 residual sd above it), so the truncation at the floor does not bend the coefficients.
    coef, *_ = np.linalg.lstsq(design[free], log_price[free], rcond=None)
    sd = float(np.std((log_price - design @ coef)[free]))
    clear = free & (design @ coef > math.log(base.min_price) + 2.5 * sd)
    if clear.sum() > design.shape[1] + 2:
        coef, *_ = np.linalg.lstsq(design[clear], log_price[clear], rcond=None)
        sd = float(np.std((log_price - design @ coef)[clear]))
    resid = log_price - design @ coef
    if sd > 0:
        z[free] = resid[free] / sd
    return z


# --------------------------------------------------------------------------------- the calendar
@dataclasses.dataclass(frozen=True)
class CalendarTerms:
    """What the market's dynamics add to each offer beyond the fitted parameters (arrays per offer).

    Under ``"v0"`` all are neutral; under ``"v1"`` (see :class:`~envs.matching_env.InfluencerMatchingEnv`)
    creators book up ahead of the holidays and demand follows the brand's category by month. These are
    calibration fields the fit holds at their values in the base calibration (taken as known), so the
    fitted ``acceptance_month_shift``, ``price_month_premium`` and ``conversion_rate`` keep the meaning
    they have in the calibration.

    Attributes
    ----------
    acceptance_shift : (n,) float
        Added to the acceptance logit (``booking_month_shift`` of the offer's month).
    price_factor : (n,) float
        Multiplies the price paid (``booking_month_premium`` of the month).
    conversion_factor : (n,) float
        Multiplies the conversions per reach (``category_month_demand`` of the brand and month).
    """

    acceptance_shift: np.ndarray
    price_factor: np.ndarray
    conversion_factor: np.ndarray


def calendar_terms(offers: pd.DataFrame, cal: Calibration, dynamics: str = "v0") -> CalendarTerms:
    """The calendar terms of validated offers under the market's ``dynamics`` (``"v0"`` or ``"v1"``)."""
    from envs.matching_env import DYNAMICS

    if dynamics not in DYNAMICS:
        raise ValueError(f"dynamics: expected one of {list(DYNAMICS)}, got {dynamics!r}")
    month = offers["month"].to_numpy(dtype=np.int64)
    if dynamics == "v0":
        ones = np.ones(len(offers))
        return CalendarTerms(np.zeros(len(offers)), ones, ones)
    brand = pd.Index(CATEGORIES).get_indexer(pd.Index(offers["brand_category"]))
    demand = np.asarray(cal.category_month_demand, dtype=float)
    return CalendarTerms(
        acceptance_shift=np.asarray(cal.booking_month_shift, dtype=float)[month],
        price_factor=np.asarray(cal.booking_month_premium, dtype=float)[month],
        conversion_factor=demand[brand, month],
    )
