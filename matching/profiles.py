"""Segment profiles: who is in each segment, what they cost, and a short readable name.

The names ("micro · instagram · beauty") appear in the environment's action names, so they are unique
within one segmentation and stable for a fixed pool and seed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from matching.features import (
    CATEGORIES,
    PLATFORMS,
    TIER_EDGES,
    TIERS,
    InfluencerFrameError,
    check_tier_edges,
    tier_index,
)

logger = logging.getLogger(__name__)

#: Separator inside segment names.
NAME_SEPARATOR = " · "
#: Number of top categories reported per segment.
N_TOP_CATEGORIES = 3
#: A segment's name shows its most common primary category only if at least this share of its
#: influencers have it; otherwise the name says "mixed".
NAME_CATEGORY_MIN_SHARE = 0.4
MIXED_CATEGORY = "mixed"
# Attributes that tell apart segments sharing a name, in order of preference on a tie: word -> median column.
_QUALIFIERS: dict[str, str] = {"ER": "engagement_rate", "price": "price", "followers": "followers"}


def _shares(codes: np.ndarray, segment_codes: np.ndarray, n_segments: int, n_values: int) -> np.ndarray:
    """Row-normalised contingency table, shape (n_segments, n_values)."""
    flat = np.bincount(segment_codes * n_values + codes, minlength=n_segments * n_values)
    counts = flat.reshape(n_segments, n_values).astype(np.float64)
    return counts / counts.sum(axis=1, keepdims=True)


def _codes(frame: pd.DataFrame, column: str, allowed: tuple[str, ...]) -> np.ndarray:
    if column not in frame.columns:
        raise InfluencerFrameError(f"influencer frame is missing required column {column!r}")
    codes = pd.Index(allowed).get_indexer(pd.Index(frame[column].astype(str))).astype(np.int64)
    if (codes < 0).any():
        row = frame.index[int(np.flatnonzero(codes < 0)[0])]
        raise InfluencerFrameError(
            f"column {column!r}, row {row!r}: {frame[column].loc[row]!r} is not one of {', '.join(allowed)}"
        )
    return codes


def _qualified_names(base_names: list[str], medians: pd.DataFrame) -> list[str]:
    """Tell apart segments that share a base name by the median in which they differ most.

    Within a group of segments with the same base name, the attribute among engagement rate, price and
    followers with the largest ratio between the group's highest and lowest median is chosen, and each
    segment gets ``low``/``high`` (two segments) or ``low``/``mid``/``high`` (three) of it, e.g.
    ``"micro · instagram · mixed · low ER"``. Larger groups, and any name still repeated, get ``· 2``,
    ``· 3``, ... on the second and later segment (in segment order).
    """
    names = list(base_names)
    words = {2: ("low", "high"), 3: ("low", "mid", "high")}
    for base in dict.fromkeys(base_names):
        group = [s for s, name in enumerate(base_names) if name == base]
        if len(group) not in words:
            continue
        spreads = {
            attribute: np.log(medians[column].iloc[group].max() / medians[column].iloc[group].min())
            for attribute, column in _QUALIFIERS.items()
        }
        attribute = max(spreads, key=lambda a: spreads[a])  # first listed wins a tie
        if not spreads[attribute] > 0:
            continue
        ranked = sorted(group, key=lambda s: (medians[_QUALIFIERS[attribute]].iloc[s], s))
        for word, s in zip(words[len(group)], ranked, strict=True):
            names[s] = f"{base}{NAME_SEPARATOR}{word} {attribute}"
    return _numbered(names)


def _numbered(names: list[str]) -> list[str]:
    """Make names unique: the first of a repeated name keeps it, later ones get ``· 2``, ``· 3``, ..."""
    taken = set(names)
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        if name not in seen:
            seen[name] = 1
            unique.append(name)
            continue
        counter = seen[name]
        while True:
            counter += 1
            candidate = f"{name}{NAME_SEPARATOR}{counter}"
            if candidate not in taken:
                break
        seen[name] = counter
        taken.add(candidate)
        unique.append(candidate)
    return unique


def segment_profiles(
    frame: pd.DataFrame, labels: np.ndarray, *, tier_edges: Sequence[float] = TIER_EDGES
) -> pd.DataFrame:
    """Profile of every segment, one row per segment label present in ``labels`` (ascending).

    Parameters
    ----------
    frame : DataFrame
        Influencer frame with ``platform``, ``followers``, ``engagement_rate``, ``primary_category`` and
        ``price`` (the CSV contract).
    labels : array of int, shape (n,)
        Segment of every row of ``frame``.
    tier_edges : sequence of 4 numbers
        Lower follower edge of micro, mid, macro and mega, for the tier mix and the names (default
        :data:`matching.features.TIER_EDGES`; the environment passes its calibration's ``tier_edges``).

    Returns
    -------
    DataFrame
        Columns:

        - ``segment`` (int) and ``name`` (str, unique): modal tier · modal platform · most common primary
          category, e.g. ``"micro · instagram · beauty"``, where the category reads ``mixed`` when fewer
          than :data:`NAME_CATEGORY_MIN_SHARE` of the segment have it. Two or three segments that would
          share a name get ``· low ER`` / ``· high ER`` (or ``price``, ``followers``: the median in which
          they differ most); otherwise ``· 2``, ``· 3``, ... on the second and later (in segment order);
        - ``size`` (influencers) and ``share`` (of all influencers);
        - ``tier_<name>`` (5 columns) and ``platform_<name>`` (3 columns): shares within the segment;
        - ``category_1``..``category_3`` with ``category_1_share``..: the most common primary categories
          and the share of the segment's influencers that have them (ties broken by category order);
        - ``median_followers``, ``median_price`` (USD per post), ``median_engagement_rate`` (observed);
        - ``value_per_dollar``: median over the segment of the estimated engagements per dollar at list
          price, ``followers · engagement_rate / price`` (observable quantities only).
    """
    check_tier_edges(tier_edges)
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != len(frame):
        raise ValueError(f"labels must have shape ({len(frame)},), got {labels.shape}")
    if len(frame) == 0:
        raise InfluencerFrameError("influencer frame is empty")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
    for column in ("followers", "engagement_rate", "price"):
        if column not in frame.columns:
            raise InfluencerFrameError(f"influencer frame is missing required column {column!r}")
    segments, segment_codes = np.unique(labels, return_inverse=True)
    n_segments = segments.size
    followers = frame["followers"].to_numpy(dtype=np.float64)
    engagement = frame["engagement_rate"].to_numpy(dtype=np.float64)
    price = frame["price"].to_numpy(dtype=np.float64)
    tier_share = _shares(tier_index(followers, tier_edges), segment_codes, n_segments, len(TIERS))
    platform_share = _shares(_codes(frame, "platform", PLATFORMS), segment_codes, n_segments, len(PLATFORMS))
    category_share = _shares(
        _codes(frame, "primary_category", CATEGORIES), segment_codes, n_segments, len(CATEGORIES)
    )
    # Stable sort on the negated shares: ties keep the category order of CATEGORIES.
    top_categories = np.argsort(-category_share, axis=1, kind="stable")[:, :N_TOP_CATEGORIES]

    table = pd.DataFrame({"segment": segments})
    size = np.bincount(segment_codes, minlength=n_segments)
    table["size"] = size
    table["share"] = size / size.sum()
    for t, tier in enumerate(TIERS):
        table[f"tier_{tier}"] = tier_share[:, t]
    for p, platform in enumerate(PLATFORMS):
        table[f"platform_{platform}"] = platform_share[:, p]
    for rank in range(N_TOP_CATEGORIES):
        codes = top_categories[:, rank]
        shares = category_share[np.arange(n_segments), codes]
        table[f"category_{rank + 1}"] = np.where(shares > 0, np.asarray(CATEGORIES, dtype=object)[codes], "")
        table[f"category_{rank + 1}_share"] = shares
    grouped = pd.DataFrame(
        {
            "segment": segment_codes,
            "followers": followers,
            "price": price,
            "engagement_rate": engagement,
            "value_per_dollar": followers * engagement / price,
        }
    ).groupby("segment", sort=True)
    medians = grouped.median()
    table["median_followers"] = medians["followers"].to_numpy()
    table["median_price"] = medians["price"].to_numpy()
    table["median_engagement_rate"] = medians["engagement_rate"].to_numpy()
    table["value_per_dollar"] = medians["value_per_dollar"].to_numpy()

    top_share = category_share[np.arange(n_segments), top_categories[:, 0]]
    category_word = np.where(
        top_share >= NAME_CATEGORY_MIN_SHARE,
        np.asarray(CATEGORIES, dtype=object)[top_categories[:, 0]],
        MIXED_CATEGORY,
    )
    base_names = [
        NAME_SEPARATOR.join(
            (TIERS[tier_share[s].argmax()], PLATFORMS[platform_share[s].argmax()], category_word[s])
        )
        for s in range(n_segments)
    ]
    table.insert(1, "name", _qualified_names(base_names, medians))
    return table
