"""Influencer features: the standardised matrix used for segmentation and the brand-fit embedding.

Both work on a pandas DataFrame with the columns of the influencer CSV contract: ``platform``,
``followers``, ``engagement_rate``, ``primary_category``, ``price`` and, where present, the category mix ``category_<name>`` and the audience ``audience_<gender>_<band>``.
Hidden simulator columns (``true_engagement_rate``, ``sponsored_load``, ...) are never read.

Column order is fixed by :data:`CATEGORY_COLUMNS` and :data:`AUDIENCE_COLUMNS`, whatever order the
frame holds them in.

This module is also the one home of the market's vocabulary (platforms, categories, audience cells,
follower tiers and their default edges): every other module, :mod:`envs.calibration` included, imports
it from here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

logger = logging.getLogger(__name__)

#: The twelve content categories (column order of every mix; ``docs/calibration.md``).
CATEGORIES: tuple[str, ...] = (
    "fashion",
    "beauty",
    "lifestyle",
    "fitness",
    "food",
    "travel",
    "family",
    "home",
    "pets",
    "gaming",
    "tech",
    "entertainment",
)
PLATFORMS: tuple[str, ...] = ("instagram", "tiktok", "youtube")
AUDIENCE_GENDERS: tuple[str, ...] = ("female", "male")
AUDIENCE_BANDS: tuple[str, ...] = ("13_17", "18_24", "25_34", "35_44", "45_54", "55_plus")
#: Follower tiers (Later × Fohr 2021 convention, IND), smallest first.
TIERS: tuple[str, ...] = ("nano", "micro", "mid", "macro", "mega")
#: Default lower follower edge of every tier but the first: a tier holds ``[edge, next edge)``, so 10,000
#: followers is micro and 1,000,000 is mega; accounts below 1,000 followers count as nano. A calibration
#: may move the edges (``Calibration.tier_edges``); whoever assigns tiers takes the edges as an argument.
TIER_EDGES: tuple[float, ...] = (10_000.0, 100_000.0, 500_000.0, 1_000_000.0)

CATEGORY_PREFIX = "category_"
AUDIENCE_PREFIX = "audience_"
#: Category-mix columns in canonical order.
CATEGORY_COLUMNS: tuple[str, ...] = tuple(f"{CATEGORY_PREFIX}{c}" for c in CATEGORIES)
#: Audience columns in canonical order: the six female age bands, then the six male ones.
AUDIENCE_COLUMNS: tuple[str, ...] = tuple(
    f"{AUDIENCE_PREFIX}{g}_{b}" for g in AUDIENCE_GENDERS for b in AUDIENCE_BANDS
)

#: Default weights of the brand fit ``0.6 · mix[i, c_b] + 0.4 · Σ sqrt(a_i · t_b)`` (ASM, see
#: ``docs/calibration.md``; the calibration's ``fit_category_weight`` and ``fit_audience_weight`` default
#: to these).
BRAND_FIT_CATEGORY_WEIGHT = 0.6
BRAND_FIT_AUDIENCE_WEIGHT = 0.4

#: Default share of the clustering geometry given to each feature block (see :class:`InfluencerFeatures`).
DEFAULT_BLOCK_WEIGHTS: Mapping[str, float] = {
    "followers": 1.0,
    "engagement": 1.0,
    "price": 1.0,
    "platform": 1.0,
    "category": 2.0,
    "audience": 1.0,
}

# Tolerance on the row sums of the mix and audience columns (CSV files are often rounded).
_ROW_SUM_TOLERANCE = 0.02


def check_tier_edges(tier_edges: Sequence[float]) -> None:
    """Raise ``ValueError`` unless ``tier_edges`` holds one follower count per tier but the first (the
    lower edges of micro, mid, macro and mega), in increasing order."""
    edges = list(tier_edges)
    if len(edges) != len(TIERS) - 1 or edges != sorted(edges):
        raise ValueError(
            f"tier_edges: expected {len(TIERS) - 1} increasing follower counts, got {tier_edges!r}"
        )


def tier_index(followers: ArrayLike, tier_edges: Sequence[float] = TIER_EDGES) -> np.ndarray:
    """Tier of each follower count as an index into :data:`TIERS` (a tier includes its lower edge).

    Parameters
    ----------
    followers : array-like of numbers
        Follower counts.
    tier_edges : sequence of 4 numbers
        Lower edge of micro, mid, macro and mega, in followers (default :data:`TIER_EDGES`).

    Returns
    -------
    ndarray of int64, same shape as ``followers``
    """
    edges = np.asarray(tier_edges, dtype=np.float64)
    return np.searchsorted(edges, np.asarray(followers, dtype=np.float64), side="right")


class InfluencerFrameError(ValueError):
    """A frame does not follow the influencer column contract; the message names the column and row."""


def _require_columns(frame: pd.DataFrame, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InfluencerFrameError(f"influencer frame is missing required column {missing[0]!r}")


def _first_bad_row(frame: pd.DataFrame, bad: np.ndarray) -> Any:
    """The index label of the first row flagged in ``bad`` (a label of any type)."""
    return frame.index[int(np.flatnonzero(bad)[0])]


def _numeric_column(
    frame: pd.DataFrame, column: str, low: float, high: float, *, open_low: bool
) -> np.ndarray:
    """Column as float64, checked to lie in ``(low, high)`` (or ``[low, high)`` when ``open_low`` is False)."""
    try:
        values = pd.to_numeric(frame[column], errors="raise").to_numpy(dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise InfluencerFrameError(f"column {column!r} must be numeric ({exc})") from None
    too_low = values <= low if open_low else values < low
    bad = ~np.isfinite(values) | too_low | (values >= high)
    if bad.any():
        row = _first_bad_row(frame, bad)
        bound = f"({low}, {high})" if open_low else f"[{low}, {high})"
        raise InfluencerFrameError(
            f"column {column!r}, row {row!r}: value {frame[column].loc[row]!r} is outside {bound}"
        )
    return values


def _categorical_codes(frame: pd.DataFrame, column: str, allowed: tuple[str, ...]) -> np.ndarray:
    codes = pd.Index(allowed).get_indexer(pd.Index(frame[column].astype(str))).astype(np.int64)
    bad = codes < 0
    if bad.any():
        row = _first_bad_row(frame, bad)
        raise InfluencerFrameError(
            f"column {column!r}, row {row!r}: {frame[column].loc[row]!r} is not one of {', '.join(allowed)}"
        )
    return codes


def _composition(frame: pd.DataFrame, prefix: str, expected: tuple[str, ...]) -> np.ndarray | None:
    """The block of columns starting with ``prefix`` in canonical order, or None if the frame has none."""
    present = [c for c in frame.columns if isinstance(c, str) and c.startswith(prefix)]
    if not present:
        return None
    unknown = sorted(set(present) - set(expected))
    if unknown:
        raise InfluencerFrameError(
            f"unknown column {unknown[0]!r}: columns starting with {prefix!r} must be among {', '.join(expected)}"
        )
    missing = [c for c in expected if c not in present]
    if missing:
        raise InfluencerFrameError(
            f"influencer frame has some {prefix}* columns but not {missing[0]!r} (give all {len(expected)} or none)"
        )
    try:
        block = frame[list(expected)].apply(pd.to_numeric, errors="raise").to_numpy(dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise InfluencerFrameError(f"columns {prefix}* must be numeric ({exc})") from None
    bad_cell = ~np.isfinite(block) | (block < 0.0)
    if bad_cell.any():
        row_pos, col_pos = np.argwhere(bad_cell)[0]
        raise InfluencerFrameError(
            f"column {expected[col_pos]!r}, row {frame.index[row_pos]!r}: "
            f"share {block[row_pos, col_pos]!r} must be finite and >= 0"
        )
    bad_sum = np.abs(block.sum(axis=1) - 1.0) > _ROW_SUM_TOLERANCE
    if bad_sum.any():
        row_pos = int(np.flatnonzero(bad_sum)[0])
        raise InfluencerFrameError(
            f"columns {prefix}*, row {frame.index[row_pos]!r}: shares sum to {block[row_pos].sum():.4f}, expected 1"
        )
    return block


def category_mix(frame: pd.DataFrame) -> np.ndarray:
    """Category mix of each influencer, shape ``(n, 12)`` in the order of :data:`CATEGORIES`.

    Read from the ``category_<name>`` columns when the frame has them (all twelve, any order);
    otherwise a one-hot mix on ``primary_category``.

    Raises
    ------
    InfluencerFrameError
        On a partial set of mix columns, an unknown ``category_*`` column, a negative share, a row that
        does not sum to 1 (±0.02), or an unknown primary category.
    """
    mix = _composition(frame, CATEGORY_PREFIX, CATEGORY_COLUMNS)
    if mix is not None:
        return mix
    _require_columns(frame, ("primary_category",))
    codes = _categorical_codes(frame, "primary_category", CATEGORIES)
    logger.debug("no category_* columns: using a one-hot mix on primary_category")
    return np.eye(len(CATEGORIES))[codes]


def audience_shares(frame: pd.DataFrame) -> np.ndarray | None:
    """Audience shares, shape ``(n, 12)`` in the order of :data:`AUDIENCE_COLUMNS`; None if absent."""
    return _composition(frame, AUDIENCE_PREFIX, AUDIENCE_COLUMNS)


def fit_embedding(frame: pd.DataFrame) -> np.ndarray:
    """Influencer side of the brand-fit embedding: ``[category mix (12), sqrt(audience) (12)]``.

    With queries from :func:`brand_queries`, the inner product ``fit_embedding(frame) @ queries.T`` is
    the brand fit ``0.6 · mix[i, c_b] + 0.4 · Σ_cells sqrt(a_i · t_b)`` (the audience term is the
    Bhattacharyya coefficient of the two audience distributions). Every entry is non-negative.

    Parameters
    ----------
    frame : DataFrame
        Influencer frame with the twelve audience columns; the category mix comes from
        :func:`category_mix`.

    Returns
    -------
    ndarray of shape (n, 24), float64
    """
    audience = audience_shares(frame)
    if audience is None:
        raise InfluencerFrameError(
            f"the brand-fit embedding needs the audience columns ({AUDIENCE_COLUMNS[0]!r}, ...); "
            "InfluencerPool fills them in when a CSV lacks them"
        )
    return np.hstack([category_mix(frame), np.sqrt(audience)])


def brand_queries(
    category_index: np.ndarray,
    target_audience: np.ndarray,
    *,
    category_weight: float = BRAND_FIT_CATEGORY_WEIGHT,
    audience_weight: float = BRAND_FIT_AUDIENCE_WEIGHT,
) -> np.ndarray:
    """Brand side of the brand-fit embedding: ``[w_c · one-hot(category), w_a · sqrt(target audience)]``.

    Parameters
    ----------
    category_index : array of int, shape (m,)
        Brand category as an index into :data:`CATEGORIES`.
    target_audience : array, shape (m, 12)
        Target audience shares in the order of :data:`AUDIENCE_COLUMNS` (rows sum to 1).
    category_weight, audience_weight : float
        Weights of the two terms; the defaults are the calibration's 0.6 and 0.4.

    Returns
    -------
    ndarray of shape (m, 24), float64
    """
    category_index = np.asarray(category_index)
    target_audience = np.atleast_2d(np.asarray(target_audience, dtype=np.float64))
    if category_index.ndim != 1 or not np.issubdtype(category_index.dtype, np.integer):
        raise ValueError("category_index must be a 1-D array of integers")
    n_categories, n_cells = len(CATEGORIES), len(AUDIENCE_COLUMNS)
    if category_index.size and (category_index.min() < 0 or category_index.max() >= n_categories):
        raise ValueError(f"category_index must lie in [0, {n_categories})")
    if target_audience.shape != (category_index.size, n_cells):
        raise ValueError(
            f"target_audience must have shape ({category_index.size}, {n_cells}), got {target_audience.shape}"
        )
    if not np.all(np.isfinite(target_audience)) or (target_audience < 0).any():
        raise ValueError("target_audience shares must be finite and >= 0")
    queries = np.zeros((category_index.size, n_categories + n_cells))
    queries[np.arange(category_index.size), category_index] = category_weight
    queries[:, n_categories:] = audience_weight * np.sqrt(target_audience)
    return queries


class InfluencerFeatures(TransformerMixin, BaseEstimator):
    """Standardised influencer feature matrix for clustering, fitted once and reused for newcomers.

    Blocks, in output order:

    - ``log_followers``, ``log_engagement_rate``, ``log_price``: natural logs, each z-scored;
    - ``platform_<name>``: one-hot of the platform (instagram, tiktok, youtube);
    - ``category_<name>``: the category mix (:func:`category_mix`; one-hot on ``primary_category``
      when the frame has no mix columns);
    - ``audience_<gender>_<band>``: the audience shares, if the fitted frame has them.

    Every block is centred and divided by one common scale, chosen so that the block's total variance
    (summed over its columns) equals its weight: a numeric feature is z-scored and multiplied by
    ``sqrt(weight)``; a multi-column block (platform, category, audience) keeps its inner geometry. With the
    default weights the category mix counts like two numeric features and the platform and the audience
    like one each, whatever their number of columns. (Scaling every one-hot column on its own would instead
    let rare categories dominate the distances.) The scaling learned in :meth:`fit` is reused by
    :meth:`transform`, so influencers joining a pool later land in the same space.

    Parameters
    ----------
    block_weights : mapping of str to float, optional
        Weight per block, keys among ``followers``, ``engagement``, ``price``, ``platform``, ``category``,
        ``audience``; missing keys take :data:`DEFAULT_BLOCK_WEIGHTS`. A weight of 0 drops the block's
        influence (its columns become 0).

    Attributes
    ----------
    feature_names_out_ : ndarray of str
        Names of the output columns.
    n_features_out_ : int
    mean_, scale_ : ndarray of shape (n_features_out_,)
        ``transform`` returns ``(raw - mean_) / scale_``.
    uses_audience_ : bool
        Whether the audience block is part of the features (the fitted frame had the audience columns).
    """

    def __init__(self, *, block_weights: Mapping[str, float] | None = None) -> None:
        self.block_weights = block_weights

    def _weights(self) -> dict[str, float]:
        weights = dict(DEFAULT_BLOCK_WEIGHTS)
        for key, value in (self.block_weights or {}).items():
            if key not in weights:
                raise ValueError(
                    f"block_weights: unknown block {key!r}; expected one of {', '.join(weights)}"
                )
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"block_weights[{key!r}] = {value!r} must be finite and >= 0")
            weights[key] = float(value)
        return weights

    def _raw(
        self, frame: pd.DataFrame, *, use_audience: bool | None
    ) -> tuple[list[tuple[str, np.ndarray]], bool]:
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"expected a pandas DataFrame of influencers, got {type(frame).__name__}")
        if len(frame) == 0:
            raise InfluencerFrameError("influencer frame is empty")
        _require_columns(frame, ("platform", "followers", "engagement_rate", "price"))
        followers = _numeric_column(frame, "followers", 1.0, np.inf, open_low=False)
        engagement = _numeric_column(frame, "engagement_rate", 0.0, 1.0, open_low=True)
        price = _numeric_column(frame, "price", 0.0, np.inf, open_low=True)
        platform = np.eye(len(PLATFORMS))[_categorical_codes(frame, "platform", PLATFORMS)]
        blocks = [
            ("followers", np.log(followers)[:, None]),
            ("engagement", np.log(engagement)[:, None]),
            ("price", np.log(price)[:, None]),
            ("platform", platform),
            ("category", category_mix(frame)),
        ]
        audience = audience_shares(frame)
        if use_audience is None:
            use_audience = audience is not None
            if not use_audience:
                logger.info("influencer frame has no audience columns: features leave the audience out")
        if use_audience:
            if audience is None:
                raise InfluencerFrameError(
                    f"influencer frame lacks the audience columns ({AUDIENCE_COLUMNS[0]!r}, ...) "
                    "that the features were fitted with"
                )
            blocks.append(("audience", audience))
        return blocks, use_audience

    def fit(self, frame: pd.DataFrame, y: object = None) -> InfluencerFeatures:
        """Learn the centring and scaling of every block from ``frame``.

        Parameters
        ----------
        frame : DataFrame
            Influencer frame (see the module docstring); hidden columns are ignored.
        y : ignored

        Returns
        -------
        self
        """
        weights = self._weights()
        blocks, self.uses_audience_ = self._raw(frame, use_audience=None)
        names: list[str] = ["log_followers", "log_engagement_rate", "log_price"]
        names += [f"platform_{p}" for p in PLATFORMS] + list(CATEGORY_COLUMNS)
        if self.uses_audience_:
            names += list(AUDIENCE_COLUMNS)
        means, scales = [], []
        for block_name, values in blocks:
            mean = values.mean(axis=0)
            total_variance = float(values.var(axis=0).sum())
            weight = weights[block_name]
            if weight == 0.0:
                scale = np.inf
            elif total_variance > 0.0:
                scale = np.sqrt(total_variance / weight)
            else:
                scale = 1.0
            means.append(mean)
            scales.append(np.full(values.shape[1], scale))
        self.mean_ = np.concatenate(means)
        self.scale_ = np.concatenate(scales)
        self.feature_names_out_ = np.asarray(names, dtype=object)
        self.n_features_out_ = len(names)
        return self

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Standardised features of ``frame`` with the scaling learned in :meth:`fit`.

        Returns
        -------
        ndarray of shape (n, n_features_out_), float64
        """
        check_is_fitted(self, "mean_")
        blocks, _ = self._raw(frame, use_audience=self.uses_audience_)
        raw = np.hstack([values for _, values in blocks])
        return (raw - self.mean_) / self.scale_

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        """Names of the output columns (``input_features`` is ignored)."""
        check_is_fitted(self, "feature_names_out_")
        return self.feature_names_out_.copy()
