"""The influencer pool: a struct of numpy arrays, generated from the calibration or read from a CSV.

The CSV contract (the files a user brings):

* required columns ``influencer_id`` (unique), ``platform`` (instagram, tiktok, youtube), ``followers``
  (integer >= 1), ``engagement_rate`` (0 < x < 1, as observed), ``primary_category`` (one of
  :data:`~envs.calibration.CATEGORIES`), ``price`` (USD per post, > 0);
* optional groups ``category_<name>`` (the twelve-category mix), ``audience_<female|male>_<band>``
  (twelve audience cells), and single columns ``fake_share`` (0-1), ``true_engagement_rate``,
  ``sponsored_load`` (>= 0) and ``response_quality`` (> 0, hidden; mean 1). A group is either complete or absent. Missing optional columns are sampled
  from the calibration with the caller's generator (the mix and audience around the primary category,
  the fake share by tier, the true engagement rate around the observed one).

Other columns are ignored (and named in a log warning), so an export with handles and URLs reads as is.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from envs.calibration import AUDIENCE_CELLS, CATEGORIES, PLATFORMS, POPULATION_MODES, Calibration
from envs.csv_checks import CSVCheckError, check_csv_bytes, check_whole_numbers

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS: tuple[str, ...] = (
    "influencer_id",
    "platform",
    "followers",
    "engagement_rate",
    "primary_category",
    "price",
)
CATEGORY_COLUMNS: tuple[str, ...] = tuple(f"category_{c}" for c in CATEGORIES)
AUDIENCE_COLUMNS: tuple[str, ...] = tuple(f"audience_{cell}" for cell in AUDIENCE_CELLS)
OPTIONAL_COLUMNS: tuple[str, ...] = (
    "fake_share",
    "true_engagement_rate",
    "sponsored_load",
    "response_quality",
)
ALL_COLUMNS: tuple[str, ...] = REQUIRED_COLUMNS + CATEGORY_COLUMNS + AUDIENCE_COLUMNS + OPTIONAL_COLUMNS

#: Tolerance on mix and audience rows adding to 1 (rows inside it are renormalised).
_SHARE_TOLERANCE = 0.01


class PoolValidationError(ValueError):
    """An influencer table breaks the CSV contract; the message names the file, row and column."""


@dataclasses.dataclass
class InfluencerPool:
    """Influencers as parallel numpy arrays (one row per influencer).

    Attributes
    ----------
    influencer_id : (n,) str
    platform : (n,) int8, index into :data:`~envs.calibration.PLATFORMS`
    followers : (n,) int64
    engagement_rate : (n,) float64, observed (what a marketer sees on the profile)
    true_engagement_rate : (n,) float64, hidden (drives outcomes)
    fake_share : (n,) float64, hidden share of fake followers
    primary_category : (n,) int8, index into :data:`~envs.calibration.CATEGORIES`
    category_mix : (n, 12) float64, rows add to 1
    audience : (n, 12) float64, gender x age cells, rows add to 1
    price : (n,) float64, list price per post in USD
    sponsored_load : (n,) float64, recent sponsored posts (decays with a 14-day half-life)
    response_quality : (n,) float64, hidden multiplier (mean 1) of reach, engagements, clicks and
        conversions; the list price partly reflects it (see ``Calibration.price_quality_correlation``)
    """

    influencer_id: np.ndarray
    platform: np.ndarray
    followers: np.ndarray
    engagement_rate: np.ndarray
    true_engagement_rate: np.ndarray
    fake_share: np.ndarray
    primary_category: np.ndarray
    category_mix: np.ndarray
    audience: np.ndarray
    price: np.ndarray
    sponsored_load: np.ndarray
    response_quality: np.ndarray

    def __len__(self) -> int:
        return len(self.influencer_id)

    # ------------------------------------------------------------------------------- generation
    @classmethod
    def generate(
        cls,
        n: int,
        rng: np.random.Generator,
        calibration: Calibration | None = None,
        mode: str = "marketplace",
        *,
        id_prefix: str = "inf",
        id_offset: int = 0,
    ) -> InfluencerPool:
        """Draw ``n`` influencers from the calibrated market.

        Parameters
        ----------
        n : number of influencers (>= 1).
        rng : the only source of randomness.
        calibration : market parameters; the defaults of :class:`Calibration` if None.
        mode : ``"marketplace"`` (influencers active on a marketplace; Kim et al. 2020 follower
            distribution with a Pareto tail) or ``"population"`` (every account above 1k followers,
            HypeAuditor 2026 tier shares).
        id_prefix, id_offset : ids are ``f"{id_prefix}{id_offset + i:07d}"`` (newcomers use an offset).
        """
        cal = calibration or Calibration()
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n: expected a whole number >= 1, got {n!r}")
        if mode not in POPULATION_MODES:
            raise ValueError(f"mode: expected one of {list(POPULATION_MODES)}, got {mode!r}")
        platform = cal.draw("platform_mix", rng, n).astype(np.int8)
        followers = sample_followers(n, rng, cal, mode)
        primary = cal.draw("influencer_category_mix", rng, n).astype(np.int8)
        mix = sample_category_mix(primary, rng, cal)
        audience = sample_audience(primary, rng, cal)
        fake = sample_fake_share(followers, rng, cal)
        typical = typical_engagement(followers, platform, cal)
        lo, hi = cal.engagement_rate_bounds
        true_er = np.clip(typical * np.exp(cal.engagement_between_sd * rng.standard_normal(n)), lo, hi)
        observed = observe_engagement(true_er, fake, rng, cal)
        quality_z = rng.standard_normal(n)
        rho = cal.price_quality_correlation
        price_z = rho * quality_z + np.sqrt(1.0 - rho**2) * rng.standard_normal(n)
        price = list_price(followers, platform, observed, price_z, cal)
        shape, scale = cal.sponsored_load_gamma
        load = rng.gamma(shape, scale, size=n)
        ids = np.array([f"{id_prefix}{id_offset + i:07d}" for i in range(n)], dtype=object)
        return cls(
            influencer_id=ids,
            platform=platform,
            followers=followers,
            engagement_rate=observed,
            true_engagement_rate=true_er,
            fake_share=fake,
            primary_category=primary,
            category_mix=mix,
            audience=audience,
            price=price,
            sponsored_load=load,
            response_quality=response_quality(quality_z, cal),
        )

    # ------------------------------------------------------------------------------ frames, CSV
    def to_frame(self) -> pd.DataFrame:
        """All columns of the CSV contract (names as strings), hidden ones included."""
        data: dict[str, object] = {
            "influencer_id": self.influencer_id,
            "platform": np.asarray(PLATFORMS, dtype=object)[self.platform],
            "followers": self.followers,
            "engagement_rate": self.engagement_rate,
            "primary_category": np.asarray(CATEGORIES, dtype=object)[self.primary_category],
            "price": self.price,
        }
        data.update(zip(CATEGORY_COLUMNS, self.category_mix.T, strict=True))
        data.update(zip(AUDIENCE_COLUMNS, self.audience.T, strict=True))
        data["fake_share"] = self.fake_share
        data["true_engagement_rate"] = self.true_engagement_rate
        data["sponsored_load"] = self.sponsored_load
        data["response_quality"] = self.response_quality
        return pd.DataFrame(data)

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        rng: np.random.Generator | None = None,
        calibration: Calibration | None = None,
        *,
        source: str = "influencer table",
    ) -> InfluencerPool:
        """Validate a table against the CSV contract and build a pool.

        Missing optional columns are sampled with ``rng`` (required when any is missing). Every defect
        raises :class:`PoolValidationError` naming ``source``, the row (0-based data row and the
        1-based line of a CSV with a header) and the column.
        """
        cal = calibration or Calibration()
        try:  # whole numbers a float holds exactly: no 1e308, 30 digits or 2**63 written back as -2**63
            check_whole_numbers(frame, ("followers",), source)
        except CSVCheckError as err:
            raise PoolValidationError(str(err)) from None
        return _frame_to_pool(frame, rng, cal, source)

    def write_csv(self, path: str | Path) -> None:
        """Write every column; floats keep full precision, so :meth:`read_csv` gives the same pool."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        self.to_frame().to_csv(tmp, index=False, float_format=None)
        tmp.replace(path)

    @classmethod
    def read_csv(
        cls,
        path: str | Path,
        rng: np.random.Generator | None = None,
        calibration: Calibration | None = None,
    ) -> InfluencerPool:
        """Read and validate an influencer CSV (see the module docstring for the contract)."""
        path = Path(path)
        if not path.exists():
            raise PoolValidationError(f"{path}: no such file")
        if path.is_dir():
            raise PoolValidationError(f"{path}: is a folder, not an influencer CSV file")
        if not path.is_file():
            raise PoolValidationError(f"{path}: is not a regular file (a device or a pipe?); give a CSV file")
        try:
            check_csv_bytes(path)  # bytes that are not UTF-8, duplicated or space-padded header names
        except CSVCheckError as err:
            raise PoolValidationError(str(err)) from None
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
        except pd.errors.EmptyDataError:
            raise PoolValidationError(
                f"{path}: the file is empty (expected a header and at least one row)"
            ) from None
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            first = str(exc).strip().splitlines()[0]
            raise PoolValidationError(f"{path}: not a readable CSV ({first})") from None
        return cls.from_frame(frame, rng, calibration, source=str(path))

    # ------------------------------------------------------------------------------ selection
    def subset(self, index: np.ndarray) -> InfluencerPool:
        """The influencers at ``index`` (an integer array or boolean mask), as a new pool."""
        return InfluencerPool(**{f.name: getattr(self, f.name)[index] for f in dataclasses.fields(self)})

    def tiers(self, calibration: Calibration | None = None) -> np.ndarray:
        """Tier index of every influencer (see :data:`~envs.calibration.TIERS`)."""
        return (calibration or Calibration()).tier_index(self.followers)


# ------------------------------------------------------------------------------------- sampling


def sample_followers(n: int, rng: np.random.Generator, cal: Calibration, mode: str) -> np.ndarray:
    """Follower counts (int64, >= ``min_followers``) for a population mode.

    Both modes draw ln followers from a normal truncated at ln(1,000) (inverse-CDF sampling, so every
    draw is used). The marketplace mode replaces the part above ``marketplace_tail_start`` by a Pareto
    tail with the calibrated pdf exponent, keeping the tail's total mass.
    """
    from scipy.special import ndtr, ndtri

    if mode == "population":
        mu, sd = cal.population_log_followers_mean, cal.population_log_followers_sd
    else:
        mu, sd = cal.marketplace_log_followers_mean, cal.marketplace_log_followers_sd
    low = ndtr((np.log(cal.min_followers) - mu) / sd)
    u = rng.random(n)
    log_f = mu + sd * ndtri(low + u * (1.0 - low))
    followers = np.exp(log_f)
    if mode == "marketplace":
        start = cal.marketplace_tail_start
        in_tail = followers > start
        alpha = cal.marketplace_tail_pdf_exponent - 1.0
        kept = 1.0 - (start / cal.max_followers) ** alpha
        u = rng.random(int(in_tail.sum()))
        followers[in_tail] = start * (1.0 - u * kept) ** (-1.0 / alpha)
    followers = np.clip(np.rint(followers), cal.min_followers, cal.max_followers)
    return followers.astype(np.int64)


def sample_category_mix(primary: np.ndarray, rng: np.random.Generator, cal: Calibration) -> np.ndarray:
    """Category mix rows: Dirichlet(base everywhere + extra on the primary), via normalised gammas."""
    alpha = np.full((len(primary), len(CATEGORIES)), cal.category_mix_base_alpha)
    alpha[np.arange(len(primary)), primary] += cal.category_mix_primary_alpha
    return _dirichlet_rows(alpha, rng)


def sample_audience(
    category: np.ndarray, rng: np.random.Generator, cal: Calibration, concentration=None
) -> np.ndarray:
    """Audience rows: Dirichlet around the category-tilted base audience (concentration 20 by default)."""
    concentration = cal.audience_concentration if concentration is None else concentration
    return _dirichlet_rows(concentration * cal.base_audience()[category], rng)


def _dirichlet_rows(alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    draws = rng.standard_gamma(alpha)
    total = draws.sum(axis=1, keepdims=True)
    # A row of all-zero gammas is possible only with tiny alphas; fall back to the mean.
    bad = total[:, 0] <= 0
    if bad.any():
        draws[bad] = alpha[bad]
        total[bad] = alpha[bad].sum(axis=1, keepdims=True)
    return draws / total


def sample_fake_share(followers: np.ndarray, rng: np.random.Generator, cal: Calibration) -> np.ndarray:
    """Fake-follower share: a fraud group (probability by tier) uniform on its range, else Beta(2, 16)."""
    n = len(followers)
    p_fraud = np.asarray(cal.fraud_probability_by_tier)[cal.tier_index(followers)]
    fraud = rng.random(n) < p_fraud
    a, b = cal.fake_share_clean_beta
    lo, hi = cal.fake_share_fraud_range
    clean = rng.beta(a, b, size=n)
    fraudulent = rng.uniform(lo, hi, size=n)
    return np.where(fraud, fraudulent, clean)


def typical_engagement(followers: np.ndarray, platform: np.ndarray, cal: Calibration) -> np.ndarray:
    """Engagement rate of a typical account of this size and platform (the calibrated curve)."""
    lf = np.log(np.asarray(followers, dtype=float) / 1e4)
    return cal.engagement_at_10k[platform] * np.exp(cal.engagement_slope[platform] * lf)


def observe_engagement(
    true_er: np.ndarray, fake_share: np.ndarray, rng: np.random.Generator, cal: Calibration
) -> np.ndarray:
    """The rate a marketer sees: the mean of the last ``observed_posts`` posts (post noise / sqrt(n)),
    inflated for accounts with many fake followers (bought engagement)."""
    noise = cal.engagement_post_sd / np.sqrt(cal.observed_posts) * rng.standard_normal(len(true_er))
    inflation = 1.0 + cal.fraud_engagement_inflation * np.clip(
        fake_share - cal.fake_share_fraud_range[0], 0, None
    )
    lo, hi = cal.engagement_rate_bounds
    return np.clip(true_er * np.exp(noise) * inflation, lo, hi)


def list_price(
    followers: np.ndarray,
    platform: np.ndarray,
    observed_er: np.ndarray,
    price_z: np.ndarray,
    cal: Calibration,
) -> np.ndarray:
    """List price per post in USD, rounded to cents: price at 10k x (F/10k)^0.9 x engagement premium x
    exp(log-sd x ``price_z``) (standard normal noise), at least ``min_price``."""
    price = _typical_price(followers, platform, observed_er, cal) * np.exp(cal.price_log_sd * price_z)
    return np.maximum(np.round(price, 2), cal.min_price)


def _typical_price(followers: np.ndarray, platform: np.ndarray, observed_er: np.ndarray, cal: Calibration):
    rel = observed_er / typical_engagement(followers, platform, cal)
    return (
        cal.array("price_at_10k")[platform]
        * (np.asarray(followers, dtype=float) / 1e4) ** cal.price_follower_exponent
        * rel**cal.price_engagement_exponent
    )


def response_quality(quality_z: np.ndarray, cal: Calibration) -> np.ndarray:
    """The hidden multiplier exp(sd q - sd^2 / 2) (mean 1) from standard normal ``quality_z``."""
    sd = cal.response_quality_sd
    return np.exp(sd * quality_z - sd**2 / 2)


def quality_given_price(
    followers: np.ndarray, platform: np.ndarray, observed_er: np.ndarray, price: np.ndarray,
    rng: np.random.Generator, cal: Calibration,
) -> np.ndarray:  # fmt: skip
    """Sample the hidden quality of influencers whose price is known: q | price noise z ~ N(rho z, 1 - rho^2),
    so a user's pool keeps the generator's link between price and quality."""
    price_z = np.log(price / _typical_price(followers, platform, observed_er, cal)) / cal.price_log_sd
    rho = cal.price_quality_correlation
    return response_quality(rho * price_z + np.sqrt(1.0 - rho**2) * rng.standard_normal(len(price)), cal)


# ----------------------------------------------------------------------------------- validation
def _frame_to_pool(
    frame: pd.DataFrame, rng: np.random.Generator | None, cal: Calibration, source: str
) -> InfluencerPool:
    if not isinstance(frame, pd.DataFrame):
        raise PoolValidationError(f"{source}: expected a pandas DataFrame, got {type(frame).__name__}")
    frame = frame.rename(columns=lambda c: str(c).strip())
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise PoolValidationError(
            f"{source}: missing required column '{missing[0]}' (required: {', '.join(REQUIRED_COLUMNS)})"
        )
    if frame.columns.duplicated().any():
        dup = frame.columns[frame.columns.duplicated()][0]
        raise PoolValidationError(f"{source}: column '{dup}' appears twice")
    if len(frame) == 0:
        raise PoolValidationError(f"{source}: no rows (expected at least one influencer)")
    extra = [c for c in frame.columns if c not in ALL_COLUMNS]
    if extra:
        logger.warning("%s: ignoring columns not in the contract: %s", source, ", ".join(map(str, extra)))
    check = _Checker(frame, source)

    ids = check.text("influencer_id")
    repeated = pd.Series(ids).duplicated(keep="first").to_numpy()
    if repeated.any():
        row = int(np.flatnonzero(repeated)[0])
        first = int(np.flatnonzero(ids == ids[row])[0])
        check.fail(row, "influencer_id", f"duplicate id '{ids[row]}' (first seen at row {first})")
    platform = check.choice("platform", PLATFORMS)
    followers_f = check.number("followers", lower=1.0, lower_inclusive=True, integer=True)
    followers = followers_f.astype(np.int64)
    observed = check.number("engagement_rate", lower=0.0, upper=1.0)
    primary = check.choice("primary_category", CATEGORIES)
    price = check.number("price", lower=0.0)

    need_rng = [
        name
        for name, cols in (("category mix", CATEGORY_COLUMNS), ("audience", AUDIENCE_COLUMNS))
        if cols[0] not in frame.columns and not any(c in frame.columns for c in cols)
    ] + [c for c in OPTIONAL_COLUMNS if c not in frame.columns]
    if need_rng and rng is None:
        raise PoolValidationError(
            f"{source}: columns {', '.join(need_rng)} are missing and must be sampled, but no random "
            "generator was given"
        )
    mix = check.share_group(CATEGORY_COLUMNS, "category")
    if mix is None:
        mix = sample_category_mix(primary, _given(rng), cal)
    audience = check.share_group(AUDIENCE_COLUMNS, "audience")
    if audience is None:
        audience = sample_audience(primary, _given(rng), cal)
    if "fake_share" in frame.columns:
        fake = check.number("fake_share", lower=0.0, upper=1.0, lower_inclusive=True, upper_inclusive=True)
    else:
        fake = sample_fake_share(followers, _given(rng), cal)
    if "true_engagement_rate" in frame.columns:
        true_er = check.number("true_engagement_rate", lower=0.0, upper=1.0)
    else:
        # Invert the observation model: the true rate scatters around the observed one by the
        # measurement noise of a 12-post mean (the fraud inflation is not undone: the market cannot see it).
        sd = cal.engagement_post_sd / np.sqrt(cal.observed_posts)
        lo, hi = cal.engagement_rate_bounds
        true_er = np.clip(observed * np.exp(sd * _given(rng).standard_normal(len(frame))), lo, hi)
    if "sponsored_load" in frame.columns:
        load = check.number("sponsored_load", lower=0.0, lower_inclusive=True)
    else:
        shape, scale = cal.sponsored_load_gamma
        load = _given(rng).gamma(shape, scale, size=len(frame))
    if "response_quality" in frame.columns:
        quality = check.number("response_quality", lower=0.0)
    else:
        quality = quality_given_price(followers, platform, observed, price, _given(rng), cal)
    return InfluencerPool(
        influencer_id=ids.astype(object),
        platform=platform.astype(np.int8),
        followers=followers,
        engagement_rate=observed,
        true_engagement_rate=true_er,
        fake_share=fake,
        primary_category=primary.astype(np.int8),
        category_mix=mix,
        audience=audience,
        price=price,
        sponsored_load=load,
        response_quality=quality,
    )


def _given(rng: np.random.Generator | None) -> np.random.Generator:
    """``rng`` where a missing column is sampled (a frame that needs sampling without one was refused)."""
    if rng is None:
        raise AssertionError("a column is sampled without a generator")
    return rng


class _Checker:
    """Column checks that name the first offending row (0-based data row and 1-based CSV line)."""

    def __init__(self, frame: pd.DataFrame, source: str) -> None:
        self.frame = frame
        self.source = source

    def fail(self, row: int, column: str, what: str) -> None:
        raise PoolValidationError(f"{self.source}: row {row} (line {row + 2}), column '{column}': {what}")

    def _raw(self, column: str) -> pd.Series:
        values = self.frame[column]
        text = values.astype(str).str.strip()
        empty = values.isna().to_numpy() | text.isin(["", "nan", "NaN", "NA", "None"]).to_numpy()
        if empty.any():
            self.fail(int(np.flatnonzero(empty)[0]), column, "missing value (empty or NaN)")
        return text

    def text(self, column: str) -> np.ndarray:
        return self._raw(column).to_numpy(dtype=object)

    def choice(self, column: str, allowed: tuple[str, ...]) -> np.ndarray:
        text = self._raw(column).str.lower()
        index = pd.Index(allowed).get_indexer(pd.Index(text))
        bad = index < 0
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            self.fail(
                row,
                column,
                f"unknown value '{self.frame[column].iloc[row]}' (expected one of {', '.join(allowed)})",
            )
        return index

    def number(
        self,
        column: str,
        *,
        lower: float | None = None,
        upper: float | None = None,
        lower_inclusive: bool = False,
        upper_inclusive: bool = False,
        integer: bool = False,
    ) -> np.ndarray:
        text = self._raw(column)
        values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            self.fail(row, column, f"expected a number, got '{text.iloc[row]}'")
        if integer:
            bad = values != np.round(values)
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                self.fail(row, column, f"expected a whole number, got '{text.iloc[row]}'")
        if lower is not None:
            bad = values < lower if lower_inclusive else values <= lower
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                sign = ">=" if lower_inclusive else ">"
                self.fail(row, column, f"expected a value {sign} {lower:g}, got '{text.iloc[row]}'")
        if upper is not None:
            bad = values > upper if upper_inclusive else values >= upper
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                sign = "<=" if upper_inclusive else "<"
                self.fail(row, column, f"expected a value {sign} {upper:g}, got '{text.iloc[row]}'")
        return values

    def share_group(self, columns: tuple[str, ...], name: str) -> np.ndarray | None:
        present = [c for c in columns if c in self.frame.columns]
        if not present:
            return None
        if len(present) != len(columns):
            absent = next(c for c in columns if c not in self.frame.columns)
            raise PoolValidationError(
                f"{self.source}: column '{absent}' is missing; the {name} columns must all be present or all absent"
            )
        shares = np.column_stack(
            [
                self.number(c, lower=0.0, upper=1.0, lower_inclusive=True, upper_inclusive=True)
                for c in columns
            ]
        )
        total = shares.sum(axis=1)
        bad = np.abs(total - 1.0) > _SHARE_TOLERANCE
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            self.fail(row, columns[0], f"the {name} columns add to {total[row]:.4f}, expected 1")
        # Renormalise only rows that are visibly off, so a written pool reads back bit for bit.
        off = np.abs(total - 1.0) > 1e-9
        shares[off] /= total[off, None]
        return shares
